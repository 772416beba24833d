//! Egress networking through pasta(1), and the small files every sandbox gets
//! (`/etc/hosts`, `/etc/resolv.conf`, `/etc/passwd` and `/etc/group` entries).
//!
//! pasta gives a network namespace a copy of the host's addresses and routes and relays
//! the namespace's connections through ordinary sockets of the host. With every port
//! forward off (`-t none -u none -T none -U none`) and `--no-map-gw`, the sandbox has no
//! address that leads back to the host: neither 127.0.0.1 nor a service bound to 0.0.0.0
//! is reachable (measured in `../shared/notes/platform.md`). DNS goes through
//! `--dns-forward` to the host's first resolver, UDP port 53 only.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The address inside the sandbox whose UDP port 53 pasta forwards to the host's resolver.
pub const DNS_FORWARD: &str = "169.254.1.1";

/// Errors setting up the network or writing the sandbox files.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// pasta is not installed.
    #[error("pasta is not installed")]
    PastaMissing(#[source] std::io::Error),
    /// pasta ran and failed.
    #[error("pasta failed to set up the network: {0}")]
    Pasta(String),
    /// Writing one of the files failed.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Attach pasta to the network namespace of `pid` and wait until the namespace is
/// configured (pasta forks into the background once it is). Its pid lands in `pid_file`.
pub fn start_pasta(pid: i32, pid_file: &Path) -> Result<(), NetworkError> {
    let out = Command::new("pasta")
        .args(["--config-net", "--quiet", "--no-map-gw"])
        .args(["-t", "none", "-u", "none", "-T", "none", "-U", "none"])
        .args(["--dns-forward", DNS_FORWARD])
        .arg("--pid")
        .arg(pid_file)
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(NetworkError::PastaMissing)?;
    if !out.status.success() {
        return Err(NetworkError::Pasta(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(())
}

/// Stop pasta if it is still running.
pub fn stop_pasta(pid_file: &Path) {
    if let Some(pid) = fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

/// The contents of `/etc/hosts` for a sandbox.
pub fn hosts(hostname: &str) -> String {
    format!(
        "{}127.0.1.1\t{hostname}\n",
        include_str!("../../../rootfs/etc/hosts")
    )
}

/// The contents of `/etc/resolv.conf` for an egress sandbox.
pub fn resolv_conf() -> String {
    format!("nameserver {DNS_FORWARD}\noptions edns0 trust-ad\n")
}

/// Add the sandbox user to the image's passwd and group files when the image lacks it, so
/// that `whoami`, `id` and shells that look up `$HOME` work. Returns `None` when the image
/// already has both entries (the image's own files are then used unchanged).
pub fn user_entries(
    rootfs: &Path,
    uid: u32,
    gid: u32,
    home: &Path,
) -> (Option<String>, Option<String>) {
    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let group = fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    let has_id = |text: &str, id: u32| {
        text.lines()
            .any(|l| l.split(':').nth(2).and_then(|v| v.parse::<u32>().ok()) == Some(id))
    };
    let name = if uid == 0 { "root" } else { "dev" };
    let new_passwd = (!has_id(&passwd, uid)).then(|| {
        let mut p = passwd.clone();
        if !p.is_empty() && !p.ends_with('\n') {
            p.push('\n');
        }
        p.push_str(&format!(
            "{name}:x:{uid}:{gid}:ags sandbox user:{}:/bin/sh\n",
            home.display()
        ));
        p
    });
    let new_group = (!has_id(&group, gid)).then(|| {
        let mut g = group.clone();
        if !g.is_empty() && !g.ends_with('\n') {
            g.push('\n');
        }
        g.push_str(&format!("{name}:x:{gid}:\n"));
        g
    });
    (new_passwd, new_group)
}

/// Write `content` to `dir/name` and return the path.
pub fn write_file(dir: &Path, name: &str, content: &str) -> Result<PathBuf, NetworkError> {
    let path = dir.join(name);
    fs::write(&path, content).map_err(|e| NetworkError::Write {
        path: path.clone(),
        source: e,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_has_localhost_and_hostname() {
        let h = hosts("box");
        assert!(h.contains("127.0.0.1\tlocalhost"));
        assert!(h.contains("::1"));
        assert!(h.ends_with("127.0.1.1\tbox\n"));
    }

    #[test]
    fn user_entries_are_added_only_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh").unwrap();
        fs::write(dir.path().join("etc/group"), "root:x:0:\ndev:x:1000:\n").unwrap();
        let (p, g) = user_entries(dir.path(), 1000, 1000, Path::new("/home/dev"));
        assert_eq!(
            p.unwrap(),
            "root:x:0:0::/root:/bin/sh\ndev:x:1000:1000:ags sandbox user:/home/dev:/bin/sh\n"
        );
        assert!(g.is_none());
        let (p, _) = user_entries(dir.path(), 0, 0, Path::new("/root"));
        assert!(p.is_none());
    }
}
