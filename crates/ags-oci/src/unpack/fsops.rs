//! fd-relative filesystem primitives that never follow a final symlink.
//!
//! Everything here takes a directory fd and a single name component (never a path with
//! slashes), so the kernel cannot be tricked into resolving an attacker-controlled path:
//! `*at(2)` calls with `AT_SYMLINK_NOFOLLOW` / `O_NOFOLLOW`, `unlinkat(2)` (which never follows),
//! and modes changed through `fchmodat(dirfd, ".")` on an `O_PATH` directory fd, where `.` is
//! the directory itself and cannot be a symlink (plain `chmod` would follow one: the tar crate's
//! CVE-2026-33056 and containerd's CVE-2021-32760 are both chmod-through-symlink bugs).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RenameFlags, Stat};
use rustix::io::Errno;

/// How deep [`remove_all_at`] recurses (one open fd per level) before it moves a subtree up
/// to the top directory and continues from there, so arbitrarily deep trees are removed with
/// a bounded number of open file descriptors.
const REMOVE_MAX_DEPTH: usize = 48;

pub(crate) fn errno_io(e: Errno) -> io::Error {
    io::Error::from(e)
}

pub(crate) fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`; `None` when nothing is there.
pub(crate) fn stat_nofollow(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<Stat>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(errno_io(e)),
    }
}

/// Opens the directory `name` in `dir` as an `O_PATH` fd, refusing symlinks and non-dirs.
pub(crate) fn open_dir_nofollow(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    rfs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno_io)
}

/// Opens a directory fd (possibly `O_PATH`) for reading, e.g. for `fsetxattr` or `getdents`.
pub(crate) fn reopen_dir_readable(dir: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    rfs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno_io)
}

/// Sets the full mode (including setuid/setgid/sticky) of the directory `dir` refers to.
///
/// `fchmod` does not work on `O_PATH` fds and `fchmodat` cannot be told not to follow a
/// final symlink, so this uses `fchmodat(dir, ".")`: `.` is the directory itself. Looking up
/// `.` needs search permission; when the directory has none (mode 0 and an unprivileged
/// caller) it falls back to the `/proc/self/fd/N` magic link, which also names exactly the
/// inode of the fd and nothing else.
pub(crate) fn chmod_dir(dir: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    let mode = Mode::from_raw_mode(mode & 0o7777);
    match rfs::chmodat(dir, ".", mode, AtFlags::empty()) {
        Err(Errno::ACCESS) => {
            let magic = format!("/proc/self/fd/{}", dir.as_raw_fd());
            rfs::chmod(magic.as_str(), mode).map_err(errno_io)
        }
        other => other.map_err(errno_io),
    }
}

/// Sets the mode of the non-directory, non-symlink inode `name` in `dir` without following
/// a symlink: the inode is opened `O_PATH | O_NOFOLLOW`, checked, and chmod'ed through the
/// `/proc/self/fd/N` magic link of that fd (`fchmod` refuses `O_PATH` fds and opening a
/// device node for real could have side effects).
pub(crate) fn chmod_node_nofollow(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<()> {
    let fd = rfs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno_io)?;
    let st = rfs::fstat(&fd).map_err(errno_io)?;
    if matches!(
        FileType::from_raw_mode(st.st_mode),
        FileType::Symlink | FileType::Directory
    ) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a device node or fifo",
        ));
    }
    let magic = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rfs::chmod(magic.as_str(), Mode::from_raw_mode(mode & 0o7777)).map_err(errno_io)
}

/// Gives the owner rwx on the directory `dir` when it lacks them, so an unprivileged caller
/// can create and remove entries in read-only directories of its own tree. Returns the old
/// mode when it changed it. Failures are ignored: the operation that needed the permission
/// fails with a precise error instead.
pub(crate) fn make_dir_accessible(dir: BorrowedFd<'_>) -> Option<u32> {
    let st = rfs::fstat(dir).ok()?;
    let mode = st.st_mode & 0o7777;
    if mode & 0o700 == 0o700 {
        return None;
    }
    chmod_dir(dir, mode | 0o700).ok()?;
    Some(mode)
}

/// Removes whatever `name` in `parent` is — file, symlink, device or whole directory tree —
/// without following symlinks and without leaving `parent`. A missing entry is not an error.
/// `parent` must be writable by the caller (see [`make_dir_accessible`]).
pub(crate) fn remove_all_at(parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let Some(st) = stat_nofollow(parent, name)? else {
        return Ok(());
    };
    if !is_dir(&st) {
        return match rfs::unlinkat(parent, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(errno_io(e)),
        };
    }
    let top = open_dir_nofollow(parent, name)?;
    // Each pass removes everything up to REMOVE_MAX_DEPTH levels down and moves deeper
    // subtrees up into `top`; the next pass continues with them. Every pass removes at least
    // one directory per moved subtree, so this terminates.
    let mut counter = 0u64;
    while clear_dir(top.as_fd(), top.as_fd(), 0, &mut counter)? {}
    match rfs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(errno_io(e)),
    }
}

/// Removes the contents of `dir`; returns whether it moved deep subtrees into `top`.
fn clear_dir(
    top: BorrowedFd<'_>,
    dir: BorrowedFd<'_>,
    depth: usize,
    counter: &mut u64,
) -> io::Result<bool> {
    make_dir_accessible(dir);
    let mut names = Vec::new();
    {
        let readable = reopen_dir_readable(dir)?;
        let mut entries = rfs::Dir::read_from(&readable).map_err(errno_io)?;
        while let Some(entry) = entries.read() {
            let entry = entry.map_err(errno_io)?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            names.push((entry.file_name().to_owned(), entry.file_type()));
        }
    }
    let mut moved = false;
    for (name, file_type) in names {
        let is_directory = match file_type {
            FileType::Directory => true,
            FileType::Unknown => match stat_nofollow(dir, name.to_bytes())? {
                Some(st) => is_dir(&st),
                None => continue,
            },
            _ => false,
        };
        if !is_directory {
            match rfs::unlinkat(dir, &name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(errno_io(e)),
            }
            continue;
        }
        if depth >= REMOVE_MAX_DEPTH {
            move_to_top(top, dir, &name, counter)?;
            moved = true;
            continue;
        }
        let child = match open_dir_nofollow(dir, name.to_bytes()) {
            Ok(child) => child,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        moved |= clear_dir(top, child.as_fd(), depth + 1, counter)?;
        drop(child);
        match rfs::unlinkat(dir, &name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(errno_io(e)),
        }
    }
    Ok(moved)
}

fn move_to_top(
    top: BorrowedFd<'_>,
    dir: BorrowedFd<'_>,
    name: &CString,
    counter: &mut u64,
) -> io::Result<()> {
    loop {
        *counter += 1;
        let fresh = format!(".ags-remove-{}-{}", std::process::id(), *counter);
        match rfs::renameat_with(dir, name, top, fresh.as_str(), RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(errno_io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn removes_deep_read_only_trees_without_following_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"keep").unwrap();

        let victim = tmp.path().join("victim");
        let mut deep = victim.clone();
        for i in 0..(REMOVE_MAX_DEPTH * 3 + 5) {
            deep.push(format!("d{}", i % 7));
        }
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("f"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, deep.join("link")).unwrap();
        std::os::unix::fs::symlink(&outside, victim.join("link")).unwrap();
        // Read-only and unreadable directories on the way down (deepest first, so an
        // unprivileged test can still reach them).
        let mut p = victim.clone();
        let mut chain = Vec::new();
        for i in 0..10 {
            p.push(format!("d{}", i % 7));
            chain.push((p.clone(), if i % 2 == 0 { 0o555 } else { 0o000 }));
        }
        for (p, mode) in chain.into_iter().rev() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }

        let parent = rfs::open(
            tmp.path(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        remove_all_at(parent.as_fd(), b"victim").unwrap();
        assert!(!victim.exists());
        assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"keep");
        // Nothing was left behind in the parent.
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(left.len(), 1);
        // A missing name is fine.
        remove_all_at(parent.as_fd(), b"victim").unwrap();
    }
}
