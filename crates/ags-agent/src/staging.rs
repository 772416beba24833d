//! The lockdown home: a fresh private directory holding only the agent's login and settings
//! files, mounted read-write as the agent's home directories for one run and deleted
//! afterwards.
//!
//! What it prevents: a lockdown run seeing anything of the host but the workspace. Only the
//! files on the profile's allowlist ([`crate::profile::AgentProfile::stage_files`]) are
//! copied, and the denylist wins over the allowlist. Files are opened below the agent's
//! home directory one component at a time with `O_NOFOLLOW` (openat(2)), so a symlink
//! planted by an agent during an earlier normal run (say `~/.codex/auth.json ->
//! ~/.ssh/id_ed25519`) is skipped, never followed; FIFOs, devices and files over
//! [`MAX_STAGED_FILE`] are skipped too. (The home directory itself, e.g. `~/.codex`, may be
//! a symlink: the user made it, an agent cannot replace a mount point.)
//!
//! Nothing persists between lockdown runs, even when ags is SIGKILLed: every staging
//! `BASE/lockdown-<pid>-<random>` has a lock file `BASE/lockdown-<pid>-<random>.lock`,
//! created and `flock(2)`ed *before* the directory and held for the staging's lifetime. The
//! kernel drops the lock when the process dies, so [`cleanup_stale`] (run at every start)
//! deletes exactly the stagings whose lock it can take.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;

use crate::config::{AgentMountConfig, MountKind};
use crate::profile::{AgentProfile, CONTAINER_HOME, HomeEntry, HomeKind, StageFile};

/// Files larger than this are not staged (login and settings files are a few KiB).
pub const MAX_STAGED_FILE: u64 = 1024 * 1024;

const PREFIX: &str = "lockdown-";
const LOCK_SUFFIX: &str = ".lock";

/// Errors of creating, removing and cleaning up stagings.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    /// The base directory is not a private directory of the current user.
    #[error("{}: staging base must be a directory owned by the current user with mode 0700 ({reason})", path.display())]
    InsecureBase {
        /// The base directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A filesystem operation failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StagingError + 'a {
    move |source| StagingError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Why an allowlisted file was not staged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Not there (the common case).
    Missing,
    /// A symlink (at the file or one of the directories above it, below the home).
    Symlink,
    /// Not a regular file (directory, FIFO, device, socket).
    NotRegular,
    /// Larger than [`MAX_STAGED_FILE`].
    TooLarge(u64),
    /// On the denylist.
    Denied,
    /// A JSON file to filter that is not a JSON object.
    BadJson,
    /// Could not be read (the message of the OS error).
    Unreadable(String),
}

/// An allowlisted file that was not staged, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Path relative to the home directory.
    pub rel: String,
    /// Why.
    pub reason: SkipReason,
}

/// A staged path to mount read-write in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedMount {
    /// Path inside the staging directory.
    pub host: PathBuf,
    /// Path in the container (below [`CONTAINER_HOME`]).
    pub container: PathBuf,
    /// Directory or file.
    pub kind: MountKind,
}

/// Where the host copy of one home entry lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeSource {
    /// The profile's entry.
    pub entry: HomeEntry,
    /// Its host path.
    pub host: PathBuf,
}

/// The host paths of a profile's home entries: the matching `[[agent_mount]]` of the agent
/// (same container path) if there is one, else the same relative path below `host_home`.
pub fn home_sources(
    profile: &AgentProfile,
    host_home: &Path,
    agent_mounts: &[AgentMountConfig],
) -> Vec<HomeSource> {
    profile
        .homes
        .iter()
        .map(|entry| {
            let container = PathBuf::from(AgentProfile::container_path(entry.path));
            let host = agent_mounts
                .iter()
                .find(|m| m.agent == profile.kind && m.container == container)
                .map_or_else(|| host_home.join(entry.path), |m| m.host.clone());
            HomeSource {
                entry: *entry,
                host,
            }
        })
        .collect()
}

