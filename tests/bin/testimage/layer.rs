//! Layer building: the item grammar, compression, diff_id hashing and the pseudo-random
//! data source (the tar entries themselves come from `tarball.rs`).
//!
//! Determinism is the point of this module: the same spec gives the same bytes, hence the
//! same digests, on every machine. Directory walks are sorted by name, every entry gets the
//! same mtime and owner, no user or group names are written, and the gzip header carries
//! no timestamp or file name.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use ags_oci::Digest;
use sha2::{Digest as _, Sha256};

use crate::tarball::TarWriter;
use crate::{Error, Result, fail};

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

impl Compression {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "gzip" => Ok(Self::Gzip),
            "zstd" => Ok(Self::Zstd),
            "none" => Ok(Self::None),
            _ => Err(fail(format!(
                "invalid compression {s:?} (expected gzip, zstd or none)"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
            Self::None => "none",
        }
    }
}

/// One entry (or, for `dir:` and `random:`, a group of entries) of a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A host directory's contents, placed under `dest` (`""`: the layer root).
    Dir {
        host: PathBuf,
        dest: String,
    },
    /// `data/` and `data/NAME` with `size` pseudo-random bytes.
    Random {
        size: u64,
        name: Option<String>,
    },
    File {
        path: String,
        mode: u32,
        content: Vec<u8>,
    },
    Mkdir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
    /// `DIR/.wh.NAME` for `DIR/NAME`.
    Whiteout {
        path: String,
    },
    /// `DIR/.wh..wh..opq`.
    Opaque {
        dir: String,
    },
    Fifo {
        path: String,
    },
    Device {
        path: String,
        block: bool,
        major: u32,
        minor: u32,
    },
}

const KEYWORDS: &[&str] = &[
    "dir", "random", "file", "mkdir", "symlink", "hardlink", "whiteout", "opaque", "fifo",
    "chardev", "blockdev",
];

/// Splits a LAYER argument into item strings: at every `+` directly followed by a known
/// `keyword:`, so that contents and paths may contain `+` otherwise.
pub fn split_items(arg: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, _) in arg.match_indices('+') {
        let rest = &arg[i + 1..];
        if KEYWORDS
            .iter()
            .any(|k| rest.strip_prefix(k).is_some_and(|r| r.starts_with(':')))
        {
            out.push(&arg[start..i]);
            start = i + 1;
        }
    }
    out.push(&arg[start..]);
    out
}

/// Parses `SIZE` with an optional binary suffix: `512`, `64K`, `20M`, `1G` (also `KiB`...).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits);
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => {
            return Err(fail(format!(
                "invalid size {s:?} (expected e.g. 512, 64K, 20M, 1G)"
            )));
        }
    };
    let n: u64 = num.parse().map_err(|_| {
        fail(format!(
            "invalid size {s:?} (expected e.g. 512, 64K, 20M, 1G)"
        ))
    })?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| fail(format!("size {s:?} is too large")))
}

fn parse_mode(s: &str, item: &str) -> Result<u32> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| fail(format!("invalid octal mode {s:?} in {item:?}")))
}

/// `PATH[:MODE]` where MODE is octal digits.
fn path_mode(s: &str, default: u32, item: &str) -> Result<(String, u32)> {
    match s.rsplit_once(':') {
        Some((p, m)) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) => {
            Ok((p.to_string(), parse_mode(m, item)?))
        }
        _ => Ok((s.to_string(), default)),
    }
}

