//! The sandbox policy: everything a run is allowed to see and do, as plain data.
//!
//! A [`SandboxPolicy`] is built in one place ([`SandboxPolicy::new`] plus the `with_*`/`add_*`
//! methods) and turned into an OCI runtime spec by [`crate::spec`]. It is deny by default: the
//! root is read-only, nothing from the host is visible unless a [`Mount`] names it, no
//! environment variable passes unless it is in [`SandboxPolicy::env`], the network is off, and
//! resource limits always apply.
//!
//! Every path that comes from outside (a `-v` target, `-w`, `--tmpfs`) goes through
//! [`confine_container_path`], the single place that decides whether a container path is
//! acceptable.

use std::path::{Component, Path, PathBuf};

/// What a policy rejects.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A container path failed [`confine_container_path`].
    #[error("invalid container path {path:?} for {what}: {reason}")]
    ContainerPath {
        /// Which option the path came from, e.g. `-v` or `-w`.
        what: &'static str,
        /// The path as given.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A host path given for a bind mount does not exist or is not absolute.
    #[error("bind mount source {path} is not usable")]
    HostPath {
        /// The host path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Two mounts target the same container path.
    #[error("two mounts target {0}")]
    DuplicateTarget(PathBuf),
    /// An environment variable name is malformed.
    #[error("invalid environment variable name {0:?}")]
    EnvName(String),
    /// The command is empty.
    #[error("no command to run")]
    EmptyCommand,
}

/// How the sandbox reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// A private network namespace with only `lo` (up).
    #[default]
    None,
    /// The host's network namespace, shared. Not a boundary.
    Host,
    /// Internet access through `pasta`, with no route to any service of the host
    /// (neither 127.0.0.1 nor services bound to 0.0.0.0).
    Egress,
}

impl NetworkMode {
    /// Parse the CLI/config spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "host" => Some(Self::Host),
            "egress" => Some(Self::Egress),
            _ => None,
        }
    }

    /// The CLI/config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Host => "host",
            Self::Egress => "egress",
        }
    }
}

/// Whether a bind mount is writable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read-only.
    ReadOnly,
    /// Read-write.
    ReadWrite,
}

/// One entry of the ordered mount list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// A bind mount of a host path (always `nosuid,nodev`, never propagating back).
    Bind {
        /// Absolute host path.
        source: PathBuf,
        /// Confined container path.
        target: PathBuf,
        /// Read-only or read-write.
        access: Access,
    },
    /// A size- and inode-limited tmpfs (`nosuid,nodev`).
    Tmpfs {
        /// Confined container path.
        target: PathBuf,
        /// Size limit in bytes.
        size: u64,
        /// Inode limit.
        nr_inodes: u64,
        /// Octal mode of the mount root.
        mode: u32,
        /// Whether files on it may be executed.
        exec: bool,
    },
}

impl Mount {
    /// The container path this mount covers.
    pub fn target(&self) -> &Path {
        match self {
            Mount::Bind { target, .. } | Mount::Tmpfs { target, .. } => target,
        }
    }
}

/// Resource limits. `None` means "no limit" for that resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// Maximum number of processes/threads.
    pub pids: Option<u64>,
    /// CPU quota in millicpus (1000 = one core).
    pub cpus_milli: Option<u64>,
    /// Maximum number of open files (always enforced with RLIMIT_NOFILE).
    pub nofile: u64,
}

/// Default number of processes: enough for a build with `make -j`, low enough to stop a
/// fork bomb long before the host suffers.
pub const DEFAULT_PIDS: u64 = 4096;
/// Default open-file limit.
pub const DEFAULT_NOFILE: u64 = 65536;
/// Default memory cap: half the host's RAM, at most 8 GiB.
pub const DEFAULT_MEMORY_CAP: u64 = 8 << 30;

