//! Repo overlays: `PROJECT/.ags/config.toml`, merged over the user's config once the user
//! has approved its exact content.
//!
//! **Merge.** `[sandbox]` keys set in the overlay win; `[registries]` merges recursively
//! (overlay wins for scalars and arrays); the root arrays `[[mount]]`, `[[agent_mount]]`,
//! `[[tool]]` and `[[secret]]` append. The merged config is validated as a whole, and every
//! error names the file (user config or overlay) and line the offending value came from.
//!
//! **Overlays are untrusted.** A repo is code written by someone else, and approving a
//! prompt is easy, so an overlay may not do anything that reaches host secrets or host code
//! by itself. Rejected in an overlay, with an error naming the line:
//! - `[[secret]]` with `command` (it would run a program on the host);
//! - `[sandbox].containerfile`, `[[mount]].host` or `[[tool]].path` outside the repo
//!   (checked lexically and again after resolving symlinks), so an overlay can neither point
//!   the build at, nor mount, `~/.ssh` or any other host file;
//! - `[[agent_mount]]` (agent homes hold the user's logins: the user's own config decides);
//! - `[sandbox].network = "host"` (it would expose host loopback services);
//! - `[build]` (builds read the user's own config only, so it would be ignored).
//!
//! `[[secret]]` with `from_env`/`secret_store` and `passthrough_env` stay allowed: they only
//! reach the sandbox in normal runs, and the user approves them as part of the content.
//!
//! **Trust** is keyed by the SHA-256 of the canonical repo path and the overlay's bytes
//! ([`overlay_hash`]) and stored in `CONFIG_DIR/trusted-overlays.json`, written atomically
//! under a lock. Any change to the overlay (or moving the repo) needs a new approval. The
//! bytes that were hashed are the bytes that get parsed ([`OverlayFile::text`]), so a file
//! swapped after the check is never applied.
//!
//! **Lockdown** runs never apply an overlay: the caller simply uses
//! [`crate::config::load_config`] without calling into this module.
//!
//! ```no_run
//! # use std::path::Path;
//! # use ags_agent::config::{EnvMap, HostContext};
//! # use ags_agent::overlay::{self, OverlayStatus};
//! # fn ask(_: &str) -> bool { false }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let env = EnvMap::new();
//! let host = HostContext { home: Path::new("/home/u"), env: &env };
//! let (cfg_dir, repo) = (Path::new("/home/u/.config/ags"), Path::new("/home/u/src/p"));
//! let cfg_file = cfg_dir.join("config.toml");
//! let config = match overlay::overlay_status(cfg_dir, repo)? {
//!     OverlayStatus::Absent => overlay::load_with_overlay(&cfg_file, None, host)?,
//!     OverlayStatus::Trusted(o) => overlay::load_with_overlay(&cfg_file, Some(&o), host)?,
//!     OverlayStatus::Untrusted { hash, overlay } => {
//!         if ask(&overlay.text) {
//!             overlay::trust(cfg_dir, &overlay.repo_root, &hash)?;
//!             overlay::load_with_overlay(&cfg_file, Some(&overlay), host)?
//!         } else {
//!             overlay::load_with_overlay(&cfg_file, None, host)?
//!         }
//!     }
//! };
//! # let _ = config; Ok(()) }
//! ```

use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::config::{
    self, Config, ConfigError, HostContext, Location, MAX_CONFIG_SIZE, Network, Source, SourceKind,
    display_path, normalize_lexically,
};

/// The overlay's path relative to the repo root.
pub const OVERLAY_PATH: &str = ".ags/config.toml";

/// The trust store's file name inside the config directory.
pub const TRUST_FILE: &str = "trusted-overlays.json";

/// Errors of reading overlays and the trust store.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    /// The merged config is invalid (the error names the file and line).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The overlay (or its `.ags` directory) is a symlink or not a regular file.
    #[error("{}: repo overlay must be a regular file inside the repo (symlinks are refused)", path.display())]
    NotRegular {
        /// The path.
        path: PathBuf,
    },
    /// The overlay is larger than [`MAX_CONFIG_SIZE`].
    #[error("{}: repo overlay is too large ({size} bytes, the limit is {MAX_CONFIG_SIZE})", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The overlay asks for something overlays may not do.
    #[error("{location}: {message}")]
    Forbidden {
        /// Where.
        location: Location,
        /// What.
        message: String,
    },
    /// The trust store is corrupt.
    #[error("{}: trust store is corrupt, delete it to re-approve overlays", path.display())]
    CorruptTrustStore {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// `trust` was given something that is not a hash from [`overlay_status`].
    #[error("not an overlay hash: {0:?}")]
    BadHash(String),
}

/// An overlay as read from disk: the exact bytes that were hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayFile {
    /// Canonical repo root.
    pub repo_root: PathBuf,
    /// `repo_root/.ags/config.toml`.
    pub path: PathBuf,
    /// The content (what the user approves and what is parsed).
    pub text: String,
    /// [`overlay_hash`] of the content.
    pub hash: String,
}