impl Item {
    /// Parses one item, e.g. `file:/etc/motd:0600=hello` (grammar in the binary's --help).
    pub fn parse(s: &str) -> Result<Self> {
        let (kw, rest) = s
            .split_once(':')
            .ok_or_else(|| fail(format!("invalid layer item {s:?}: expected KIND:ARGS")))?;
        let need = |what: &str| fail(format!("invalid layer item {s:?}: expected {kw}:{what}"));
        let nonempty = |p: &str, what: &str| {
            if p.is_empty() {
                Err(need(what))
            } else {
                Ok(p.to_string())
            }
        };
        Ok(match kw {
            "dir" => {
                let (host, dest) = rest.split_once('=').unwrap_or((rest, ""));
                Item::Dir {
                    host: PathBuf::from(nonempty(host, "HOSTDIR[=DEST]")?),
                    dest: dest.to_string(),
                }
            }
            "random" => {
                let (size, name) = match rest.split_once(':') {
                    Some((sz, n)) => (sz, Some(nonempty(n, "SIZE[:NAME]")?)),
                    None => (rest, None),
                };
                Item::Random {
                    size: parse_size(size)?,
                    name,
                }
            }
            "file" => {
                let (lhs, content) = rest
                    .split_once('=')
                    .ok_or_else(|| need("PATH[:MODE]=CONTENT"))?;
                let (path, mode) = path_mode(lhs, 0o644, s)?;
                Item::File {
                    path: nonempty(&path, "PATH[:MODE]=CONTENT")?,
                    mode,
                    content: content.as_bytes().to_vec(),
                }
            }
            "mkdir" => {
                let (path, mode) = path_mode(rest, 0o755, s)?;
                Item::Mkdir {
                    path: nonempty(&path, "PATH[:MODE]")?,
                    mode,
                }
            }
            "symlink" | "hardlink" => {
                let (path, target) = rest.split_once('=').ok_or_else(|| need("PATH=TARGET"))?;
                let path = nonempty(path, "PATH=TARGET")?;
                let target = nonempty(target, "PATH=TARGET")?;
                if kw == "symlink" {
                    Item::Symlink { path, target }
                } else {
                    Item::Hardlink { path, target }
                }
            }
            "whiteout" => Item::Whiteout {
                path: nonempty(rest, "PATH")?,
            },
            "opaque" => Item::Opaque {
                dir: rest.to_string(),
            },
            "fifo" => Item::Fifo {
                path: nonempty(rest, "PATH")?,
            },
            "chardev" | "blockdev" => {
                let (path, nums) = rest
                    .split_once('=')
                    .ok_or_else(|| need("PATH=MAJOR:MINOR"))?;
                let (major, minor) = nums
                    .split_once(':')
                    .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                    .ok_or_else(|| need("PATH=MAJOR:MINOR"))?;
                Item::Device {
                    path: nonempty(path, "PATH=MAJOR:MINOR")?,
                    block: kw == "blockdev",
                    major,
                    minor,
                }
            }
            _ => {
                return Err(fail(format!(
                    "unknown layer item kind {kw:?} in {s:?} (known: {})",
                    KEYWORDS.join(", ")
                )));
            }
        })
    }
}

impl Item {
    /// A description without host paths or contents, for the config's history: the
    /// config digest must not depend on where the rootfs happened to be on the host.
    pub fn describe(&self) -> String {
        match self {
            Item::Dir { dest, .. } => format!("dir:{}", if dest.is_empty() { "/" } else { dest }),
            Item::Random { size, name } => match name {
                Some(n) => format!("random:{size}:{n}"),
                None => format!("random:{size}"),
            },
            Item::File {
                path,
                mode,
                content,
            } => format!("file:{path}:{mode:04o} ({} bytes)", content.len()),
            Item::Mkdir { path, mode } => format!("mkdir:{path}:{mode:04o}"),
            Item::Symlink { path, target } => format!("symlink:{path}={target}"),
            Item::Hardlink { path, target } => format!("hardlink:{path}={target}"),
            Item::Whiteout { path } => format!("whiteout:{path}"),
            Item::Opaque { dir } => format!("opaque:{dir}"),
            Item::Fifo { path } => format!("fifo:{path}"),
            Item::Device {
                path,
                block,
                major,
                minor,
            } => format!(
                "{}:{path}={major}:{minor}",
                if *block { "blockdev" } else { "chardev" }
            ),
        }
    }
}

/// The per-layer settings (`--compression`, `--owner`, `--raw-names`, `--wrong-diff-id`).
#[derive(Clone, Debug)]
pub struct LayerOptions {
    pub compression: Compression,
    pub uid: u64,
    pub gid: u64,
    pub raw_names: bool,
    /// Record a diff_id in the image config that is not the layer's (hostile-image tests).
    pub wrong_diff_id: bool,
}

/// A layer as the user described it.
#[derive(Clone, Debug)]
pub struct LayerSpec {
    /// The argument as given (for history entries and messages).
    pub arg: String,
    pub items: Vec<Item>,
    pub options: LayerOptions,
}