impl Limits {
    /// The limits that apply when the user names none: half the host RAM (at most 8 GiB),
    /// 4096 processes, all CPUs, 65536 open files.
    pub fn defaults(host_memory: Option<u64>) -> Self {
        Self {
            memory: Some(
                host_memory.map_or(DEFAULT_MEMORY_CAP, |m| (m / 2).min(DEFAULT_MEMORY_CAP)),
            ),
            pids: Some(DEFAULT_PIDS),
            cpus_milli: None,
            nofile: DEFAULT_NOFILE,
        }
    }
}

/// Default tmpfs size for /tmp.
pub const TMP_SIZE: u64 = 1 << 30;
/// Default tmpfs size for /var/tmp.
pub const VAR_TMP_SIZE: u64 = 256 << 20;
/// Default tmpfs size for /run.
pub const RUN_SIZE: u64 = 64 << 20;
/// Default tmpfs size for the home directory.
pub const HOME_SIZE: u64 = 1 << 30;
/// Default inode limit for every tmpfs.
pub const TMPFS_INODES: u64 = 65536;

/// The writable root of a build step (see [`SandboxPolicy::writable`]). Only the image
/// builder asks for one; every run has a read-only root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WritableRoot {
    /// An overlay of `rootfs` and `layers` whose changes land in `upper`, which becomes
    /// the step's layer (overlay snapshots).
    Overlay {
        /// The overlayfs upper directory: receives every change.
        upper: PathBuf,
        /// The overlayfs work directory (empty, on the same filesystem as `upper`).
        work: PathBuf,
    },
    /// `rootfs` itself is written, in place, with no overlay and no `layers` (copy
    /// snapshots, for kernels without overlayfs in a user namespace): the directory must
    /// be the step's own copy of its parent's tree, which nothing else uses. Everything
    /// else about the sandbox is the same as with an overlay root.
    InPlace,
}

/// The whole sandbox, as data.
#[derive(Debug, Clone)]
pub struct SandboxPolicy {
    /// Absolute path of the root filesystem (mounted read-only): the bottom layer.
    pub rootfs: PathBuf,
    /// More layers stacked on `rootfs`, bottom first (overlayfs lower directories, in the
    /// overlay format: whiteouts are 0/0 character devices, opaque directories carry
    /// `user.overlay.opaque`). Images built by `ags build` run from their step snapshots.
    pub layers: Vec<PathBuf>,
    /// A build step's root: the root is writable, through an overlay whose upper directory
    /// becomes the step's layer, or in place in the step's own copy of the tree. `None`
    /// for every run: the root is then read-only.
    pub writable: Option<WritableRoot>,
    /// Command and arguments; `argv[0]` is resolved by the container's `PATH`.
    pub argv: Vec<String>,
    /// The complete environment of the command, in order. Nothing else passes.
    pub env: Vec<(String, String)>,
    /// Working directory inside the container.
    pub cwd: PathBuf,
    /// Container user id the command runs as.
    pub uid: u32,
    /// Container group id the command runs as.
    pub gid: u32,
    /// The container (uid, gid) the invoking user becomes. 1000/1000 for images, so image
    /// ownership lines up with how it was unpacked; `ags run --rootfs --user 0` moves it
    /// to 0 so that root in the sandbox is the owner of the user's own rootfs.
    pub host_user_at: (u32, u32),
    /// Home directory of that user inside the container (gets a tmpfs unless mounted).
    pub home: PathBuf,
    /// Hostname inside the UTS namespace.
    pub hostname: String,
    /// The ordered mount list, after the fixed system mounts.
    pub mounts: Vec<Mount>,
    /// Network mode.
    pub network: NetworkMode,
    /// Resource limits.
    pub limits: Limits,
    /// Whether the command gets a pseudo-terminal.
    pub tty: bool,
    /// Capabilities inside the user namespace. Empty for every run; only the image builder
    /// grants the few a package manager needs (chown, setuid to its own user, ...), and
    /// only inside the namespace (capabilities(7), user_namespaces(7)).
    pub capabilities: Vec<String>,
}

