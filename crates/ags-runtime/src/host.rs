//! Host checks for `ags doctor`: what a rootless sandbox needs, and how to fix each gap.

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::cgroups::{self, Delegation, Layout};
use crate::idmap;

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, degraded.
    Warn,
    /// Sandboxes cannot start (when the check is required) or a feature is unavailable.
    Fail,
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct Check {
    /// Short name.
    pub name: &'static str,
    /// Result.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// How to fix it, when not fine.
    pub hint: Option<String>,
    /// Whether a failure stops every sandbox (as opposed to one feature).
    pub required: bool,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Ok,
            detail: detail.into(),
            hint: None,
            required: true,
        }
    }
    fn bad(
        name: &'static str,
        status: Status,
        detail: impl Into<String>,
        hint: impl Into<String>,
        required: bool,
    ) -> Self {
        Self {
            name,
            status,
            detail: detail.into(),
            hint: Some(hint.into()),
            required,
        }
    }
}

fn read_trim(p: &str) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

fn access(path: &Path, mode: libc::c_int) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: `c` is NUL-terminated; access(2) only reads it.
    unsafe { libc::access(c.as_ptr(), mode) == 0 }
}

fn find_in_path(cmd: &str) -> Option<std::path::PathBuf> {
    ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.exists())
}

/// Try to create a user namespace in a child process.
fn try_userns() -> Result<(), String> {
    // SAFETY: the child only calls unshare(2) and _exit(2), both async-signal-safe.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let ok = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_ok();
            // SAFETY: _exit(2) cannot fail and skips the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => match nix::sys::wait::waitpid(child, None)
        {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
            _ => Err("unshare(CLONE_NEWUSER) was refused".into()),
        },
        Err(e) => Err(format!("fork failed: {e}")),
    }
}

