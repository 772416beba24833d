//! The one confinement function for untrusted tar entry names (DEVELOPERS.md, style rule 2).
//!
//! Every entry name and every hardlink target goes through [`confine`] before it is used for
//! anything. It turns the raw bytes into a list of plain components: leading `/` and `./`
//! are stripped (absolute names are taken relative to the rootfs, as every container engine
//! does), empty and `.` components are dropped, and anything that could escape or confuse
//! lookups is rejected with a reason: `..` anywhere (CVE-2014-9356 family; the tar crate's
//! own `unpack_in` silently skips such entries instead of failing), NUL bytes (C APIs would
//! see a different, shorter name), over-long names and over-long components.
//!
//! The result is lexically confined only. Symlinks that already exist in the rootfs are
//! handled by the resolver (openat2 `RESOLVE_IN_ROOT`), never by string checks here.

use std::fmt;

/// Longest single component Linux accepts (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// A normalised, lexically confined path relative to the rootfs; empty means the root itself.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct EntryPath {
    comps: Vec<Vec<u8>>,
}

impl EntryPath {
    /// The root of the rootfs.
    pub(crate) fn root() -> Self {
        EntryPath { comps: Vec::new() }
    }

    pub(crate) fn is_root(&self) -> bool {
        self.comps.is_empty()
    }

    pub(crate) fn components(&self) -> &[Vec<u8>] {
        &self.comps
    }

    /// The last component, `None` for the root.
    pub(crate) fn file_name(&self) -> Option<&[u8]> {
        self.comps.last().map(Vec::as_slice)
    }

    /// Everything but the last component (the root for single-component paths and the root).
    pub(crate) fn parent(&self) -> EntryPath {
        let mut comps = self.comps.clone();
        comps.pop();
        EntryPath { comps }
    }

    pub(crate) fn join(&self, name: &[u8]) -> EntryPath {
        let mut comps = self.comps.clone();
        comps.push(name.to_vec());
        EntryPath { comps }
    }

    /// The relative form handed to the in-root resolver (`a/b/c`, or `.` for the root).
    pub(crate) fn to_relative_bytes(&self) -> Vec<u8> {
        if self.comps.is_empty() {
            return b".".to_vec();
        }
        self.comps.join(&b'/')
    }

    /// Whether `prefix` is this path or one of its ancestors (component-wise).
    pub(crate) fn starts_with(&self, prefix: &EntryPath) -> bool {
        self.comps.starts_with(&prefix.comps)
    }

    /// All proper prefixes and the path itself, shortest first (`a`, `a/b`, `a/b/c`).
    pub(crate) fn prefixes(&self) -> impl Iterator<Item = EntryPath> + '_ {
        (1..=self.comps.len()).map(|n| EntryPath {
            comps: self.comps[..n].to_vec(),
        })
    }
}

/// Displays the path as it appears inside the container (`/etc/passwd`), with control
/// characters and invalid UTF-8 escaped so a hostile name cannot inject terminal sequences
/// into error messages.
impl fmt::Display for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.comps.is_empty() {
            return f.write_str("/");
        }
        for comp in &self.comps {
            write!(f, "/{}", escape(comp))?;
        }
        Ok(())
    }
}

impl fmt::Debug for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryPath({self})")
    }
}

/// Escapes untrusted bytes for messages: printable UTF-8 is kept, everything else escaped.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Normalises an untrusted entry name (see the module docs). `max_len` caps the raw name.
///
/// # Errors
/// Returns the reason as a short lowercase phrase for the caller's error message.
pub(crate) fn confine(name: &[u8], max_len: usize) -> Result<EntryPath, &'static str> {
    if name.len() > max_len {
        return Err("name is longer than the path length budget");
    }
    if name.contains(&0) {
        return Err("name contains a NUL byte");
    }
    let mut comps = Vec::new();
    for comp in name.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => return Err("name contains a `..` component"),
            _ if comp.len() > NAME_MAX => return Err("name has a component longer than 255 bytes"),
            _ => comps.push(comp.to_vec()),
        }
    }
    Ok(EntryPath { comps })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(name: &[u8]) -> String {
        confine(name, 4096)
            .unwrap_or_else(|e| panic!("{} rejected: {e}", escape(name)))
            .to_string()
    }

    #[test]
    fn hostile_names_table() {
        let long_comp = vec![b'a'; 256];
        let long_name = [b"a/".repeat(2048), b"b".to_vec()].concat();
        let rejected: &[(&[u8], &str)] = &[
            (b"..", "`..`"),
            (b"../etc/passwd", "`..`"),
            (b"/../etc/passwd", "`..`"),
            (b"./../x", "`..`"),
            (b"a/../../x", "`..`"),
            (b"a/..", "`..`"),
            (b"a/b/../c", "`..`"),
            (b"a/../b", "`..`"),
            (b"//..//x", "`..`"),
            (b"a/\0/b", "NUL"),
            (b"etc/passwd\0.txt", "NUL"),
            (b"\0", "NUL"),
            (&long_comp, "255"),
            (&long_name, "budget"),
        ];
        for (name, why) in rejected {
            let err = confine(name, 4096).expect_err(&escape(name));
            assert!(err.contains(why), "{}: {err}", escape(name));
        }

        let accepted: &[(&[u8], &str)] = &[
            (b"", "/"),
            (b"/", "/"),
            (b".", "/"),
            (b"./", "/"),
            (b"//", "/"),
            (b"/./././", "/"),
            (b"etc/passwd", "/etc/passwd"),
            (b"/etc/passwd", "/etc/passwd"),
            (b"./etc/passwd", "/etc/passwd"),
            (b"///etc//./passwd/", "/etc/passwd"),
            (b"...", "/..."),
            (b"..a/b..", "/..a/b.."),
            (b".wh..wh..opq", "/.wh..wh..opq"),
            (b"a\\..\\b", "/a\\\\..\\\\b"),
            (b"tab\there", "/tab\\there"),
            (b"esc\x1b[2J", "/esc\\u{1b}[2J"),
            (b"bad\xffutf8", "/bad\\xffutf8"),
            (&[b'a'; 255], ""),
        ];
        for (name, want) in accepted {
            let got = ok(name);
            if !want.is_empty() {
                assert_eq!(&got, want, "{}", escape(name));
            }
        }
    }

    #[test]
    fn budget_is_configurable() {
        assert!(confine(b"abcdef", 5).is_err());
        assert!(confine(b"abcde", 5).is_ok());
    }

    #[test]
    fn parents_and_prefixes() {
        let p = confine(b"/a/b/c", 100).unwrap();
        assert_eq!(p.parent().to_string(), "/a/b");
        assert_eq!(p.file_name(), Some(&b"c"[..]));
        assert_eq!(p.to_relative_bytes(), b"a/b/c");
        let prefixes: Vec<String> = p.prefixes().map(|p| p.to_string()).collect();
        assert_eq!(prefixes, ["/a", "/a/b", "/a/b/c"]);
        assert!(EntryPath::root().parent().is_root());
        assert_eq!(EntryPath::root().to_relative_bytes(), b".");
        assert_eq!(EntryPath::root().join(b"x").to_string(), "/x");
        assert!(p.starts_with(&p.parent()) && p.starts_with(&EntryPath::root()));
        assert!(!p.starts_with(&confine(b"a/bb", 100).unwrap()));
        assert!(!p.parent().starts_with(&p));
    }
}