/// A built layer blob.
#[derive(Debug)]
pub struct BuiltLayer {
    pub blob: Vec<u8>,
    /// The sha256 of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    pub tar_size: u64,
}

/// Settings shared by all layers of one image.
#[derive(Clone, Debug)]
pub struct BuildContext {
    pub mtime: u64,
    pub seed: String,
}

/// Builds a layer: tar, hashing the uncompressed stream, then compression into memory.
pub fn build(spec: &LayerSpec, index: usize, ctx: &BuildContext) -> Result<BuiltLayer> {
    let compressor = match spec.options.compression {
        Compression::Gzip => Compressor::Gzip(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        )),
        Compression::Zstd => Compressor::Zstd(
            zstd::Encoder::new(Vec::new(), zstd::DEFAULT_COMPRESSION_LEVEL)
                .map_err(|e| Error::io("zstd encoder", e))?,
        ),
        Compression::None => Compressor::None(Vec::new()),
    };
    let mut tar = TarWriter {
        out: Hashing {
            inner: compressor,
            hasher: Sha256::new(),
            count: 0,
        },
        mtime: ctx.mtime,
        uid: spec.options.uid,
        gid: spec.options.gid,
        raw_names: spec.options.raw_names,
    };
    for item in &spec.items {
        tar.item(item, index, ctx)?;
    }
    // End of archive: two zero blocks.
    tar.out
        .write_all(&[0u8; 1024])
        .map_err(|e| Error::io("layer", e))?;
    let Hashing {
        inner,
        hasher,
        count,
    } = tar.out;
    let diff_id = Digest::from_hex(&hex_lower(&hasher.finalize()))
        .map_err(|e| fail(format!("internal error: bad diff_id: {e}")))?;
    let blob = inner
        .finish()
        .map_err(|e| Error::io("layer compression", e))?;
    Ok(BuiltLayer {
        blob,
        diff_id,
        tar_size: count,
    })
}

/// Reads a prepared layer file for `push-tar`: a tar archive, plain or compressed with gzip
/// or zstd (told apart by their magic numbers). The file becomes the blob byte for byte;
/// the diff_id is the sha256 of the decompressed stream, which must be a tar archive (a
/// ustar or GNU header first, a whole number of 512-byte blocks).
pub fn from_tar_file(path: &Path) -> Result<(BuiltLayer, Compression)> {
    let blob = std::fs::read(path).map_err(|e| Error::path(path, e))?;
    let compression = if blob.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    };
    let bad =
        |what: String| move |e: io::Error| Error::with(format!("{}: {what}", path.display()), e);
    fn decoder(data: &[u8], compression: Compression) -> io::Result<Box<dyn Read + '_>> {
        Ok(match compression {
            // Multi-member: `pigz` and concatenated gzip files are valid layers too.
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(data)),
            Compression::Zstd => Box::new(zstd::Decoder::new(data)?),
            Compression::None => Box::new(data),
        })
    }
    let what = format!("not a valid {} stream", compression.name());
    let mut header = [0u8; 512];
    decoder(&blob, compression)
        .and_then(|mut r| r.read_exact(&mut header))
        .map_err(bad(format!("{what} or shorter than one tar header")))?;
    if &header[257..262] != b"ustar" {
        return Err(fail(format!(
            "{}: not a tar archive (no ustar magic in the first header){}",
            path.display(),
            if compression == Compression::None {
                "; gzip and zstd files are recognised by their magic number"
            } else {
                ""
            }
        )));
    }
    let mut out = Hashing {
        inner: io::sink(),
        hasher: Sha256::new(),
        count: 0,
    };
    decoder(&blob, compression)
        .and_then(|mut r| io::copy(&mut r, &mut out))
        .map_err(bad(what))?;
    if out.count % 512 != 0 {
        return Err(fail(format!(
            "{}: the tar stream is {} bytes, not a whole number of 512-byte blocks",
            path.display(),
            out.count
        )));
    }
    let diff_id = Digest::from_hex(&hex_lower(&out.hasher.finalize()))
        .map_err(|e| fail(format!("internal error: bad diff_id: {e}")))?;
    Ok((
        BuiltLayer {
            blob,
            diff_id,
            tar_size: out.count,
        },
        compression,
    ))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

enum Compressor {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::Encoder<'static, Vec<u8>>),
    None(Vec<u8>),
}

