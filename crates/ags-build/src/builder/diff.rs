//! A build step's changes as an OCI layer.
//!
//! In overlay mode a step runs on an overlay whose upper directory collects everything it
//! changed. That directory *is* the changeset, in overlayfs's format: a deleted path is a
//! 0/0 character device (a whiteout) and a directory whose lower contents were replaced
//! carries the `user.overlay.opaque` xattr (overlayfs docs, "whiteouts and opaque
//! directories"). [`write_layer`] writes it as a tar+zstd layer in the image-spec format
//! (`layer.md`): whiteouts become empty `.wh.NAME` files and opaque directories get a
//! `.wh..wh..opq` entry. In copy mode the changes come from comparing two trees
//! (`snapshot/treediff.rs`) and are written through the same [`LayerWriter`].
//!
//! Runs as root of the build's user namespace (the files belong to subordinate ids). The
//! tree was written by untrusted build commands, so it is walked without ever following a
//! symlink (`symlink_metadata`, `O_NOFOLLOW`), and names that a layer cannot represent
//! (`.wh.` prefixes, which every unpacker reads as whiteouts) fail the step.

use std::collections::HashMap;
use std::ffi::{CString, OsString};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// Errors writing a layer.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// Reading the changes failed.
    #[error("cannot read {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing the layer failed.
    #[error("cannot write the layer")]
    Write(#[source] io::Error),
    /// A name an image layer cannot carry.
    #[error(
        "the step created /{0}, but names starting with .wh. cannot be stored in an image layer"
    )]
    WhiteoutName(String),
}

/// The digests of a written layer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerDigests {
    /// `sha256:` of the compressed blob.
    pub digest: String,
    /// `sha256:` of the uncompressed tar (the config's diff_id).
    pub diff_id: String,
    /// Size of the compressed blob.
    pub size: u64,
}

/// Paths the runtime mounts over during a `RUN`: whatever the step's changes hold there
/// was created by the mount machinery, not by the step.
pub(crate) const RUN_MOUNT_POINTS: &[&str] =
    &["proc", "sys", "dev", "etc/hosts", "etc/resolv.conf"];

/// Media type of the layers ags writes.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

