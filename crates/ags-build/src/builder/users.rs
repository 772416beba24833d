//! Reading files of a layered root from the host side, and resolving `USER` / `--chown`
//! names against the image's own /etc/passwd and /etc/group.

use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

/// The content of `rel` (e.g. `etc/passwd`) as the merged root would show it: the topmost
/// layer that has it wins, a whiteout hides it. `layers` is bottom first. Layers are only
/// read, never followed through symlinks at the final component.
pub fn read_layered(layers: &[PathBuf], rel: &str) -> Option<String> {
    for dir in layers.iter().rev() {
        let p = dir.join(rel);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_char_device() => return None,
            Ok(m) if m.is_file() => return std::fs::read_to_string(&p).ok(),
            Ok(_) => return None,
            Err(_) => continue,
        }
    }
    None
}

fn lookup(text: &str, name: &str) -> Option<(u32, Option<u32>)> {
    text.lines()
        .find(|l| l.split(':').next() == Some(name))
        .and_then(|l| {
            Some((
                l.split(':').nth(2)?.parse::<u32>().ok()?,
                l.split(':').nth(3).and_then(|g| g.parse::<u32>().ok()),
            ))
        })
}

/// Resolves `user[:group]` (names or numbers) to ids. A numeric user without a group gets
/// its passwd entry's group when it has one, else the same number, as Docker does.
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<(u32, u32), String> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, primary) = match u.parse::<u32>() {
        Ok(n) => (
            n,
            passwd
                .lines()
                .find(|l| l.split(':').nth(2).and_then(|v| v.parse::<u32>().ok()) == Some(n))
                .and_then(|l| l.split(':').nth(3)?.parse::<u32>().ok()),
        ),
        Err(_) => lookup(passwd, u).ok_or_else(|| format!("user {u:?} is not in /etc/passwd"))?,
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                lookup(group, g)
                    .ok_or_else(|| format!("group {g:?} is not in /etc/group"))?
                    .0
            }
        },
        None => primary.unwrap_or(uid),
    };
    if uid > 65535 || gid > 65535 {
        return Err(format!("{spec:?}: ids above 65535 are not mapped"));
    }
    Ok((uid, gid))
}

/// Resolves `spec` against the layered root.
pub fn resolve_in_layers(layers: &[PathBuf], spec: &str) -> Result<(u32, u32), String> {
    let passwd = read_layered(layers, "etc/passwd").unwrap_or_default();
    let group = read_layered(layers, "etc/group").unwrap_or_default();
    resolve_user(spec, &passwd, &group)
}

/// The home directory of `uid` in the layered root (`/root` for 0 when unknown).
pub fn home_of(layers: &[PathBuf], uid: u32) -> PathBuf {
    let passwd = read_layered(layers, "etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find(|l| l.split(':').nth(2).and_then(|v| v.parse::<u32>().ok()) == Some(uid))
        .and_then(|l| l.split(':').nth(5))
        .filter(|h| h.starts_with('/'))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(if uid == 0 { "/root" } else { "/" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\ndev:x:1000:1000::/home/dev:/bin/bash\n";
    const GROUP: &str = "root:x:0:\nnogroup:x:65534:\ndev:x:1000:\nstaff:x:50:\n";

    #[test]
    fn resolves_names_numbers_and_groups() {
        assert_eq!(resolve_user("root", PASSWD, GROUP), Ok((0, 0)));
        assert_eq!(resolve_user("dev", PASSWD, GROUP), Ok((1000, 1000)));
        assert_eq!(resolve_user("dev:staff", PASSWD, GROUP), Ok((1000, 50)));
        assert_eq!(resolve_user("42", PASSWD, GROUP), Ok((42, 65534)));
        assert_eq!(resolve_user("1234", PASSWD, GROUP), Ok((1234, 1234)));
        assert_eq!(resolve_user("1234:7", PASSWD, GROUP), Ok((1234, 7)));
        assert!(resolve_user("nobody", PASSWD, GROUP).is_err());
        assert!(resolve_user("dev:wheel", PASSWD, GROUP).is_err());
        assert!(resolve_user("70000", PASSWD, GROUP).is_err());
    }

    #[test]
    fn layered_reads_take_the_top_layer_and_honour_whiteouts() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::create_dir_all(a.join("etc")).unwrap();
        std::fs::create_dir_all(b.join("etc")).unwrap();
        std::fs::write(a.join("etc/passwd"), "low").unwrap();
        assert_eq!(
            read_layered(&[a.clone(), b.clone()], "etc/passwd").as_deref(),
            Some("low")
        );
        std::fs::write(b.join("etc/passwd"), "high").unwrap();
        assert_eq!(
            read_layered(&[a.clone(), b.clone()], "etc/passwd").as_deref(),
            Some("high")
        );
        assert_eq!(read_layered(&[a, b], "etc/group"), None);
    }
}