/// Run every check for the user `name`/`uid`.
pub fn checks(name: Option<&str>, uid: u32) -> Vec<Check> {
    let mut out = Vec::new();

    // User namespaces.
    let apparmor = read_trim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    let debian_knob = read_trim("/proc/sys/kernel/unprivileged_userns_clone");
    let max_ns = read_trim("/proc/sys/user/max_user_namespaces");
    out.push(match try_userns() {
        Ok(()) => Check::ok("user namespaces", "unprivileged user namespaces work"),
        Err(e) => {
            let hint = if apparmor.as_deref() == Some("1") {
                "AppArmor restricts unprivileged user namespaces (Ubuntu 23.10+): install an AppArmor profile \
                 that allows `userns` for the ags binary, or run `sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0`"
            } else if debian_knob.as_deref() == Some("0") {
                "run `sudo sysctl kernel.unprivileged_userns_clone=1`"
            } else if max_ns.as_deref() == Some("0") {
                "run `sudo sysctl user.max_user_namespaces=15000`"
            } else {
                "the kernel or a container runtime around this shell refuses new user namespaces"
            };
            Check::bad("user namespaces", Status::Fail, e, hint, true)
        }
    });

    // Subordinate ids.
    let sub_u = idmap::read_subid(Path::new("/etc/subuid"), name, uid)
        .ok()
        .flatten();
    let sub_g = idmap::read_subid(Path::new("/etc/subgid"), name, uid)
        .ok()
        .flatten();
    let who = name.unwrap_or("this user");
    out.push(match (sub_u, sub_g) {
        (Some(u), Some(g)) => Check::ok(
            "subuid/subgid",
            format!("{who}: {} uids from {}, {} gids from {}", u.count, u.start, g.count, g.start),
        ),
        _ if uid == 0 => Check::ok("subuid/subgid", "running as root: ids are mapped directly"),
        _ => Check::bad(
            "subuid/subgid",
            Status::Warn,
            format!("no range for {who} in /etc/subuid and /etc/subgid: sandboxes map only your own user"),
            format!("sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {who}"),
            false,
        ),
    });

    // newuidmap/newgidmap.
    for helper in ["newuidmap", "newgidmap"] {
        let name_static: &'static str = if helper == "newuidmap" {
            "newuidmap"
        } else {
            "newgidmap"
        };
        out.push(match find_in_path(helper) {
            Some(p) => {
                let mode = fs::metadata(&p)
                    .map(|m| m.permissions().mode())
                    .unwrap_or(0);
                let has_caps = xattr_present(&p, "security.capability");
                if mode & 0o4000 != 0 || has_caps {
                    Check::ok(name_static, format!("{} is setuid", p.display()))
                } else {
                    Check::bad(
                        name_static,
                        Status::Warn,
                        format!(
                            "{} is neither setuid nor has file capabilities",
                            p.display()
                        ),
                        format!("sudo chmod u+s {}", p.display()),
                        false,
                    )
                }
            }
            None => Check::bad(
                name_static,
                Status::Warn,
                format!("{helper} is not installed: sandboxes map only your own user"),
                "install the uidmap package (Debian/Ubuntu) or shadow-utils (Fedora/Arch)",
                false,
            ),
        });
    }

    // cgroups.
    let layout_name = match cgroups::layout() {
        Layout::Unified => "cgroup v2",
        Layout::Legacy { .. } if Path::new("/sys/fs/cgroup/unified").exists() => {
            "cgroup v1 (hybrid)"
        }
        Layout::Legacy { .. } => "cgroup v1",
    };
    out.push(match cgroups::detect() {
        Delegation::V1 { parent, .. } => Check::ok("cgroups", format!("{layout_name}, {parent} delegated: limits are enforced")),
        Delegation::V2 { parent } => Check::ok("cgroups", format!("{layout_name}, {parent} delegated: limits are enforced")),
        Delegation::None { reason, .. } => Check::bad(
            "cgroups",
            Status::Warn,
            format!("{layout_name}: {reason}; memory and CPU limits are not enforced, processes are capped with RLIMIT_NPROC"),
            "on systemd hosts run ags from a user session with Delegate=yes (the default for user@.service); \
             otherwise have root create and chown a cgroup for you and start ags inside it",
            false,
        ),
    });

    // Networking.
    let tun = Path::new("/dev/net/tun");
    let pasta = find_in_path("pasta");
    out.push(match (pasta, access(tun, libc::R_OK | libc::W_OK)) {
        (Some(p), true) => Check::ok(
            "pasta",
            format!(
                "{} and /dev/net/tun are usable: --network egress works",
                p.display()
            ),
        ),
        (None, _) => Check::bad(
            "pasta",
            Status::Fail,
            "pasta is not installed: --network egress is unavailable",
            "install the passt package",
            false,
        ),
        (Some(_), false) => Check::bad(
            "pasta",
            Status::Fail,
            "/dev/net/tun is not readable and writable by you: --network egress is unavailable",
            "sudo chmod 0666 /dev/net/tun (its usual mode)",
            false,
        ),
    });

    // libseccomp: linked dynamically, so a running ags has it; report the version.
    let maps = fs::read_to_string("/proc/self/maps").unwrap_or_default();
    out.push(match maps.lines().find(|l| l.contains("libseccomp")) {
        Some(l) => Check::ok(
            "libseccomp",
            l.split_whitespace().last().unwrap_or("loaded").to_owned(),
        ),
        None => Check::bad(
            "libseccomp",
            Status::Fail,
            "libseccomp is not loaded",
            "install libseccomp2",
            true,
        ),
    });
    out
}

fn xattr_present(path: &Path, name: &str) -> bool {
    let (Ok(p), Ok(n)) = (
        CString::new(path.as_os_str().as_encoded_bytes()),
        CString::new(name),
    ) else {
        return false;
    };
    // SAFETY: both strings are NUL-terminated; a zero-size buffer only asks for the size.
    unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_cover_the_list() {
        let names: Vec<&str> = checks(Some("root"), 0).iter().map(|c| c.name).collect();
        for n in [
            "user namespaces",
            "subuid/subgid",
            "newuidmap",
            "newgidmap",
            "cgroups",
            "pasta",
            "libseccomp",
        ] {
            assert!(names.contains(&n), "{n}");
        }
    }

    #[test]
    fn failures_carry_hints() {
        for c in checks(Some("nobody-ags-test"), 65534) {
            if c.status != Status::Ok {
                assert!(c.hint.is_some(), "{} has no hint", c.name);
            }
        }
    }
}
