//! The user's config file, `~/.config/ags/config.toml`: schema, path expansion, validation
//! and the commented default written on first run.
//!
//! Parsing is strict (`deny_unknown_fields` everywhere) and every error names the file, the
//! line and column, and the key or table it is about, e.g.
//! `~/.config/ags/config.toml:12:1: unknown field `imagee` in [sandbox], expected one of ...`.
//! Values keep the [`Location`] they came from, so that checks done after a repo overlay has
//! been merged in (see [`crate::overlay`]) still point at the right file.
//!
//! Paths in the config expand `~`, `$VAR` and `${VAR}` from the environment map the caller
//! passes in (an undefined variable is an error, not a silent literal). A relative path is
//! taken relative to the directory of the file it is written in (for a repo overlay: the repo
//! root).
//!
//! `[registries]` is kept as an opaque [`toml::Table`]: the registry client crate
//! deserializes it. Since it is merged as plain TOML, errors in it cannot name the line.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::profile::AgentKind;

mod default;
mod parse;
mod paths;
mod render;

use parse::invalid;
pub(crate) use parse::parse_layer;

pub use default::{DEFAULT_CONFIG, ensure_default_config};
pub use paths::{check_container_path, expand_path, is_env_name, normalize_lexically, parse_size};
pub use render::format_size;

/// Environment variables as passed in by the binary (ags-agent never reads the process env).
pub type EnvMap = BTreeMap<String, String>;

/// Files larger than this are refused rather than parsed.
pub const MAX_CONFIG_SIZE: u64 = 1024 * 1024;

/// The image used when `[sandbox].image` is not set.
pub const DEFAULT_IMAGE: &str = "localhost/ags/agent:latest";

/// Process limit used when neither the config nor the command line sets one.
pub const DEFAULT_PIDS: u64 = 4096;

/// Timeout of a `[[secret]]` `command` when `timeout_secs` is not given.
pub const DEFAULT_SECRET_TIMEOUT: Duration = Duration::from_secs(5);

/// Names the config may not pass through or set as a secret: ags sets them itself.
pub const RESERVED_ENV: &[&str] = &["HOME", "USER", "AGS_SANDBOX", "AGS_LOCKDOWN", "AGS_AGENT"];

/// What the host side of the world looks like, for path expansion.
#[derive(Debug, Clone, Copy)]
pub struct HostContext<'a> {
    /// The user's home directory on the host.
    pub home: &'a Path,
    /// The host environment.
    pub env: &'a EnvMap,
}

/// Where a value was written: file, line and column (both 1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file as shown to the user (`~/...` when below the home directory).
    pub file: String,
    /// The file's real path.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A value together with the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub location: Location,
}

/// Errors of loading, validating and writing config files.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file or its directory could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_SIZE`].
    #[error("{}: config file is too large ({size} bytes, the limit is {MAX_CONFIG_SIZE})", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The TOML does not parse or does not match the schema.
    #[error("{location}: {message}")]
    Syntax {
        /// Where.
        location: Location,
        /// What, naming the key and table.
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("{location}: {message}")]
    Invalid {
        /// Where.
        location: Location,
        /// What, naming the key.
        message: String,
    },
}

impl ConfigError {
    /// The location the error points at, for parse and validation errors.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Syntax { location, .. } | ConfigError::Invalid { location, .. } => {
                Some(location)
            }
            _ => None,
        }
    }
}

/// `[sandbox].network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Outbound internet, host loopback and host services unreachable (the default).
    Egress,
    /// No network at all (loopback only).
    None,
    /// The host's network namespace. Refused in lockdown and in repo overlays.
    Host,
}

/// `[build].snapshots`: the kind of step snapshots `ags build` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Snapshots {
    /// Overlay snapshots where the kernel can mount overlayfs in a user namespace, full
    /// copies elsewhere (the default).
    Auto,
    /// Overlay snapshots only.
    Overlay,
    /// Full copies of the tree per step.
    Copy,
}

impl Snapshots {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Overlay => "overlay",
            Self::Copy => "copy",
        }
    }
}

