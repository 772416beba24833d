//! Confined, verified unpacking of untrusted OCI layer tarballs into a rootfs.
//!
//! A layer is a tar stream written by whoever built the image; every byte of it is hostile
//! input. [`unpack_layer`] applies one layer on top of a rootfs directory following the
//! OCI image-spec layer rules (`layer.md`: changesets, whiteouts, opaque whiteouts) and
//! guarantees one thing above all: **nothing outside the rootfs directory is ever created,
//! modified, chmod'ed, chown'ed or removed**, whatever the layer contains. A layer that
//! cannot be applied safely fails with an error; the caller unpacks into a temporary rootfs
//! and commits it only when [`unpack_layer`] succeeded for every layer, so a half-applied
//! rootfs is never used.
//!
//! # How
//!
//! The `tar` crate (>= 0.4.46: CVE-2026-33056, CVE-2025-62518) is used as a parser only.
//! `tar::Entry::unpack_in` is never called: it skips `..` silently, checks containment by
//! following host symlinks and declares TOCTOU out of scope. Instead:
//!
//! * Every entry name and hardlink target goes through one confinement function
//!   (`confine.rs`): leading `/` and `./` are stripped, `..` components, NUL bytes and
//!   over-long names are rejected (CVE-2014-9356 family, "tar path traversal").
//! * Parent directories are resolved inside the rootfs with openat2(2)
//!   `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` (through `pathrs`, which falls back to a safe
//!   userspace emulation where openat2 is unavailable). Symlinks planted by this or a lower
//!   layer are therefore followed *as if the rootfs were `/`*: an absolute `/etc` or a
//!   `../../..` target can never leave it (CVE-2014-6407, CVE-2014-9356, CVE-2018-15664).
//! * The final component is always handled with fd-relative `*at(2)` calls that do not
//!   follow it (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, `unlinkat`, `symlinkat`, `linkat`
//!   without `AT_SYMLINK_FOLLOW`, `mknodat`). Metadata is applied through the fd of the
//!   created file, through `fchmodat(dirfd, ".")` for directories or through the
//!   `/proc/self/fd/N` magic link of an `O_PATH | O_NOFOLLOW` fd, never by a path that could
//!   end in a symlink, so no chmod or chown goes through a symlink (containerd
//!   CVE-2021-32760, tar-rs CVE-2026-33056).
//! * Directory modes and mtimes are applied when the layer is done, deepest first. While
//!   unpacking, directories that lack owner rwx (read-only directories of this or a lower
//!   layer) are temporarily made u+rwx and restored at the end, so an unprivileged caller
//!   can unpack images with read-only directories.
//! * An existing entry is replaced by removing it (without following it) and creating the
//!   new one; only directory-over-directory keeps the directory and updates its metadata.
//! * The rootfs root itself can never be replaced, removed, or turned into a symlink: an
//!   entry that names the root (`/`, `.`, `./`) may only be a directory, whose metadata is
//!   applied (umoci CVE-2021-29136).
//! * Hardlink targets are confined like names, resolved in-root, must already exist and must
//!   not be directories; the link is made to the inode found without following a final
//!   symlink (a hardlink to a symlink is a hardlink to the symlink), and no metadata is ever
//!   applied through a hardlink entry (containerd CVE-2021-32760).
//! * Whiteouts (`.wh.NAME`) remove `NAME` in the in-root-resolved parent with
//!   `unlinkat`/fd-relative recursive removal; `.wh.`, `.wh..`, `.wh...` and whiteouts used
//!   as directories are rejected. Whiteouts and opaque whiteouts (`.wh..wh..opq`) only
//!   apply to lower layers: entries this layer created (tracked by path, with all their
//!   ancestors) survive regardless of the order of the entries in the tar stream.
//! * Device nodes and fifos are skipped in rootless mode (counted and noted in
//!   [`UnpackStats`]); a fifo in a rootfs would otherwise block any host-side reader.
//! * Extended attributes are filtered through an allowlist: only `user.*` is applied.
//!   `security.capability` (file capabilities; useless anyway under NoNewPrivs),
//!   `trusted.overlay.*` (forged overlayfs whiteouts/redirects), `security.*`, `trusted.*`
//!   and `system.*` (ACLs) are dropped and counted.
//! * Budgets ([`Budgets`]) cap entry counts, uncompressed bytes (decompression bombs),
//!   unpacked file bytes (sparse-file bombs), the bytes the parser may buffer for one
//!   entry's PAX / GNU long-name headers, and name lengths.
//! * The media type must agree with the blob's magic bytes (gzip `1f 8b`, zstd
//!   `28 b5 2f fd`, anything else is a plain tar; xz/bzip2 are refused), and the diff_id
//!   (sha256 of the uncompressed stream, including anything after the end-of-archive
//!   marker) is computed while streaming and compared at the end.
//!
//! # Ownership
//!
//! With [`UnpackOptions::preserve_ownership`] every entry is chown'ed (fd-relative,
//! `AT_SYMLINK_NOFOLLOW` for symlinks) to the header's uid/gid before its mode is set (a
//! chown clears setuid bits). `EINVAL` from chown means the id has no mapping in the current
//! user namespace (chown(2)); the entry then stays owned by the caller and the fact is
//! counted in [`UnpackStats::unmapped_owners`]. `EPERM` is an error: the caller asked for
//! ownership without having `CAP_CHOWN`. Without the option everything belongs to the
//! caller and setuid/setgid bits are kept (they then only grant the caller's own ids).
//! When running as real root with ownership preserved, setuid-root binaries appear in the
//! rootfs: the directory that holds rootfs trees must not be reachable by other users
//! (mode 0700), which is the store's job.
//!
//! # Not covered here
//!
//! * Verifying the compressed blob digest and size, manifests and descriptors (including
//!   foreign `urls`), and the number of layers are the registry/store's responsibility.
//! * A layer truncated inside an entry fails; one truncated exactly at an entry boundary
//!   parses as a shorter tar and only the diff_id check catches it, so callers must always
//!   pass the expected diff_id from the image config.
//! * "Created by this layer" is tracked by tar path. An entry written through a symlinked
//!   parent (`a/x` with `a -> b`) is not recognised as `b/x` by an opaque whiteout of `b/`
//!   in the same layer; the outcome stays inside the rootfs, only that corner of the
//!   overlay semantics differs.
//! * Nothing else may write the rootfs during an unpack. Parent resolution and final-name
//!   operations are race-free against a concurrent writer, but the end-of-layer directory
//!   metadata is re-resolved by path (in-root, so a race can only misdirect it inside the
//!   rootfs).
//! * Hardlinks across layers work, but the rootfs must be one filesystem (`linkat(2)`).
//!
//! # Example
//!
//! ```no_run
//! use ags_oci::unpack::{unpack_layer, UnpackOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let blob = std::fs::File::open("/store/blobs/sha256/0123")?;
//! let stats = unpack_layer(
//!     std::path::Path::new("/store/tmp/rootfs"),
//!     blob,
//!     "application/vnd.oci.image.layer.v1.tar+gzip",
//!     Some("sha256:4567"),
//!     &UnpackOptions::default(),
//! )?;
//! println!("{} entries, diff_id {}", stats.entries, stats.diff_id);
//! # Ok(()) }
//! ```