/// A staged lockdown home. Deleted on drop; use [`StagedHome::remove`] to see errors.
#[derive(Debug)]
pub struct StagedHome {
    dir: PathBuf,
    lock_path: PathBuf,
    lock: Option<Flock<File>>,
    mounts: Vec<StagedMount>,
    staged: Vec<String>,
    skipped: Vec<Skipped>,
}

impl StagedHome {
    /// Stages `profile`'s allowlisted files from `host_home` into a new directory under
    /// `base_dir` (which must be a 0700 directory of the current user).
    pub fn create(
        base_dir: &Path,
        profile: &AgentProfile,
        host_home: &Path,
    ) -> Result<StagedHome, StagingError> {
        Self::create_from(base_dir, profile, &home_sources(profile, host_home, &[]))
    }

    /// Like [`StagedHome::create`], with explicit host paths for the home entries (see
    /// [`home_sources`]). Entries without a source are staged empty.
    pub fn create_from(
        base_dir: &Path,
        profile: &AgentProfile,
        sources: &[HomeSource],
    ) -> Result<StagedHome, StagingError> {
        check_base(base_dir)?;
        let (lock, name) = create_lock(base_dir)?;
        let dir = base_dir.join(&name);
        let mut staged = StagedHome {
            lock_path: base_dir.join(format!("{name}{LOCK_SUFFIX}")),
            dir,
            lock: Some(lock),
            mounts: Vec::new(),
            staged: Vec::new(),
            skipped: Vec::new(),
        };
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staged.dir)
            .map_err(io("create", &staged.dir))?;
        // From here on, dropping `staged` on an error removes what was made.
        staged.fill(profile, sources)?;
        Ok(staged)
    }

    fn fill(&mut self, profile: &AgentProfile, sources: &[HomeSource]) -> Result<(), StagingError> {
        let home = self.dir.join("home");
        for entry in profile.homes {
            let target = home.join(entry.path);
            let source = sources.iter().find(|s| s.entry == *entry);
            let mut have_file = false;
            for file in profile.stage_files {
                if profile.home_of(file.path) != Some(entry) {
                    continue;
                }
                if profile.is_never_staged(file.path) {
                    self.skip(file.path, SkipReason::Denied);
                    continue;
                }
                let Some(source) = source else {
                    self.skip(file.path, SkipReason::Missing);
                    continue;
                };
                match read_allowed(source, entry, file) {
                    Err(reason) => self.skip(file.path, reason),
                    Ok(bytes) => {
                        let dest = home.join(file.path);
                        write_private(&dest, &bytes)?;
                        self.staged.push(file.path.to_owned());
                        have_file |= entry.kind == HomeKind::File;
                    }
                }
            }
            let container = PathBuf::from(format!("{CONTAINER_HOME}/{}", entry.path));
            match entry.kind {
                HomeKind::Dir => {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(&target)
                        .map_err(io("create", &target))?;
                    self.mounts.push(StagedMount {
                        host: target,
                        container,
                        kind: MountKind::Dir,
                    });
                }
                // A single-file home is mounted only when it was staged; otherwise the
                // agent creates it in the (throwaway) container home.
                HomeKind::File if have_file => self.mounts.push(StagedMount {
                    host: target,
                    container,
                    kind: MountKind::File,
                }),
                HomeKind::File => {}
            }
        }
        Ok(())
    }

    fn skip(&mut self, rel: &str, reason: SkipReason) {
        self.skipped.push(Skipped {
            rel: rel.to_owned(),
            reason,
        });
    }

    /// The staging directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// What to mount read-write, in profile order.
    pub fn mounts(&self) -> &[StagedMount] {
        &self.mounts
    }

    /// The files that were staged (relative to the home directory).
    pub fn staged_files(&self) -> &[String] {
        &self.staged
    }

    /// The allowlisted files that were not staged, and why.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Deletes the staging now, reporting errors (drop does the same silently).
    pub fn remove(mut self) -> Result<(), StagingError> {
        self.remove_inner()
    }

    fn remove_inner(&mut self) -> Result<(), StagingError> {
        let Some(lock) = self.lock.take() else {
            return Ok(());
        };
        // The directory goes first, while the lock is still held: a concurrent
        // cleanup_stale can then never see a half-removed staging as unlocked.
        remove_tree(&self.dir)?;
        match std::fs::remove_file(&self.lock_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("remove", &self.lock_path)(e));
            }
            _ => {}
        }
        drop(lock);
        Ok(())
    }
}

