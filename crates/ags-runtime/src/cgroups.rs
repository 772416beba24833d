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
//! On cgroup v1 hosts libcontainer is kept out of cgroups altogether: in ags's own mount
//! namespace it sees a read-only cgroup v2 view or placeholders ([`hide_v1_hierarchies`]), and with
//! delegation ags creates the sandbox's cgroup itself and has the container's processes
//! born in it ([`V1Sandbox`]); the sandbox masks `/sys/fs/cgroup` either way. On cgroup v2
//! hosts with delegation libcontainer's v2 manager creates and joins the cgroup.

use std::ffi::CString;
use std::fs;
use std::io::Write as _;
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

    /// Write `limits` into the sandbox's cgroup on a cgroup v2 host, after libcontainer
    /// created it and before the command starts. On v1 that is [`V1Sandbox::apply_limits`];
    /// without delegation there is nothing to write.
    pub fn apply_limits(&self, id: &str, limits: &Limits) -> Result<(), CgroupError> {
        let Delegation::V2 { .. } = self else {
            return Ok(());
        };
        let rel = self.cgroups_path(id);
        let dir = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
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
        Ok(())
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

/// Parent of the `linux.cgroupsPath` libcontainer gets without delegation (it creates
/// nothing there: no hierarchy it can write, see [`hide_v1_hierarchies`]).
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

/// One sandbox's own cgroup on a cgroup v1 host with delegation: a directory below the
/// delegated cgroup in every hierarchy that carries one of the sandbox's limits, held open
/// so that it stays reachable after [`hide_v1_hierarchies`] covers the hierarchies.
///
/// How the sandbox gets into it: `ags` itself [joins](Self::join) it right before
/// libcontainer forks the container's processes, which are then born in it (and their
/// cgroup namespace is rooted there), and [leaves](Self::leave) it again right after.
/// libcontainer's own way, the forked process writing its pid to `cgroup.procs`, takes
/// the kernel's global `cgroup_threadgroup_rwsem` for writing, and that first waits for an
/// RCU grace period unless another migration went through shortly before (`rcu_sync_enter`,
/// kernel/rcu/sync.c): 4 to 20 ms on the test host, a third of the whole start. A thread
/// that moves itself by writing `0` to `tasks` does not need that lock, since it cannot
/// exit or exec meanwhile (`cgroup_procs_write_start`, kernel/cgroup/cgroup.c, Linux 6.0
/// and later; older kernels take the lock and are only as slow as before): about 30 us.
/// `ags` is single-threaded when it starts a sandbox, so moving its one thread moves all of
/// it.
#[derive(Debug)]
pub struct V1Sandbox {
    dirs: Vec<V1Dir>,
}

#[derive(Debug)]
struct V1Dir {
    /// The controllers of the hierarchy, e.g. `cpu,cpuacct`.
    ctrls: String,
    /// The sandbox's cgroup directory, for messages.
    path: PathBuf,
    /// That directory, opened.
    dir: fs::File,
    /// Its `tasks` file.
    tasks: fs::File,
    /// The delegated cgroup `ags` came from, the sandbox's parent, opened.
    parent: fs::File,
    /// Its `tasks` file.
    parent_tasks: fs::File,
    /// The sandbox's directory name in `parent`.
    name: CString,
}

impl V1Sandbox {
    /// Create the sandbox's cgroup `cgroups_path` below `parent` (the delegated cgroup
    /// `ags` is in) in every hierarchy for which `keep` holds, and open it. `None` when no
    /// hierarchy is kept.
    pub fn create(
        hierarchies: &[(String, PathBuf)],
        keep: &dyn Fn(&str) -> bool,
        parent: &str,
        cgroups_path: &str,
    ) -> Result<Option<Self>, CgroupError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CgroupError::Io { path, source }
        };
        let open_dir = |d: &Path| {
            fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(d)
                .map_err(io(d))
        };
        let open_tasks = |d: &Path| {
            let t = d.join("tasks");
            fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(&t)
                .map_err(io(&t))
        };
        let rel = Path::new(cgroups_path.trim_start_matches('/'));
        let name = rel
            .file_name()
            .and_then(|n| CString::new(n.as_encoded_bytes()).ok())
            .ok_or_else(|| {
                io(rel)(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "not a cgroup path",
                ))
            })?;
        // Built up as they are made, so that a failure half-way removes what exists.
        let mut made = Self { dirs: Vec::new() };
        for (ctrls, mount) in hierarchies.iter().filter(|(c, _)| keep(c)) {
            let parent_path = mount.join(parent.trim_start_matches('/'));
            let path = mount.join(rel);
            match fs::create_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    made.remove();
                    return Err(io(&path)(e));
                }
            }
            let opened = (|| {
                Ok(V1Dir {
                    ctrls: ctrls.clone(),
                    dir: open_dir(&path)?,
                    tasks: open_tasks(&path)?,
                    parent: open_dir(&parent_path)?,
                    parent_tasks: open_tasks(&parent_path)?,
                    name: name.clone(),
                    path: path.clone(),
                })
            })();
            match opened {
                Ok(d) => made.dirs.push(d),
                Err(e) => {
                    let _ = fs::remove_dir(&path);
                    made.remove();
                    return Err(e);
                }
            }
        }
        Ok((!made.dirs.is_empty()).then_some(made))
    }

    /// Move the calling thread into the sandbox's cgroup. The caller must be
    /// single-threaded (see the type's docs) and [`leave`](Self::leave) once the
    /// container's processes exist, on every path.
    pub fn join(&self) -> Result<(), CgroupError> {
        for (i, d) in self.dirs.iter().enumerate() {
            if let Err(source) = (&d.tasks).write_all(b"0") {
                self.leave_first(i);
                return Err(CgroupError::Io {
                    path: d.path.join("tasks"),
                    source,
                });
            }
        }
        Ok(())
    }

    /// Move the calling thread back into the delegated cgroup it came from.
    pub fn leave(&self) -> Result<(), CgroupError> {
        for d in &self.dirs {
            (&d.parent_tasks)
                .write_all(b"0")
                .map_err(|source| CgroupError::Io {
                    path: d.path.with_file_name("tasks"),
                    source,
                })?;
        }
        Ok(())
    }

    /// Leave the sandbox's cgroup (if the caller is still in it) and remove it. The
    /// sandbox's processes must be gone; whatever is left in it is killed, the caller
    /// excepted (see [`crate::holder::remove_cgroups`]).
    pub fn remove(&self) {
        use std::os::fd::AsRawFd as _;
        self.leave_first(self.dirs.len());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        for d in &self.dirs {
            loop {
                // SAFETY: unlinkat(2) of a NUL-terminated name in a directory we hold open.
                let r = unsafe {
                    libc::unlinkat(d.parent.as_raw_fd(), d.name.as_ptr(), libc::AT_REMOVEDIR)
                };
                if r == 0 || std::time::Instant::now() >= deadline {
                    break;
                }
                if std::io::Error::last_os_error().raw_os_error() != Some(libc::EBUSY) {
                    break;
                }
                // The directory is covered in the caller's mount namespace; its descriptor
                // still reaches it.
                crate::holder::kill_members(&PathBuf::from(format!(
                    "/proc/self/fd/{}",
                    d.dir.as_raw_fd()
                )));
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }

    fn leave_first(&self, n: usize) {
        for d in &self.dirs[..n] {
            let _ = (&d.parent_tasks).write_all(b"0");
        }
    }

    /// Write `limits` into the sandbox's cgroup. libcontainer's own `linux.resources`
    /// cannot be used rootless on v1: it always writes the devices controller, which only
    /// real root may do.
    pub fn apply_limits(&self, limits: &Limits) -> Result<(), CgroupError> {
        for d in &self.dirs {
            let has = |c: &str| d.ctrls.split(',').any(|x| x == c);
            if has("pids")
                && let Some(p) = limits.pids
            {
                d.write("pids.max", &p.to_string())?;
            }
            if has("memory")
                && let Some(m) = limits.memory
            {
                d.write("memory.limit_in_bytes", &m.to_string())?;
                // Also bound swap, where the kernel accounts it, so the limit cannot be
                // dodged by swapping out.
                match d.write("memory.memsw.limit_in_bytes", &m.to_string()) {
                    Err(CgroupError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound => {}
                    other => other?,
                }
            }
            if has("cpu")
                && let Some(c) = limits.cpus_milli
            {
                d.write("cpu.cfs_period_us", "100000")?;
                d.write("cpu.cfs_quota_us", &(c * 100).to_string())?;
            }
        }
        Ok(())
    }
}

impl V1Dir {
    fn write(&self, file: &str, value: &str) -> Result<(), CgroupError> {
        use std::os::fd::{AsRawFd as _, FromRawFd as _};
        let err = |source| CgroupError::Io {
            path: self.path.join(file),
            source,
        };
        let name = CString::new(file).map_err(|e| err(std::io::Error::other(e)))?;
        // SAFETY: openat(2) with a directory descriptor we own and a NUL-terminated name;
        // the descriptor it returns is owned by the File below and nothing else.
        let file = unsafe {
            let fd = libc::openat(
                self.dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return Err(err(std::io::Error::last_os_error()));
            }
            fs::File::from_raw_fd(fd)
        };
        (&file).write_all(value.as_bytes()).map_err(err)
    }
}

/// Keep libcontainer out of the host's cgroup v1 hierarchies, in the caller's own mount
/// namespace (which must be private and owned by the sandbox's user namespace; the host is
/// untouched, and the sandbox masks /sys/fs/cgroup anyway). The sandbox's cgroup is ags's
/// business ([`V1Sandbox`]); without delegation there is none.
///
/// The preferred view is the caller's own cgroup v2 directory, mounted read-only over
/// /sys/fs/cgroup (in a cgroup namespace of the caller's, which mounting cgroup2 needs).
/// libcontainer then takes the host for a cgroup v2 one and, being rootless, leaves its
/// process where it is when it cannot create or join a cgroup there (EROFS): no cgroup
/// work at all. Its cgroup v1 manager, which the host's layout would select, reads
/// /proc/self/mountinfo through libpathrs a dozen times to find the hierarchies, each
/// read verified and parsed: about 1 ms of the start on the test host, in the intermediate
/// process, on the critical path. The fallback, where cgroup2 cannot be mounted, is
/// [`v1_placeholders`].
pub fn hide_v1_hierarchies(
    hierarchies: &[(String, PathBuf)],
    cgroups_path: &str,
) -> Result<(), CgroupError> {
    use nix::mount::{MsFlags, mount};
    use nix::sched::{CloneFlags, unshare};
    let unified = unshare(CloneFlags::CLONE_NEWCGROUP).and_then(|()| {
        mount(
            Some("cgroup2"),
            "/sys/fs/cgroup",
            Some("cgroup2"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
    });
    match unified {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::debug!("cannot mount a read-only cgroup2 view ({e}): using placeholders");
            v1_placeholders(hierarchies, cgroups_path)
        }
    }
}

/// The fallback of [`hide_v1_hierarchies`]: a tmpfs over
/// /sys/fs/cgroup in the caller's own mount namespace, with a placeholder directory for
/// the sandbox's `cgroups_path` in every hierarchy, where its writes land harmlessly. The
/// manager takes the hierarchies from /proc/self/mountinfo, which still lists the covered
/// mounts, and joins every one of them; with the placeholders it creates, joins and writes
/// no real cgroup: the sandbox's cgroup is ags's business ([`V1Sandbox`]), and without
/// delegation there is none. The caller must have unshared its mount namespace inside the
/// sandbox's user namespace and made it private; the host is untouched, and the sandbox
/// masks /sys/fs/cgroup anyway.
pub fn v1_placeholders(
    hierarchies: &[(String, PathBuf)],
    cgroups_path: &str,
) -> Result<(), CgroupError> {
    use nix::mount::{MsFlags, mount};
    let root = Path::new("/sys/fs/cgroup");
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
    let mkdir = |d: &Path| {
        fs::create_dir_all(d).map_err(|e| CgroupError::Io {
            path: d.to_path_buf(),
            source: e,
        })
    };
    let cpus = fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_else(|_| "0".into());
    let rel = cgroups_path.trim_start_matches('/');
    for (ctrls, mount_point) in hierarchies {
        // Only what libcontainer reads or writes: the leaf's cgroup.procs (it opens it
        // without O_CREAT), and in the cpuset hierarchy cpuset.cpus/mems at every level,
        // which it copies down from the hierarchy root.
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
    fn v1_sandbox_is_created_joined_left_and_limited_through_its_files() {
        let tmp = tempfile::tempdir().unwrap();
        let pids = tmp.path().join("pids");
        let mem = tmp.path().join("memory");
        let cpu = tmp.path().join("cpu");
        // What the kernel provides in a cgroup directory, as plain files.
        for d in [&pids, &mem, &cpu] {
            fs::create_dir_all(d.join("p/x")).unwrap();
            for f in ["p/tasks", "p/x/tasks"] {
                fs::write(d.join(f), "").unwrap();
            }
        }
        fs::write(pids.join("p/x/pids.max"), "").unwrap();
        fs::write(mem.join("p/x/memory.limit_in_bytes"), "").unwrap();
        let hierarchies = vec![
            ("pids".to_string(), pids.clone()),
            ("memory".to_string(), mem.clone()),
            ("cpu".to_string(), cpu.clone()),
        ];
        let limits = Limits {
            memory: Some(1 << 20),
            pids: Some(64),
            cpus_milli: None,
            nofile: 10,
        };
        let keep = |c: &str| enforces(c, &limits);
        let sandbox = V1Sandbox::create(&hierarchies, &keep, "/p", "/p/x")
            .unwrap()
            .unwrap();
        // Only the hierarchies that carry a limit.
        assert_eq!(sandbox.dirs.len(), 2);
        sandbox.apply_limits(&limits).unwrap();
        assert_eq!(fs::read_to_string(pids.join("p/x/pids.max")).unwrap(), "64");
        assert_eq!(
            fs::read_to_string(mem.join("p/x/memory.limit_in_bytes")).unwrap(),
            "1048576"
        );
        // memory.memsw.* is absent where swap is not accounted: not an error.
        assert!(!mem.join("p/x/memory.memsw.limit_in_bytes").exists());
        sandbox.join().unwrap();
        sandbox.leave().unwrap();
        for d in [&pids, &mem] {
            assert_eq!(fs::read_to_string(d.join("p/x/tasks")).unwrap(), "0");
            assert_eq!(fs::read_to_string(d.join("p/tasks")).unwrap(), "0");
        }
        assert_eq!(fs::read_to_string(cpu.join("p/x/tasks")).unwrap(), "");
        let none = |_: &str| false;
        assert!(
            V1Sandbox::create(&hierarchies, &none, "/p", "/p/x")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn counting_processes_finds_ourselves() {
        // SAFETY: getuid(2) cannot fail.
        let uid = unsafe { libc::getuid() };
        assert!(count_user_processes(uid) >= 1);
    }
}
