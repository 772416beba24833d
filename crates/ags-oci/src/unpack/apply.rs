//! Applying tar entries to the rootfs, one at a time, fd-relative to the rootfs root.
//!
//! The rules (see the parent module's docs for the threats and CVEs):
//! * parents are resolved in-root (`pathrs`, openat2 `RESOLVE_IN_ROOT`), missing ones are
//!   created one component at a time with `mkdirat` + `O_NOFOLLOW` opens;
//! * the final component is never followed; what is in the way is removed, except that an
//!   existing directory stays when the entry is a directory;
//! * metadata goes through the new file's fd or `fchmodat(dirfd, ".")`;
//! * directory modes and mtimes are applied at the end of the layer, deepest first, so a
//!   read-only directory does not stop its own children from being written and children do
//!   not bump their parent's mtime afterwards.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use pathrs::Root;
use pathrs::error::ErrorKind as PathrsErrorKind;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use tar::EntryType;

use super::confine::{EntryPath, confine, escape};
use super::fsops::{
    self, chmod_dir, errno_io, is_dir, make_dir_accessible, open_dir_nofollow, reopen_dir_readable,
    stat_nofollow,
};
use super::{UnpackError, UnpackOptions, UnpackStats};

mod meta;
mod whiteout;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
/// Notes kept in [`UnpackStats::notes`]; the rest are only counted.
const MAX_NOTES: usize = 64;

/// A directory whose mode (and mtime) is applied when the layer is done.
#[derive(Debug, Clone, Copy)]
struct DeferredDir {
    mode: u32,
    mtime: Option<Timespec>,
    /// Resolve a final symlink (in-root) when applying: used for restoring the mode of a
    /// lower-layer directory reached through a symlink, never for the layer's own entries.
    follow: bool,
}

pub(crate) struct Unpacker<'o> {
    root: Root,
    root_path: PathBuf,
    opts: &'o UnpackOptions,
    stats: UnpackStats,
    /// Paths (and all their ancestors) this layer created or replaced: whiteouts and opaque
    /// whiteouts leave them alone, since they apply to lower layers only.
    created: HashSet<EntryPath>,
    deferred: HashMap<EntryPath, DeferredDir>,
    written: u64,
    buf: Vec<u8>,
}

impl<'o> Unpacker<'o> {
    pub(crate) fn open(rootfs: &Path, opts: &'o UnpackOptions) -> Result<Self, UnpackError> {
        // The rootfs path is the caller's, trusted; O_NOFOLLOW still refuses a symlink there.
        let fd = rfs::open(
            rootfs,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| UnpackError::OpenRoot {
            path: rootfs.to_owned(),
            source: errno_io(e),
        })?;
        Ok(Unpacker {
            root: Root::from_fd(fd),
            root_path: rootfs.to_owned(),
            opts,
            stats: UnpackStats::default(),
            created: HashSet::new(),
            deferred: HashMap::new(),
            written: 0,
            buf: vec![0; 128 * 1024],
        })
    }

    /// Applies the deferred directory metadata and returns the statistics.
    pub(crate) fn finish(mut self) -> Result<UnpackStats, UnpackError> {
        let mut dirs: Vec<(EntryPath, DeferredDir)> = self.deferred.drain().collect();
        dirs.sort_by_key(|(path, _)| std::cmp::Reverse(path.components().len()));
        for (path, dir) in dirs {
            let fd = if path.is_root() {
                self.dup_root().map_err(|e| self.fs_err("open", &path, e))?
            } else {
                let rel = bytes_path(&path.to_relative_bytes());
                let resolved = if dir.follow {
                    self.root.resolve(&rel)
                } else {
                    self.root.resolve_nofollow(&rel)
                };
                match resolved {
                    Ok(handle) => OwnedFd::from(handle),
                    // A later entry replaced or removed it; nothing to apply.
                    Err(e) if is_gone(&e) => continue,
                    Err(e) => return Err(self.fs_err("open", &path, pathrs_io(e))),
                }
            };
            match rfs::fstat(&fd) {
                Ok(st) if is_dir(&st) => {}
                _ => continue,
            }
            // The mtime first: utimensat looks up `.`, which a restrictive final mode may
            // forbid an unprivileged caller.
            if let Some(mtime) = dir.mtime {
                let times = Timestamps {
                    last_access: mtime,
                    last_modification: mtime,
                };
                rfs::utimensat(&fd, ".", &times, AtFlags::empty())
                    .map_err(|e| self.fs_err("set mtime of", &path, errno_io(e)))?;
            }
            chmod_dir(fd.as_fd(), dir.mode).map_err(|e| self.fs_err("set mode of", &path, e))?;
        }
        Ok(self.stats)
    }

