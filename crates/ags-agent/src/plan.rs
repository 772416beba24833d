//! The run plan: everything the runtime needs to start one agent, computed in one place
//! from resolved settings. [`build_plan`] reads the filesystem (to canonicalize and check
//! paths) but never writes it, runs nothing and reads no process state.
//!
//! What ends up in the sandbox, deny by default:
//!
//! | | normal | lockdown |
//! |---|---|---|
//! | workspace (rw, same path; workdir = the starting directory) | yes | yes |
//! | git dirs outside the workspace (rw) | yes | yes |
//! | `-d` directories (rw, same path) | yes | yes |
//! | `[[agent_mount]]` of the agent, `[[mount]]`, `[[tool]]` | yes | no |
//! | staged home ([`crate::staging`]) | no | yes |
//! | git dirs pinned, `.git/hooks`, `.git/config`... read-only | no | yes |
//! | env `TERM COLORTERM LANG HOME AGS_SANDBOX AGS_AGENT` | yes | yes |
//! | env `passthrough_env`, secrets | yes | no |
//! | env `AGS_LOCKDOWN=1` | no | yes |
//!
//! Host secrets are kept out of reach even by mistake: the workspace and `-d` directories
//! may not be `/`, the home directory or any parent of it, nor be or contain `~/.ssh`,
//! `~/.aws`, `~/.gnupg`, `~/.config/gh`, `~/.docker`, `~/.kube`, `~/.password-store`,
//! `~/.local/share/keyrings` or ags's own config dir `~/.config/ags` (which an agent could
//! otherwise use to approve overlays). No SSH agent socket is ever planned.

use std::path::{Path, PathBuf};

use crate::config::{Config, DEFAULT_PIDS, EnvMap, Location, MountKind, MountMode, Network};
use crate::profile::{AgentProfile, CONTAINER_HOME};
use crate::secrets::SecretValue;
use crate::staging::StagedHome;
use crate::workspace::{ProtectedPath, Workspace};

/// Home-relative directories that never become a workspace or `-d` directory, nor a part
/// of one.
pub const SENSITIVE_HOME_DIRS: &[&str] = &[
    ".ssh",
    ".aws",
    ".gnupg",
    ".config/gh",
    ".docker",
    ".kube",
    ".password-store",
    ".local/share/keyrings",
    ".config/ags",
];

/// Errors of building a plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A `-d` directory cannot be resolved.
    #[error("--add-dir {}: cannot resolve", path.display())]
    AddDir {
        /// The path as given.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A `-d` path is not a directory.
    #[error("--add-dir {}: not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The workspace or a `-d` directory would expose host secrets.
    #[error("refusing to mount {} into the sandbox: {reason}", path.display())]
    Sensitive {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A configured host path is missing.
    #[error("{location}: {} does not exist", path.display())]
    MissingSource {
        /// The host path.
        path: PathBuf,
        /// Where it was configured.
        location: Location,
    },
    /// A configured host path is a directory where a file was expected, or the reverse.
    #[error("{location}: {} is not a {expected}", path.display())]
    WrongKind {
        /// The host path.
        path: PathBuf,
        /// Where it was configured.
        location: Location,
        /// `file` or `directory`.
        expected: &'static str,
    },
    /// Two mounts target the same container path.
    #[error("two mounts target {}: {first} and {second}", path.display())]
    DuplicateTarget {
        /// The container path.
        path: PathBuf,
        /// The first mount's origin.
        first: String,
        /// The second mount's origin.
        second: String,
    },
    /// `network = "host"` in lockdown.
    #[error("the host network cannot be used with --lockdown")]
    HostNetworkInLockdown,
    /// Lockdown without a staged home for an agent that has one.
    #[error("lockdown run of {agent} needs a staged home")]
    MissingStagedHome {
        /// The agent.
        agent: &'static str,
    },
    /// A path to protect in lockdown is missing (see
    /// [`Workspace::prepare_lockdown`](crate::workspace::Workspace::prepare_lockdown)).
    #[error("{} must exist to be made read-only in lockdown", path.display())]
    MissingProtectedPath {
        /// The path.
        path: PathBuf,
    },
}

/// Why a mount is in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOrigin {
    /// The workspace.
    Workspace,
    /// A git directory outside the workspace.
    GitDir,
    /// A git directory bound onto itself so it cannot be renamed (lockdown).
    GitPin,
    /// A `-d` directory.
    AddDir,
    /// The staged lockdown home.
    StagedHome,
    /// An `[[agent_mount]]`.
    AgentMount(Location),
    /// A `[[mount]]`.
    ConfigMount(Location),
    /// A `[[tool]]`.
    Tool(Location),
}