impl Compressor {
    fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Self::Gzip(e) => e.finish(),
            Self::Zstd(e) => e.finish(),
            Self::None(v) => Ok(v),
        }
    }
}

impl Write for Compressor {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Gzip(e) => e.write(buf),
            Self::Zstd(e) => e.write(buf),
            Self::None(v) => v.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Hashes and counts what passes through (the uncompressed tar stream).
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Deterministic pseudo-random bytes: SHA-256 in counter mode over a key derived from the
/// seed, the file name and the size. Incompressible, reproducible, different per name.
pub struct RandomReader {
    key: [u8; 32],
    counter: u64,
    block: [u8; 32],
    pos: usize,
    left: u64,
}

impl RandomReader {
    pub fn new(seed: &str, name: &str, size: u64) -> Self {
        let mut h = Sha256::new();
        for part in [
            b"ags-testimage random v1".as_slice(),
            seed.as_bytes(),
            name.as_bytes(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(size.to_le_bytes());
        Self {
            key: h.finalize().into(),
            counter: 0,
            block: [0; 32],
            pos: 32,
            left: size,
        }
    }
}

impl Read for RandomReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let mut n = 0;
        while n < want {
            if self.pos == 32 {
                let mut h = Sha256::new();
                h.update(self.key);
                h.update(self.counter.to_le_bytes());
                self.block = h.finalize().into();
                self.counter += 1;
                self.pos = 0;
            }
            let take = (32 - self.pos).min(want - n);
            buf[n..n + take].copy_from_slice(&self.block[self.pos..self.pos + take]);
            self.pos += take;
            n += take;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_only_at_keywords() {
        assert_eq!(
            split_items("file:/a=x+y+symlink:/b=/c"),
            ["file:/a=x+y", "symlink:/b=/c"]
        );
        assert_eq!(split_items("random:1M"), ["random:1M"]);
        assert_eq!(split_items("file:/a=+nope:x"), ["file:/a=+nope:x"]);
    }

    #[test]
    fn item_table() {
        assert_eq!(parse_size("20M").unwrap(), 20 << 20);
        assert_eq!(parse_size("7").unwrap(), 7);
        assert!(parse_size("1T").is_err());
        assert_eq!(
            Item::parse("file:/etc/x:0600=a=b").unwrap(),
            Item::File {
                path: "/etc/x".into(),
                mode: 0o600,
                content: b"a=b".to_vec()
            }
        );
        assert_eq!(
            Item::parse("random:1K:blob").unwrap(),
            Item::Random {
                size: 1024,
                name: Some("blob".into())
            }
        );
        assert_eq!(
            Item::parse("chardev:/dev/null=1:3").unwrap(),
            Item::Device {
                path: "/dev/null".into(),
                block: false,
                major: 1,
                minor: 3
            }
        );
        for bad in [
            "nope:x",
            "file:/a",
            "symlink:/a",
            "mkdir:/a:0999",
            "chardev:/a=1",
            "dir:",
        ] {
            assert!(Item::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn layers_are_deterministic_and_readable() {
        let spec = LayerSpec {
            arg: String::new(),
            items: [
                "mkdir:/etc",
                "file:/etc/motd=hi",
                "hardlink:/etc/motd2=/etc/motd",
                "symlink:/l=etc/motd",
                "whiteout:/etc/gone",
                "opaque:/var",
                "random:1000:r",
            ]
            .iter()
            .map(|s| Item::parse(s).unwrap())
            .collect(),
            options: LayerOptions {
                compression: Compression::Gzip,
                uid: 0,
                gid: 0,
                raw_names: false,
                wrong_diff_id: false,
            },
        };
        let ctx = BuildContext {
            mtime: 0,
            seed: String::new(),
        };
        let a = build(&spec, 0, &ctx).unwrap();
        let b = build(&spec, 0, &ctx).unwrap();
        assert_eq!(a.blob, b.blob);
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(a.blob.as_slice())
            .read_to_end(&mut tar_bytes)
            .unwrap();
        assert_eq!(a.diff_id, Digest::of(&tar_bytes));
        assert_eq!(a.tar_size, tar_bytes.len() as u64);
        let mut ar = tar::Archive::new(tar_bytes.as_slice());
        let entries: Vec<(String, char, Option<String>)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned());
                let kind = char::from(e.header().entry_type().as_byte());
                (
                    String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                    kind,
                    link,
                )
            })
            .collect();
        let want = [
            ("etc/", '5', None),
            ("etc/motd", '0', None),
            ("etc/motd2", '1', Some("etc/motd")),
            ("l", '2', Some("etc/motd")),
            ("etc/.wh.gone", '0', None),
            ("var/.wh..wh..opq", '0', None),
            ("data/", '5', None),
            ("data/r", '0', None),
        ];
        let want: Vec<(String, char, Option<String>)> = want
            .iter()
            .map(|(n, k, l)| (n.to_string(), *k, l.map(str::to_string)))
            .collect();
        assert_eq!(entries, want);
    }

    #[test]
    fn long_and_raw_names() {
        let long = format!("/{}/f", "d".repeat(150));
        let spec = LayerSpec {
            arg: String::new(),
            items: vec![
                Item::parse(&format!("file:{long}=x")).unwrap(),
                Item::parse("file:../escape=x").unwrap(),
                Item::parse(&format!("symlink:/s={long}")).unwrap(),
            ],
            options: LayerOptions {
                compression: Compression::None,
                uid: 1000,
                gid: 1000,
                raw_names: true,
                wrong_diff_id: false,
            },
        };
        let ctx = BuildContext {
            mtime: 0,
            seed: String::new(),
        };
        let built = build(&spec, 0, &ctx).unwrap();
        let mut ar = tar::Archive::new(built.blob.as_slice());
        let got: Vec<(Vec<u8>, Option<Vec<u8>>, u64)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e.link_name_bytes().map(|l| l.into_owned());
                (e.path_bytes().into_owned(), link, e.header().uid().unwrap())
            })
            .collect();
        assert_eq!(got[0], (long.clone().into_bytes(), None, 1000));
        assert_eq!(got[1].0, b"../escape");
        assert_eq!(got[2], (b"/s".to_vec(), Some(long.into_bytes()), 1000));
    }