    /// Applies one entry. The caller drains whatever data the entry did not consume.
    pub(crate) fn apply<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        self.stats.entries += 1;
        if self.stats.entries > self.opts.budgets.max_entries {
            return Err(UnpackError::Budget {
                what: "entries",
                limit: self.opts.budgets.max_entries,
            });
        }
        let entry_type = entry.header().entry_type();
        let raw_name = entry.path_bytes().into_owned();
        if entry_type == EntryType::XGlobalHeader {
            // pax global headers carry defaults for archive tools, nothing for the rootfs.
            // Not parsed: the tar crate would buffer the whole record in memory.
            self.stats.skipped_other += 1;
            self.note(format!("skipped pax global header {}", escape(&raw_name)));
            return Ok(());
        }
        let path = confine(&raw_name, self.opts.budgets.max_path_len)
            .map_err(|reason| invalid(&raw_name, reason))?;

        // Whiteout names are special whatever their entry type (as in containerd and
        // docker); a whiteout cannot be a directory with children.
        let last = path.components().len().saturating_sub(1);
        for (i, comp) in path.components().iter().enumerate() {
            if comp.starts_with(WHITEOUT_META_PREFIX) && comp != WHITEOUT_OPAQUE {
                // AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not part of the image.
                self.stats.skipped_other += 1;
                self.note(format!("skipped aufs metadata {path}"));
                return Ok(());
            }
            if comp.starts_with(WHITEOUT_PREFIX) && i != last {
                return Err(invalid(&raw_name, "a whiteout is used as a directory"));
            }
        }
        if let Some(name) = path.file_name() {
            if name.starts_with(WHITEOUT_PREFIX) {
                let name = name.to_vec();
                return self.whiteout(&path, &name, &raw_name);
            }
        }

