//! The changes between a step's parent tree and its new tree (copy snapshots): what the
//! step's layer must hold.
//!
//! Entries are compared by type, mode, owner, size, mtime, symlink target, `user.*`
//! xattrs and, when all of those agree, content. Reading every file of two trees for
//! every step would be slow, so a [`Baseline`] says what the step cannot have touched:
//! the new tree was copied from the parent before the step ran, and a stamp file was
//! created after the copy, once the filesystem clock had moved past it. Every change to
//! an inode (write, chmod, chown, link, rename, xattr) sets its ctime to the current time
//! and nothing can set it back (inode(7), "Last status change timestamp"), so an entry
//! whose ctime is not newer than the stamp is the copy's, unchanged. That holds for the
//! entries of a directory only when the directory is the one the copy made at that path
//! (not one renamed there), which the copy's inode index tells.
//!
//! Deleted entries become whiteouts; a directory replaced by another kind of entry (or
//! the reverse) is written in full, which replaces it when unpacked (`layer.md`,
//! "Changesets"); a directory renamed over another gets whiteouts for the names it lacks.
//! Every changed entry's parent directories are written too, as an overlay's upper
//! directory would hold them. When a file with several links changed, all its names are
//! written, so the layer keeps them linked.
//!
//! Runs as root of the build's user namespace after the step's processes are gone; the
//! trees are walked without following symlinks (`symlink_metadata`, `O_NOFOLLOW`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::clone::{DirIndex, sized};
use crate::builder::diff::{DiffError, RUN_MOUNT_POINTS, lstat};

/// What a step cannot have touched (see the module docs).
#[derive(Debug, Clone, Default)]
pub(crate) struct Baseline {
    /// The stamp's ctime (seconds, nanoseconds): later ctimes are the step's.
    pub(crate) stamp: (i64, i64),
    /// The directories the copy created.
    pub(crate) dirs: DirIndex,
}

/// One entry of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// The new tree's entry at this path (a directory's own entry only).
    Write,
    /// The path was deleted.
    Whiteout,
}

/// The changes from `old` to `new`, in layer order (parents before children). With a
/// baseline, entries it proves untouched are not compared; without one everything is.
/// `run_step` leaves out the mount points a `RUN`'s runtime created.
pub(crate) fn diff_trees(
    old: &Path,
    new: &Path,
    base: Option<&Baseline>,
    run_step: bool,
) -> Result<BTreeMap<PathBuf, Change>, DiffError> {
    let mut d = Differ {
        old,
        new,
        base,
        run_step,
        changes: BTreeMap::new(),
        groups: HashMap::new(),
    };
    let root = lstat(new)?;
    d.dir(Path::new(""), base.is_some(), d.touched(&root))?;
    let Differ {
        mut changes,
        groups,
        ..
    } = d;
    for members in groups.values() {
        if members
            .iter()
            .any(|m| changes.get(m) == Some(&Change::Write))
        {
            for m in members {
                changes.insert(m.clone(), Change::Write);
            }
        }
    }
    let paths: Vec<PathBuf> = changes.keys().cloned().collect();
    for p in paths {
        for a in p.ancestors().skip(1) {
            if a.as_os_str().is_empty() {
                break;
            }
            changes.entry(a.to_path_buf()).or_insert(Change::Write);
        }
    }
    Ok(changes)
}

struct Differ<'a> {
    old: &'a Path,
    new: &'a Path,
    base: Option<&'a Baseline>,
    run_step: bool,
    changes: BTreeMap<PathBuf, Change>,
    /// Multiply-linked files that may have changed, by (device, inode).
    groups: HashMap<(u64, u64), BTreeSet<PathBuf>>,
}

#[derive(PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

fn kind(m: &Metadata) -> Kind {
    let t = m.file_type();
    if t.is_dir() {
        Kind::Dir
    } else if t.is_file() {
        Kind::File
    } else if t.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Other
    }
}

