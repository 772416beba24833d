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
use std::io::Write as _;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::profile::AgentKind;

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
    /// The files this config was read from, in merge order.
    pub files: Vec<PathBuf>,
}

// ---------------------------------------------------------------------------------------
// Raw schema (what serde sees).

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    sandbox: Option<RawSandbox>,
    #[serde(default)]
    mount: Vec<Spanned<RawMount>>,
    #[serde(default)]
    agent_mount: Vec<Spanned<RawAgentMount>>,
    #[serde(default)]
    tool: Vec<Spanned<RawTool>>,
    #[serde(default)]
    secret: Vec<Spanned<RawSecret>>,
    registries: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSandbox {
    image: Option<Spanned<String>>,
    containerfile: Option<Spanned<String>>,
    network: Option<Spanned<Network>>,
    memory: Option<Spanned<String>>,
    pids: Option<Spanned<i64>>,
    cpus: Option<Spanned<f64>>,
    passthrough_env: Option<Vec<Spanned<String>>>,
    tmux: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMount {
    host: Spanned<String>,
    container: Spanned<String>,
    mode: Option<MountMode>,
    kind: Option<MountKind>,
    #[serde(default)]
    create: bool,
    #[serde(default)]
    optional: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgentMount {
    agent: Spanned<String>,
    host: Spanned<String>,
    container: Spanned<String>,
    kind: Option<MountKind>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTool {
    name: Spanned<String>,
    path: Spanned<String>,
    container_path: Spanned<String>,
    #[serde(default)]
    optional: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    env: Spanned<String>,
    from_env: Option<Spanned<String>>,
    secret_store: Option<Spanned<BTreeMap<String, String>>>,
    command: Option<Spanned<Vec<String>>>,
    timeout_secs: Option<Spanned<i64>>,
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
// Parsing one file into a layer.

fn syntax_error(source: &Source<'_>, err: &toml::de::Error) -> ConfigError {
    let offset = err.span().map_or(0, |s| s.start);
    let mut message = err.message().trim().to_owned();
    if let Some(table) = source.table_before(offset) {
        // Put the table right after the key the message is about: "unknown field `x` in
        // [sandbox], expected one of ...".
        let keyed = ["unknown field `", "missing field `", "duplicate field `"];
        let key_end = keyed
            .iter()
            .find(|p| message.starts_with(*p))
            .and_then(|p| message[p.len()..].find('`').map(|i| p.len() + i + 1));
        match key_end {
            Some(end) => message.insert_str(end, &format!(" in {table}")),
            None => message.push_str(&format!(" (in {table})")),
        }
    }
    ConfigError::Syntax {
        location: source.location(offset),
        message,
    }
}

fn invalid(location: Location, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        location,
        message: message.into(),
    }
}

pub(crate) fn parse_layer(
    source: &Source<'_>,
    host: HostContext<'_>,
) -> Result<Config, ConfigError> {
    let raw: RawFile = toml::from_str(source.text).map_err(|e| syntax_error(source, &e))?;
    let mut config = Config {
        files: vec![source.path.to_path_buf()],
        registries: raw.registries.unwrap_or_default(),
        ..Config::default()
    };
    if let Some(sb) = raw.sandbox {
        config.sandbox = convert_sandbox(source, host, sb)?;
    }
    for m in raw.mount {
        let location = source.loc(&m.span());
        let m = m.into_inner();
        config.mounts.push(MountConfig {
            host: expand_at(source, host, &m.host, "host")?,
            container: container_path_at(source, &m.container, "container")?,
            mode: m.mode.unwrap_or(MountMode::Ro),
            kind: m.kind.unwrap_or(MountKind::Dir),
            create: m.create,
            optional: m.optional,
            location,
        });
    }
    for m in raw.agent_mount {
        let location = source.loc(&m.span());
        let m = m.into_inner();
        let agent = AgentKind::from_name(m.agent.get_ref()).ok_or_else(|| {
            invalid(
                source.loc(&m.agent.span()),
                format!(
                    "unknown agent `{}` in `agent` of [[agent_mount]], expected one of codex, claude, gemini, opencode, pi, shell",
                    m.agent.get_ref()
                ),
            )
        })?;
        config.agent_mounts.push(AgentMountConfig {
            agent,
            host: expand_at(source, host, &m.host, "host")?,
            container: container_path_at(source, &m.container, "container")?,
            kind: m.kind.unwrap_or(MountKind::Dir),
            location,
        });
    }
    for t in raw.tool {
        let location = source.loc(&t.span());
        let t = t.into_inner();
        if t.name.get_ref().trim().is_empty() {
            return Err(invalid(
                source.loc(&t.name.span()),
                "`name` of [[tool]] must not be empty",
            ));
        }
        config.tools.push(ToolConfig {
            name: t.name.get_ref().clone(),
            path: expand_at(source, host, &t.path, "path")?,
            container_path: container_path_at(source, &t.container_path, "container_path")?,
            optional: t.optional,
            location,
        });
    }
    for s in raw.secret {
        config.secrets.push(convert_secret(source, host, s)?);
    }
    Ok(config)
}

fn convert_sandbox(
    source: &Source<'_>,
    host: HostContext<'_>,
    sb: RawSandbox,
) -> Result<SandboxConfig, ConfigError> {
    let at = |s: &Range<usize>| source.loc(s);
    let mut out = SandboxConfig::default();
    if let Some(image) = sb.image {
        let v = image.get_ref();
        if v.is_empty() || v.chars().any(char::is_whitespace) {
            return Err(invalid(
                at(&image.span()),
                format!("`image` in [sandbox] is not an image reference: {v:?}"),
            ));
        }
        out.image = Some(Located {
            value: v.clone(),
            location: at(&image.span()),
        });
    }
    if let Some(cf) = sb.containerfile {
        out.containerfile = Some(Located {
            value: expand_at(source, host, &cf, "containerfile")?,
            location: at(&cf.span()),
        });
    }
    if let Some(n) = sb.network {
        out.network = Some(Located {
            value: *n.get_ref(),
            location: at(&n.span()),
        });
    }
    if let Some(mem) = sb.memory {
        let bytes = parse_size(mem.get_ref()).ok_or_else(|| {
            invalid(
                at(&mem.span()),
                format!(
                    "`memory` in [sandbox] must be a size such as \"512m\" or \"8g\" (at least 16m), not {:?}",
                    mem.get_ref()
                ),
            )
        })?;
        out.memory_bytes = Some(Located {
            value: bytes,
            location: at(&mem.span()),
        });
    }
    if let Some(p) = sb.pids {
        let v = *p.get_ref();
        if !(16..=1_000_000).contains(&v) {
            return Err(invalid(
                at(&p.span()),
                format!("`pids` in [sandbox] must be between 16 and 1000000, not {v}"),
            ));
        }
        out.pids = Some(Located {
            value: v as u64,
            location: at(&p.span()),
        });
    }
    if let Some(c) = sb.cpus {
        let v = *c.get_ref();
        if !(v.is_finite() && v > 0.0 && v <= 1024.0) {
            return Err(invalid(
                at(&c.span()),
                format!("`cpus` in [sandbox] must be a number between 0 and 1024, not {v}"),
            ));
        }
        out.cpus = Some(Located {
            value: v,
            location: at(&c.span()),
        });
    }
    for name in sb.passthrough_env.unwrap_or_default() {
        check_env_name(source, &name, "passthrough_env", "[sandbox]")?;
        out.passthrough_env.push(Located {
            value: name.get_ref().clone(),
            location: at(&name.span()),
        });
    }
    if let Some(t) = sb.tmux {
        out.tmux = Some(Located {
            value: *t.get_ref(),
            location: at(&t.span()),
        });
    }
    Ok(out)
}

fn convert_secret(
    source: &Source<'_>,
    host: HostContext<'_>,
    s: Spanned<RawSecret>,
) -> Result<SecretConfig, ConfigError> {
    let location = source.loc(&s.span());
    let s = s.into_inner();
    check_env_name(source, &s.env, "env", "[[secret]]")?;
    if s.from_env.is_none() && s.secret_store.is_none() && s.command.is_none() {
        return Err(invalid(
            location,
            format!(
                "[[secret]] `{}` needs at least one of `from_env`, `secret_store`, `command`",
                s.env.get_ref()
            ),
        ));
    }
    if let Some(from) = &s.from_env
        && !is_env_name(from.get_ref())
    {
        return Err(invalid(
            source.loc(&from.span()),
            format!(
                "`from_env` in [[secret]] is not a variable name: {:?}",
                from.get_ref()
            ),
        ));
    }
    if let Some(store) = &s.secret_store
        && store.get_ref().is_empty()
    {
        return Err(invalid(
            source.loc(&store.span()),
            "`secret_store` in [[secret]] needs at least one attribute",
        ));
    }
    let command = match s.command {
        None => None,
        Some(cmd) => {
            let mut argv = cmd.get_ref().clone();
            let Some(program) = argv.first() else {
                return Err(invalid(
                    source.loc(&cmd.span()),
                    "`command` in [[secret]] must not be empty",
                ));
            };
            let program = expand_path(program, host).map_err(|m| {
                invalid(source.loc(&cmd.span()), format!("`command` in [[secret]]: {m}"))
            })?;
            if !program.is_absolute() {
                return Err(invalid(
                    source.loc(&cmd.span()),
                    format!(
                        "`command` in [[secret]] must start with an absolute program path, not {:?}",
                        argv[0]
                    ),
                ));
            }
            argv[0] = program.to_string_lossy().into_owned();
            Some(argv)
        }
    };
    let timeout = match s.timeout_secs {
        None => DEFAULT_SECRET_TIMEOUT,
        Some(t) => {
            let v = *t.get_ref();
            if !(1..=300).contains(&v) {
                return Err(invalid(
                    source.loc(&t.span()),
                    format!("`timeout_secs` in [[secret]] must be between 1 and 300, not {v}"),
                ));
            }
            Duration::from_secs(v as u64)
        }
    };
    Ok(SecretConfig {
        env: s.env.get_ref().clone(),
        from_env: s.from_env.map(Spanned::into_inner),
        secret_store: s.secret_store.map(Spanned::into_inner),
        command,
        timeout,
        location,
    })
}

fn check_env_name(
    source: &Source<'_>,
    name: &Spanned<String>,
    key: &str,
    table: &str,
) -> Result<(), ConfigError> {
    let n = name.get_ref();
    if !is_env_name(n) {
        return Err(invalid(
            source.loc(&name.span()),
            format!("`{key}` in {table} is not a variable name: {n:?}"),
        ));
    }
    if RESERVED_ENV.contains(&n.as_str()) || n.starts_with("AGS_") {
        return Err(invalid(
            source.loc(&name.span()),
            format!("`{key}` in {table}: {n} is set by ags and cannot be configured"),
        ));
    }
    Ok(())
}

/// Whether `name` is a portable environment variable name (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn expand_at(
    source: &Source<'_>,
    host: HostContext<'_>,
    value: &Spanned<String>,
    key: &str,
) -> Result<PathBuf, ConfigError> {
    let expanded = expand_path(value.get_ref(), host)
        .map_err(|m| invalid(source.loc(&value.span()), format!("`{key}`: {m}")))?;
    Ok(if expanded.is_absolute() {
        expanded
    } else {
        source.base_dir().join(expanded)
    })
}

fn container_path_at(
    source: &Source<'_>,
    value: &Spanned<String>,
    key: &str,
) -> Result<PathBuf, ConfigError> {
    check_container_path(value.get_ref())
        .map_err(|m| invalid(source.loc(&value.span()), format!("`{key}`: {m}")))
}

/// Checks a container mount target: absolute, normalized (no `.`, `..` or empty
/// components), not `/` and not inside `/proc`, `/sys` or `/dev` (mounting over those would
/// undo the runtime's masking).
pub fn check_container_path(p: &str) -> Result<PathBuf, String> {
    if !p.starts_with('/') {
        return Err(format!("container path must be absolute: {p:?}"));
    }
    let parts: Vec<&str> = p[1..].split('/').collect();
    let trailing_slash = parts.len() > 1 && parts.last() == Some(&"");
    let body = if trailing_slash {
        &parts[..parts.len() - 1]
    } else {
        &parts[..]
    };
    if body.iter().any(|c| c.is_empty() || *c == "." || *c == "..") || p.contains('\0') {
        return Err(format!(
            "container path must be normalized (no `.`, `..` or `//`): {p:?}"
        ));
    }
    let path = PathBuf::from(p.trim_end_matches('/'));
    if path == Path::new("/") || path.as_os_str().is_empty() {
        return Err("container path must not be `/`".to_owned());
    }
    for sys in ["/proc", "/sys", "/dev"] {
        if path.starts_with(sys) {
            return Err(format!("container path must not be inside {sys}: {p:?}"));
        }
    }
    Ok(path)
}

/// Expands a leading `~` (or `~/`) to the home directory and `$VAR` / `${VAR}` from the
/// environment map. `$$` is a literal `$`; a `$` not followed by a name is kept. An undefined
/// variable or `~user` is an error (its message names the variable).
pub fn expand_path(input: &str, host: HostContext<'_>) -> Result<PathBuf, String> {
    let mut out = String::new();
    let rest = if input == "~" {
        out.push_str(&host.home.to_string_lossy());
        ""
    } else if let Some(r) = input.strip_prefix("~/") {
        out.push_str(&host.home.to_string_lossy());
        out.push('/');
        r
    } else if input.starts_with('~') {
        return Err(format!("`~user` paths are not supported: {input:?}"));
    } else {
        input
    };
    let mut chars = rest.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek().map(|&(_, c)| c) {
            Some('$') => {
                chars.next();
                out.push('$');
            }
            Some('{') => {
                chars.next();
                let mut name = String::new();
                let mut closed = false;
                for (_, c) in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed || !is_env_name(&name) {
                    return Err(format!("malformed `${{...}}` in {input:?}"));
                }
                out.push_str(lookup(&name, host, input)?);
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let mut name = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        name.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push_str(lookup(&name, host, input)?);
            }
            _ => out.push('$'),
        }
    }
    if out.is_empty() {
        return Err(format!("path is empty after expansion: {input:?}"));
    }
    Ok(PathBuf::from(out))
}

fn lookup<'a>(name: &str, host: HostContext<'a>, input: &str) -> Result<&'a str, String> {
    if name == "HOME" {
        return host
            .home
            .to_str()
            .ok_or_else(|| "home directory is not UTF-8".to_owned());
    }
    host.env
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| format!("undefined variable `{name}` in {input:?}"))
}

