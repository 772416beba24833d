//! A build step's changes as an OCI layer.
//!
//! A step runs on an overlay whose upper directory collects everything it changed. That
//! directory *is* the changeset, in overlayfs's format: a deleted path is a 0/0 character
//! device (a whiteout) and a directory whose lower contents were replaced carries the
//! `user.overlay.opaque` xattr (overlayfs docs, "whiteouts and opaque directories"). This
//! module writes it as a tar+zstd layer in the image-spec format (`layer.md`): whiteouts
//! become empty `.wh.NAME` files and opaque directories get a `.wh..wh..opq` entry.
//!
//! Runs as root of the build's user namespace (the files belong to subordinate ids). The
//! tree was written by untrusted build commands, so it is walked without ever following a
//! symlink (`symlink_metadata`, `O_NOFOLLOW`), and names that a layer cannot represent
//! (`.wh.` prefixes, which every unpacker reads as whiteouts) fail the step.

use std::collections::HashMap;
use std::ffi::CString;
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

/// Paths the runtime mounts over during a `RUN`: whatever the upper directory holds there
/// was created by the mount machinery, not by the step.
const RUN_MOUNT_POINTS: &[&str] = &["proc", "sys", "dev", "etc/hosts", "etc/resolv.conf"];

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

fn lstat(path: &Path) -> Result<fs::Metadata, DiffError> {
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

/// Writes the changes in `upper` as a zstd-compressed layer to `out`, or returns `None`
/// when there are none. `run_step` skips the mount points of a `RUN`.
pub fn write_layer(
    upper: &Path,
    out: &File,
    run_step: bool,
) -> Result<Option<LayerDigests>, DiffError> {
    if !has_changes(upper, run_step)? {
        return Ok(None);
    }
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
    let mut links = HashMap::new();
    walk(&mut builder, upper, "", run_step, &mut links)?;
    let tar_out = builder.into_inner().map_err(DiffError::Write)?;
    let diff_id = hex::encode(tar_out.hash.finalize());
    let mut compressed = tar_out.inner.finish().map_err(DiffError::Write)?;
    compressed.flush().map_err(DiffError::Write)?;
    Ok(Some(LayerDigests {
        digest: format!("sha256:{}", hex::encode(compressed.hash.finalize())),
        diff_id: format!("sha256:{diff_id}"),
        size: compressed.len,
    }))
}

fn walk<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &Path,
    rel: &str,
    run_step: bool,
    links: &mut HashMap<(u64, u64), String>,
) -> Result<(), DiffError> {
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
        let name_s = name.to_string_lossy().into_owned();
        let child_rel = if rel.is_empty() {
            name_s.clone()
        } else {
            format!("{rel}/{name_s}")
        };
        let path = dir.join(&name);
        if run_step && skipped(&child_rel, &path)? {
            continue;
        }
        if name_s.starts_with(".wh.") {
            return Err(DiffError::WhiteoutName(child_rel));
        }
        let meta = lstat(&path)?;
        let ft = meta.file_type();
        let mut h = tar::Header::new_gnu();
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(u64::from(meta.uid()));
        h.set_gid(u64::from(meta.gid()));
        h.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        let w = DiffError::Write;
        if ft.is_char_device() && meta.rdev() == 0 {
            let wh = if rel.is_empty() {
                format!(".wh.{name_s}")
            } else {
                format!("{rel}/.wh.{name_s}")
            };
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(0);
            b.append_data(&mut h, wh, io::empty()).map_err(w)?;
        } else if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, format!("{child_rel}/"), io::empty())
                .map_err(w)?;
            if is_opaque(&path) {
                let mut o = tar::Header::new_gnu();
                o.set_entry_type(tar::EntryType::Regular);
                o.set_mode(0o644);
                o.set_size(0);
                b.append_data(&mut o, format!("{child_rel}/.wh..wh..opq"), io::empty())
                    .map_err(w)?;
            }
            walk(b, &path, &child_rel, false, links)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(|source| DiffError::Read {
                path: path.clone(),
                source,
            })?;
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, &child_rel, &target).map_err(w)?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = links.get(&key) {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    b.append_link(&mut h, &child_rel, first).map_err(w)?;
                    continue;
                }
                links.insert(key, child_rel.clone());
            }
            let f = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|source| DiffError::Read {
                    path: path.clone(),
                    source,
                })?;
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            // A file that changes size while being read would corrupt the stream; the
            // step's processes are all gone by now, so its size is final.
            b.append_data(&mut h, &child_rel, io::Read::take(f, meta.len()))
                .map_err(w)?;
        } else if ft.is_fifo() {
            h.set_entry_type(tar::EntryType::Fifo);
            h.set_size(0);
            b.append_data(&mut h, &child_rel, io::empty()).map_err(w)?;
        }
        // Sockets and device nodes cannot be created rootless and are not carried.
    }
    Ok(())
}