impl std::fmt::Display for MountOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MountOrigin::Workspace => f.write_str("the workspace"),
            MountOrigin::GitDir => f.write_str("a git directory"),
            MountOrigin::GitPin => f.write_str("a pinned git directory"),
            MountOrigin::AddDir => f.write_str("--add-dir"),
            MountOrigin::StagedHome => f.write_str("the staged home"),
            MountOrigin::AgentMount(l) => write!(f, "[[agent_mount]] at {l}"),
            MountOrigin::ConfigMount(l) => write!(f, "[[mount]] at {l}"),
            MountOrigin::Tool(l) => write!(f, "[[tool]] at {l}"),
        }
    }
}

/// One bind mount, applied in plan order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanMount {
    /// Host path.
    pub host: PathBuf,
    /// Container path.
    pub container: PathBuf,
    /// Read-only or read-write.
    pub mode: MountMode,
    /// Directory or file.
    pub kind: MountKind,
    /// Why it is there.
    pub origin: MountOrigin,
}

/// Resource limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Memory limit in bytes (`None`: the runtime's default).
    pub memory_bytes: Option<u64>,
    /// Process limit.
    pub pids: u64,
    /// CPU limit (`None`: no limit).
    pub cpus: Option<f64>,
}

/// Command-line overrides of the configured limits.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LimitOverrides {
    /// `--memory`.
    pub memory_bytes: Option<u64>,
    /// `--pids`.
    pub pids: Option<u64>,
    /// `--cpus`.
    pub cpus: Option<f64>,
}

/// The resolved settings a plan is built from.
#[derive(Debug, Clone, Copy)]
pub struct PlanInputs<'a> {
    /// The agent.
    pub profile: &'static AgentProfile,
    /// `--lockdown`.
    pub lockdown: bool,
    /// From [`crate::workspace::find_workspace`].
    pub workspace: &'a Workspace,
    /// `-d` directories as given (canonicalized and deduplicated here).
    pub extra_dirs: &'a [PathBuf],
    /// The merged config (in lockdown: the user's config only).
    pub config: &'a Config,
    /// The host environment.
    pub host_env: &'a EnvMap,
    /// The host home directory.
    pub host_home: &'a Path,
    /// `--defaults`.
    pub defaults: bool,
    /// `--tmux`.
    pub tmux: bool,
    /// Arguments after `--`.
    pub agent_args: &'a [String],
    /// `--network`.
    pub network: Option<Network>,
    /// `--memory`, `--pids`, `--cpus`.
    pub limits: LimitOverrides,
    /// The staged home (lockdown only; required then unless the agent has no home).
    pub staged_home: Option<&'a StagedHome>,
    /// From [`crate::secrets::resolve_secrets`] (ignored in lockdown).
    pub secrets: &'a [(String, SecretValue)],
}

/// Everything needed to start the sandbox.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// Image reference.
    pub image: String,
    /// The process to run.
    pub argv: Vec<String>,
    /// Environment (no secrets), in order.
    pub env: Vec<(String, String)>,
    /// Secret environment, kept apart so that printing the plan never shows it (empty in
    /// lockdown).
    pub secret_env: Vec<(String, SecretValue)>,
    /// Working directory (the starting directory, inside the workspace).
    pub workdir: PathBuf,
    /// Bind mounts, in order.
    pub mounts: Vec<PlanMount>,
    /// Paths bound read-only onto themselves after all `mounts` (lockdown only).
    pub readonly_paths_in_workspace: Vec<ProtectedPath>,
    /// Network mode.
    pub network: Network,
    /// Limits.
    pub limits: Limits,
    /// Lockdown run.
    pub lockdown: bool,
    /// Hostname inside the sandbox.
    pub hostname: String,
    /// Whether the process needs a terminal.
    pub tty: bool,
}