    #[test]
    fn tar_files_are_pushed_verbatim_with_their_diff_id() {
        let spec = LayerSpec {
            arg: String::new(),
            items: vec![Item::parse("file:/etc/motd=hi").unwrap()],
            options: LayerOptions {
                compression: Compression::None,
                uid: 0,
                gid: 0,
                raw_names: false,
                wrong_diff_id: false,
            },
        };
        let ctx = BuildContext {
            mtime: 0,
            seed: String::new(),
        };
        let tar_bytes = build(&spec, 1, &ctx).unwrap().blob;
        let want = Digest::of(&tar_bytes);
        let dir = tempfile::tempdir().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar_bytes).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(tar_bytes.as_slice(), 3).unwrap();
        for (name, bytes, compression) in [
            ("l.tar", &tar_bytes, Compression::None),
            ("l.tar.gz", &gz, Compression::Gzip),
            ("l.tar.zst", &zst, Compression::Zstd),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let (built, c) = from_tar_file(&path).unwrap();
            assert_eq!(c, compression, "{name}");
            assert_eq!(&built.blob, bytes, "{name}");
            assert_eq!(built.diff_id, want, "{name}");
            assert_eq!(built.tar_size, tar_bytes.len() as u64, "{name}");
        }
        let bad: [(&str, &[u8]); 4] = [
            ("empty", b""),
            ("text", &[b'x'; 1024]),
            ("truncated.gz", &gz[..gz.len() / 2]),
            ("ragged.tar", &tar_bytes[..tar_bytes.len() - 100]),
        ];
        for (name, bytes) in bad {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let err = from_tar_file(&path).unwrap_err();
            assert!(err.message.contains(name), "{name}: {}", err.message);
        }
        assert!(from_tar_file(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn random_data_is_seeded_and_incompressible() {
        let read = |seed: &str, name: &str| {
            let mut v = Vec::new();
            RandomReader::new(seed, name, 100_000)
                .read_to_end(&mut v)
                .unwrap();
            v
        };
        let a = read("", "a");
        assert_eq!(a.len(), 100_000);
        assert_eq!(a, read("", "a"));
        assert_ne!(a, read("", "b"));
        assert_ne!(a, read("x", "a"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&a).unwrap();
        assert!(gz.finish().unwrap().len() > 99_000);
    }
}