mod apply;
mod confine;
mod fsops;
mod stream;

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use self::apply::Unpacker;
use self::stream::{Exceeded, Meter, MeterState};

/// Resource limits for one layer. Exceeding any of them fails the unpack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budgets {
    /// Tar entries, including skipped ones and PAX global headers.
    pub max_entries: u64,
    /// Bytes of the uncompressed tar stream, and separately bytes written into files
    /// (sparse entries can expand beyond their stream size).
    pub max_total_bytes: u64,
    /// Bytes the parser may consume between two entries: PAX extended headers, GNU long
    /// names/links and sparse maps, which the tar crate holds in memory.
    pub max_header_bytes: u64,
    /// Longest entry name, hardlink target or symlink target, in bytes.
    pub max_path_len: usize,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            max_entries: 1_000_000,
            max_total_bytes: 64 << 30,
            max_header_bytes: 1 << 20,
            max_path_len: 4096,
        }
    }
}

/// How to unpack a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackOptions {
    pub budgets: Budgets,
    /// Skip device nodes and fifos (noted and counted in [`UnpackStats`]) instead of
    /// creating them. Default: `true`.
    pub rootless: bool,
    /// chown every entry to the uid/gid in its header (see the module docs for how
    /// unmapped ids are handled). Default: `false`.
    pub preserve_ownership: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            budgets: Budgets::default(),
            rootless: true,
            preserve_ownership: false,
        }
    }
}