fn names(dir: &Path) -> Result<BTreeSet<OsString>, DiffError> {
    let err = |source| DiffError::Read {
        path: dir.to_path_buf(),
        source,
    };
    fs::read_dir(dir)
        .map_err(err)?
        .map(|e| e.map(|e| e.file_name()).map_err(err))
        .collect()
}

fn same_meta(a: &Metadata, b: &Metadata) -> bool {
    a.mode() == b.mode()
        && a.uid() == b.uid()
        && a.gid() == b.gid()
        && a.mtime() == b.mtime()
        && a.mtime_nsec() == b.mtime_nsec()
}

impl Differ<'_> {
    /// Whether the entry's inode changed after the copy (always, without a baseline).
    fn touched(&self, m: &Metadata) -> bool {
        self.base
            .is_none_or(|b| (m.ctime(), m.ctime_nsec()) > b.stamp)
    }

    fn track_links(&mut self, rel: &Path, m: &Metadata) {
        if m.is_file() && m.nlink() > 1 {
            self.groups
                .entry((m.dev(), m.ino()))
                .or_default()
                .insert(rel.to_path_buf());
        }
    }

    /// Compares the directory `rel`, a directory in both trees. `same`: it is the one the
    /// copy made at this path; `touched`: its inode changed after the copy.
    fn dir(&mut self, rel: &Path, same: bool, touched: bool) -> Result<(), DiffError> {
        let new_names = names(&self.new.join(rel))?;
        // An untouched directory the copy made still has the copy's names.
        let old_names = if same && !touched {
            None
        } else {
            Some(names(&self.old.join(rel))?)
        };
        if let Some(old_names) = &old_names {
            for gone in old_names.difference(&new_names) {
                self.changes.insert(rel.join(gone), Change::Whiteout);
            }
        }
        for name in &new_names {
            let child = rel.join(name);
            let nm = lstat(&self.new.join(&child))?;
            let child_touched = self.touched(&nm);
            if child_touched {
                self.track_links(&child, &nm);
            }
            if old_names.as_ref().is_some_and(|o| !o.contains(name)) {
                if !(self.run_step && self.mount_point(&child, &nm)?) {
                    self.added(&child, &nm)?;
                }
                continue;
            }
            if same && !child_touched {
                // The copy's entry, as the parent had it; a directory's entries may
                // still have changed.
                if nm.is_dir() {
                    self.dir(&child, true, false)?;
                }
                continue;
            }
            let om = lstat(&self.old.join(&child))?;
            self.compare(&child, &nm, &om)?;
        }
        Ok(())
    }

    /// Compares an entry present in both trees.
    fn compare(&mut self, rel: &Path, nm: &Metadata, om: &Metadata) -> Result<(), DiffError> {
        let (nk, ok) = (kind(nm), kind(om));
        if nk != ok {
            // Replaced by another kind of entry: written in full, it replaces the old one.
            return self.added(rel, nm);
        }
        let npath = self.new.join(rel);
        let opath = self.old.join(rel);
        let changed = match nk {
            Kind::Dir => {
                let differs = !same_meta(nm, om) || self.xattrs_differ(&npath, &opath)?;
                if differs && !self.only_mount_points_added(rel, nm, om)? {
                    self.changes.insert(rel.to_path_buf(), Change::Write);
                }
                let same = self
                    .base
                    .is_some_and(|b| b.dirs.get(&nm.ino()).is_some_and(|p| p == rel));
                return self.dir(rel, same, self.touched(nm));
            }
            Kind::File => {
                !same_meta(nm, om)
                    || nm.size() != om.size()
                    || self.xattrs_differ(&npath, &opath)?
                    || !same_content(&npath, &opath, nm.size())?
            }
            Kind::Symlink => {
                nm.uid() != om.uid()
                    || nm.gid() != om.gid()
                    || nm.mtime() != om.mtime()
                    || nm.mtime_nsec() != om.mtime_nsec()
                    || read_link(&npath)? != read_link(&opath)?
            }
            Kind::Other => {
                !same_meta(nm, om) || (nm.mode() & libc::S_IFMT) != (om.mode() & libc::S_IFMT)
            }
        };
        if changed {
            self.changes.insert(rel.to_path_buf(), Change::Write);
        }
        Ok(())
    }

    /// `rel` is new: it and everything below it.
    fn added(&mut self, rel: &Path, m: &Metadata) -> Result<(), DiffError> {
        self.changes.insert(rel.to_path_buf(), Change::Write);
        self.track_links(rel, m);
        if m.is_dir() {
            for name in names(&self.new.join(rel))? {
                let child = rel.join(name);
                let cm = lstat(&self.new.join(&child))?;
                self.added(&child, &cm)?;
            }
        }
        Ok(())
    }

    /// A path the runtime of a `RUN` creates to mount over (absent before the step), or an
    /// `etc` that holds nothing else.
    fn mount_point(&self, rel: &Path, m: &Metadata) -> Result<bool, DiffError> {
        if RUN_MOUNT_POINTS.iter().any(|p| rel == Path::new(p)) {
            return Ok(true);
        }
        if rel == Path::new("etc") && m.is_dir() {
            let inside = names(&self.new.join(rel))?;
            return Ok(inside
                .iter()
                .all(|n| RUN_MOUNT_POINTS.iter().any(|p| rel.join(n) == Path::new(p))));
        }
        Ok(false)
    }

    /// In a `RUN`, a directory whose only change is that the runtime created mount points
    /// in it (which moved its mtime) is unchanged, as it is in overlay mode.
    fn only_mount_points_added(
        &self,
        rel: &Path,
        nm: &Metadata,
        om: &Metadata,
    ) -> Result<bool, DiffError> {
        if !self.run_step || nm.mode() != om.mode() || nm.uid() != om.uid() || nm.gid() != om.gid()
        {
            return Ok(false);
        }
        let mount_points: Vec<&Path> = RUN_MOUNT_POINTS
            .iter()
            .map(Path::new)
            .filter(|p| p.parent() == Some(rel))
            .collect();
        if mount_points.is_empty() {
            return Ok(false);
        }
        let new_names = names(&self.new.join(rel))?;
        let old_names = names(&self.old.join(rel))?;
        let added: Vec<_> = new_names.difference(&old_names).collect();
        Ok(old_names.is_subset(&new_names)
            && !added.is_empty()
            && added
                .iter()
                .all(|n| mount_points.contains(&rel.join(n).as_path())))
    }

    fn xattrs_differ(&self, a: &Path, b: &Path) -> Result<bool, DiffError> {
        Ok(user_xattrs(a)? != user_xattrs(b)?)
    }
}