/// Whether a repo has an overlay and whether the user approved its current content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverlayStatus {
    /// No `.ags/config.toml`.
    Absent,
    /// Approved before, with exactly this content.
    Trusted(OverlayFile),
    /// New or changed since approval: ask the user, then call [`trust`] with `hash`.
    Untrusted {
        /// The value to pass to [`trust`].
        hash: String,
        /// The overlay, to show to the user.
        overlay: OverlayFile,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustStore {
    version: u32,
    trusted: Vec<TrustEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustEntry {
    repo: PathBuf,
    sha256: String,
}

/// The trust key of an overlay: SHA-256 over a domain tag, the canonical repo path and the
/// content, hex encoded.
pub fn overlay_hash(canonical_repo: &Path, content: &[u8]) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    let mut h = Sha256::new();
    h.update(b"ags-overlay-v1\0");
    h.update(canonical_repo.as_os_str().as_bytes());
    h.update(b"\0");
    h.update(content);
    hex::encode(h.finalize())
}

/// Reads `repo_root/.ags/config.toml` if it exists. Symlinks (for `.ags` or the file) and
/// non-regular files are refused, so an overlay cannot make ags read a file outside the repo.
pub fn read_overlay(repo_root: &Path) -> Result<Option<OverlayFile>, OverlayError> {
    let repo_root = std::fs::canonicalize(repo_root).map_err(|source| OverlayError::Read {
        path: repo_root.to_path_buf(),
        source,
    })?;
    let dir = repo_root.join(".ags");
    match std::fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(OverlayError::Read { path: dir, source }),
        Ok(m) if !m.is_dir() => return Err(OverlayError::NotRegular { path: dir }),
        Ok(_) => {}
    }
    let path = repo_root.join(OVERLAY_PATH);
    // O_NOFOLLOW: a symlinked config.toml fails with ELOOP instead of being followed.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path);
    let file = match file {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(OverlayError::NotRegular { path });
        }
        Err(source) => return Err(OverlayError::Read { path, source }),
        Ok(f) => f,
    };
    let meta = file.metadata().map_err(|source| OverlayError::Read {
        path: path.clone(),
        source,
    })?;
    if !meta.is_file() {
        return Err(OverlayError::NotRegular { path });
    }
    if meta.len() > MAX_CONFIG_SIZE {
        return Err(OverlayError::TooLarge {
            path,
            size: meta.len(),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| OverlayError::Read {
            path: path.clone(),
            source,
        })?;
    let text = String::from_utf8(bytes).map_err(|e| OverlayError::Read {
        path: path.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    let hash = overlay_hash(&repo_root, text.as_bytes());
    Ok(Some(OverlayFile {
        repo_root,
        path,
        text,
        hash,
    }))
}

fn trust_path(config_dir: &Path) -> PathBuf {
    config_dir.join(TRUST_FILE)
}

fn read_store(path: &Path) -> Result<TrustStore, OverlayError> {
    match std::fs::read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrustStore {
            version: 1,
            trusted: Vec::new(),
        }),
        Err(source) => Err(OverlayError::Read {
            path: path.to_path_buf(),
            source,
        }),
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|source| OverlayError::CorruptTrustStore {
                path: path.to_path_buf(),
                source,
            })
        }
    }
}

/// Reads the overlay of `repo_root` and checks it against the trust store in `config_dir`.
pub fn overlay_status(config_dir: &Path, repo_root: &Path) -> Result<OverlayStatus, OverlayError> {
    let Some(overlay) = read_overlay(repo_root)? else {
        return Ok(OverlayStatus::Absent);
    };
    let store = read_store(&trust_path(config_dir))?;
    if store.trusted.iter().any(|e| e.sha256 == overlay.hash) {
        Ok(OverlayStatus::Trusted(overlay))
    } else {
        Ok(OverlayStatus::Untrusted {
            hash: overlay.hash.clone(),
            overlay,
        })
    }
}