impl SandboxPolicy {
    /// A policy that runs `argv` in `rootfs` as uid/gid 1000 with the default mounts
    /// (tmpfs on /tmp, /var/tmp, /run and the home directory) and default limits.
    pub fn new(rootfs: PathBuf, argv: Vec<String>, limits: Limits) -> Result<Self, PolicyError> {
        if argv.is_empty() || argv[0].is_empty() {
            return Err(PolicyError::EmptyCommand);
        }
        let home = PathBuf::from("/home/dev");
        let mut policy = Self {
            rootfs,
            layers: Vec::new(),
            writable: None,
            argv,
            env: Vec::new(),
            cwd: home.clone(),
            uid: 1000,
            gid: 1000,
            host_user_at: (1000, 1000),
            home: home.clone(),
            hostname: "ags".to_owned(),
            mounts: Vec::new(),
            network: NetworkMode::None,
            limits,
            tty: false,
            capabilities: Vec::new(),
        };
        policy.mounts = default_tmpfs(&home);
        policy.env = default_env(&home);
        Ok(policy)
    }

    /// Run as another container user; `uid == 0` is root inside the user namespace only.
    pub fn with_user(&mut self, uid: u32, gid: u32) {
        let home = if uid == 0 {
            PathBuf::from("/root")
        } else {
            self.home.clone()
        };
        if home != self.home {
            for m in &mut self.mounts {
                if let Mount::Tmpfs { target, .. } = m
                    && *target == self.home
                {
                    *target = home.clone();
                }
            }
            if self.cwd == self.home {
                self.cwd = home.clone();
            }
            set_env(&mut self.env, "HOME", &home.to_string_lossy());
            self.home = home;
        }
        self.uid = uid;
        self.gid = gid;
    }

    /// Set the working directory (`-w`).
    pub fn set_cwd(&mut self, dir: &str) -> Result<(), PolicyError> {
        self.cwd = confine_container_path(dir, "-w")?;
        Ok(())
    }

    /// Set or replace an environment variable (`-e K=V`).
    pub fn set_env(&mut self, key: &str, value: &str) -> Result<(), PolicyError> {
        if key.is_empty()
            || key.contains('=')
            || key.contains('\0')
            || value.contains('\0')
            || key.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(PolicyError::EnvName(key.to_owned()));
        }
        set_env(&mut self.env, key, value);
        Ok(())
    }

    /// Add a bind mount (`-v HOST:CTR[:ro]`). The host path must exist; it is canonicalized
    /// so that a symlink cannot later be swapped under the mount.
    pub fn add_bind(
        &mut self,
        source: &Path,
        target: &str,
        access: Access,
    ) -> Result<(), PolicyError> {
        let target = confine_container_path(target, "-v")?;
        let source = source.canonicalize().map_err(|e| PolicyError::HostPath {
            path: source.to_path_buf(),
            source: e,
        })?;
        self.push_mount(Mount::Bind {
            source,
            target,
            access,
        })
    }

    /// Add or resize a tmpfs (`--tmpfs PATH[:size=N]`).
    pub fn add_tmpfs(&mut self, target: &str, size: u64, exec: bool) -> Result<(), PolicyError> {
        let target = confine_container_path(target, "--tmpfs")?;
        self.mounts
            .retain(|m| !matches!(m, Mount::Tmpfs { target: t, .. } if *t == target));
        self.push_mount(Mount::Tmpfs {
            target,
            size,
            nr_inodes: TMPFS_INODES,
            mode: 0o1777,
            exec,
        })
    }

    fn push_mount(&mut self, mount: Mount) -> Result<(), PolicyError> {
        let target = mount.target().to_path_buf();
        // A user mount over one of the default tmpfs replaces it (for example a bind mount
        // of a persistent home); two user mounts on the same path are a mistake.
        if let Some(pos) = self.mounts.iter().position(|m| m.target() == target) {
            let defaults = [
                Path::new("/tmp"),
                Path::new("/var/tmp"),
                Path::new("/run"),
                &self.home,
            ];
            let is_default_tmpfs = matches!(self.mounts[pos], Mount::Tmpfs { .. })
                && defaults.contains(&target.as_path());
            if !is_default_tmpfs {
                return Err(PolicyError::DuplicateTarget(target));
            }
            self.mounts.remove(pos);
        }
        self.mounts.push(mount);
        // Mount parents before children so that a bind inside a tmpfs is not hidden by it.
        self.mounts.sort_by_key(|m| m.target().components().count());
        Ok(())
    }
}