fn read_link(p: &Path) -> Result<PathBuf, DiffError> {
    fs::read_link(p).map_err(|source| DiffError::Read {
        path: p.to_path_buf(),
        source,
    })
}

/// Names and values of xattrs.
type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// The `user.*` xattrs of a file or directory (not followed), sorted.
fn user_xattrs(p: &Path) -> Result<Xattrs, DiffError> {
    use rustix::io::Errno;
    let err = |e: Errno| DiffError::Read {
        path: p.to_path_buf(),
        source: e.into(),
    };
    let list = match sized(
        || rustix::fs::llistxattr_query(p),
        |b| rustix::fs::llistxattr(p, b),
    ) {
        Ok(l) => l,
        Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
        Err(e) => return Err(err(e)),
    };
    let mut out = Vec::new();
    for name in list.split(|b| *b == 0).filter(|n| n.starts_with(b"user.")) {
        match sized(
            || rustix::fs::lgetxattr_query(p, name),
            |b| rustix::fs::lgetxattr(p, name, b),
        ) {
            Ok(v) => out.push((name.to_vec(), v)),
            Err(Errno::NODATA) => {}
            Err(e) => return Err(err(e)),
        }
    }
    out.sort();
    Ok(out)
}

/// Whether two regular files of `size` bytes hold the same bytes.
fn same_content(a: &Path, b: &Path, size: u64) -> Result<bool, DiffError> {
    let open = |p: &Path| {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(p)
            .map_err(|source| DiffError::Read {
                path: p.to_path_buf(),
                source,
            })
    };
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let mut ba = vec![0u8; 1 << 16];
    let mut bb = vec![0u8; 1 << 16];
    let mut left = size;
    while left > 0 {
        let n = left.min(ba.len() as u64) as usize;
        let ra = read_full(&mut fa, &mut ba[..n]).map_err(|source| DiffError::Read {
            path: a.to_path_buf(),
            source,
        })?;
        let rb = read_full(&mut fb, &mut bb[..n]).map_err(|source| DiffError::Read {
            path: b.to_path_buf(),
            source,
        })?;
        if ra != rb || ba[..ra] != bb[..rb] {
            return Ok(false);
        }
        if ra < n {
            break;
        }
        left -= n as u64;
    }
    Ok(true)
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// The parent tree every case starts from.
    fn parent(root: &Path) {
        fs::create_dir_all(root.join("d/sub")).unwrap();
        fs::create_dir_all(root.join("e")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("f"), b"aaaa").unwrap();
        fs::write(root.join("d/x"), b"x").unwrap();
        fs::write(root.join("d/sub/y"), b"y").unwrap();
        fs::write(root.join("e/x"), b"other x").unwrap();
        fs::write(root.join("e/only-in-e"), b"e").unwrap();
        fs::write(root.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
        symlink("f", root.join("l")).unwrap();
        // Old enough that rewriting a file at once can keep its size and mtime.
        let past = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        for p in ["f", "d/x", "e/x"] {
            fs::File::options()
                .write(true)
                .open(root.join(p))
                .unwrap()
                .set_modified(past)
                .unwrap();
        }
    }

    /// Copies the parent as a step would, lets `step` change the copy, and diffs, with
    /// the baseline and without it (which must not change the answer).
    fn diff(step: &dyn Fn(&Path), run_step: bool) -> BTreeMap<PathBuf, Change> {
        let tmp = tempfile::tempdir().unwrap();
        let old = tmp.path().join("parent");
        fs::create_dir(&old).unwrap();
        parent(&old);
        let snap = tmp.path().join("snap");
        fs::create_dir(&snap).unwrap();
        super::super::prepare_copy(&old, &snap).unwrap();
        let new = snap.join(super::super::TREE);
        step(&new);
        let base = super::super::read_baseline(&snap).unwrap();
        let fast = diff_trees(&old, &new, Some(&base), run_step).unwrap();
        let full = diff_trees(&old, &new, None, run_step).unwrap();
        assert_eq!(fast, full, "the baseline only saves work");
        fast
    }

    fn rewrite_keeping_mtime(p: &Path, data: &[u8]) {
        let mtime = fs::metadata(p).unwrap().modified().unwrap();
        fs::write(p, data).unwrap();
        fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }

    type Step = Box<dyn Fn(&Path)>;
    /// A case: its name, what the step does, and paths with the change they must have
    /// (`None`: not in the layer).
    type Case = (&'static str, Step, Vec<(&'static str, Option<Change>)>);

    #[test]
    fn changes_table() {
        use Change::{Whiteout, Write};
        let root = nix::unistd::geteuid().is_root();
        let cases: Vec<Case> = vec![
            ("nothing", Box::new(|_| {}), vec![]),
            (
                "added",
                Box::new(|t| fs::write(t.join("d/sub/new"), b"n").unwrap()),
                vec![
                    ("d/sub/new", Some(Write)),
                    ("d/sub", Some(Write)),
                    ("d", Some(Write)),
                    ("d/sub/y", None),
                    ("f", None),
                ],
            ),
            (
                "modified content, same size and mtime",
                Box::new(|t| rewrite_keeping_mtime(&t.join("f"), b"bbbb")),
                vec![("f", Some(Write)), ("l", None)],
            ),
            (
                "rewritten with the same content",
                Box::new(|t| rewrite_keeping_mtime(&t.join("f"), b"aaaa")),
                vec![("f", None)],
            ),
            (
                "chmod",
                Box::new(|t| {
                    fs::set_permissions(t.join("d/x"), fs::Permissions::from_mode(0o4755)).unwrap()
                }),
                vec![("d/x", Some(Write)), ("d", Some(Write)), ("d/sub", None)],
            ),
            (
                "deleted file",
                Box::new(|t| fs::remove_file(t.join("d/x")).unwrap()),
                vec![("d/x", Some(Whiteout)), ("d", Some(Write))],
            ),
            (
                "deleted dir",
                Box::new(|t| fs::remove_dir_all(t.join("d")).unwrap()),
                vec![("d", Some(Whiteout)), ("d/x", None), ("d/sub", None)],
            ),
            (
                "dir replaced by a file",
                Box::new(|t| {
                    fs::remove_dir_all(t.join("d")).unwrap();
                    fs::write(t.join("d"), b"now a file").unwrap();
                }),
                vec![("d", Some(Write)), ("d/x", None), ("d/sub", None)],
            ),
            (
                "file replaced by a dir",
                Box::new(|t| {
                    fs::remove_file(t.join("f")).unwrap();
                    fs::create_dir(t.join("f")).unwrap();
                    fs::write(t.join("f/inside"), b"i").unwrap();
                }),
                vec![("f", Some(Write)), ("f/inside", Some(Write))],
            ),
            (
                "symlink retargeted",
                Box::new(|t| {
                    fs::remove_file(t.join("l")).unwrap();
                    symlink("d/x", t.join("l")).unwrap();
                }),
                vec![("l", Some(Write)), ("f", None)],
            ),
            (
                "hardlink added",
                Box::new(|t| fs::hard_link(t.join("f"), t.join("d/f-again")).unwrap()),
                // Both names, so that the layer links them.
                vec![("d/f-again", Some(Write)), ("f", Some(Write))],
            ),
            (
                "dir renamed over another",
                Box::new(|t| {
                    fs::remove_dir_all(t.join("e")).unwrap();
                    fs::rename(t.join("d"), t.join("e")).unwrap();
                }),
                vec![
                    ("d", Some(Whiteout)),
                    ("e/only-in-e", Some(Whiteout)),
                    ("e/x", Some(Write)),
                    ("e/sub", Some(Write)),
                    ("e/sub/y", Some(Write)),
                ],
            ),
            (
                "a RUN's mount points",
                Box::new(|t| {
                    fs::create_dir(t.join("proc")).unwrap();
                    fs::write(t.join("etc/hosts"), b"").unwrap();
                }),
                vec![("proc", None), ("etc/hosts", None), ("etc", None)],
            ),
        ];
        for (name, step, want) in cases {
            let got = diff(&*step, true);
            for (path, change) in &want {
                assert_eq!(
                    got.get(Path::new(path)),
                    change.as_ref(),
                    "{name}: {path}: {got:?}"
                );
            }
            if want.is_empty() {
                assert!(got.is_empty(), "{name}: {got:?}");
            }
        }
        // chown needs CAP_CHOWN (the builder runs this as root of its user namespace).
        if root {
            let got = diff(
                &|t| std::os::unix::fs::lchown(t.join("d/sub/y"), Some(1234), Some(1234)).unwrap(),
                false,
            );
            assert_eq!(
                got.get(Path::new("d/sub/y")),
                Some(&Change::Write),
                "{got:?}"
            );
            assert_eq!(got.get(Path::new("d/x")), None, "{got:?}");
        }
        // Outside a RUN, files the step made where mount points go are its own.
        let got = diff(&|t| fs::write(t.join("etc/hosts"), b"h").unwrap(), false);
        assert_eq!(got.get(Path::new("etc/hosts")), Some(&Change::Write));
    }
}
