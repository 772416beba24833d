//! Parsing one config file into a [`Config`] layer: the serde schema, then conversion with
//! locations, path expansion and per-value checks.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::*;
use crate::profile::AgentKind;

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
    images: Option<toml::Table>,
    build: Option<RawBuild>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    snapshots: Option<Spanned<Snapshots>>,
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

pub(super) fn invalid(location: Location, message: impl Into<String>) -> ConfigError {
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
        images: raw.images.unwrap_or_default(),
        ..Config::default()
    };
    if let Some(snapshots) = raw.build.and_then(|b| b.snapshots) {
        config.build.snapshots = Some(Located {
            value: *snapshots.get_ref(),
            location: source.loc(&snapshots.span()),
        });
    }
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
                invalid(
                    source.loc(&cmd.span()),
                    format!("`command` in [[secret]]: {m}"),
                )
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