impl Drop for StagedHome {
    fn drop(&mut self) {
        let _ = self.remove_inner();
    }
}

fn remove_tree(path: &Path) -> Result<(), StagingError> {
    let res = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        // std's remove_dir_all does not follow symlinks inside the tree.
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    res.map_err(io("remove", path))
}

fn check_base(base: &Path) -> Result<(), StagingError> {
    let insecure = |reason: &str| StagingError::InsecureBase {
        path: base.to_path_buf(),
        reason: reason.to_owned(),
    };
    let meta = std::fs::symlink_metadata(base).map_err(io("inspect", base))?;
    if !meta.is_dir() {
        return Err(insecure("not a directory"));
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(insecure("owned by another user"));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(insecure(&format!("mode is {:o}", meta.mode() & 0o7777)));
    }
    Ok(())
}

fn random_hex() -> Result<String, StagingError> {
    let mut buf = [0u8; 8];
    let path = Path::new("/dev/urandom");
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(io("read", path))?;
    Ok(hex::encode(buf))
}

/// Creates and locks `BASE/lockdown-<pid>-<random>.lock`, returning the lock and the name.
/// The file is created under a temporary name, locked, and only then linked under its real
/// name, so cleanup never finds a real lock file that is not (yet) locked.
fn create_lock(base: &Path) -> Result<(Flock<File>, String), StagingError> {
    for _ in 0..16 {
        let name = format!("{PREFIX}{}-{}", std::process::id(), random_hex()?);
        let final_path = base.join(format!("{name}{LOCK_SUFFIX}"));
        if std::fs::symlink_metadata(base.join(&name)).is_ok() {
            continue;
        }
        let tmp = tempfile::Builder::new()
            .prefix(".lockdown-lock-")
            .tempfile_in(base)
            .map_err(io("create a lock file in", base))?;
        let (file, tmp_path) = tmp.into_parts();
        let mut lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| io("lock", &tmp_path)(std::io::Error::from(e)))?;
        // The owner, for people looking at the directory.
        let _ = writeln!(*lock, "{}", std::process::id());
        match tmp_path.persist_noclobber(&final_path) {
            Ok(()) => return Ok((lock, name)),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io("create", &final_path)(e.error)),
        }
    }
    Err(io("create a staging in", base)(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "no free name",
    )))
}

/// Opens `path` below `dir` without following any symlink (openat(2) with `O_NOFOLLOW`
/// on each component).
fn open_nofollow(dir: &File, rel: &str) -> Result<File, SkipReason> {
    let mut parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let Some(last) = parts.pop() else {
        return Err(SkipReason::NotRegular);
    };
    let open = |dirfd: i32, name: &str, flags: OFlag| -> Result<File, SkipReason> {
        let fd = nix::fcntl::openat(
            Some(dirfd),
            name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ENOENT => SkipReason::Missing,
            Errno::ELOOP => SkipReason::Symlink,
            // O_DIRECTORY on a symlink (or a file) fails with ENOTDIR.
            Errno::ENOTDIR => SkipReason::Symlink,
            e => SkipReason::Unreadable(e.desc().to_owned()),
        })?;
        // SAFETY: `fd` was just returned by openat(2) and is owned by nobody else.
        Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    };
    let mut current: Option<File> = None;
    for p in parts {
        let dirfd = current.as_ref().unwrap_or(dir).as_raw_fd();
        current = Some(open(dirfd, p, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?);
    }
    let dirfd = current.as_ref().unwrap_or(dir).as_raw_fd();
    // O_NONBLOCK: opening a FIFO must not hang; the file type is checked right after.
    open(dirfd, last, OFlag::O_RDONLY | OFlag::O_NONBLOCK)
}