/// Parses `512m`, `8g`, `8GiB`, `1073741824` (binary units, case-insensitive); at least
/// 16 MiB.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s
        .strip_suffix("ib")
        .or_else(|| s.strip_suffix('b'))
        .unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: u64 = num.trim().parse().ok()?;
    let bytes = n.checked_mul(mult)?;
    (bytes >= 16 << 20).then_some(bytes)
}

/// Lexically normalizes an absolute path (`.` dropped, `..` pops); no filesystem access.
pub fn normalize_lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
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

// ---------------------------------------------------------------------------------------
// The default file.

/// The config written on first run. Every line but the agent homes is commented out, so the
/// built-in defaults apply until the user changes something.
pub const DEFAULT_CONFIG: &str = r#"# ags configuration. Unknown keys are errors; paths expand ~, $VAR and ${VAR}.
# A repo may add settings in PROJECT/.ags/config.toml, applied only after you approve its
# exact content (never in --lockdown runs).

[sandbox]
# image = "localhost/ags/agent:latest"
# containerfile = "~/.config/ags/Containerfile"
# network = "egress"          # egress | none | host
# memory = "8g"
# pids = 4096
# cpus = 4
# Host variables passed through in normal runs (never in --lockdown):
# passthrough_env = ["EDITOR", "VISUAL"]
# tmux = false