/// Records the user's approval of the overlay content with `hash` (from
/// [`OverlayStatus::Untrusted`]) for `repo_root`. Earlier approvals for the same repo are
/// dropped: going back to an old version needs a new approval too. The store is rewritten
/// atomically under an exclusive lock, so concurrent runs do not lose approvals.
pub fn trust(config_dir: &Path, repo_root: &Path, hash: &str) -> Result<(), OverlayError> {
    use std::os::unix::fs::DirBuilderExt as _;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(OverlayError::BadHash(hash.to_owned()));
    }
    let repo = std::fs::canonicalize(repo_root).map_err(|source| OverlayError::Read {
        path: repo_root.to_path_buf(),
        source,
    })?;
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OverlayError::Write { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(config_dir)
        .map_err(write_err(config_dir))?;
    let lock_path = config_dir.join(".trusted-overlays.lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(write_err(&lock_path))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| write_err(&lock_path)(std::io::Error::from(errno)))?;

    let path = trust_path(config_dir);
    let mut store = read_store(&path)?;
    store.version = 1;
    store.trusted.retain(|e| e.repo != repo);
    store.trusted.push(TrustEntry {
        repo,
        sha256: hash.to_ascii_lowercase(),
    });
    let json = serde_json::to_vec_pretty(&store).expect("trust store serializes");
    let mut tmp = tempfile::Builder::new()
        .prefix(".trusted-overlays.")
        .tempfile_in(config_dir)
        .map_err(write_err(config_dir))?;
    tmp.write_all(&json)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(write_err(tmp.path()))?;
    tmp.persist(&path).map_err(|e| write_err(&path)(e.error))?;
    Ok(())
}

/// Loads the user's config at `config_path` and, if given, merges the overlay over it,
/// enforcing the overlay rules. An overlay that is the user's config file itself is ignored.
pub fn load_with_overlay(
    config_path: &Path,
    overlay: Option<&OverlayFile>,
    host: HostContext<'_>,
) -> Result<Config, OverlayError> {
    let text = config::read_config_text(config_path)?;
    parse_with_overlay(config_path, &text, overlay, host)
}

/// [`load_with_overlay`] with the user's config given as text (written at `config_path`,
/// which is used for messages and relative paths only). `ags config show` uses it with
/// [`config::DEFAULT_CONFIG`] before the file exists.
pub fn parse_with_overlay(
    config_path: &Path,
    text: &str,
    overlay: Option<&OverlayFile>,
    host: HostContext<'_>,
) -> Result<Config, OverlayError> {
    let base_source = Source {
        path: config_path,
        display: display_path(config_path, host.home),
        text,
        kind: SourceKind::Base,
    };
    let base = config::parse_layer(&base_source, host)?;
    let Some(overlay) = overlay else {
        base.validate_merged()?;
        return Ok(base);
    };
    if let (Ok(a), Ok(b)) = (
        std::fs::canonicalize(config_path),
        std::fs::canonicalize(&overlay.path),
    ) && a == b
    {
        base.validate_merged()?;
        return Ok(base);
    }
    let over = parse_overlay(overlay, host)?;
    let merged = base.merge(over);
    merged.validate_merged()?;
    Ok(merged)
}

/// Parses an overlay on its own and applies the overlay rules.
pub fn parse_overlay(overlay: &OverlayFile, host: HostContext<'_>) -> Result<Config, OverlayError> {
    let source = Source {
        path: &overlay.path,
        display: display_path(&overlay.path, host.home),
        text: &overlay.text,
        kind: SourceKind::Overlay {
            repo_root: overlay.repo_root.clone(),
        },
    };
    let layer = config::parse_layer(&source, host)?;
    check_overlay_rules(&layer, &overlay.repo_root)?;
    Ok(layer)
}

fn forbidden(location: &Location, message: String) -> OverlayError {
    OverlayError::Forbidden {
        location: location.clone(),
        message,
    }
}

fn check_overlay_rules(layer: &Config, repo: &Path) -> Result<(), OverlayError> {
    if let Some(cf) = &layer.sandbox.containerfile
        && !is_inside(&cf.value, repo)
    {
        return Err(forbidden(
            &cf.location,
            format!(
                "`containerfile` in a repo overlay must be inside the repo ({}), not {}",
                repo.display(),
                cf.value.display()
            ),
        ));
    }
    if let Some(n) = &layer.sandbox.network
        && n.value == Network::Host
    {
        return Err(forbidden(
            &n.location,
            "`network = \"host\"` is not allowed in a repo overlay".to_owned(),
        ));
    }
    for m in &layer.mounts {
        if !is_inside(&m.host, repo) {
            return Err(forbidden(
                &m.location,
                format!(
                    "[[mount]] in a repo overlay must mount a path inside the repo, not {}",
                    m.host.display()
                ),
            ));
        }
    }
    for t in &layer.tools {
        if !is_inside(&t.path, repo) {
            return Err(forbidden(
                &t.location,
                format!(
                    "[[tool]] `{}` in a repo overlay must be inside the repo, not {}",
                    t.name,
                    t.path.display()
                ),
            ));
        }
    }
    if let Some(s) = &layer.build.snapshots {
        return Err(forbidden(
            &s.location,
            "[build] is not allowed in a repo overlay (builds use your own config only)".to_owned(),
        ));
    }
    if let Some(m) = layer.agent_mounts.first() {
        return Err(forbidden(
            &m.location,
            "[[agent_mount]] is not allowed in a repo overlay (agent homes are set in your own config)"
                .to_owned(),
        ));
    }
    for s in &layer.secrets {
        if s.command.is_some() {
            return Err(forbidden(
                &s.location,
                format!(
                    "[[secret]] `{}` uses `command`, which is not allowed in a repo overlay (it would run a program on the host)",
                    s.env
                ),
            ));
        }
    }
    Ok(())
}

/// Whether `path` stays inside `root` (canonical) both lexically and once the existing
/// part of it is resolved (so a symlink inside the repo pointing out of it does not pass).
pub(crate) fn is_inside(path: &Path, root: &Path) -> bool {
    let lexical = normalize_lexically(path);
    if !lexical.starts_with(root) {
        return false;
    }
    // Resolve the longest existing prefix; the rest does not exist and cannot be a link.
    let mut existing = lexical.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            let full = rest.iter().rev().fold(real, |acc: PathBuf, c| acc.join(c));
            return full.starts_with(root);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests;