fn default_tmpfs(home: &Path) -> Vec<Mount> {
    let t = |p: &str, size: u64, mode: u32, exec: bool| Mount::Tmpfs {
        target: PathBuf::from(p),
        size,
        nr_inodes: TMPFS_INODES,
        mode,
        exec,
    };
    vec![
        t("/tmp", TMP_SIZE, 0o1777, true),
        t("/var/tmp", VAR_TMP_SIZE, 0o1777, false),
        t("/run", RUN_SIZE, 0o755, false),
        Mount::Tmpfs {
            target: home.to_path_buf(),
            size: HOME_SIZE,
            nr_inodes: TMPFS_INODES,
            mode: 0o700,
            exec: true,
        },
    ]
}

fn default_env(home: &Path) -> Vec<(String, String)> {
    vec![
        (
            "PATH".to_owned(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        ),
        ("HOME".to_owned(), home.to_string_lossy().into_owned()),
        ("AGS_SANDBOX".to_owned(), "1".to_owned()),
    ]
}

fn set_env(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_owned(),
        None => env.push((key.to_owned(), value.to_owned())),
    }
}

/// Paths the sandbox owns: a user mount on or under them could undo the hardening
/// (for example a writable bind over `/proc/sys`, or hiding the masked paths).
const RESERVED: &[&str] = &["/proc", "/sys", "/dev"];