/// What a successful [`unpack_layer`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// `sha256:<hex>` of the uncompressed tar stream.
    pub diff_id: String,
    /// Size of the uncompressed tar stream.
    pub uncompressed_bytes: u64,
    /// Tar entries seen (after PAX/GNU extension headers were merged into their entry).
    pub entries: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    /// Whiteouts that removed something (whiteouts of absent names are no-ops).
    pub whiteouts: u64,
    pub opaque_dirs: u64,
    /// Whiteouts ignored because they named an entry of this same layer (OCI: whiteouts
    /// apply to lower layers only).
    pub same_layer_whiteouts: u64,
    pub skipped_devices: u64,
    pub skipped_fifos: u64,
    /// PAX global headers and AUFS `.wh..wh.*` metadata.
    pub skipped_other: u64,
    pub xattrs_dropped: u64,
    /// Entries whose uid/gid could not be applied because the id is unmapped.
    pub unmapped_owners: u64,
    /// Human-readable notes about skipped or filtered content (capped; for debug output).
    pub notes: Vec<String>,
}

/// Errors of [`unpack_layer`] and [`remove_tree`].
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot open rootfs {path}")]
    OpenRoot {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unsupported layer media type {media_type:?}")]
    UnsupportedMediaType { media_type: String },
    #[error("layer media type {media_type} promises {expected} but the blob starts like {found}")]
    CompressionMismatch {
        media_type: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("invalid expected diff_id {digest:?}: {reason}")]
    InvalidDigest {
        digest: String,
        reason: &'static str,
    },
    #[error("cannot read layer stream")]
    Read {
        #[source]
        source: io::Error,
    },
    #[error("layer exceeds the budget of {limit} {what}")]
    Budget { what: &'static str, limit: u64 },
    #[error("layer entry {entry} is rejected: {reason}")]
    InvalidEntry { entry: String, reason: String },
    #[error("cannot {op} {path} in rootfs {root}")]
    Fs {
        op: &'static str,
        path: String,
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer diff_id mismatch: expected {expected}, got {actual}")]
    DiffIdMismatch { expected: String, actual: String },
    #[error("cannot remove {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Applies one layer (a possibly compressed tar stream) on top of the directory `rootfs`.
///
/// `media_type` is the layer descriptor's media type; the blob's magic bytes must agree with
/// it. `expected_diff_id` (`sha256:<hex>`, from the image config's `rootfs.diff_ids`) is
/// compared with the digest of the uncompressed stream after everything was read. On error
/// the rootfs may be partially modified and must be discarded (see [`remove_tree`]);
/// nothing outside it has been touched.
///
/// # Errors
/// See [`UnpackError`]: unsupported media type, compression mismatch, malformed or hostile
/// entries, exceeded budgets, filesystem errors (naming the in-rootfs path) and a diff_id
/// mismatch.
pub fn unpack_layer<R: Read>(
    rootfs: &Path,
    reader: R,
    media_type: &str,
    expected_diff_id: Option<&str>,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let expected = expected_diff_id.map(parse_sha256).transpose()?;
    let compression = stream::compression_for_media_type(media_type).ok_or_else(|| {
        UnpackError::UnsupportedMediaType {
            media_type: media_type.to_owned(),
        }
    })?;
    let (magic, reader) = stream::sniff(reader).map_err(|source| UnpackError::Read { source })?;
    if !magic.agrees_with(compression) {
        return Err(UnpackError::CompressionMismatch {
            media_type: media_type.to_owned(),
            expected: compression.name(),
            found: magic.name(),
        });
    }

    let mut unpacker = Unpacker::open(rootfs, opts)?;
    let decompressed =
        stream::decompress(reader, compression).map_err(|source| UnpackError::Read { source })?;
    let state = MeterState::new(opts.budgets.max_total_bytes);
    let mut archive = tar::Archive::new(Meter::new(decompressed, state.clone()));
    // Room for the entry's own header block, the GNU L/K and PAX x header blocks, sparse
    // extension blocks of ordinary size and the previous entry's padding.
    let header_limit = opts.budgets.max_header_bytes.saturating_add(16 * 512);
    {
        let mut entries = archive
            .entries()
            .map_err(|source| stream_error(&state, opts, source))?;
        loop {
            state.begin_headers(header_limit);
            let next = entries.next();
            state.end_headers();
            let mut entry = match next {
                None => break,
                Some(Ok(entry)) => entry,
                Some(Err(source)) => return Err(stream_error(&state, opts, source)),
            };
            let applied = unpacker.apply(&mut entry).and_then(|()| {
                // Consume what the entry did not use so the parser's skip to the next
                // header is not counted as header bytes.
                io::copy(&mut entry, &mut io::sink())
                    .map(drop)
                    .map_err(|source| UnpackError::Read { source })
            });
            if let Err(err) = applied {
                return Err(match state.exceeded() {
                    Some(which) => budget_error(which, opts),
                    None => err,
                });
            }
        }
    }
    let mut stats = unpacker.finish()?;

    // The diff_id covers the whole uncompressed stream, including the end-of-archive blocks
    // and anything after them, which no parser looks at but which is part of the layer.
    let mut meter = archive.into_inner();
    io::copy(&mut meter, &mut io::sink()).map_err(|source| stream_error(&state, opts, source))?;
    let diff_id = meter.finish();
    if let Some(expected) = expected {
        if expected != diff_id {
            return Err(UnpackError::DiffIdMismatch {
                expected,
                actual: diff_id,
            });
        }
    }
    stats.diff_id = diff_id;
    stats.uncompressed_bytes = state.total();
    Ok(stats)
}

/// Removes a directory tree such as an unpacked rootfs, even when it contains read-only or
/// unreadable directories (they are chmod'ed u+rwx on the way), without ever following a
/// symlink inside it and with a bounded number of open fds however deep it is. A missing
/// `path` is not an error; a symlink at `path` itself is removed, not followed.
///
/// # Errors
/// [`UnpackError::Remove`] naming `path` when something could not be removed.
pub fn remove_tree(path: &Path) -> Result<(), UnpackError> {
    let err = |source| UnpackError::Remove {
        path: path.to_owned(),
        source,
    };
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path has no parent directory or final component",
        )));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let parent_fd = rustix::fs::open(
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err(e.into()))?;
    use std::os::unix::ffi::OsStrExt;
    fsops::remove_all_at(parent_fd.as_fd(), name.as_bytes()).map_err(err)
}

