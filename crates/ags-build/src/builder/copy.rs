//! `COPY` and `ADD`: choosing the sources (in the build context, another stage or an
//! image), hashing them for the cache key, and writing them into a step's root.
//!
//! Sources from the build context are untrusted paths: every one goes through
//! [`context_source`], which refuses `..` that climbs out of the context and symlinks
//! that lead out of it (a checked-out repository could otherwise make a build copy
//! `~/.ssh` into an image). Inside a copied directory, symlinks are copied as symlinks,
//! never followed. The files are then written as a tar stream and applied with the
//! image unpacker (`ags_oci::unpack`), so every write into the root is confined there by
//! the same code that defends against hostile image layers.

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use ags_oci::unpack::{Budgets, UnpackOptions, unpack_layer};
use sha2::{Digest as _, Sha256};

use crate::ignore::IgnoreMatcher;

/// Errors choosing or copying sources. Messages are completed with FILE:LINE by the
/// builder.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A source climbs out of the build context.
    #[error("{0:?} is outside the build context")]
    Escapes(String),
    /// No file matches a source.
    #[error("{0:?} does not exist in the build context")]
    Missing(String),
    /// A source was excluded by the ignore file.
    #[error("{0:?} is excluded by the ignore file")]
    Ignored(String),
    /// Reading a source failed.
    #[error("cannot read {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A name that an image layer cannot carry.
    #[error("{0:?}: names starting with .wh. cannot be stored in an image layer")]
    WhiteoutName(String),
    /// Writing into the root failed.
    #[error("cannot write {dest}: {message}")]
    Write {
        /// The destination.
        dest: String,
        /// Why.
        message: String,
    },
}

/// One source of a copy, ready for the worker.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file or directory on the host (in the context, or in a mounted stage view).
    /// `ctx_rel` is its context-relative path, for the ignore file.
    Host {
        /// Where it is.
        path: PathBuf,
        /// Context-relative path (`None` outside the context).
        ctx_rel: Option<String>,
    },
    /// A path in the source view `view` (mounted by the worker).
    View {
        /// Index into the worker's views.
        view: usize,
        /// Path inside the view, resolved there as if it were `/`.
        path: String,
    },
    /// A file to create with this content (heredoc, downloaded URL).
    Data {
        /// File name when the destination is a directory.
        name: String,
        /// The content.
        data: Vec<u8>,
        /// Permission bits.
        mode: u32,
    },
    /// A local tar archive (`ADD`) to extract into the destination directory.
    Archive {
        /// The archive.
        path: PathBuf,
    },
}

/// Everything the worker needs for one `COPY`/`ADD`.
#[derive(Debug, Clone)]
pub struct CopyJob {
    /// The sources, in order.
    pub sources: Vec<Source>,
    /// Absolute destination in the image.
    pub dest: String,
    /// The destination is a directory whatever exists there (trailing `/`, several
    /// sources, a glob).
    pub dest_is_dir: bool,
    /// Owner of everything copied.
    pub owner: (u32, u32),
    /// `--chmod`.
    pub chmod: Option<u32>,
    /// The context's ignore file.
    pub ignore: IgnoreMatcher,
    /// `--exclude` patterns.
    pub excludes: IgnoreMatcher,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Lexically cleans a context-relative source; `None` when it climbs out.
fn clean_rel(src: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(src.trim_start_matches('/')).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => {}
        }
    }
    Some(parts.join("/"))
}

