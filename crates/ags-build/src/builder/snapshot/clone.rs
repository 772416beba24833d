//! Copying a snapshot tree: the parent step's full tree becomes the starting point of the
//! next step, with the same owners (inside the build's user namespace), modes (setuid
//! and setgid included), symlinks, hardlinks, `user.*` xattrs (the only ones the
//! unpacker keeps) and timestamps. File data is shared with `FICLONE` (ioctl_ficlone(2))
//! where the filesystem can (btrfs, XFS, bcachefs, ...) and copied otherwise, holes kept.
//!
//! The source was written by untrusted build commands, so it is walked with file
//! descriptors only: every entry is looked up relative to its directory's descriptor
//! with `AT_SYMLINK_NOFOLLOW`/`O_NOFOLLOW` and never through a path that could contain a
//! symlink. Destination entries are created with `O_EXCL`/`mkdirat`/`symlinkat` in
//! directories this copy created, and their metadata is applied through descriptors
//! (`fchown`, `fchmod`, `futimens`) or `AT_SYMLINK_NOFOLLOW` calls, so nothing the source
//! contains can redirect a write or a chmod outside the new tree. Sockets and device
//! nodes are not copied (a rootless build can create neither).
//!
//! Runs as root of the build's user namespace: the files belong to subordinate ids.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, SeekFrom, Stat, Timespec, Timestamps, Uid,
    XattrFlags,
};
use rustix::io::Errno;

use super::SnapshotError;

/// The directories a copy created: inode number to path inside the tree. A directory
/// found at the same path with the same inode after a step is the one the copy made
/// (renaming a directory changes its inode's ctime, but only this tells *where* it was).
pub(crate) type DirIndex = HashMap<u64, PathBuf>;

/// What a copy did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CopyStats {
    /// Files whose data is shared with the source (`FICLONE`).
    pub(crate) reflinked: u64,
    /// Files whose data was copied.
    pub(crate) copied: u64,
}

/// Copies the tree `src` to `dst`, which must not exist yet; returns the directories it
/// created and what it did.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<(DirIndex, CopyStats), SnapshotError> {
    raise_nofile_limit();
    let (Some(dst_parent), Some(dst_name)) = (dst.parent(), dst.file_name()) else {
        return Err(SnapshotError::fs(
            "create",
            dst,
            io::Error::from(io::ErrorKind::InvalidInput),
        ));
    };
    let open_dir = |p: &Path| {
        rfs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| SnapshotError::fs("open", p, e.into()))
    };
    let src_fd = open_dir(src)?;
    let parent_fd = open_dir(dst_parent)?;
    rfs::mkdirat(&parent_fd, dst_name, Mode::from_raw_mode(0o700))
        .map_err(|e| SnapshotError::fs("create", dst, e.into()))?;
    let dst_fd = rfs::openat(
        &parent_fd,
        dst_name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SnapshotError::fs("open", dst, e.into()))?;
    let root_stat = rfs::fstat(&src_fd).map_err(|e| SnapshotError::fs("read", src, e.into()))?;
    let mut c = Copier {
        src,
        dst,
        dst_root: dst_fd
            .try_clone()
            .map_err(|e| SnapshotError::fs("open", dst, e))?,
        reflink: true,
        links: HashMap::new(),
        dirs: HashMap::new(),
        stats: CopyStats::default(),
    };
    let ino = rfs::fstat(&dst_fd)
        .map_err(|e| SnapshotError::fs("read", dst, e.into()))?
        .st_ino;
    c.dirs.insert(ino, PathBuf::new());
    c.dir(src_fd.as_fd(), dst_fd.as_fd(), Path::new(""))?;
    c.finish_dir(src_fd.as_fd(), dst_fd.as_fd(), &root_stat, Path::new(""))?;
    Ok((c.dirs, c.stats))
}