/// `[build]`: how images are built (`ags build`, `ags update`). Only the user's own file
/// sets it; a repo overlay may not.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BuildConfig {
    /// Step snapshots ([`Snapshots::Auto`] when unset).
    pub snapshots: Option<Located<Snapshots>>,
}

/// `mode` of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountMode {
    /// Read-only.
    Ro,
    /// Read-write.
    Rw,
}

/// `kind` of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A directory.
    Dir,
    /// A single file.
    File,
}

/// `[sandbox]`. Every field is optional; unset fields take the documented defaults where
/// they are used.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SandboxConfig {
    /// Image reference to run ([`DEFAULT_IMAGE`] when unset).
    pub image: Option<Located<String>>,
    /// Containerfile to build the image from (the shipped one when unset).
    pub containerfile: Option<Located<PathBuf>>,
    /// Network mode ([`Network::Egress`] when unset).
    pub network: Option<Located<Network>>,
    /// Memory limit in bytes.
    pub memory_bytes: Option<Located<u64>>,
    /// Process limit ([`DEFAULT_PIDS`] when unset).
    pub pids: Option<Located<u64>>,
    /// CPU limit in CPUs.
    pub cpus: Option<Located<f64>>,
    /// Host variables passed through in normal (non-lockdown) runs when set on the host.
    pub passthrough_env: Vec<Located<String>>,
    /// Start the agent inside tmux by default.
    pub tmux: Option<Located<bool>>,
}

/// One `[[mount]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MountConfig {
    /// Host path (expanded).
    pub host: PathBuf,
    /// Absolute, normalized container path.
    pub container: PathBuf,
    /// Read-only (the default) or read-write.
    pub mode: MountMode,
    /// Directory (the default) or file.
    pub kind: MountKind,
    /// Create the host path (empty) when it is missing.
    pub create: bool,
    /// Skip the mount when the host path is missing.
    pub optional: bool,
    /// Where the entry was written.
    pub location: Location,
}

/// One `[[agent_mount]]`: mounted read-write for one agent, in normal runs only.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentMountConfig {
    /// The agent it applies to.
    pub agent: AgentKind,
    /// Host path (expanded).
    pub host: PathBuf,
    /// Absolute, normalized container path.
    pub container: PathBuf,
    /// Directory (the default) or file. A missing directory is created by
    /// [`Config::create_missing_sources`]; a missing file is skipped.
    pub kind: MountKind,
    /// Where the entry was written.
    pub location: Location,
}

/// One `[[tool]]`: a host binary mounted read-only as a file, in normal runs only.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolConfig {
    /// A name for messages.
    pub name: String,
    /// Host path of the binary (expanded).
    pub path: PathBuf,
    /// Absolute, normalized container path.
    pub container_path: PathBuf,
    /// Skip when the binary is missing.
    pub optional: bool,
    /// Where the entry was written.
    pub location: Location,
}

/// One `[[secret]]`: an environment variable set in normal runs from the first source that
/// yields a non-empty value, in this order: `from_env`, `secret_store`, `command`.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretConfig {
    /// The variable set in the sandbox.
    pub env: String,
    /// A host variable to copy.
    pub from_env: Option<String>,
    /// Attributes for `secret-tool lookup`.
    pub secret_store: Option<BTreeMap<String, String>>,
    /// An absolute program and its arguments; its stdout is the value.
    pub command: Option<Vec<String>>,
    /// Timeout of `command` and `secret-tool`.
    pub timeout: Duration,
    /// Where the entry was written.
    pub location: Location,
}

/// A parsed, validated config, possibly merged from the user's file and a repo overlay.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// `[sandbox]`.
    pub sandbox: SandboxConfig,
    /// `[[mount]]`, in file order (base first, then overlay).
    pub mounts: Vec<MountConfig>,
    /// `[[agent_mount]]`.
    pub agent_mounts: Vec<AgentMountConfig>,
    /// `[[tool]]`.
    pub tools: Vec<ToolConfig>,
    /// `[[secret]]`.
    pub secrets: Vec<SecretConfig>,
    /// `[registries]`, opaque here (deserialized by the registry crate).
    pub registries: toml::Table,
    /// `[images]` (unpack budgets), opaque here (deserialized by the binary).
    pub images: toml::Table,
    /// `[build]`.
    pub build: BuildConfig,
    /// The files this config was read from, in merge order.
    pub files: Vec<PathBuf>,
}