/// Builds the plan (see the module docs).
pub fn build_plan(inp: &PlanInputs<'_>) -> Result<RunPlan, PlanError> {
    let ws = inp.workspace;
    let cfg = inp.config;
    let profile = inp.profile;

    let network = inp
        .network
        .or(cfg.sandbox.network.as_ref().map(|n| n.value))
        .unwrap_or(Network::Egress);
    if inp.lockdown && network == Network::Host {
        return Err(PlanError::HostNetworkInLockdown);
    }

    check_not_sensitive(&ws.root, inp.host_home)?;
    let extra_dirs = resolve_extra_dirs(inp.extra_dirs, ws, inp.host_home)?;

    let mut mounts = Vec::new();
    let rw_dir = |path: &Path, origin| PlanMount {
        host: path.to_path_buf(),
        container: path.to_path_buf(),
        mode: MountMode::Rw,
        kind: MountKind::Dir,
        origin,
    };
    mounts.push(rw_dir(&ws.root, MountOrigin::Workspace));
    for d in &ws.extra_git_dirs {
        mounts.push(rw_dir(d, MountOrigin::GitDir));
    }
    if inp.lockdown {
        for d in &ws.lockdown_pinned {
            mounts.push(rw_dir(d, MountOrigin::GitPin));
        }
    }
    for d in &extra_dirs {
        mounts.push(rw_dir(d, MountOrigin::AddDir));
    }

    let mut readonly = Vec::new();
    if inp.lockdown {
        match inp.staged_home {
            Some(staged) => {
                for m in staged.mounts() {
                    mounts.push(PlanMount {
                        host: m.host.clone(),
                        container: m.container.clone(),
                        mode: MountMode::Rw,
                        kind: m.kind,
                        origin: MountOrigin::StagedHome,
                    });
                }
            }
            None if !profile.homes.is_empty() => {
                return Err(PlanError::MissingStagedHome {
                    agent: profile.name,
                });
            }
            None => {}
        }
        for p in &ws.lockdown_readonly {
            if std::fs::symlink_metadata(&p.path).is_err() {
                return Err(PlanError::MissingProtectedPath {
                    path: p.path.clone(),
                });
            }
            readonly.push(p.clone());
        }
    } else {
        for m in cfg.agent_mounts.iter().filter(|m| m.agent == profile.kind) {
            let origin = MountOrigin::AgentMount(m.location.clone());
            // A missing agent home file (e.g. ~/.claude.json before the first login) is
            // skipped; a missing directory should have been created by
            // Config::create_missing_sources.
            let optional = m.kind == MountKind::File;
            if let Some(pm) = config_mount(
                &m.host,
                &m.container,
                MountMode::Rw,
                m.kind,
                optional,
                &m.location,
                origin,
            )? {
                mounts.push(pm);
            }
        }
        for m in &cfg.mounts {
            let origin = MountOrigin::ConfigMount(m.location.clone());
            if let Some(pm) = config_mount(
                &m.host,
                &m.container,
                m.mode,
                m.kind,
                m.optional,
                &m.location,
                origin,
            )? {
                mounts.push(pm);
            }
        }
        for t in &cfg.tools {
            let origin = MountOrigin::Tool(t.location.clone());
            if let Some(pm) = config_mount(
                &t.path,
                &t.container_path,
                MountMode::Ro,
                MountKind::File,
                t.optional,
                &t.location,
                origin,
            )? {
                mounts.push(pm);
            }
        }
    }
    check_duplicates(&mounts)?;

    let env = build_env(inp);
    let secret_env = if inp.lockdown {
        Vec::new()
    } else {
        inp.secrets.to_vec()
    };

    let mut agent_argv: Vec<String> = std::iter::once(profile.command)
        .chain(profile.base_args.iter().copied())
        .chain(if inp.defaults {
            profile.defaults_args.iter().copied()
        } else {
            [].iter().copied()
        })
        .map(str::to_owned)
        .collect();
    agent_argv.extend(inp.agent_args.iter().cloned());
    let tmux = inp.tmux || cfg.sandbox.tmux.as_ref().is_some_and(|t| t.value);
    let argv = if tmux {
        // tmux(1) runs a multi-argument command directly, without a shell.
        ["tmux", "new-session", "-s", "ags"]
            .into_iter()
            .map(str::to_owned)
            .chain(agent_argv)
            .collect()
    } else {
        agent_argv
    };

    let limits = Limits {
        memory_bytes: inp.limits.memory_bytes.or(cfg
            .sandbox
            .memory_bytes
            .as_ref()
            .map(|m| m.value)),
        pids: inp
            .limits
            .pids
            .or(cfg.sandbox.pids.as_ref().map(|p| p.value))
            .unwrap_or(DEFAULT_PIDS),
        cpus: inp
            .limits
            .cpus
            .or(cfg.sandbox.cpus.as_ref().map(|c| c.value)),
    };

    Ok(RunPlan {
        image: cfg.image().to_owned(),
        argv,
        env,
        secret_env,
        workdir: ws.cwd.clone(),
        mounts,
        readonly_paths_in_workspace: readonly,
        network,
        limits,
        lockdown: inp.lockdown,
        hostname: format!("ags-{}", profile.name),
        tty: profile.interactive,
    })
}