/// Reads one allowlisted file from its host home, applying every check.
fn read_allowed(
    source: &HomeSource,
    entry: &HomeEntry,
    file: &StageFile,
) -> Result<Vec<u8>, SkipReason> {
    let f = match entry.kind {
        HomeKind::Dir => {
            // The home directory itself may be a symlink made by the user; below it
            // nothing is followed.
            let dir = File::open(&source.host).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => SkipReason::Missing,
                _ => SkipReason::Unreadable(e.to_string()),
            })?;
            if !dir.metadata().is_ok_and(|m| m.is_dir()) {
                return Err(SkipReason::NotRegular);
            }
            let rel = file
                .path
                .strip_prefix(entry.path)
                .and_then(|r| r.strip_prefix('/'))
                .ok_or(SkipReason::NotRegular)?;
            open_nofollow(&dir, rel)?
        }
        HomeKind::File => {
            let parent = source.host.parent().ok_or(SkipReason::NotRegular)?;
            let name = source.host.file_name().ok_or(SkipReason::NotRegular)?;
            let dir = File::open(parent).map_err(|e| SkipReason::Unreadable(e.to_string()))?;
            open_nofollow(&dir, &name.to_string_lossy())?
        }
    };
    let meta = f
        .metadata()
        .map_err(|e| SkipReason::Unreadable(e.to_string()))?;
    if !meta.is_file() {
        return Err(SkipReason::NotRegular);
    }
    if meta.len() > MAX_STAGED_FILE {
        return Err(SkipReason::TooLarge(meta.len()));
    }
    let mut bytes = Vec::new();
    f.take(MAX_STAGED_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| SkipReason::Unreadable(e.to_string()))?;
    if bytes.len() as u64 > MAX_STAGED_FILE {
        return Err(SkipReason::TooLarge(bytes.len() as u64));
    }
    if file.drop_json_keys.is_empty() {
        return Ok(bytes);
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| SkipReason::BadJson)?;
    let obj = value.as_object_mut().ok_or(SkipReason::BadJson)?;
    for key in file.drop_json_keys {
        obj.remove(*key);
    }
    serde_json::to_vec_pretty(&value).map_err(|_| SkipReason::BadJson)
}

fn write_private(dest: &Path, bytes: &[u8]) -> Result<(), StagingError> {
    if let Some(parent) = dest.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io("create", parent))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dest)
        .map_err(io("create", dest))?;
    f.write_all(bytes).map_err(io("write", dest))
}

/// Removes the stagings under `base_dir` whose owner is gone (their lock can be taken),
/// returning the removed directories. Stagings of running ags processes are left alone.
pub fn cleanup_stale(base_dir: &Path) -> Result<Vec<PathBuf>, StagingError> {
    let entries = match std::fs::read_dir(base_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        r => r.map_err(io("list", base_dir))?,
    };
    let mut stems = std::collections::BTreeSet::new();
    for e in entries {
        let e = e.map_err(io("list", base_dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix(PREFIX) {
            let stem = rest.strip_suffix(LOCK_SUFFIX).unwrap_or(rest);
            stems.insert(format!("{PREFIX}{stem}"));
        }
    }
    let mut removed = Vec::new();
    for stem in stems {
        let dir = base_dir.join(&stem);
        let lock_path = base_dir.join(format!("{stem}{LOCK_SUFFIX}"));
        let lock_file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock_path);
        let guard = match lock_file {
            // No lock file: it is created before the directory and removed after it, so
            // the directory is a leftover.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("open", &lock_path)(e)),
            Ok(f) => match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                Ok(g) => Some(g),
                Err((_, Errno::EWOULDBLOCK)) => continue,
                Err((_, e)) => return Err(io("lock", &lock_path)(std::io::Error::from(e))),
            },
        };
        if std::fs::symlink_metadata(&dir).is_ok() {
            remove_tree(&dir)?;
            removed.push(dir);
        }
        if guard.is_some() {
            match std::fs::remove_file(&lock_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io("remove", &lock_path)(e));
                }
                _ => {}
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests;
