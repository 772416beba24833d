//! The per-user state directory and the cleanup of runs whose `ags` was killed.
//!
//! Layout under the base directory (`$XDG_RUNTIME_DIR/ags`, or a private 0700 directory
//! when there is no runtime dir):
//!
//! ```text
//! runs/<id>/lock       flock(2)ed by the ags process that owns the run
//! runs/<id>/init       "<pid> <starttime>" of the container's init, once it exists
//! runs/<id>/cgroups    the run's cgroup directories, one per line
//! runs/<id>/init.pid   the init's pid, written by libcontainer as soon as it exists
//! runs/<id>/bundle/    mount point of a tmpfs private to the run's ags: config.json,
//!                      libcontainer's state, the generated /etc files and the overlay's
//!                      upper/work/merged (in the run directory itself on kernels whose
//!                      tmpfs cannot be an upper layer)
//! runs/<id>/...        console socket, pasta.pid
//! youki/<id>/          libcontainer's state, from ags versions that kept it on disk
//! ```
//!
//! A run whose lock can be taken has no living owner: its processes are killed and its
//! directories removed at the next start ([`StateDir::cleanup_stale`]).

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::holder::{Pidfd, remove_cgroups};

/// Errors with the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A filesystem operation failed.
    #[error("state directory {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The directory exists but belongs to someone else or is open to others.
    #[error("state directory {path} is not private to this user (owner {owner}, mode {mode:o})")]
    NotPrivate {
        /// The path.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Its mode.
        mode: u32,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The state directory of the calling user.
#[derive(Debug, Clone)]
pub struct StateDir {
    base: PathBuf,
}

/// One run's directory, locked for the life of this value.
#[derive(Debug)]
pub struct RunDir {
    /// The run id (also the container id).
    pub id: String,
    /// `runs/<id>`.
    pub path: PathBuf,
    _lock: File,
}

impl StateDir {
    /// Open (creating if needed) the state directory. An existing directory must belong to
    /// the caller and be closed to others, so another user cannot plant state for us.
    pub fn open(base: PathBuf) -> Result<Self, StateError> {
        if let Some(parent) = base.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        match fs::DirBuilder::new().mode(0o700).create(&base) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(&base)(e)),
        }
        let meta = fs::symlink_metadata(&base).map_err(io(&base))?;
        // SAFETY: geteuid(2) cannot fail.
        let me = unsafe { libc::geteuid() };
        if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o077 != 0 {
            return Err(StateError::NotPrivate {
                path: base,
                owner: meta.uid(),
                mode: meta.mode() & 0o7777,
            });
        }
        for sub in ["youki", "runs"] {
            let p = base.join(sub);
            fs::create_dir_all(&p).map_err(io(&p))?;
        }
        Ok(Self { base })
    }

    /// The base directory.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// libcontainer's root path.
    pub fn youki_root(&self) -> PathBuf {
        self.base.join("youki")
    }

    /// Where [`Self::new_run_with_id`] puts the run `id`.
    pub fn run_path(&self, id: &str) -> PathBuf {
        self.base.join("runs").join(id)
    }

    /// Create and lock a new run directory. It is built under a dot-name and renamed into
    /// place with its lock already held, so a concurrent [`Self::cleanup_stale`] never sees
    /// it without a lock.
    pub fn new_run(&self) -> Result<RunDir, StateError> {
        self.new_run_with_id(Self::new_id())
    }

    /// A fresh run id: `ags-<pid>-<12 random hex digits>`.
    pub fn new_id() -> String {
        let mut rnd = [0u8; 6];
        let _ = File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut rnd));
        format!(
            "ags-{}-{}",
            std::process::id(),
            rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }

    /// [`Self::new_run`] with an id from [`Self::new_id`], for a caller that needs the
    /// run's paths before the directory exists.
    pub fn new_run_with_id(&self, id: String) -> Result<RunDir, StateError> {
        let runs = self.base.join("runs");
        let tmp = runs.join(format!(".new-{id}"));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .map_err(io(&tmp))?;
        let lock_path = tmp.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        // SAFETY: flock(2) on a descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(io(&lock_path)(std::io::Error::last_os_error()));
        }
        let path = runs.join(&id);
        fs::rename(&tmp, &path).map_err(io(&path))?;
        Ok(RunDir {
            id,
            path,
            _lock: lock,
        })
    }

    /// Remove every run whose owner is gone: kill its init (the kernel then kills the rest
    /// of its PID namespace), remove its cgroups, pasta, and directories. Returns the ids
    /// cleaned.
    pub fn cleanup_stale(&self) -> Vec<String> {
        let runs = self.base.join("runs");
        let Ok(entries) = fs::read_dir(&runs) else {
            return Vec::new();
        };
        let mut cleaned = Vec::new();
        for e in entries.flatten() {
            let dir = e.path();
            if e.file_name().to_string_lossy().starts_with('.') {
                // A run being created; garbage only if its creator died long ago.
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > std::time::Duration::from_secs(3600));
                if old {
                    remove_tree(&dir);
                }
                continue;
            }
            let Ok(lock) = File::open(dir.join("lock")) else {
                // Every run dir is renamed into place with its lock: this is garbage.
                remove_tree(&dir);
                continue;
            };
            // SAFETY: flock(2) on a descriptor we own.
            if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                continue; // a live ags owns it
            }
            if let Some((pid, start)) = fs::read_to_string(dir.join("init")).ok().and_then(|s| {
                let mut it = s.split_whitespace();
                Some((
                    it.next()?.parse::<i32>().ok()?,
                    it.next()?.parse::<u64>().ok()?,
                ))
            }) && starttime(pid) == Some(start)
                && let Some(fd) = Pidfd::open(pid)
            {
                fd.kill();
            }
            crate::network::stop_pasta(&dir.join("pasta.pid"));
            let cgroups: Vec<PathBuf> = fs::read_to_string(dir.join("cgroups"))
                .unwrap_or_default()
                .lines()
                .map(PathBuf::from)
                .collect();
            remove_cgroups(&cgroups);
            let id = e.file_name().to_string_lossy().into_owned();
            remove_tree(&self.youki_root().join(&id));
            remove_tree(&dir);
            cleaned.push(id);
        }
        cleaned
    }
}