// ---------------------------------------------------------------------------------------
// Sources.

/// Which kind of file is being parsed: it decides what relative paths are relative to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceKind {
    /// The user's own file: relative paths are relative to its directory.
    Base,
    /// A repo overlay: relative paths are relative to the repo root.
    Overlay { repo_root: PathBuf },
}

pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub display: String,
    pub text: &'a str,
    pub kind: SourceKind,
}

impl Source<'_> {
    pub(crate) fn location(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        Location {
            file: self.display.clone(),
            path: self.path.to_path_buf(),
            line,
            col,
        }
    }

    fn loc(&self, span: &Range<usize>) -> Location {
        self.location(span.start)
    }

    fn base_dir(&self) -> PathBuf {
        match &self.kind {
            SourceKind::Base => self
                .path
                .parent()
                .map_or_else(|| PathBuf::from("/"), Path::to_path_buf),
            SourceKind::Overlay { repo_root } => repo_root.clone(),
        }
    }

    /// The innermost table header (`[sandbox]`, `[[mount]]`) written before `offset`.
    fn table_before(&self, offset: usize) -> Option<String> {
        let before = &self.text[..offset.min(self.text.len())];
        before.lines().rev().find_map(|line| {
            let line = line.split('#').next().unwrap_or("").trim();
            if !line.starts_with('[') || !line.ends_with(']') {
                return None;
            }
            let inner = line.trim_start_matches('[').trim_end_matches(']').trim();
            let plausible = !inner.is_empty()
                && inner
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.\"' ".contains(c));
            plausible.then(|| line.to_owned())
        })
    }
}

/// Shows `path` as `~/...` when it lies below `home`.
pub fn display_path(path: &Path, home: &Path) -> String {
    match path.strip_prefix(home) {
        Ok(rest) if !home.as_os_str().is_empty() && home != Path::new("/") => {
            if rest.as_os_str().is_empty() {
                "~".to_owned()
            } else {
                format!("~/{}", rest.display())
            }
        }
        _ => path.display().to_string(),
    }
}

/// Reads a config file, refusing anything but a regular file of sane size.
pub(crate) fn read_config_text(path: &Path) -> Result<String, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_file() {
        return Err(read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    if meta.len() > MAX_CONFIG_SIZE {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
        });
    }
    std::fs::read_to_string(path).map_err(read_err)
}

/// Loads and validates the user's config file.
pub fn load_config(path: &Path, host: HostContext<'_>) -> Result<Config, ConfigError> {
    let text = read_config_text(path)?;
    parse_config(path, &text, host)
}

/// Parses and validates config text as the user's own file at `path` (used for messages and
/// relative paths; the file is not read).
pub fn parse_config(path: &Path, text: &str, host: HostContext<'_>) -> Result<Config, ConfigError> {
    let source = Source {
        path,
        display: display_path(path, host.home),
        text,
        kind: SourceKind::Base,
    };
    let config = parse_layer(&source, host)?;
    config.validate_merged()?;
    Ok(config)
}

// ---------------------------------------------------------------------------------------
// Merge and whole-config checks.