struct Hashing<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// True when `upper` holds any change (ignoring a `RUN`'s mount points when `run_step`).
pub fn has_changes(upper: &Path, run_step: bool) -> Result<bool, DiffError> {
    let entries = fs::read_dir(upper).map_err(|source| DiffError::Read {
        path: upper.to_path_buf(),
        source,
    })?;
    for e in entries {
        let e = e.map_err(|source| DiffError::Read {
            path: upper.to_path_buf(),
            source,
        })?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(run_step && skipped(&name, &e.path())?) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn skipped(rel: &str, path: &Path) -> Result<bool, DiffError> {
    if !RUN_MOUNT_POINTS.contains(&rel) {
        // `etc` itself is skipped when it only holds the mount points.
        if rel == "etc" {
            let meta = lstat(path)?;
            if meta.is_dir() {
                let mut only_mount_points = true;
                for e in fs::read_dir(path).map_err(|source| DiffError::Read {
                    path: path.to_path_buf(),
                    source,
                })? {
                    let e = e.map_err(|source| DiffError::Read {
                        path: path.to_path_buf(),
                        source,
                    })?;
                    let child = format!("etc/{}", e.file_name().to_string_lossy());
                    if !RUN_MOUNT_POINTS.contains(&child.as_str()) {
                        only_mount_points = false;
                    }
                }
                return Ok(only_mount_points && !is_opaque(path));
            }
        }
        return Ok(false);
    }
    Ok(true)
}

pub(crate) fn lstat(path: &Path) -> Result<fs::Metadata, DiffError> {
    fs::symlink_metadata(path).map_err(|source| DiffError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn is_opaque(path: &Path) -> bool {
    ["user.overlay.opaque", "trusted.overlay.opaque"]
        .iter()
        .any(|name| xattr_is_y(path, name))
}

fn xattr_is_y(path: &Path, name: &str) -> bool {
    let (Ok(p), Ok(n)) = (
        CString::new(path.as_os_str().as_bytes()),
        CString::new(name),
    ) else {
        return false;
    };
    let mut buf = [0u8; 4];
    // SAFETY: both strings are NUL-terminated and live across the call; the buffer is
    // valid for its length. lgetxattr(2) does not follow a final symlink.
    let n = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    n == 1 && buf[0] == b'y'
}

type Compressed<'a> = Hashing<io::BufWriter<&'a File>>;

/// A tar+zstd layer being written: entries are appended one at a time, from a tree on
/// disk, and the digests come out at the end. Both snapshot kinds write through it, so
/// their layers have the same shape.
pub(crate) struct LayerWriter<'a> {
    builder: tar::Builder<Hashing<zstd::Encoder<'static, Compressed<'a>>>>,
    /// The first path written for each (device, inode) with more than one link: later
    /// names of the inode become hardlink entries to it.
    links: HashMap<(u64, u64), PathBuf>,
}

impl<'a> LayerWriter<'a> {
    /// A layer written to `out`.
    pub(crate) fn new(out: &'a File) -> Result<Self, DiffError> {
        let compressed = Hashing {
            inner: io::BufWriter::with_capacity(1 << 20, out),
            hash: Sha256::new(),
            len: 0,
        };
        let encoder = zstd::Encoder::new(compressed, 3).map_err(DiffError::Write)?;
        let tar_out = Hashing {
            inner: encoder,
            hash: Sha256::new(),
            len: 0,
        };
        let mut builder = tar::Builder::new(tar_out);
        builder.mode(tar::HeaderMode::Complete);
        Ok(Self {
            builder,
            links: HashMap::new(),
        })
    }

    /// Appends the entry at `path` (not followed) as `rel` in the layer: a directory (its
    /// entry only), a file (or a hardlink to an earlier name of the same inode), a
    /// symlink or a fifo. Sockets and device nodes cannot be created rootless and are
    /// not carried.
    pub(crate) fn entry(&mut self, path: &Path, rel: &Path) -> Result<(), DiffError> {
        if rel
            .file_name()
            .is_some_and(|n| n.as_bytes().starts_with(b".wh."))
        {
            return Err(DiffError::WhiteoutName(rel.to_string_lossy().into_owned()));
        }
        let meta = lstat(path)?;
        let ft = meta.file_type();
        let mut h = tar::Header::new_gnu();
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(u64::from(meta.uid()));
        h.set_gid(u64::from(meta.gid()));
        h.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        let w = DiffError::Write;
        let b = &mut self.builder;
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, with_slash(rel), io::empty())
                .map_err(w)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(path).map_err(|source| DiffError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, rel, &target).map_err(w)?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.links.get(&key) {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    return b.append_link(&mut h, rel, first).map_err(w);
                }
                self.links.insert(key, rel.to_path_buf());
            }
            let f = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(|source| DiffError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            // A file that changes size while being read would corrupt the stream; the
            // step's processes are all gone by now, so its size is final.
            b.append_data(&mut h, rel, io::Read::take(f, meta.len()))
                .map_err(w)?;
        } else if ft.is_fifo() {
            h.set_entry_type(tar::EntryType::Fifo);
            h.set_size(0);
            b.append_data(&mut h, rel, io::empty()).map_err(w)?;
        }
        Ok(())
    }

    /// Appends a whiteout: `rel` was deleted.
    pub(crate) fn whiteout(&mut self, rel: &Path) -> Result<(), DiffError> {
        let name = rel.file_name().unwrap_or_default();
        let mut wh = OsString::from(".wh.");
        wh.push(name);
        self.marker(&rel.with_file_name(wh))
    }

    /// Appends an opaque marker: the directory `rel` hides everything below it.
    fn opaque(&mut self, rel: &Path) -> Result<(), DiffError> {
        self.marker(&rel.join(".wh..wh..opq"))
    }

    fn marker(&mut self, name: &Path) -> Result<(), DiffError> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(0);
        self.builder
            .append_data(&mut h, name, io::empty())
            .map_err(DiffError::Write)
    }

    /// Ends the layer and returns its digests.
    pub(crate) fn finish(self) -> Result<LayerDigests, DiffError> {
        let tar_out = self.builder.into_inner().map_err(DiffError::Write)?;
        let diff_id = hex::encode(tar_out.hash.finalize());
        let mut compressed = tar_out.inner.finish().map_err(DiffError::Write)?;
        compressed.flush().map_err(DiffError::Write)?;
        Ok(LayerDigests {
            digest: format!("sha256:{}", hex::encode(compressed.hash.finalize())),
            diff_id: format!("sha256:{diff_id}"),
            size: compressed.len,
        })
    }
}

/// `rel/`: tar marks directories with a trailing slash.
fn with_slash(rel: &Path) -> PathBuf {
    let mut s = rel.as_os_str().to_owned();
    s.push("/");
    PathBuf::from(s)
}

/// Writes the changes in the overlay upper directory `upper` as a zstd-compressed layer
/// to `out`, or returns `None` when there are none. `run_step` skips the mount points of
/// a `RUN`.
pub fn write_layer(
    upper: &Path,
    out: &File,
    run_step: bool,
) -> Result<Option<LayerDigests>, DiffError> {
    if !has_changes(upper, run_step)? {
        return Ok(None);
    }
    let mut writer = LayerWriter::new(out)?;
    walk(&mut writer, upper, Path::new(""), run_step)?;
    writer.finish().map(Some)
}

fn walk(w: &mut LayerWriter<'_>, dir: &Path, rel: &Path, run_step: bool) -> Result<(), DiffError> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(|source| DiffError::Read {
            path: dir.to_path_buf(),
            source,
        })?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(|source| DiffError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
    names.sort();
    for name in names {
        let child_rel = rel.join(&name);
        let path = dir.join(&name);
        if run_step && skipped(&child_rel.to_string_lossy(), &path)? {
            continue;
        }
        if name.as_bytes().starts_with(b".wh.") {
            return Err(DiffError::WhiteoutName(
                child_rel.to_string_lossy().into_owned(),
            ));
        }
        let meta = lstat(&path)?;
        let ft = meta.file_type();
        if ft.is_char_device() && meta.rdev() == 0 {
            w.whiteout(&child_rel)?;
            continue;
        }
        w.entry(&path, &child_rel)?;
        if ft.is_dir() {
            if is_opaque(&path) {
                w.opaque(&child_rel)?;
            }
            walk(w, &path, &child_rel, false)?;
        }
    }
    Ok(())
}