/// Deep trees hold two descriptors per level while they are copied: allow as many open
/// files as the hard limit does (this runs in a short-lived worker process).
fn raise_nofile_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

struct Copier<'a> {
    src: &'a Path,
    dst: &'a Path,
    dst_root: OwnedFd,
    /// Still trying `FICLONE`: the first refusal means the filesystem cannot share data.
    reflink: bool,
    /// The first copy of each multiply-linked source inode, by (device, inode).
    links: HashMap<(u64, u64), PathBuf>,
    dirs: DirIndex,
    stats: CopyStats,
}

/// A timestamp from `stat` fields (their integer types differ between architectures).
fn ts(sec: impl TryInto<i64>, nsec: impl TryInto<i64>) -> Timespec {
    Timespec {
        tv_sec: sec.try_into().unwrap_or(0),
        tv_nsec: nsec.try_into().unwrap_or(0),
    }
}

fn times(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: ts(st.st_atime, st.st_atime_nsec),
        last_modification: ts(st.st_mtime, st.st_mtime_nsec),
    }
}

fn owner(st: &Stat) -> (Option<Uid>, Option<Gid>) {
    (
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    )
}

impl Copier<'_> {
    fn src_err(&self, op: &'static str, rel: &Path, e: impl Into<io::Error>) -> SnapshotError {
        SnapshotError::fs(op, &self.src.join(rel), e.into())
    }

    fn dst_err(&self, op: &'static str, rel: &Path, e: impl Into<io::Error>) -> SnapshotError {
        SnapshotError::fs(op, &self.dst.join(rel), e.into())
    }

    /// Copies the entries of the directory `src` (at `rel`) into `dst`.
    fn dir(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        rel: &Path,
    ) -> Result<(), SnapshotError> {
        let mut names: Vec<CString> = Vec::new();
        {
            let mut entries = rfs::Dir::read_from(src).map_err(|e| self.src_err("read", rel, e))?;
            while let Some(entry) = entries.read() {
                let entry = entry.map_err(|e| self.src_err("read", rel, e))?;
                let name = entry.file_name();
                if name != c"." && name != c".." {
                    names.push(name.to_owned());
                }
            }
        }
        for name in names {
            let child = rel.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
            let st = rfs::statat(src, &name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.src_err("read", &child, e))?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => self.subdir(src, dst, &name, &st, &child)?,
                FileType::RegularFile => self.file(src, dst, &name, &st, &child)?,
                FileType::Symlink => {
                    let target = rfs::readlinkat(src, &name, Vec::new())
                        .map_err(|e| self.src_err("read", &child, e))?;
                    rfs::symlinkat(&target, dst, &name)
                        .map_err(|e| self.dst_err("create", &child, e))?;
                    self.link_meta(dst, &name, &st, &child)?;
                }
                FileType::Fifo => {
                    rfs::mknodat(dst, &name, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
                        .map_err(|e| self.dst_err("create", &child, e))?;
                    self.link_meta(dst, &name, &st, &child)?;
                    // A fifo this copy just created, in a directory it created: no
                    // symlink can be there for fchmodat(2) to follow.
                    rfs::chmodat(
                        dst,
                        &name,
                        Mode::from_raw_mode(st.st_mode & 0o7777),
                        AtFlags::empty(),
                    )
                    .map_err(|e| self.dst_err("set the mode of", &child, e))?;
                    rfs::utimensat(dst, &name, &times(&st), AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| self.dst_err("set the times of", &child, e))?;
                }
                // Sockets and device nodes cannot be created in a user namespace.
                _ => {}
            }
        }
        Ok(())
    }

    fn subdir(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        name: &CStr,
        st: &Stat,
        rel: &Path,
    ) -> Result<(), SnapshotError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let s = rfs::openat(src, name, flags, Mode::empty())
            .map_err(|e| self.src_err("open", rel, e))?;
        // Owner-only while it is filled; the real mode comes last.
        rfs::mkdirat(dst, name, Mode::from_raw_mode(0o700))
            .map_err(|e| self.dst_err("create", rel, e))?;
        let d = rfs::openat(dst, name, flags, Mode::empty())
            .map_err(|e| self.dst_err("open", rel, e))?;
        let ino = rfs::fstat(&d)
            .map_err(|e| self.dst_err("read", rel, e))?
            .st_ino;
        self.dirs.insert(ino, rel.to_path_buf());
        self.dir(s.as_fd(), d.as_fd(), rel)?;
        self.finish_dir(s.as_fd(), d.as_fd(), st, rel)
    }

    /// A directory's metadata, once its entries are in (they change its mtime).
    fn finish_dir(
        &self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        st: &Stat,
        rel: &Path,
    ) -> Result<(), SnapshotError> {
        let (uid, gid) = owner(st);
        rfs::fchown(dst, uid, gid).map_err(|e| self.dst_err("change the owner of", rel, e))?;
        self.copy_xattrs(src, dst, rel)?;
        rfs::fchmod(dst, Mode::from_raw_mode(st.st_mode & 0o7777))
            .map_err(|e| self.dst_err("set the mode of", rel, e))?;
        rfs::futimens(dst, &times(st)).map_err(|e| self.dst_err("set the times of", rel, e))
    }

    fn file(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        name: &CStr,
        st: &Stat,
        rel: &Path,
    ) -> Result<(), SnapshotError> {
        let key = (st.st_dev, st.st_ino);
        if st.st_nlink > 1
            && let Some(first) = self.links.get(&key)
        {
            // The first name is a regular file this copy created below the new root,
            // reached through directories it created: nothing to follow on the way.
            return rfs::linkat(&self.dst_root, first, dst, name, AtFlags::empty())
                .map_err(|e| self.dst_err("link", rel, e));
        }
        let s = rfs::openat(
            src,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.src_err("open", rel, e))?;
        let d = rfs::openat(
            dst,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.dst_err("create", rel, e))?;
        if !self.try_reflink(&s, &d, rel)? {
            copy_data(&s, &d, st.st_size as u64).map_err(|e| self.dst_err("write", rel, e))?;
            self.stats.copied += 1;
        }
        // Owner before mode: chown(2) clears the setuid and setgid bits.
        let (uid, gid) = owner(st);
        rfs::fchown(&d, uid, gid).map_err(|e| self.dst_err("change the owner of", rel, e))?;
        self.copy_xattrs(s.as_fd(), d.as_fd(), rel)?;
        rfs::fchmod(&d, Mode::from_raw_mode(st.st_mode & 0o7777))
            .map_err(|e| self.dst_err("set the mode of", rel, e))?;
        rfs::futimens(&d, &times(st)).map_err(|e| self.dst_err("set the times of", rel, e))?;
        if st.st_nlink > 1 {
            self.links.insert(key, rel.to_path_buf());
        }
        Ok(())
    }

    /// Shares the data of `s` with `d`; `false` when the filesystem cannot.
    fn try_reflink(&mut self, s: &OwnedFd, d: &OwnedFd, rel: &Path) -> Result<bool, SnapshotError> {
        if !self.reflink {
            return Ok(false);
        }
        match rfs::ioctl_ficlone(d, s) {
            Ok(()) => {
                self.stats.reflinked += 1;
                Ok(true)
            }
            // ioctl_ficlone(2): the filesystem does not support it, the files are on
            // different filesystems, or this kind of file cannot be cloned.
            Err(Errno::OPNOTSUPP | Errno::XDEV | Errno::INVAL | Errno::NOTTY | Errno::PERM) => {
                self.reflink = false;
                Ok(false)
            }
            Err(e) => Err(self.dst_err("clone the data of", rel, e)),
        }
    }

    /// Owner and times of a symlink or fifo, without following it.
    fn link_meta(
        &self,
        dst: BorrowedFd<'_>,
        name: &CStr,
        st: &Stat,
        rel: &Path,
    ) -> Result<(), SnapshotError> {
        let (uid, gid) = owner(st);
        rfs::chownat(dst, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.dst_err("change the owner of", rel, e))?;
        rfs::utimensat(dst, name, &times(st), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.dst_err("set the times of", rel, e))
    }

    /// The `user.*` xattrs (the unpacker keeps no others), where the filesystem has them.
    fn copy_xattrs(
        &self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        rel: &Path,
    ) -> Result<(), SnapshotError> {
        for (name, value) in read_xattrs(src).map_err(|e| self.src_err("read xattrs of", rel, e))? {
            match rfs::fsetxattr(dst, name.as_c_str(), &value, XattrFlags::empty()) {
                Ok(()) | Err(Errno::OPNOTSUPP) => {}
                Err(e) => return Err(self.dst_err("set an xattr on", rel, e)),
            }
        }
        Ok(())
    }
}