impl RunDir {
    /// Record the container's init so a later cleanup can kill exactly it.
    pub fn record_init(&self, pid: i32) -> Result<(), StateError> {
        let p = self.path.join("init");
        let start = starttime(pid).unwrap_or(0);
        fs::write(&p, format!("{pid} {start}\n")).map_err(io(&p))
    }

    /// Record the run's cgroup directories.
    pub fn record_cgroups(&self, dirs: &[PathBuf]) -> Result<(), StateError> {
        let p = self.path.join("cgroups");
        let text: String = dirs.iter().map(|d| format!("{}\n", d.display())).collect();
        fs::write(&p, text).map_err(io(&p))
    }
}

/// Remove the directory tree `dir`, also where overlayfs left a directory nobody may read.
///
/// A run's overlay work directory holds `work/work`, which overlayfs creates with mode 000
/// (it is only ever used with its own credentials). The holder removes it from inside the
/// sandbox's user namespace, where it may override file permissions on the user's files
/// (capabilities(7), CAP_DAC_OVERRIDE); `ags` cleaning up after a run whose holder was
/// killed too cannot, and remove_dir_all(3) stopped there, leaving the run directory for
/// every later start to trip over again. So directories are made accessible to their owner
/// (all of them are the user's: the state directory is private) and the removal retried.
/// Symbolic links are never followed.
fn remove_tree(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if fs::remove_dir_all(dir).is_ok() {
        return;
    }
    fn open_up(d: &Path) {
        let Ok(meta) = fs::symlink_metadata(d) else {
            return;
        };
        if !meta.is_dir() {
            return;
        }
        if meta.mode() & 0o700 != 0o700 {
            let _ = fs::set_permissions(d, fs::Permissions::from_mode(0o700));
        }
        if let Ok(entries) = fs::read_dir(d) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    open_up(&e.path());
                }
            }
        }
    }
    open_up(dir);
    let _ = fs::remove_dir_all(dir);
}

/// The start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat),
/// which tells a process apart from a later one that reuses its pid.
pub fn starttime(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The default base directory: `$XDG_RUNTIME_DIR/ags`, else a private directory in the
/// system temp dir named after the uid.
pub fn default_base(xdg_runtime_dir: Option<&Path>, uid: u32) -> PathBuf {
    match xdg_runtime_dir {
        Some(d) if d.is_absolute() => d.join("ags"),
        _ => std::env::temp_dir().join(format!("ags-{uid}")),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn starttime_of_self_is_stable() {
        let me = std::process::id() as i32;
        assert!(starttime(me).is_some());
        assert_eq!(starttime(me), starttime(me));
        assert_eq!(starttime(-5), None);
    }

    #[test]
    fn refuses_a_directory_open_to_others() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("ags");
        fs::create_dir(&base).unwrap();
        fs::set_permissions(&base, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            StateDir::open(base.clone()),
            Err(StateError::NotPrivate { .. })
        ));
        fs::set_permissions(&base, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(StateDir::open(base).is_ok());
    }

    #[test]
    fn stale_runs_are_removed_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path().join("ags")).unwrap();
        let live = state.new_run().unwrap();
        let dead = state.new_run().unwrap();
        let dead_path = dead.path.clone();
        fs::create_dir_all(state.youki_root().join(&dead.id)).unwrap();
        drop(dead);
        let cleaned = state.cleanup_stale();
        assert_eq!(cleaned.len(), 1);
        assert!(!dead_path.exists());
        assert!(live.path.exists());
    }
}