/// Resolves a `COPY`/`ADD` source pattern in the context to the matching context-relative
/// paths (sorted), refusing anything outside the context. This is the one confinement
/// function for context paths.
pub fn context_source(
    context: &Path,
    pattern: &str,
    ignore: &IgnoreMatcher,
) -> Result<Vec<String>, CopyError> {
    let rel = clean_rel(pattern).ok_or_else(|| CopyError::Escapes(pattern.to_string()))?;
    let canon_ctx = context.canonicalize().map_err(|source| CopyError::Read {
        path: context.to_path_buf(),
        source,
    })?;
    let candidates = if has_glob(&rel) {
        let m = IgnoreMatcher::new(&rel).map_err(|e| CopyError::Read {
            path: context.join(&rel),
            source: io::Error::new(io::ErrorKind::InvalidInput, e.to_string()),
        })?;
        let depth = rel.split('/').count();
        let mut found = Vec::new();
        glob_walk(&canon_ctx, "", depth, &m, &mut found);
        found.sort();
        found
    } else {
        vec![rel]
    };
    let mut out = Vec::new();
    for rel in candidates {
        let full = canon_ctx.join(&rel);
        let canon = match full.canonicalize() {
            Ok(c) => c,
            Err(_) if fs::symlink_metadata(&full).is_ok() => {
                return Err(CopyError::Escapes(pattern.to_string()));
            }
            Err(_) => return Err(CopyError::Missing(pattern.to_string())),
        };
        if !canon.starts_with(&canon_ctx) {
            return Err(CopyError::Escapes(pattern.to_string()));
        }
        let real_rel = canon
            .strip_prefix(&canon_ctx)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !real_rel.is_empty() && ignore.is_excluded(&real_rel) && !canon.is_dir() {
            if has_glob(pattern) {
                continue;
            }
            return Err(CopyError::Ignored(pattern.to_string()));
        }
        out.push(real_rel);
    }
    if out.is_empty() {
        return Err(CopyError::Missing(pattern.to_string()));
    }
    Ok(out)
}

fn glob_walk(dir: &Path, rel: &str, depth: usize, m: &IgnoreMatcher, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if depth == 1 {
            if m.is_excluded(&child) {
                out.push(child);
            }
        } else if e.file_type().is_ok_and(|t| t.is_dir()) {
            glob_walk(&e.path(), &child, depth - 1, m, out);
        }
    }
}

/// One entry found under a source.
struct Entry {
    /// Path relative to the source root ("" for the root itself).
    rel: String,
    path: PathBuf,
    meta: fs::Metadata,
}

/// Walks a source without following symlinks, skipping what the ignore file (by context
/// path) and `--exclude` (by source-relative path) exclude. Sorted, parents first.
fn visit(
    root: &Path,
    ctx_rel: Option<&str>,
    job: &CopyJob,
    f: &mut dyn FnMut(Entry) -> Result<(), CopyError>,
) -> Result<(), CopyError> {
    let meta = fs::symlink_metadata(root).map_err(|source| CopyError::Read {
        path: root.to_path_buf(),
        source,
    })?;
    let is_dir = meta.is_dir();
    f(Entry {
        rel: String::new(),
        path: root.to_path_buf(),
        meta,
    })?;
    if is_dir {
        visit_dir(root, "", ctx_rel, job, f)?;
    }
    Ok(())
}

fn visit_dir(
    dir: &Path,
    rel: &str,
    ctx_rel: Option<&str>,
    job: &CopyJob,
    f: &mut dyn FnMut(Entry) -> Result<(), CopyError>,
) -> Result<(), CopyError> {
    let read = |source| CopyError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(read)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(read)?;
    names.sort();
    for name in names {
        let name = name.to_string_lossy().into_owned();
        let child_rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let path = dir.join(&name);
        let meta = fs::symlink_metadata(&path).map_err(|source| CopyError::Read {
            path: path.clone(),
            source,
        })?;
        let ctx_path = ctx_rel.map(|c| {
            if c.is_empty() {
                child_rel.clone()
            } else {
                format!("{c}/{child_rel}")
            }
        });
        let ignored = ctx_path
            .as_deref()
            .is_some_and(|p| job.ignore.is_excluded(p))
            || job.excludes.is_excluded(&child_rel);
        if ignored && !(meta.is_dir() && job.ignore.has_exceptions()) {
            continue;
        }
        if name.starts_with(".wh.") {
            return Err(CopyError::WhiteoutName(child_rel));
        }
        let is_dir = meta.is_dir();
        if !ignored {
            f(Entry {
                rel: child_rel.clone(),
                path: path.clone(),
                meta,
            })?;
        }
        if is_dir {
            visit_dir(&path, &child_rel, ctx_rel, job, f)?;
        }
    }
    Ok(())
}