/// The `user.*` xattrs of an open file or directory, sorted by name.
pub(crate) fn read_xattrs(fd: BorrowedFd<'_>) -> io::Result<Vec<(CString, Vec<u8>)>> {
    let list = match sized(|| rfs::flistxattr_query(fd), |b| rfs::flistxattr(fd, b)) {
        Ok(l) => l,
        Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for name in list.split(|b| *b == 0).filter(|n| n.starts_with(b"user.")) {
        let Ok(name) = CString::new(name) else {
            continue;
        };
        let n = name.as_c_str();
        match sized(|| rfs::fgetxattr_query(fd, n), |b| rfs::fgetxattr(fd, n, b)) {
            Ok(value) => out.push((name, value)),
            // Removed in between (nothing runs, but a filesystem may hide some).
            Err(Errno::NODATA) => {}
            Err(e) => return Err(e.into()),
        }
    }
    out.sort();
    Ok(out)
}

/// Reads a value of the size `query` says (again when it grew in between: ERANGE).
pub(crate) fn sized(
    query: impl Fn() -> rustix::io::Result<usize>,
    read: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
) -> rustix::io::Result<Vec<u8>> {
    loop {
        let mut buf = vec![0u8; query()?];
        match read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Copies `size` bytes of data from `s` to `d`, leaving holes as holes (`SEEK_DATA` /
/// `SEEK_HOLE`, lseek(2)), in the kernel where it can (copy_file_range(2)).
fn copy_data(s: &OwnedFd, d: &OwnedFd, size: u64) -> io::Result<()> {
    rfs::ftruncate(d, size)?;
    let mut off = 0;
    while off < size {
        let data = match rfs::seek(s, SeekFrom::Data(off)) {
            Ok(p) => p,
            // Only holes after `off`.
            Err(Errno::NXIO) => break,
            // No SEEK_DATA on this filesystem: everything is data.
            Err(Errno::INVAL | Errno::OPNOTSUPP) => off,
            Err(e) => return Err(e.into()),
        };
        if data >= size {
            break;
        }
        let hole = match rfs::seek(s, SeekFrom::Hole(data)) {
            Ok(p) => p.min(size),
            Err(_) => size,
        };
        copy_range(s, d, data, hole - data)?;
        off = hole;
    }
    Ok(())
}

fn copy_range(s: &OwnedFd, d: &OwnedFd, mut off: u64, mut len: u64) -> io::Result<()> {
    while len > 0 {
        let (mut o_in, mut o_out) = (off, off);
        let chunk = len.min(1 << 30) as usize;
        match rfs::copy_file_range(s, Some(&mut o_in), d, Some(&mut o_out), chunk) {
            // The source ended early: nothing is writing it, so it was shorter than its
            // size said; the rest stays a hole.
            Ok(0) => return Ok(()),
            Ok(n) => {
                off += n as u64;
                len -= n as u64;
            }
            Err(Errno::XDEV | Errno::INVAL | Errno::OPNOTSUPP | Errno::NOSYS) => {
                return copy_range_rw(s, d, off, len);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn copy_range_rw(s: &OwnedFd, d: &OwnedFd, mut off: u64, mut len: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    while len > 0 {
        let want = len.min(buf.len() as u64) as usize;
        let n = rustix::io::pread(s, &mut buf[..want], off)?;
        if n == 0 {
            return Ok(());
        }
        let mut done = 0;
        while done < n {
            done += rustix::io::pwrite(d, &buf[done..n], off + done as u64)?;
        }
        off += n as u64;
        len -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    #[test]
    fn copies_a_tree_with_its_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("d/e")).unwrap();
        std::fs::write(src.join("d/f"), b"data").unwrap();
        std::fs::hard_link(src.join("d/f"), src.join("hl")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("d/link")).unwrap();
        nix::unistd::mkfifo(
            &src.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o640),
        )
        .unwrap();
        let sparse = std::fs::File::create(src.join("sparse")).unwrap();
        sparse.set_len(64 << 20).unwrap();
        std::fs::write(src.join("suid"), b"#!").unwrap();
        std::fs::set_permissions(src.join("suid"), std::fs::Permissions::from_mode(0o4755))
            .unwrap();
        std::fs::set_permissions(src.join("d/e"), std::fs::Permissions::from_mode(0o555)).unwrap();
        // user.* xattrs, where the filesystem under the temporary directory has them.
        let xattrs = rfs::setxattr(src.join("d/f"), "user.ags", b"v", XattrFlags::empty())
            .and_then(|()| rfs::setxattr(src.join("d"), "user.ags", b"dir", XattrFlags::empty()))
            .is_ok();
        let dst = tmp.path().join("dst");
        let (dirs, stats) = copy_tree(&src, &dst).unwrap();
        if xattrs {
            let get = |p: &str| {
                let mut buf = [0u8; 8];
                let n = rfs::getxattr(dst.join(p), "user.ags", &mut buf).unwrap();
                buf[..n].to_vec()
            };
            assert_eq!(get("d/f"), b"v");
            assert_eq!(get("d"), b"dir");
        }
        assert_eq!(stats.reflinked + stats.copied, 3, "{stats:?}");
        assert_eq!(std::fs::read(dst.join("d/f")).unwrap(), b"data");
        let m = |p: &str| std::fs::symlink_metadata(dst.join(p)).unwrap();
        let s = |p: &str| std::fs::symlink_metadata(src.join(p)).unwrap();
        assert_eq!(m("d/f").ino(), m("hl").ino(), "hardlinks stay hardlinks");
        assert_ne!(
            m("d/f").ino(),
            s("d/f").ino(),
            "a copy, not a link to the parent"
        );
        assert_eq!(
            std::fs::read_link(dst.join("d/link")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert!(m("fifo").file_type().is_fifo());
        assert_eq!(m("fifo").mode() & 0o7777, 0o640);
        assert_eq!(m("suid").mode() & 0o7777, 0o4755);
        assert_eq!(m("d/e").mode() & 0o7777, 0o555);
        assert_eq!(m("sparse").len(), 64 << 20);
        assert!(m("sparse").blocks() < 1024, "holes stay holes");
        for p in ["d", "d/f", "d/e", "suid", "fifo"] {
            assert_eq!(m(p).mtime(), s(p).mtime(), "{p}");
            assert_eq!(m(p).mtime_nsec(), s(p).mtime_nsec(), "{p}");
            assert_eq!((m(p).uid(), m(p).gid()), (s(p).uid(), s(p).gid()), "{p}");
        }
        assert_eq!(dirs.get(&m("d/e").ino()), Some(&PathBuf::from("d/e")));
        assert_eq!(dirs.get(&m("").ino()), Some(&PathBuf::new()));
        // The destination must be new.
        assert!(copy_tree(&src, &dst).is_err());
    }
}