fn merge_table(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_table(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

impl Config {
    /// Merges an overlay into this config: `[sandbox]` fields set in the overlay win,
    /// `[registries]` merges recursively (overlay wins for scalars and arrays), and the
    /// root arrays `mount`, `agent_mount`, `tool` and `secret` append.
    pub(crate) fn merge(mut self, over: Config) -> Config {
        let o = over.sandbox;
        let s = &mut self.sandbox;
        s.image = o.image.or(s.image.take());
        s.containerfile = o.containerfile.or(s.containerfile.take());
        s.network = o.network.or(s.network.take());
        s.memory_bytes = o.memory_bytes.or(s.memory_bytes.take());
        s.pids = o.pids.or(s.pids.take());
        s.cpus = o.cpus.or(s.cpus.take());
        if !o.passthrough_env.is_empty() {
            s.passthrough_env = o.passthrough_env;
        }
        s.tmux = o.tmux.or(s.tmux.take());
        self.mounts.extend(over.mounts);
        self.agent_mounts.extend(over.agent_mounts);
        self.tools.extend(over.tools);
        self.secrets.extend(over.secrets);
        merge_table(&mut self.registries, over.registries);
        merge_table(&mut self.images, over.images);
        self.build.snapshots = over.build.snapshots.or(self.build.snapshots.take());
        self.files.extend(over.files);
        self
    }

    /// Checks that need the whole (merged) config: no two mounts on one container path and
    /// no variable defined by two `[[secret]]`s. Errors point at the later entry.
    pub(crate) fn validate_merged(&self) -> Result<(), ConfigError> {
        let mut targets: BTreeMap<&Path, &Location> = BTreeMap::new();
        let shared = self
            .mounts
            .iter()
            .map(|m| (m.container.as_path(), &m.location))
            .chain(
                self.tools
                    .iter()
                    .map(|t| (t.container_path.as_path(), &t.location)),
            );
        for (target, loc) in shared {
            if let Some(first) = targets.insert(target, loc) {
                return Err(invalid(
                    loc.clone(),
                    format!(
                        "container path {} is already mounted by the entry at {first}",
                        target.display()
                    ),
                ));
            }
        }
        for agent in AgentKind::ALL {
            let mut per_agent = targets.clone();
            for m in self.agent_mounts.iter().filter(|m| m.agent == agent) {
                if let Some(first) = per_agent.insert(&m.container, &m.location) {
                    return Err(invalid(
                        m.location.clone(),
                        format!(
                            "container path {} is already mounted by the entry at {first}",
                            m.container.display()
                        ),
                    ));
                }
            }
        }
        let mut envs: BTreeMap<&str, &Location> = BTreeMap::new();
        for s in &self.secrets {
            if let Some(first) = envs.insert(&s.env, &s.location) {
                return Err(invalid(
                    s.location.clone(),
                    format!("[[secret]] `{}` is already defined at {first}", s.env),
                ));
            }
        }
        Ok(())
    }

    /// The image to run.
    pub fn image(&self) -> &str {
        self.sandbox
            .image
            .as_ref()
            .map_or(DEFAULT_IMAGE, |i| i.value.as_str())
    }

    /// Creates the host paths that the config asks to create: `[[mount]]` entries with
    /// `create = true` (an empty directory, or an empty file for `kind = "file"`) and missing
    /// `[[agent_mount]]` directories of `agent` (mode 0700). Returns what was created. Call it
    /// before building a normal-mode run plan, which only reads the filesystem.
    pub fn create_missing_sources(&self, agent: AgentKind) -> Result<Vec<PathBuf>, ConfigError> {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        let mut created = Vec::new();
        let wanted = self
            .mounts
            .iter()
            .filter(|m| m.create)
            .map(|m| (&m.host, m.kind))
            .chain(
                self.agent_mounts
                    .iter()
                    .filter(|m| m.agent == agent && m.kind == MountKind::Dir)
                    .map(|m| (&m.host, m.kind)),
            );
        for (path, kind) in wanted {
            if std::fs::symlink_metadata(path).is_ok() {
                continue;
            }
            let write_err = |source| ConfigError::Write {
                path: path.clone(),
                source,
            };
            match kind {
                MountKind::Dir => std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(path)
                    .map_err(write_err)?,
                MountKind::File => {
                    if let Some(parent) = path.parent() {
                        std::fs::DirBuilder::new()
                            .recursive(true)
                            .mode(0o700)
                            .create(parent)
                            .map_err(write_err)?;
                    }
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(path)
                        .map_err(write_err)?;
                }
            }
            created.push(path.clone());
        }
        Ok(created)
    }
}

#[cfg(test)]
mod tests;
