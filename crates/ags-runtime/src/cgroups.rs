//! Resource limits through cgroups, when the host delegates them, and the fallback when it
//! does not.
//!
//! A rootless process may only manage cgroups that were delegated to it: on current
//! distributions systemd's `Delegate=yes` gives each user@.service a cgroup v2 subtree; on
//! older cgroup v1 hosts an administrator can pre-create and chown a directory in every
//! hierarchy. ags uses the cgroup it already lives in when the user owns it (that is what
//! delegation looks like from inside), creates one child per sandbox there, and writes the
//! limits into it between creating and starting the container. Anything else is
//! "not delegated": the run still starts, the process limit falls back to RLIMIT_NPROC and a
//! one-line warning says what is not enforced.
//!
//! libcontainer's cgroup v1 manager refuses to run without a writable cgroup. When nothing
//! is delegated on v1, ags gives it an empty tmpfs hierarchy in ags's own mount namespace
//! ([`fake_v1_hierarchy`]) so that its writes land nowhere; the sandbox masks
//! `/sys/fs/cgroup` either way.

use std::ffi::CString;
use std::fs;
use std::path::{Path, PathBuf};

use crate::policy::Limits;

/// Errors managing cgroups.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroup file could not be read or written.
    #[error("cgroup file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Mounting the placeholder hierarchy failed.
    #[error("cannot mount a placeholder cgroup hierarchy on {path}")]
    Mount {
        /// Mount point.
        path: PathBuf,
        /// The cause.
        #[source]
        source: nix::Error,
    },
}

/// The cgroup layout of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v2 only.
    Unified,
    /// cgroup v1 hierarchies, possibly with an (empty) v2 mount beside them.
    Legacy {
        /// `(controllers, mount point)` of each v1 hierarchy, e.g. `("cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct")`.
        hierarchies: Vec<(String, PathBuf)>,
    },
}

/// How the limits of one run are enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delegation {
    /// A cgroup v1 directory owned by the user, the same path in every hierarchy.
    V1 {
        /// The delegated path relative to each hierarchy's root (e.g. `/ags-delegate`).
        parent: String,
        /// Mount points of the hierarchies.
        hierarchies: Vec<(String, PathBuf)>,
    },
    /// A cgroup v2 directory the user owns, with the controllers enabled for children.
    V2 {
        /// The delegated path relative to /sys/fs/cgroup.
        parent: String,
    },
    /// Nothing is delegated.
    None {
        /// The host layout, to pick the fallback.
        layout: Layout,
        /// Why, for `ags doctor` and the warning.
        reason: String,
    },
}

const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

/// Read the host layout from /proc/self/mountinfo.
pub fn layout() -> Layout {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut hierarchies = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split_whitespace();
        let (Some(fstype), _, Some(opts)) = (post.next(), post.next(), post.next()) else {
            continue;
        };
        let Some(mount_point) = pre.split_whitespace().nth(4) else {
            continue;
        };
        if fstype == "cgroup" {
            let ctrls: Vec<&str> = opts
                .split(',')
                .filter(|o| V1_CONTROLLERS.contains(o))
                .collect();
            if !ctrls.is_empty() {
                hierarchies.push((ctrls.join(","), PathBuf::from(mount_point)));
            }
        }
    }
    if hierarchies.is_empty() {
        Layout::Unified
    } else {
        Layout::Legacy { hierarchies }
    }
}

/// The cgroup path of this process in the hierarchy that holds `controller` (v1), or the
/// unified path when `controller` is empty, from /proc/self/cgroup.
fn own_path(proc_cgroup: &str, controller: &str) -> Option<String> {
    proc_cgroup.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        let matches = if controller.is_empty() {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == controller)
        };
        matches.then(|| path.to_owned())
    })
}