# Extra mounts (normal runs only):
# [[mount]]
# host = "~/src/shared-notes"
# container = "/home/dev/notes"
# mode = "ro"                 # ro | rw
# kind = "dir"                # dir | file
# create = false
# optional = false

# Host binaries mounted read-only (normal runs only):
# [[tool]]
# name = "jq"
# path = "/usr/bin/jq"
# container_path = "/usr/local/bin/jq"
# optional = true

# Secrets set as environment variables (normal runs only); the first source that
# yields a value wins: from_env, then secret_store (secret-tool lookup), then command.
# [[secret]]
# env = "GITHUB_TOKEN"
# from_env = "GITHUB_TOKEN"
# secret_store = { service = "github", user = "me" }
# command = ["/usr/bin/pass", "show", "github-token"]
# timeout_secs = 5

# Agent homes, mounted read-write in normal runs so logins persist. In --lockdown runs
# only the agent's login and settings files are copied into a throwaway home instead.
[[agent_mount]]
agent = "codex"
host = "~/.codex"
container = "/home/dev/.codex"

[[agent_mount]]
agent = "claude"
host = "~/.claude"
container = "/home/dev/.claude"

[[agent_mount]]
agent = "claude"
host = "~/.claude.json"
container = "/home/dev/.claude.json"
kind = "file"