/// The digest of everything a copy would write, for the step's cache key: names, types,
/// modes, sizes, contents and symlink targets (not owners or times, which the copy
/// replaces or which do not change the result's meaning).
pub fn content_digest(job: &CopyJob, extra: &[&str]) -> Result<String, CopyError> {
    let mut h = Sha256::new();
    for e in extra {
        field(&mut h, b'x', e.as_bytes());
    }
    for s in &job.sources {
        match s {
            Source::Host { path, ctx_rel } => {
                field(&mut h, b's', path.to_string_lossy().as_bytes());
                visit(path, ctx_rel.as_deref(), job, &mut |e| {
                    hash_entry(&mut h, &e)
                })?;
            }
            Source::View { view, path } => {
                field(&mut h, b'v', format!("{view}:{path}").as_bytes());
            }
            Source::Data { name, data, mode } => {
                field(&mut h, b'd', name.as_bytes());
                field(&mut h, b'm', &mode.to_le_bytes());
                field(&mut h, b'c', data);
            }
            Source::Archive { path } => {
                field(&mut h, b'a', path.to_string_lossy().as_bytes());
                hash_file(&mut h, path)?;
            }
        }
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

fn field(h: &mut Sha256, tag: u8, bytes: &[u8]) {
    h.update([tag]);
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

fn hash_entry(h: &mut Sha256, e: &Entry) -> Result<(), CopyError> {
    field(h, b'n', e.rel.as_bytes());
    field(h, b'm', &e.meta.mode().to_le_bytes());
    let ft = e.meta.file_type();
    if ft.is_symlink() {
        let t = fs::read_link(&e.path).map_err(|source| CopyError::Read {
            path: e.path.clone(),
            source,
        })?;
        field(h, b'l', t.to_string_lossy().as_bytes());
    } else if ft.is_file() {
        hash_file(h, &e.path)?;
    }
    Ok(())
}

fn hash_file(h: &mut Sha256, path: &Path) -> Result<(), CopyError> {
    let read = |source| CopyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(read)?;
    let mut fh = Sha256::new();
    io::copy(&mut f, &mut fh).map_err(read)?;
    field(h, b'f', &fh.finalize());
    Ok(())
}

/// Writes the job into the root mounted at `merged` (worker side: root of the build's
/// user namespace). `views` are the mounted `--from` roots. `scratch` is a writable
/// directory for the temporary tar stream.
pub fn apply(
    job: &CopyJob,
    merged: &Path,
    views: &[PathBuf],
    scratch: &Path,
    budgets: &Budgets,
) -> Result<(), CopyError> {
    let werr = |message: String| CopyError::Write {
        dest: job.dest.clone(),
        message,
    };
    let root = pathrs::Root::open(merged).map_err(|e| werr(e.to_string()))?;
    let dest_rel = job.dest.trim_start_matches('/').trim_end_matches('/');
    let dest_exists_dir = root
        .resolve(if dest_rel.is_empty() { "/" } else { dest_rel })
        .ok()
        .and_then(|h| fs::metadata(format!("/proc/self/fd/{}", handle_fd(&h))).ok())
        .is_some_and(|m| m.is_dir());
    let into_dir = job.dest_is_dir || dest_exists_dir;
    let join = |base: &str, rel: &str| -> String {
        match (base.is_empty(), rel.is_empty()) {
            (_, true) => base.to_string(),
            (true, false) => rel.to_string(),
            (false, false) => format!("{base}/{rel}"),
        }
    };

    let tar_path = scratch.join(format!("copy-{}.tar", std::process::id()));
    let tar_file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tar_path)
        .map_err(|e| werr(format!("{}: {e}", tar_path.display())))?;
    let _ = fs::remove_file(&tar_path);
    let mut b = tar::Builder::new(io::BufWriter::new(&tar_file));
    b.mode(tar::HeaderMode::Complete);
    let mut archives = Vec::new();
    let header = |meta: Option<&fs::Metadata>, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_uid(u64::from(job.owner.0));
        h.set_gid(u64::from(job.owner.1));
        h.set_mode(job.chmod.unwrap_or(mode));
        h.set_mtime(meta.map_or(0, |m| u64::try_from(m.mtime()).unwrap_or(0)));
        h
    };
    let mut dest_dir_done = dest_exists_dir;
    for s in &job.sources {
        let (path, ctx_rel) = match s {
            Source::Host { path, ctx_rel } => (path.clone(), ctx_rel.clone()),
            Source::View { view, path } => {
                let vroot = pathrs::Root::open(&views[*view]).map_err(|e| werr(e.to_string()))?;
                let h = vroot
                    .resolve(path)
                    .map_err(|e| werr(format!("{path}: {e}")))?;
                let real = fs::read_link(format!("/proc/self/fd/{}", handle_fd(&h)))
                    .map_err(|e| werr(format!("{path}: {e}")))?;
                (real, None)
            }
            Source::Data { name, data, mode } => {
                let target = if into_dir {
                    join(dest_rel, name)
                } else {
                    dest_rel.to_string()
                };
                let mut h = header(None, *mode);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                h.set_mtime(0);
                b.append_data(&mut h, target, data.as_slice())
                    .map_err(|e| werr(e.to_string()))?;
                continue;
            }
            Source::Archive { path } => {
                if !dest_dir_done {
                    let mut h = header(None, 0o755);
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, format!("{dest_rel}/"), io::empty())
                        .map_err(|e| werr(e.to_string()))?;
                    dest_dir_done = true;
                }
                archives.push(path.clone());
                continue;
            }
        };
        let top_is_dir = fs::metadata(&path).is_ok_and(|m| m.is_dir());
        let base_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        visit(&path, ctx_rel.as_deref(), job, &mut |e: Entry| {
            let target = if top_is_dir {
                if e.rel.is_empty() {
                    if dest_dir_done {
                        return Ok(());
                    }
                    dest_dir_done = true;
                }
                join(dest_rel, &e.rel)
            } else if into_dir {
                join(dest_rel, &base_name)
            } else {
                dest_rel.to_string()
            };
            let ft = e.meta.file_type();
            let mode = e.meta.mode() & 0o7777;
            let mut h = header(Some(&e.meta), mode);
            let w = |err: io::Error| werr(err.to_string());
            if e.rel.is_empty() && !top_is_dir {
                // The source itself was resolved (symlinks followed, inside the root):
                // copy what it points to.
                let f = File::open(&e.path).map_err(|source| CopyError::Read {
                    path: e.path.clone(),
                    source,
                })?;
                let m = f.metadata().map_err(|source| CopyError::Read {
                    path: e.path.clone(),
                    source,
                })?;
                let mut h = header(Some(&m), m.mode() & 0o7777);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(m.len());
                return b.append_data(&mut h, target, f.take(m.len())).map_err(w);
            }
            if ft.is_dir() {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, format!("{target}/"), io::empty())
                    .map_err(w)
            } else if ft.is_symlink() {
                let t = fs::read_link(&e.path).map_err(|source| CopyError::Read {
                    path: e.path.clone(),
                    source,
                })?;
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, target, t).map_err(w)
            } else if ft.is_file() {
                let f = File::open(&e.path).map_err(|source| CopyError::Read {
                    path: e.path.clone(),
                    source,
                })?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(e.meta.len());
                b.append_data(&mut h, target, f.take(e.meta.len()))
                    .map_err(w)
            } else if ft.is_fifo() {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_size(0);
                b.append_data(&mut h, target, io::empty()).map_err(w)
            } else {
                Ok(())
            }
        })?;
    }
    let mut out = b.into_inner().map_err(|e| werr(e.to_string()))?;
    out.flush().map_err(|e| werr(e.to_string()))?;
    drop(out);
    let mut tar_file = tar_file;
    tar_file
        .seek(io::SeekFrom::Start(0))
        .map_err(|e| werr(e.to_string()))?;
    let opts = UnpackOptions {
        budgets: budgets.clone(),
        rootless: true,
        preserve_ownership: true,
    };
    unpack_layer(
        merged,
        io::BufReader::new(&tar_file),
        "application/vnd.oci.image.layer.v1.tar",
        None,
        &opts,
    )
    .map_err(|e| werr(crate::builder::chain(&e)))?;
    for a in archives {
        extract_archive(&root, dest_rel, &a, budgets).map_err(werr)?;
    }
    Ok(())
}