fn writable(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string; access(2) only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// Decide how limits can be enforced for the calling user.
pub fn detect() -> Delegation {
    let layout = layout();
    let proc_cgroup = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    match &layout {
        Layout::Legacy { hierarchies } => {
            let mut parent: Option<String> = None;
            for (ctrls, mount) in hierarchies {
                let first = ctrls.split(',').next().unwrap_or_default();
                let Some(path) = own_path(&proc_cgroup, first) else {
                    return Delegation::None {
                        layout: layout.clone(),
                        reason: format!("this process is in no {first} cgroup"),
                    };
                };
                let dir = mount.join(path.trim_start_matches('/'));
                if path == "/" || !writable(&dir) || !writable(&dir.join("cgroup.procs")) {
                    return Delegation::None {
                        layout: layout.clone(),
                        reason: format!("cgroup {} is not delegated to this user", dir.display()),
                    };
                }
                match &parent {
                    None => parent = Some(path),
                    Some(p) if *p == path => {}
                    Some(p) => {
                        return Delegation::None {
                            layout: layout.clone(),
                            reason: format!(
                                "this process is in different cgroups ({p} and {path}) across v1 hierarchies"
                            ),
                        };
                    }
                }
            }
            Delegation::V1 {
                parent: parent.unwrap_or_else(|| "/".to_owned()),
                hierarchies: hierarchies.clone(),
            }
        }
        Layout::Unified => {
            let path = own_path(&proc_cgroup, "").unwrap_or_else(|| "/".to_owned());
            let dir = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
            let controllers =
                fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
            let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
            if path != "/"
                && writable(&dir)
                && writable(&dir.join("cgroup.subtree_control"))
                && has("pids")
                && has("memory")
            {
                Delegation::V2 { parent: path }
            } else {
                Delegation::None {
                    layout: layout.clone(),
                    reason: format!(
                        "cgroup {} is not delegated to this user with the memory and pids controllers",
                        dir.display()
                    ),
                }
            }
        }
    }
}

impl Delegation {
    /// The `linux.cgroupsPath` for sandbox `id`.
    pub fn cgroups_path(&self, id: &str) -> String {
        match self {
            Delegation::V1 { parent, .. } | Delegation::V2 { parent } => {
                format!("{}/{id}", parent.trim_end_matches('/'))
            }
            Delegation::None { .. } => format!("/{FAKE_PARENT}/{id}"),
        }
    }

    /// Write `limits` into the sandbox's cgroup, after libcontainer created it and before
    /// the command starts. libcontainer's own `linux.resources` cannot be used rootless on
    /// v1: it always writes the devices controller, which only real root may do.
    pub fn apply_limits(&self, id: &str, limits: &Limits) -> Result<(), CgroupError> {
        let rel = self.cgroups_path(id);
        let rel = rel.trim_start_matches('/');
        match self {
            Delegation::V1 { hierarchies, .. } => {
                for (ctrls, mount) in hierarchies {
                    let dir = mount.join(rel);
                    let has = |c: &str| ctrls.split(',').any(|x| x == c);
                    if has("pids")
                        && let Some(p) = limits.pids
                    {
                        write(&dir.join("pids.max"), &p.to_string())?;
                    }
                    if has("memory")
                        && let Some(m) = limits.memory
                    {
                        write(&dir.join("memory.limit_in_bytes"), &m.to_string())?;
                        // Also bound swap, where the kernel accounts it, so the limit
                        // cannot be dodged by swapping out.
                        let memsw = dir.join("memory.memsw.limit_in_bytes");
                        if memsw.exists() {
                            write(&memsw, &m.to_string())?;
                        }
                    }
                    if has("cpu")
                        && let Some(c) = limits.cpus_milli
                    {
                        write(&dir.join("cpu.cfs_period_us"), "100000")?;
                        write(&dir.join("cpu.cfs_quota_us"), &(c * 100).to_string())?;
                    }
                }
            }
            Delegation::V2 { .. } => {
                let dir = Path::new("/sys/fs/cgroup").join(rel);
                if let Some(p) = limits.pids {
                    write(&dir.join("pids.max"), &p.to_string())?;
                }
                if let Some(m) = limits.memory {
                    write(&dir.join("memory.max"), &m.to_string())?;
                    let swap = dir.join("memory.swap.max");
                    if swap.exists() {
                        write(&swap, "0")?;
                    }
                }
                if let Some(c) = limits.cpus_milli {
                    write(&dir.join("cpu.max"), &format!("{} 100000", c * 100))?;
                }
            }
            Delegation::None { .. } => {}
        }
        Ok(())
    }

    /// The `cgroup.procs` of the delegated cgroup this process is in (any v1 hierarchy:
    /// they all share the kernel's migration lock), or `None` without delegation.
    pub fn own_procs_file(&self) -> Option<PathBuf> {
        match self {
            Delegation::V1 {
                parent,
                hierarchies,
            } => hierarchies
                .first()
                .map(|(_, m)| m.join(parent.trim_start_matches('/')).join("cgroup.procs")),
            Delegation::V2 { parent } => Some(
                Path::new("/sys/fs/cgroup")
                    .join(parent.trim_start_matches('/'))
                    .join("cgroup.procs"),
            ),
            Delegation::None { .. } => None,
        }
    }

    /// The directories of the sandbox's cgroup, for cleanup after a crash.
    pub fn dirs(&self, id: &str) -> Vec<PathBuf> {
        let rel = self.cgroups_path(id);
        let rel = rel.trim_start_matches('/').to_owned();
        match self {
            Delegation::V1 { hierarchies, .. } => {
                hierarchies.iter().map(|(_, m)| m.join(&rel)).collect()
            }
            Delegation::V2 { .. } => vec![Path::new("/sys/fs/cgroup").join(&rel)],
            Delegation::None { .. } => Vec::new(),
        }
    }
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|e| CgroupError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

/// Top directory of the placeholder hierarchy.
pub const FAKE_PARENT: &str = "ags-undelegated";

/// Whether a v1 hierarchy carries one of the limits in `limits` (and so must be real).
pub fn enforces(ctrls: &str, limits: &Limits) -> bool {
    ctrls.split(',').any(|c| match c {
        "pids" => limits.pids.is_some(),
        "memory" => limits.memory.is_some(),
        "cpu" => limits.cpus_milli.is_some(),
        _ => false,
    })
}

/// Give libcontainer's cgroup v1 manager, which joins every mounted hierarchy, a view of
/// /sys/fs/cgroup in the caller's own mount namespace where only the hierarchies for which
/// `keep` holds are real (bound back from the host) and the others are empty placeholders
/// on a tmpfs that absorb its writes. Each cgroup v1 migration waits for an RCU grace
/// period (about 1.5 ms here), so joining only the hierarchies that carry a limit saves most
/// of the cost of a start; with nothing delegated, `keep` is false for all and the run gets
/// no cgroup at all. `cgroups_path` is the sandbox's `linux.cgroupsPath`; `stash` an empty
/// directory for the bind mounts in transit. The caller must have unshared its mount
/// namespace inside the sandbox's user namespace and made it private; the host is untouched.
pub fn v1_view(
    hierarchies: &[(String, PathBuf)],
    keep: &dyn Fn(&str) -> bool,
    cgroups_path: &str,
    stash: &Path,
) -> Result<(), CgroupError> {
    use nix::mount::{MsFlags, mount};
    let root = Path::new("/sys/fs/cgroup");
    let mnt = |src: &Path, dst: &Path, flags: MsFlags| {
        mount(Some(src), dst, None::<&str>, flags, None::<&str>).map_err(|e| CgroupError::Mount {
            path: dst.to_path_buf(),
            source: e,
        })
    };
    let mkdir = |d: &Path| {
        fs::create_dir_all(d).map_err(|e| CgroupError::Io {
            path: d.to_path_buf(),
            source: e,
        })
    };
    let kept: Vec<(usize, &PathBuf)> = hierarchies
        .iter()
        .enumerate()
        .filter(|(_, (c, _))| keep(c))
        .map(|(i, (_, m))| (i, m))
        .collect();
    for (i, m) in &kept {
        let d = stash.join(i.to_string());
        mkdir(&d)?;
        mnt(m, &d, MsFlags::MS_BIND)?;
    }
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=1m,mode=755"),
    )
    .map_err(|e| CgroupError::Mount {
        path: root.to_path_buf(),
        source: e,
    })?;
    let cpus = fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_else(|_| "0".into());
    let rel = cgroups_path.trim_start_matches('/');
    for (i, (ctrls, mount_point)) in hierarchies.iter().enumerate() {
        mkdir(mount_point)?;
        if kept.iter().any(|(k, _)| *k == i) {
            mnt(&stash.join(i.to_string()), mount_point, MsFlags::MS_MOVE)?;
            continue;
        }
        // Only what libcontainer reads or writes: the leaf's cgroup.procs (it opens it
        // without O_CREAT), and in the cpuset hierarchy cpuset.cpus/mems at every level,
        // which it copies down from the hierarchy root. Each file costs a create here, an
        // unlink at teardown and an eviction when the tmpfs goes away.
        let cpuset = ctrls.split(',').any(|c| c == "cpuset") || mount_point.ends_with("cpuset");
        let mut dir = mount_point.clone();
        let mut levels = vec![dir.clone()];
        for part in Path::new(rel).components() {
            dir.push(part);
            levels.push(dir.clone());
        }
        mkdir(&dir)?;
        if cpuset {
            for d in &levels {
                write(&d.join("cpuset.cpus"), cpus.trim())?;
                write(&d.join("cpuset.mems"), "0")?;
            }
        }
        write(&dir.join("cgroup.procs"), "")?;
    }
    Ok(())
}

/// Remove the files of the placeholder cgroups of `cgroups_path` (see [`v1_view`]) so that
/// libcontainer's rmdir(2) of them at delete time succeeds at once instead of retrying.
/// Only needed before libcontainer's delete: a run that ends normally leaves the
/// placeholders to vanish with ags's mount namespace.
pub fn empty_placeholders(hierarchies: &[(String, PathBuf)], cgroups_path: &str) {
    for (_, mount_point) in hierarchies {
        let dir = mount_point.join(cgroups_path.trim_start_matches('/'));
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// Count the processes of real uid `uid`, for an RLIMIT_NPROC that leaves the user's other
/// processes out of the sandbox's budget (the kernel counts per user, setrlimit(2)).
pub fn count_user_processes(uid: u32) -> u64 {
    let Ok(dir) = fs::read_dir("/proc") else {
        return 0;
    };
    let mut n = 0;
    for e in dir.flatten() {
        if !e
            .file_name()
            .as_encoded_bytes()
            .iter()
            .all(u8::is_ascii_digit)
        {
            continue;
        }
        let Ok(status) = fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let real = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u32>().ok());
        let threads = status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(1);
        if real == Some(uid) {
            n += threads;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_path_reads_v1_and_v2_lines() {
        let text = "12:pids:/ags-delegate\n4:cpu,cpuacct:/user.slice\n0::/user.slice/user-1000.slice/user@1000.service/app.slice\n";
        assert_eq!(own_path(text, "pids").as_deref(), Some("/ags-delegate"));
        assert_eq!(own_path(text, "cpuacct").as_deref(), Some("/user.slice"));
        assert_eq!(
            own_path(text, "").as_deref(),
            Some("/user.slice/user-1000.slice/user@1000.service/app.slice")
        );
        assert_eq!(own_path(text, "memory"), None);
    }

    #[test]
    fn cgroups_path_is_below_the_delegated_parent() {
        let d = Delegation::V1 {
            parent: "/ags-delegate".into(),
            hierarchies: vec![("pids".into(), "/sys/fs/cgroup/pids".into())],
        };
        assert_eq!(d.cgroups_path("x1"), "/ags-delegate/x1");
        assert_eq!(
            d.dirs("x1"),
            vec![PathBuf::from("/sys/fs/cgroup/pids/ags-delegate/x1")]
        );
        let n = Delegation::None {
            layout: Layout::Unified,
            reason: String::new(),
        };
        assert_eq!(n.cgroups_path("x1"), "/ags-undelegated/x1");
    }

    #[test]
    fn limits_are_written_to_delegated_v1_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let pids = tmp.path().join("pids");
        let mem = tmp.path().join("memory");
        for d in [&pids, &mem] {
            fs::create_dir_all(d.join("p/x")).unwrap();
        }
        let d = Delegation::V1 {
            parent: "/p".into(),
            hierarchies: vec![
                ("pids".into(), pids.clone()),
                ("memory".into(), mem.clone()),
            ],
        };
        let limits = Limits {
            memory: Some(1 << 20),
            pids: Some(64),
            cpus_milli: None,
            nofile: 10,
        };
        d.apply_limits("x", &limits).unwrap();
        assert_eq!(fs::read_to_string(pids.join("p/x/pids.max")).unwrap(), "64");
        assert_eq!(
            fs::read_to_string(mem.join("p/x/memory.limit_in_bytes")).unwrap(),
            "1048576"
        );
        assert!(!pids.join("p/x/memory.limit_in_bytes").exists());
    }

    #[test]
    fn counting_processes_finds_ourselves() {
        // SAFETY: getuid(2) cannot fail.
        let uid = unsafe { libc::getuid() };
        assert!(count_user_processes(uid) >= 1);
    }
}