[[agent_mount]]
agent = "gemini"
host = "~/.gemini"
container = "/home/dev/.gemini"

[[agent_mount]]
agent = "opencode"
host = "~/.config/opencode"
container = "/home/dev/.config/opencode"

[[agent_mount]]
agent = "opencode"
host = "~/.local/share/opencode"
container = "/home/dev/.local/share/opencode"

[[agent_mount]]
agent = "pi"
host = "~/.pi"
container = "/home/dev/.pi"
"#;

/// Writes [`DEFAULT_CONFIG`] to `path` if nothing exists there yet. The write is atomic (a
/// temporary file in the same directory, fsynced, then linked into place without replacing
/// anything), so an interrupted first run leaves either no file or a complete one. Missing
/// parent directories are created with mode 0700. Returns whether the file was written.
pub fn ensure_default_config(path: &Path) -> Result<bool, ConfigError> {
    use std::os::unix::fs::DirBuilderExt as _;
    if std::fs::symlink_metadata(path).is_ok() {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let write_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ConfigError::Write { path: p, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(write_err(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.toml.")
        .tempfile_in(dir)
        .map_err(write_err(dir))?;
    tmp.write_all(DEFAULT_CONFIG.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(write_err(tmp.path()))?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {}
        // Someone else (a concurrent first run) won the race: their file is as good.
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(write_err(path)(e.error)),
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