/// `ADD` of a local archive: unpack it into the destination directory with the layer
/// unpacker, confined to that directory. Ownership in the archive is kept, as Docker does.
fn extract_archive(
    root: &pathrs::Root,
    dest_rel: &str,
    archive: &Path,
    budgets: &Budgets,
) -> Result<(), String> {
    let h = root
        .resolve(if dest_rel.is_empty() { "/" } else { dest_rel })
        .map_err(|e| e.to_string())?;
    // The directory as resolved inside the root (symlinks followed as if the root were
    // `/`); the unpacker confines the archive's entries to it in turn.
    let dir =
        fs::read_link(format!("/proc/self/fd/{}", handle_fd(&h))).map_err(|e| e.to_string())?;
    let mut f = File::open(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).map_err(|e| e.to_string())?;
    f.seek(io::SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let media = match &magic[..n.min(4)] {
        [0x1f, 0x8b, ..] => "application/vnd.oci.image.layer.v1.tar+gzip",
        [0x28, 0xb5, 0x2f, 0xfd] => "application/vnd.oci.image.layer.v1.tar+zstd",
        _ => "application/vnd.oci.image.layer.v1.tar",
    };
    let opts = UnpackOptions {
        budgets: budgets.clone(),
        rootless: true,
        preserve_ownership: true,
    };
    unpack_layer(&dir, io::BufReader::new(f), media, None, &opts)
        .map(|_| ())
        .map_err(|e| format!("{}: {}", archive.display(), crate::builder::chain(&e)))
}

fn handle_fd(h: &pathrs::Handle) -> i32 {
    use std::os::fd::AsFd;
    h.as_fd().as_raw_fd()
}

/// True when `path` looks like an archive `ADD` extracts: a tar stream, plain or
/// compressed with gzip or zstd.
pub fn is_archive(path: &Path) -> bool {
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let mut buf = vec![0u8; 512];
    let Ok(n) = read_full(&mut f, &mut buf) else {
        return false;
    };
    if n >= 2 && buf[0] == 0x1f && buf[1] == 0x8b {
        return true;
    }
    if n >= 4 && buf[..4] == [0x28, 0xb5, 0x2f, 0xfd] {
        return true;
    }
    n == 512 && &buf[257..262] == b"ustar"
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_context_sources_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let ctx = t.path().join("ctx");
        fs::create_dir_all(ctx.join("sub")).unwrap();
        fs::write(ctx.join("ok.txt"), "x").unwrap();
        fs::write(t.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("../secret", ctx.join("up")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", ctx.join("abs")).unwrap();
        std::os::unix::fs::symlink("ok.txt", ctx.join("inside")).unwrap();
        std::os::unix::fs::symlink("../../secret", ctx.join("sub/deep")).unwrap();
        let none = IgnoreMatcher::default();
        for bad in [
            "../secret",
            "sub/../../secret",
            "up",
            "abs",
            "sub/deep",
            "/../secret",
        ] {
            assert!(
                matches!(context_source(&ctx, bad, &none), Err(CopyError::Escapes(_))),
                "{bad} was not refused"
            );
        }
        assert_eq!(context_source(&ctx, "inside", &none).unwrap(), ["ok.txt"]);
        assert_eq!(context_source(&ctx, "/ok.txt", &none).unwrap(), ["ok.txt"]);
        assert_eq!(context_source(&ctx, "./sub/..", &none).unwrap(), [""]);
        assert!(matches!(
            context_source(&ctx, "nope", &none),
            Err(CopyError::Missing(_))
        ));
    }

    #[test]
    fn globs_and_ignore_files() {
        let t = tempfile::tempdir().unwrap();
        let ctx = t.path();
        for f in ["a.rs", "b.rs", "c.txt", "d/e.rs"] {
            let p = ctx.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, f).unwrap();
        }
        let none = IgnoreMatcher::default();
        assert_eq!(
            context_source(ctx, "*.rs", &none).unwrap(),
            ["a.rs", "b.rs"]
        );
        assert_eq!(context_source(ctx, "*/*.rs", &none).unwrap(), ["d/e.rs"]);
        let ign = IgnoreMatcher::new("b.rs\n").unwrap();
        assert_eq!(context_source(ctx, "*.rs", &ign).unwrap(), ["a.rs"]);
        assert!(matches!(
            context_source(ctx, "b.rs", &ign),
            Err(CopyError::Ignored(_))
        ));
        assert!(matches!(
            context_source(ctx, "*.go", &none),
            Err(CopyError::Missing(_))
        ));
    }
}
