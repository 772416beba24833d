//! Step snapshots, of one of two kinds chosen once per build:
//!
//! - **overlay**: the step runs on an overlay of the snapshots so far with a fresh upper
//!   directory, which is the step's snapshot (copy-on-write through overlayfs in the
//!   user namespace, Linux 5.11+). The image runs from the stack of upper directories.
//! - **copy**: where the kernel cannot mount overlayfs in a user namespace (or when asked
//!   to), the step's snapshot is a full tree, `<snap>/tree`: a copy of the parent step's
//!   tree (`clone.rs`: reflinked where the filesystem can, copied otherwise) that the step
//!   writes in place. Its layer is the difference from the parent tree (`treediff.rs`),
//!   and the image runs from the last step's tree alone.
//!
//! [`SnapshotMode::Auto`] probes overlayfs (`overlay_works`) once per boot and store
//! filesystem (the builder remembers the answer). The kind is
//! part of every cache key (copy builds chain from a `copy:` base key) and is recorded in
//! each cache entry and in a built image's layout, so a copy tree is never stacked as an
//! overlay layer and an overlay upper directory is never taken for a full tree.

pub(crate) mod clone;
pub(crate) mod treediff;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ags_runtime::idmap::IdMaps;
use ags_runtime::userns::run_as_root;
use serde::{Deserialize, Serialize};

use super::diff::{DiffError, LayerDigests, LayerWriter};
use clone::{CopyStats, DirIndex};
use treediff::{Baseline, Change};

/// Which snapshots a build uses (`[build] snapshots` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotMode {
    /// Overlay when the kernel allows it in a user namespace, copy otherwise.
    #[default]
    Auto,
    /// Always overlay (the build fails where the kernel cannot).
    Overlay,
    /// Always full copies.
    Copy,
}

impl SnapshotMode {
    /// The config spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Self::Auto),
            "overlay" => Some(Self::Overlay),
            "copy" => Some(Self::Copy),
            _ => None,
        }
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Overlay => "overlay",
            Self::Copy => "copy",
        }
    }
}

/// The kind of a snapshot, as recorded in cache entries and image layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    /// An overlay upper directory (`<snap>/upper`): a layer of a stack.
    #[default]
    Overlay,
    /// A full tree (`<snap>/tree`).
    Copy,
}

impl SnapshotKind {
    /// The directory of a snapshot that holds its files.
    pub(crate) fn dir_name(self) -> &'static str {
        match self {
            Self::Overlay => "upper",
            Self::Copy => TREE,
        }
    }
}