        // Pre-POSIX archives mark directories with a NUL type flag and a trailing slash;
        // Go's archive/tar (docker, containerd) reads them as directories, so do we.
        let legacy_dir = entry.header().as_old().linkflag[0] == 0 && raw_name.ends_with(b"/");
        if legacy_dir {
            return self.directory(entry, &path, &raw_name);
        }
        match entry_type {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.regular(entry, &path, &raw_name)
            }
            EntryType::Directory => self.directory(entry, &path, &raw_name),
            EntryType::Symlink => self.symlink(entry, &path, &raw_name),
            EntryType::Link => self.hardlink(entry, &path, &raw_name),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.special(entry, &path, &raw_name)
            }
            other => Err(invalid(
                &raw_name,
                format!("unsupported tar entry type {:?}", other.as_byte() as char),
            )),
        }
    }

    fn regular<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &EntryPath,
        raw: &[u8],
    ) -> Result<(), UnpackError> {
        refuse_root(path, raw, "a regular file")?;
        let meta = self.meta(entry, raw)?;
        let size = entry.size();
        let limit = self.opts.budgets.max_total_bytes;
        if self.written.saturating_add(size) > limit {
            return Err(UnpackError::Budget {
                what: "unpacked file bytes",
                limit,
            });
        }
        let (dir, name) = self.prepare_parent(path)?;
        self.remove_existing(dir.as_fd(), &name, path, false)?;
        let fd = rfs::openat(
            &dir,
            name.as_slice(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.fs_err("create", path, errno_io(e)))?;
        self.mark_created(path);
        let mut file = File::from(fd);
        let mut copied = 0u64;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(UnpackError::Read { source }),
            };
            copied += n as u64;
            if copied > size {
                return Err(invalid(raw, "entry data is longer than its header says"));
            }
            file.write_all(&self.buf[..n])
                .map_err(|e| self.fs_err("write", path, e))?;
        }
        if copied != size {
            // The tar crate ends an entry early at EOF instead of failing.
            return Err(UnpackError::Read {
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("layer stream ends inside {path}"),
                ),
            });
        }
        self.written += copied;
        self.apply_file_meta(file.as_fd(), path, &meta)?;
        self.stats.files += 1;
        Ok(())
    }

    fn directory<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &EntryPath,
        raw: &[u8],
    ) -> Result<(), UnpackError> {
        let meta = self.meta(entry, raw)?;
        let fd = if path.is_root() {
            // The root stays the directory it is; only its metadata comes from the layer.
            self.dup_root().map_err(|e| self.fs_err("open", path, e))?
        } else {
            let (dir, name) = self.prepare_parent(path)?;
            let kept = self.remove_existing(dir.as_fd(), &name, path, true)?;
            if !kept {
                rfs::mkdirat(&dir, name.as_slice(), Mode::from_raw_mode(0o700))
                    .map_err(|e| self.fs_err("create directory", path, errno_io(e)))?;
            }
            open_dir_nofollow(dir.as_fd(), &name)
                .map_err(|e| self.fs_err("open directory", path, e))?
        };
        self.mark_created(path);
        // Owner rwx until the layer is done; the real mode is applied by finish().
        make_dir_accessible(fd.as_fd());
        if let Some((uid, gid)) = meta.owner {
            let res = rfs::chownat(&fd, ".", Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW);
            self.owner_result(res, path)?;
        }
        if !meta.xattrs.is_empty() {
            let readable =
                reopen_dir_readable(fd.as_fd()).map_err(|e| self.fs_err("open", path, e))?;
            self.set_xattrs(readable.as_fd(), path, &meta.xattrs)?;
        }
        self.deferred.insert(
            path.clone(),
            DeferredDir {
                mode: meta.mode,
                mtime: Some(meta.mtime),
                follow: false,
            },
        );
        self.stats.dirs += 1;
        Ok(())
    }

    fn symlink<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &EntryPath,
        raw: &[u8],
    ) -> Result<(), UnpackError> {
        refuse_root(path, raw, "a symlink")?;
        let meta = self.meta(entry, raw)?;
        let target = entry.link_name_bytes().map(|t| t.into_owned());
        let target = target.ok_or_else(|| invalid(raw, "symlink without a target"))?;
        // The target is stored as-is: it is data, only ever resolved in-root later.
        if target.is_empty() || target.contains(&0) {
            return Err(invalid(
                raw,
                "symlink target is empty or contains a NUL byte",
            ));
        }
        if target.len() > self.opts.budgets.max_path_len {
            return Err(invalid(
                raw,
                "symlink target is longer than the path length budget",
            ));
        }
        let (dir, name) = self.prepare_parent(path)?;
        self.remove_existing(dir.as_fd(), &name, path, false)?;
        rfs::symlinkat(target.as_slice(), &dir, name.as_slice())
            .map_err(|e| self.fs_err("create symlink", path, errno_io(e)))?;
        self.mark_created(path);
        if let Some((uid, gid)) = meta.owner {
            let res = rfs::chownat(
                &dir,
                name.as_slice(),
                Some(uid),
                Some(gid),
                AtFlags::SYMLINK_NOFOLLOW,
            );
            self.owner_result(res, path)?;
        }
        let times = Timestamps {
            last_access: meta.mtime,
            last_modification: meta.mtime,
        };
        rfs::utimensat(&dir, name.as_slice(), &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.fs_err("set mtime of", path, errno_io(e)))?;
        self.stats.symlinks += 1;
        Ok(())
    }

    fn hardlink<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &EntryPath,
        raw: &[u8],
    ) -> Result<(), UnpackError> {
        refuse_root(path, raw, "a hardlink")?;
        let target_raw = entry.link_name_bytes().map(|t| t.into_owned());
        let target_raw = target_raw.ok_or_else(|| invalid(raw, "hardlink without a target"))?;
        let target = confine(&target_raw, self.opts.budgets.max_path_len).map_err(|reason| {
            invalid(
                raw,
                format!("hardlink target {}: {reason}", escape(&target_raw)),
            )
        })?;
        let Some(target_name) = target.file_name().map(<[u8]>::to_vec) else {
            return Err(invalid(raw, "hardlink to the rootfs root"));
        };
        if &target == path {
            // A link to itself changes nothing.
            self.stats.hardlinks += 1;
            return Ok(());
        }
        let missing = || invalid(raw, format!("hardlink target {target} does not exist"));
        let target_dir = self
            .open_dir(&target.parent(), false)?
            .ok_or_else(missing)?;
        // Search permission, for unprivileged callers (restored at the end of the layer).
        self.make_writable(target_dir.as_fd(), &target.parent());
        let target_stat = stat_nofollow(target_dir.as_fd(), &target_name)
            .map_err(|e| self.fs_err("inspect", &target, e))?
            .ok_or_else(missing)?;
        if is_dir(&target_stat) {
            return Err(invalid(
                raw,
                format!("hardlink target {target} is a directory"),
            ));
        }
        let (dir, name) = self.prepare_parent(path)?;
        if let Some(existing) =
            stat_nofollow(dir.as_fd(), &name).map_err(|e| self.fs_err("inspect", path, e))?
        {
            if existing.st_dev == target_stat.st_dev && existing.st_ino == target_stat.st_ino {
                self.mark_created(path);
                self.stats.hardlinks += 1;
                return Ok(());
            }
            self.remove_existing(dir.as_fd(), &name, path, false)?;
        }
        // No AT_SYMLINK_FOLLOW: a symlink target is linked as the symlink itself, and no
        // metadata is ever applied through the new name (containerd CVE-2021-32760).
        rfs::linkat(
            &target_dir,
            target_name.as_slice(),
            &dir,
            name.as_slice(),
            AtFlags::empty(),
        )
        .map_err(|e| self.fs_err("create hardlink", path, errno_io(e)))?;
        self.mark_created(path);
        self.stats.hardlinks += 1;
        Ok(())
    }

    fn special<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &EntryPath,
        raw: &[u8],
    ) -> Result<(), UnpackError> {
        refuse_root(path, raw, "a device node or fifo")?;
        let entry_type = entry.header().entry_type();
        let (file_type, what) = match entry_type {
            EntryType::Char => (FileType::CharacterDevice, "character device"),
            EntryType::Block => (FileType::BlockDevice, "block device"),
            _ => (FileType::Fifo, "fifo"),
        };
        if self.opts.rootless {
            // The layer replaced whatever was there; drop the old entry, create nothing.
            let (dir, name) = self.prepare_parent(path)?;
            self.remove_existing(dir.as_fd(), &name, path, false)?;
            if file_type == FileType::Fifo {
                self.stats.skipped_fifos += 1;
            } else {
                self.stats.skipped_devices += 1;
            }
            self.note(format!("skipped {what} {path} (rootless)"));
            return Ok(());
        }
        let meta = self.meta(entry, raw)?;
        let header = entry.header();
        let major = header.device_major().ok().flatten().unwrap_or(0);
        let minor = header.device_minor().ok().flatten().unwrap_or(0);
        let (dir, name) = self.prepare_parent(path)?;
        self.remove_existing(dir.as_fd(), &name, path, false)?;
        rfs::mknodat(
            &dir,
            name.as_slice(),
            file_type,
            Mode::from_raw_mode(meta.mode & 0o777),
            rfs::makedev(major, minor),
        )
        .map_err(|e| self.fs_err("create device node", path, errno_io(e)))?;
        self.mark_created(path);
        if let Some((uid, gid)) = meta.owner {
            let res = rfs::chownat(
                &dir,
                name.as_slice(),
                Some(uid),
                Some(gid),
                AtFlags::SYMLINK_NOFOLLOW,
            );
            self.owner_result(res, path)?;
        }
        // mknodat applied the umask. The node is pinned with an O_PATH|O_NOFOLLOW fd and
        // chmod'ed through that fd, so a name swapped for a symlink is never followed.
        fsops::chmod_node_nofollow(dir.as_fd(), &name, meta.mode)
            .map_err(|e| self.fs_err("set mode of", path, e))?;
        let times = Timestamps {
            last_access: meta.mtime,
            last_modification: meta.mtime,
        };
        rfs::utimensat(&dir, name.as_slice(), &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.fs_err("set mtime of", path, errno_io(e)))?;
        self.stats.files += 1;
        Ok(())
    }

    /// Resolves `dir` inside the rootfs (following symlinks in-root) to an `O_PATH` fd.
    /// With `create`, missing components are created (mode 0755); without, a missing
    /// directory is `Ok(None)`.
    fn open_dir(&mut self, dir: &EntryPath, create: bool) -> Result<Option<OwnedFd>, UnpackError> {
        if dir.is_root() {
            return self
                .dup_root()
                .map(Some)
                .map_err(|e| self.fs_err("open", dir, e));
        }
        let rel = bytes_path(&dir.to_relative_bytes());
        match self.root.resolve(&rel) {
            Ok(handle) => {
                let fd = OwnedFd::from(handle);
                let st = rfs::fstat(&fd).map_err(|e| self.fs_err("inspect", dir, errno_io(e)))?;
                if is_dir(&st) {
                    Ok(Some(fd))
                } else if create {
                    Err(self.fs_err("use as directory", dir, errno_io(Errno::NOTDIR)))
                } else {
                    Ok(None)
                }
            }
            Err(e) if is_gone(&e) && !create => Ok(None),
            // EACCES: an unprivileged caller met a directory without search permission
            // (mode 0 in a lower layer); the walk makes such directories accessible.
            Err(e) if matches!(errno_of(&e), Some(libc::ENOENT | libc::EACCES)) => {
                self.walk_dirs(dir, create)
            }
            Err(e) => Err(self.fs_err("resolve", dir, pathrs_io(e))),
        }
    }

    /// Walks `dir` one component at a time from the root: real directories are opened with
    /// `O_NOFOLLOW`, symlinks are resolved in-root, missing components are created when
    /// `create` (otherwise the result is `None`).
    fn walk_dirs(&mut self, dir: &EntryPath, create: bool) -> Result<Option<OwnedFd>, UnpackError> {
        let not_dir = |this: &Self, path: &EntryPath| {
            if create {
                Err(this.fs_err("use as directory", path, errno_io(Errno::NOTDIR)))
            } else {
                Ok(None)
            }
        };
        let mut cur = self.dup_root().map_err(|e| self.fs_err("open", dir, e))?;
        let mut cur_path = EntryPath::root();
        for comp in dir.components() {
            let next_path = cur_path.join(comp);
            let st = match stat_nofollow(cur.as_fd(), comp) {
                Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                    self.make_writable(cur.as_fd(), &cur_path);
                    stat_nofollow(cur.as_fd(), comp)
                }
                other => other,
            }
            .map_err(|e| self.fs_err("inspect", &next_path, e))?;
            cur = match st {
                Some(st) if is_dir(&st) => open_dir_nofollow(cur.as_fd(), comp)
                    .map_err(|e| self.fs_err("open", &next_path, e))?,
                Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                    // Follow it, in-root. A dangling or non-directory target is an error
                    // when creating, and "nothing there" otherwise.
                    let rel = bytes_path(&next_path.to_relative_bytes());
                    let fd = match self.root.resolve(&rel) {
                        Ok(handle) => OwnedFd::from(handle),
                        Err(e) if is_gone(&e) && !create => return Ok(None),
                        Err(e) => {
                            return Err(self.fs_err(
                                "resolve symlinked directory",
                                &next_path,
                                pathrs_io(e),
                            ));
                        }
                    };
                    let st = rfs::fstat(&fd)
                        .map_err(|e| self.fs_err("inspect", &next_path, errno_io(e)))?;
                    if !is_dir(&st) {
                        return not_dir(self, &next_path);
                    }
                    fd
                }
                Some(_) => return not_dir(self, &next_path),
                None if !create => return Ok(None),
                None => {
                    self.make_writable(cur.as_fd(), &cur_path);
                    rfs::mkdirat(&cur, comp.as_slice(), Mode::from_raw_mode(0o755))
                        .map_err(|e| self.fs_err("create directory", &next_path, errno_io(e)))?;
                    open_dir_nofollow(cur.as_fd(), comp)
                        .map_err(|e| self.fs_err("open", &next_path, e))?
                }
            };
            cur_path = next_path;
        }
        Ok(Some(cur))
    }

    /// The parent directory of `path` (created if missing, made writable) and the final name.
    fn prepare_parent(&mut self, path: &EntryPath) -> Result<(OwnedFd, Vec<u8>), UnpackError> {
        let name = path
            .file_name()
            .expect("callers refuse the root before preparing its parent")
            .to_vec();
        let parent = path.parent();
        let dir = self
            .open_dir(&parent, true)?
            .expect("open_dir with create returns a directory or an error");
        self.make_writable(dir.as_fd(), &parent);
        Ok((dir, name))
    }

    /// Gives the owner rwx on a directory we must write into and remembers its mode so
    /// finish() restores it (unless the layer sets the directory's mode itself).
    fn make_writable(&mut self, dir: BorrowedFd<'_>, path: &EntryPath) {
        if let Some(old) = make_dir_accessible(dir) {
            self.deferred.entry(path.clone()).or_insert(DeferredDir {
                mode: old,
                mtime: None,
                follow: true,
            });
        }
    }

    /// Removes what is at `name` in `dir` unless `keep_dir` and it is a directory (then
    /// returns `true`). Never follows a symlink.
    fn remove_existing(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        path: &EntryPath,
        keep_dir: bool,
    ) -> Result<bool, UnpackError> {
        let Some(st) = stat_nofollow(dir, name).map_err(|e| self.fs_err("inspect", path, e))?
        else {
            return Ok(false);
        };
        if keep_dir && is_dir(&st) {
            return Ok(true);
        }
        fsops::remove_all_at(dir, name).map_err(|e| self.fs_err("replace", path, e))?;
        self.forget_deferred(path);
        Ok(false)
    }

    /// Drops pending directory metadata for a removed subtree, so a directory created later
    /// at the same path does not inherit the removed one's mode.
    fn forget_deferred(&mut self, removed: &EntryPath) {
        if !self.deferred.is_empty() {
            self.deferred.retain(|path, _| !path.starts_with(removed));
        }
    }

    fn mark_created(&mut self, path: &EntryPath) {
        for prefix in path.prefixes() {
            self.created.insert(prefix);
        }
    }

    fn dup_root(&self) -> io::Result<OwnedFd> {
        rfs::openat(
            &self.root,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_io)
    }

    fn note(&mut self, note: String) {
        if self.stats.notes.len() < MAX_NOTES {
            self.stats.notes.push(note);
        }
    }

    fn fs_err(&self, op: &'static str, path: &EntryPath, source: io::Error) -> UnpackError {
        UnpackError::Fs {
            op,
            path: path.to_string(),
            root: self.root_path.clone(),
            source,
        }
    }
}

fn refuse_root(path: &EntryPath, raw: &[u8], what: &str) -> Result<(), UnpackError> {
    if path.is_root() {
        // umoci CVE-2021-29136: replacing the root with a symlink redirected every later
        // write outside the rootfs.
        return Err(invalid(
            raw,
            format!("would replace the rootfs root with {what}"),
        ));
    }
    Ok(())
}

fn invalid(raw: &[u8], reason: impl Into<String>) -> UnpackError {
    UnpackError::InvalidEntry {
        entry: escape(raw),
        reason: reason.into(),
    }
}

fn bytes_path(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

fn errno_of(e: &pathrs::error::Error) -> Option<i32> {
    match e.kind() {
        PathrsErrorKind::OsError(errno) => errno,
        _ => None,
    }
}

/// The path is not there (any more), or something that is not a directory is in the way.
fn is_gone(e: &pathrs::error::Error) -> bool {
    matches!(errno_of(e), Some(libc::ENOENT | libc::ENOTDIR))
}

fn pathrs_io(e: pathrs::error::Error) -> io::Error {
    match errno_of(&e) {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::other(e.to_string()),
    }
}