fn build_env(inp: &PlanInputs<'_>) -> Vec<(String, String)> {
    let host = |k: &str| inp.host_env.get(k).filter(|v| !v.is_empty()).cloned();
    let mut env = vec![("HOME".to_owned(), CONTAINER_HOME.to_owned())];
    env.push((
        "TERM".to_owned(),
        host("TERM").unwrap_or_else(|| "xterm-256color".to_owned()),
    ));
    if let Some(v) = host("COLORTERM") {
        env.push(("COLORTERM".to_owned(), v));
    }
    env.push((
        "LANG".to_owned(),
        host("LANG").unwrap_or_else(|| "C.UTF-8".to_owned()),
    ));
    if !inp.lockdown {
        for name in &inp.config.sandbox.passthrough_env {
            if env.iter().any(|(k, _)| *k == name.value) {
                continue;
            }
            if let Some(v) = host(&name.value) {
                env.push((name.value.clone(), v));
            }
        }
    }
    env.push(("AGS_SANDBOX".to_owned(), "1".to_owned()));
    env.push(("AGS_AGENT".to_owned(), inp.profile.name.to_owned()));
    if inp.lockdown {
        env.push(("AGS_LOCKDOWN".to_owned(), "1".to_owned()));
    }
    env
}

fn config_mount(
    host: &Path,
    container: &Path,
    mode: MountMode,
    kind: MountKind,
    optional: bool,
    location: &Location,
    origin: MountOrigin,
) -> Result<Option<PlanMount>, PlanError> {
    let meta = match std::fs::metadata(host) {
        Ok(m) => m,
        Err(_) if optional => return Ok(None),
        Err(_) => {
            return Err(PlanError::MissingSource {
                path: host.to_path_buf(),
                location: location.clone(),
            });
        }
    };
    let ok = match kind {
        MountKind::Dir => meta.is_dir(),
        MountKind::File => meta.is_file(),
    };
    if !ok {
        return Err(PlanError::WrongKind {
            path: host.to_path_buf(),
            location: location.clone(),
            expected: match kind {
                MountKind::Dir => "directory",
                MountKind::File => "file",
            },
        });
    }
    Ok(Some(PlanMount {
        host: host.to_path_buf(),
        container: container.to_path_buf(),
        mode,
        kind,
        origin,
    }))
}

fn check_duplicates(mounts: &[PlanMount]) -> Result<(), PlanError> {
    for (i, m) in mounts.iter().enumerate() {
        if let Some(first) = mounts[..i].iter().find(|o| o.container == m.container) {
            return Err(PlanError::DuplicateTarget {
                path: m.container.clone(),
                first: first.origin.to_string(),
                second: m.origin.to_string(),
            });
        }
    }
    Ok(())
}

/// Refuses directories that are, or contain, the home directory or a secret store.
fn check_not_sensitive(path: &Path, home: &Path) -> Result<(), PlanError> {
    let refuse = |reason: String| {
        Err(PlanError::Sensitive {
            path: path.to_path_buf(),
            reason,
        })
    };
    if path == Path::new("/") {
        return refuse("it is the root directory".to_owned());
    }
    let home = std::fs::canonicalize(home).unwrap_or_else(|_| home.to_path_buf());
    if home.starts_with(path) {
        return refuse(format!(
            "it contains the home directory {}; run ags in a project directory",
            home.display()
        ));
    }
    for rel in SENSITIVE_HOME_DIRS {
        let s = home.join(rel);
        if path.starts_with(&s) || s.starts_with(path) {
            return refuse(format!("it overlaps {}", s.display()));
        }
    }
    Ok(())
}

fn resolve_extra_dirs(
    dirs: &[PathBuf],
    ws: &Workspace,
    home: &Path,
) -> Result<Vec<PathBuf>, PlanError> {
    let mut out: Vec<PathBuf> = Vec::new();
    for d in dirs {
        let canon = std::fs::canonicalize(d).map_err(|source| PlanError::AddDir {
            path: d.clone(),
            source,
        })?;
        if !canon.is_dir() {
            return Err(PlanError::NotADirectory { path: d.clone() });
        }
        check_not_sensitive(&canon, home)?;
        let covered = canon.starts_with(&ws.root)
            || ws.extra_git_dirs.iter().any(|g| canon.starts_with(g))
            || out.contains(&canon);
        if !covered {
            out.push(canon);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