/// Errors preparing a copy snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A filesystem operation failed.
    #[error("cannot {op} {path}")]
    Fs {
        /// What was done.
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl SnapshotError {
    pub(crate) fn fs(op: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Fs {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The full tree of a copy snapshot.
pub(crate) const TREE: &str = "tree";
/// The inode index of the directories the copy created.
const INDEX: &str = "dirs.idx";
/// Created after the copy; its ctime separates the copy from the step.
const STAMP: &str = "stamp";

/// Whether overlayfs can be mounted (and written, deleting a lower file) in the build's
/// user namespace, tried in `scratch` (a new directory, removed again).
pub(crate) fn overlay_works(scratch: &Path, maps: &IdMaps, privileged: bool) -> bool {
    let dir = scratch.to_path_buf();
    let ok = run_as_root(maps, privileged, || {
        use nix::mount::{MntFlags, MsFlags, mount, umount2};
        use nix::sched::{CloneFlags, unshare};
        let e = |what: &str, p: &Path, err: &dyn std::fmt::Display| {
            format!("{what} {}: {err}", p.display())
        };
        let sub = |n: &str| dir.join(n);
        for d in ["lower", "upper", "work", "merged"] {
            fs::create_dir_all(sub(d)).map_err(|err| e("cannot create", &sub(d), &err))?;
        }
        fs::write(sub("lower/f"), b"x").map_err(|err| e("cannot write", &sub("lower/f"), &err))?;
        unshare(CloneFlags::CLONE_NEWNS).map_err(|err| format!("unshare: {err}"))?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|err| format!("mount --make-rprivate /: {err}"))?;
        let result = ags_runtime::overlay::mount(
            &[sub("lower")],
            Some((&sub("upper"), &sub("work"))),
            &sub("merged"),
        )
        .map_err(|err| e("cannot mount an overlay on", &sub("merged"), &err))
        .and_then(|()| {
            fs::write(sub("merged/g"), b"y")
                .and_then(|()| fs::remove_file(sub("merged/f")))
                .map_err(|err| e("cannot write in", &sub("merged"), &err))
        });
        let _ = umount2(&sub("merged"), MntFlags::MNT_DETACH);
        let _ = ags_oci::unpack::remove_tree(&dir);
        result
    })
    .is_ok();
    let _ = crate::rootfs::remove(scratch, maps, privileged);
    ok
}

/// Makes `<snap>/tree` a copy of `parent` and records the baseline the step's diff needs.
/// Runs as root of the build's user namespace.
pub(crate) fn prepare_copy(parent: &Path, snap: &Path) -> Result<CopyStats, SnapshotError> {
    let (dirs, stats) = clone::copy_tree(parent, &snap.join(TREE))?;
    write_index(&snap.join(INDEX), &dirs)?;
    write_stamp(snap)?;
    Ok(stats)
}

/// Writes the changes of `<snap>/tree` against `parent` as a layer to `out`, or returns
/// `None` when there are none. Runs as root of the build's user namespace.
pub(crate) fn copy_layer(
    parent: &Path,
    snap: &Path,
    out: &File,
    run_step: bool,
) -> Result<Option<LayerDigests>, DiffError> {
    let base = read_baseline(snap)?;
    let tree = snap.join(TREE);
    let changes = treediff::diff_trees(parent, &tree, Some(&base), run_step)?;
    if changes.is_empty() {
        return Ok(None);
    }
    let mut w = LayerWriter::new(out)?;
    for (rel, change) in &changes {
        match change {
            Change::Write => w.entry(&tree.join(rel), rel)?,
            Change::Whiteout => w.whiteout(rel)?,
        }
    }
    w.finish().map(Some)
}

/// Removes what only the diff needed.
pub(crate) fn discard_baseline(snap: &Path) {
    let _ = fs::remove_file(snap.join(INDEX));
    let _ = fs::remove_file(snap.join(STAMP));
}

fn write_index(path: &Path, dirs: &DirIndex) -> Result<(), SnapshotError> {
    let err = |e| SnapshotError::fs("write", path, e);
    let mut out = io::BufWriter::new(File::create(path).map_err(err)?);
    for (ino, rel) in dirs {
        let bytes = rel.as_os_str().as_bytes();
        out.write_all(&ino.to_le_bytes()).map_err(err)?;
        out.write_all(&(bytes.len() as u32).to_le_bytes())
            .map_err(err)?;
        out.write_all(bytes).map_err(err)?;
    }
    out.flush().map_err(err)
}

fn read_baseline(snap: &Path) -> Result<Baseline, DiffError> {
    let index = snap.join(INDEX);
    let err = |path: &Path, source| DiffError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut data = Vec::new();
    File::open(&index)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(|e| err(&index, e))?;
    let mut dirs = DirIndex::new();
    let mut rest = &data[..];
    while !rest.is_empty() {
        let bad = || err(&index, io::Error::from(io::ErrorKind::InvalidData));
        if rest.len() < 12 {
            return Err(bad());
        }
        let ino = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes")) as usize;
        let path = rest.get(12..12 + len).ok_or_else(bad)?;
        dirs.insert(ino, PathBuf::from(std::ffi::OsStr::from_bytes(path)));
        rest = &rest[12 + len..];
    }
    let stamp = snap.join(STAMP);
    let m = fs::metadata(&stamp).map_err(|e| err(&stamp, e))?;
    Ok(Baseline {
        stamp: (m.ctime(), m.ctime_nsec()),
        dirs,
    })
}

/// Creates the stamp and waits until the filesystem's clock has moved past its ctime, so
/// that everything the step changes gets a later ctime than everything the copy wrote
/// (timestamps come from a clock that may tick only every few milliseconds).
fn write_stamp(snap: &Path) -> Result<(), SnapshotError> {
    let stamp = snap.join(STAMP);
    let f = File::create(&stamp).map_err(|e| SnapshotError::fs("create", &stamp, e))?;
    let ctime = |f: &File| {
        f.metadata()
            .map(|m| (m.ctime(), m.ctime_nsec()))
            .map_err(|e| SnapshotError::fs("read", &stamp, e))
    };
    let at = ctime(&f)?;
    let probe_path = snap.join("stamp.probe");
    let probe =
        File::create(&probe_path).map_err(|e| SnapshotError::fs("create", &probe_path, e))?;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        rustix::fs::futimens(
            &probe,
            &rustix::fs::Timestamps {
                last_access: now(),
                last_modification: now(),
            },
        )
        .map_err(|e| SnapshotError::fs("touch", &probe_path, e.into()))?;
        if ctime(&probe)? > at || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(probe);
    let _ = fs::remove_file(&probe_path);
    Ok(())
}

fn now() -> rustix::fs::Timespec {
    rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_NOW,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy snapshot's layer, read back: (name, entry type, link target).
    fn layer_of(step: impl Fn(&Path)) -> Vec<(String, tar::EntryType, Option<String>)> {
        let tmp = tempfile::tempdir().unwrap();
        let parent = tmp.path().join("parent");
        fs::create_dir_all(parent.join("d")).unwrap();
        fs::write(parent.join("d/f"), b"data").unwrap();
        fs::write(parent.join("gone"), b"x").unwrap();
        let snap = tmp.path().join("snap");
        fs::create_dir(&snap).unwrap();
        prepare_copy(&parent, &snap).unwrap();
        step(&snap.join(TREE));
        let out = File::create(tmp.path().join("layer")).unwrap();
        let Some(d) = copy_layer(&parent, &snap, &out, false).unwrap() else {
            return Vec::new();
        };
        assert!(d.digest.starts_with("sha256:") && d.size > 0);
        let blob = File::open(tmp.path().join("layer")).unwrap();
        let mut tar = tar::Archive::new(zstd::Decoder::new(blob).unwrap());
        tar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let link = e
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned());
                (name, e.header().entry_type(), link)
            })
            .collect()
    }

    #[test]
    fn copy_layers_hold_changes_whiteouts_and_hardlinks() {
        use tar::EntryType;
        assert!(layer_of(|_| {}).is_empty(), "no change, no layer");
        let got = layer_of(|t| {
            fs::remove_file(t.join("gone")).unwrap();
            fs::hard_link(t.join("d/f"), t.join("d/g")).unwrap();
        });
        let names: Vec<&str> = got.iter().map(|(n, ..)| n.as_str()).collect();
        assert_eq!(names, ["d/", "d/f", "d/g", ".wh.gone"], "{got:?}");
        assert_eq!(got[1].1, EntryType::Regular);
        assert_eq!(got[2].1, EntryType::Link);
        assert_eq!(got[2].2.as_deref(), Some("d/f"), "the names stay linked");
        // The baseline's files are gone once the layer is written and committed.
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(INDEX), b"").unwrap();
        fs::write(tmp.path().join(STAMP), b"").unwrap();
        discard_baseline(tmp.path());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