fn parse_sha256(digest: &str) -> Result<String, UnpackError> {
    let invalid = |reason| UnpackError::InvalidDigest {
        digest: digest.to_owned(),
        reason,
    };
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| invalid("only sha256 diff_ids are supported"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(invalid("expected 64 lowercase hex digits"));
    }
    Ok(digest.to_owned())
}

fn budget_error(which: Exceeded, opts: &UnpackOptions) -> UnpackError {
    match which {
        Exceeded::TotalBytes => UnpackError::Budget {
            what: "uncompressed bytes",
            limit: opts.budgets.max_total_bytes,
        },
        Exceeded::HeaderBytes => UnpackError::Budget {
            what: "header bytes for one entry (PAX / GNU long names)",
            limit: opts.budgets.max_header_bytes,
        },
    }
}

fn stream_error(state: &MeterState, opts: &UnpackOptions, source: io::Error) -> UnpackError {
    match state.exceeded() {
        Some(which) => budget_error(which, opts),
        None => UnpackError::Read { source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parsing() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(parse_sha256(&good).unwrap(), good);
        for bad in [
            "sha256:",
            "sha512:00",
            "md5:abc",
            &format!("sha256:{}", "AB".repeat(32)),
            &format!("sha256:{}", "ab".repeat(31)),
            &format!("sha256:{}/../x", "ab".repeat(30)),
        ] {
            assert!(parse_sha256(bad).is_err(), "{bad}");
        }
    }
}