/// The one place that decides whether a container path from untrusted or user input is
/// acceptable: absolute, no `..`, no NUL, not `/`, and not on or under `/proc`, `/sys` or
/// `/dev`. `.` components and repeated slashes are normalised away.
///
/// This prevents the CVE-2024-21626 class (a working directory or mount target that
/// resolves into `/proc/self/fd/...` and so into a host directory) and mounts that would
/// shadow the masked and read-only paths of runc's default policy.
pub fn confine_container_path(path: &str, what: &'static str) -> Result<PathBuf, PolicyError> {
    let err = |reason| PolicyError::ContainerPath {
        what,
        path: path.to_owned(),
        reason,
    };
    if path.contains('\0') {
        return Err(err("contains a NUL byte"));
    }
    if !path.starts_with('/') {
        return Err(err("must be absolute"));
    }
    if path.len() > 4096 {
        return Err(err("is longer than PATH_MAX"));
    }
    let mut out = PathBuf::from("/");
    for c in Path::new(path).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(err("must not contain `..`")),
            Component::Normal(n) => out.push(n),
            Component::Prefix(_) => return Err(err("has a prefix")),
        }
    }
    if out == Path::new("/") {
        return Err(err("must not be the root"));
    }
    if RESERVED.iter().any(|r| out.starts_with(r)) {
        return Err(err("is reserved for the sandbox (/proc, /sys, /dev)"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_container_paths_are_refused() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/work", Some("/work")),
            ("/a/./b//c/", Some("/a/b/c")),
            ("relative", None),
            ("", None),
            ("/", None),
            ("//", None),
            ("/..", None),
            ("/a/../../etc", None),
            ("/a/..", None),
            ("/proc/self/fd/3", None),
            ("/proc", None),
            ("/sys/fs/cgroup", None),
            ("/dev/sda", None),
            ("/a\0b", None),
            ("/procfs", Some("/procfs")),
            ("/./proc/self", None),
        ];
        for (input, want) in cases {
            let got = confine_container_path(input, "test").ok();
            assert_eq!(got.as_deref(), want.map(Path::new), "input {input:?}");
        }
        let long = format!("/{}", "a".repeat(5000));
        assert!(confine_container_path(&long, "test").is_err());
    }

    #[test]
    fn defaults_are_deny_by_default() {
        let p = SandboxPolicy::new(
            "/r".into(),
            vec!["true".into()],
            Limits::defaults(Some(4 << 30)),
        )
        .unwrap();
        assert_eq!(p.network, NetworkMode::None);
        assert_eq!(p.limits.memory, Some(2 << 30));
        assert_eq!(p.limits.pids, Some(DEFAULT_PIDS));
        let targets: Vec<_> = p.mounts.iter().map(|m| m.target().to_path_buf()).collect();
        assert_eq!(
            targets,
            ["/tmp", "/var/tmp", "/run", "/home/dev"].map(PathBuf::from),
            "only tmpfs mounts, no host path"
        );
        assert!(p.mounts.iter().all(|m| matches!(m, Mount::Tmpfs { .. })));
        let keys: Vec<_> = p.env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["PATH", "HOME", "AGS_SANDBOX"]);
    }

    #[test]
    fn memory_default_is_capped() {
        assert_eq!(Limits::defaults(Some(64 << 30)).memory, Some(8 << 30));
        assert_eq!(Limits::defaults(None).memory, Some(8 << 30));
    }

    #[test]
    fn user_mounts_replace_default_tmpfs_but_not_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let mut p =
            SandboxPolicy::new("/r".into(), vec!["sh".into()], Limits::defaults(None)).unwrap();
        p.add_bind(dir.path(), "/home/dev", Access::ReadWrite)
            .unwrap();
        assert!(matches!(p.mounts.last().unwrap(), Mount::Bind { .. }));
        assert_eq!(p.mounts.len(), 4);
        p.add_bind(dir.path(), "/data", Access::ReadOnly).unwrap();
        let err = p
            .add_bind(dir.path(), "/data/", Access::ReadOnly)
            .unwrap_err();
        assert!(matches!(err, PolicyError::DuplicateTarget(_)));
        assert!(
            p.add_bind(Path::new("/nonexistent/ags"), "/x", Access::ReadOnly)
                .is_err()
        );
    }

    #[test]
    fn mounts_are_ordered_parents_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut p =
            SandboxPolicy::new("/r".into(), vec!["sh".into()], Limits::defaults(None)).unwrap();
        p.add_bind(dir.path(), "/tmp/a/b", Access::ReadOnly)
            .unwrap();
        p.add_tmpfs("/tmp/a", 1 << 20, false).unwrap();
        let order: Vec<_> = p.mounts.iter().map(|m| m.target().to_path_buf()).collect();
        let a = order.iter().position(|t| t == Path::new("/tmp/a")).unwrap();
        let b = order
            .iter()
            .position(|t| t == Path::new("/tmp/a/b"))
            .unwrap();
        assert!(a < b);
    }

    #[test]
    fn root_user_moves_home() {
        let mut p =
            SandboxPolicy::new("/r".into(), vec!["sh".into()], Limits::defaults(None)).unwrap();
        p.with_user(0, 0);
        assert_eq!(p.home, Path::new("/root"));
        assert_eq!(p.cwd, Path::new("/root"));
        assert!(p.mounts.iter().any(|m| m.target() == Path::new("/root")));
        assert!(p.env.contains(&("HOME".into(), "/root".into())));
    }

    #[test]
    fn env_names_are_checked() {
        let mut p =
            SandboxPolicy::new("/r".into(), vec!["sh".into()], Limits::defaults(None)).unwrap();
        assert!(p.set_env("A=B", "x").is_err());
        assert!(p.set_env("", "x").is_err());
        assert!(p.set_env("1A", "x").is_err());
        p.set_env("FOO", "a=b").unwrap();
        p.set_env("FOO", "c").unwrap();
        assert_eq!(p.env.iter().filter(|(k, _)| k == "FOO").count(), 1);
    }
}
