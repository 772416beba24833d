//! Run mode: `ags --agent NAME [--lockdown] [-d DIR]... [-- AGENT ARGS]`.
//!
//! Settings come from the config file (created with defaults on first run), the repo
//! overlay (only once the user approved its exact content, never in lockdown) and the
//! flags; ags-agent turns them into a run plan (mounts, env, argv); this module turns the
//! plan into a sandbox policy and runs it. In lockdown the agent's home is a staged copy of
//! its login/settings files, deleted when the run ends.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use ags_agent::config::{self, Config, EnvMap, HostContext, MountMode, Network};
use ags_agent::overlay::{self, OverlayStatus};
use ags_agent::plan::{self, LimitOverrides, PlanInputs, RunPlan};
use ags_agent::profile::AgentKind;
use ags_agent::staging::{self, StagedHome};
use ags_agent::workspace;
use ags_runtime::policy::{Access, Limits, NetworkMode, SandboxPolicy};
use anyhow::{Context, Result, bail};

use crate::cli::{AgentArgs, AgentNetworkArg, GlobalArgs};
use crate::images::{self, Images};
use crate::settings::{self, InputError};

/// Run the agent and return its exit code.
pub fn execute(global: &GlobalArgs, args: &AgentArgs) -> Result<i32> {
    // Re-execute from the sealed copy first, before anything is staged: the re-exec starts
    // over and would leave a staged home behind.
    super::seal_self()?;
    let Some(name) = args.agent.as_deref() else {
        bail!(InputError {
            flag: "--agent",
            message: "run mode needs --agent NAME (codex, claude, gemini, opencode, pi, shell), or give a command; see `ags --help`".into(),
        });
    };
    let kind = AgentKind::from_name(name).ok_or_else(|| InputError {
        flag: "--agent",
        message: format!("unknown agent {name:?}"),
    })?;
    let profile = kind.profile();
    let env: EnvMap = std::env::vars().collect();
    let home = images::home();
    let host = HostContext {
        home: &home,
        env: &env,
    };
    let cwd = std::env::current_dir().context("cannot read the current directory")?;

    let config_path = images::config_path(global);
    if config::ensure_default_config(&config_path)
        .with_context(|| format!("cannot create {}", config_path.display()))?
    {
        eprintln!("created a default config at {}", config_path.display());
    }
    let ws = workspace::find_workspace(&cwd).context("cannot determine the workspace")?;

    let config = if args.lockdown {
        // A repo overlay is untrusted input: never in lockdown.
        config::load_config(&config_path, host)?
    } else {
        load_with_trusted_overlay(&config_path, &ws.root, host)?
    };

    let state = super::state_base();
    let staging_base = state.join("staging");
    let staged: Option<StagedHome> = if args.lockdown {
        ws.prepare_lockdown()
            .context("cannot prepare the workspace for lockdown")?;
        create_private_dir(&staging_base)?;
        // Stagings of runs killed with SIGKILL are removed here.
        let _ = staging::cleanup_stale(&staging_base);
        let sources = staging::home_sources(profile, &home, &config.agent_mounts);
        Some(
            StagedHome::create_from(&staging_base, profile, &sources)
                .context("cannot stage the agent's home")?,
        )
    } else {
        config
            .create_missing_sources(kind)
            .context("cannot create the configured mount sources")?;
        None
    };
    let secrets = if args.lockdown {
        Vec::new()
    } else {
        let resolved = ags_agent::secrets::resolve_secrets(&config.secrets, &env);
        for f in &resolved.failures {
            eprintln!(
                "warning: secret {} not set ({})",
                f.env,
                f.attempts.join("; ")
            );
        }
        resolved.values
    };

    let limits = LimitOverrides {
        memory_bytes: args
            .memory
            .as_deref()
            .map(|m| settings::parse_size(m, "--memory"))
            .transpose()?,
        pids: args.pids,
        cpus: args
            .cpus
            .as_deref()
            .map(|c| settings::parse_cpus(c).map(|m| m as f64 / 1000.0))
            .transpose()?,
    };
    let plan = plan::build_plan(&PlanInputs {
        profile,
        lockdown: args.lockdown,
        workspace: &ws,
        extra_dirs: &args.add_dirs,
        config: &config,
        host_env: &env,
        host_home: &home,
        defaults: args.defaults,
        tmux: args.tmux,
        agent_args: &args.agent_args,
        network: args.network.map(|n| match n {
            AgentNetworkArg::Egress => Network::Egress,
            AgentNetworkArg::None => Network::None,
        }),
        limits,
        staged_home: staged.as_ref(),
        secrets: &secrets,
    })?;

    let imgs = Images::open(global)?;
    let reference = images::parse_reference(&plan.image, "[sandbox].image")?;
    let platform = images::parse_platform(None)?;
    let rootfs = match imgs.store.get(&reference, Some(&platform)) {
        Ok(p) => imgs.rootfs(&p)?,
        Err(ags_oci::store::StoreError::NotFound(_)) if plan.image == config::DEFAULT_IMAGE => {
            bail!(crate::render::Hint(
                "the default agent image is built by `ags update`, which this version does not have yet; \
                 set [sandbox].image in the config to an image in a registry"
                    .into()
            ))
        }
        Err(ags_oci::store::StoreError::NotFound(_)) => {
            eprintln!("pulling {reference}");
            imgs.pull(&reference, &platform)?.1
        }
        Err(e) => return Err(e).context("cannot read the image store"),
    };
    let policy = policy_from_plan(&plan, rootfs)?;
    // Dropping the client joins its background thread: the runtime must start from a
    // single-threaded process.
    drop(imgs);

    let opts = ags_runtime::run::RunOptions {
        state_base: state,
        ..Default::default()
    };
    let code = ags_runtime::run::run(&policy, &super::invoker(), &opts, &mut super::warn_once())
        .with_context(|| format!("cannot run {}", profile.name));
    // The staged home is deleted on every path (Drop), also after an error.
    if let Some(s) = staged {
        s.remove().context("cannot delete the staged agent home")?;
    }
    code
}

fn create_private_dir(p: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .with_context(|| format!("cannot create {}", p.display()))
}

/// The user's config merged with the repo overlay when the user approved its current
/// content (asked on a terminal; skipped with a warning otherwise).
fn load_with_trusted_overlay(
    config_path: &Path,
    repo: &Path,
    host: HostContext<'_>,
) -> Result<Config> {
    let config_dir = config_path.parent().unwrap_or(Path::new("."));
    let overlay = match overlay::overlay_status(config_dir, repo)? {
        OverlayStatus::Absent => None,
        OverlayStatus::Trusted(o) => Some(o),
        OverlayStatus::Untrusted { hash, overlay } => {
            if ask_trust(&overlay.path, &overlay.text)? {
                overlay::trust(config_dir, repo, &hash)?;
                Some(overlay)
            } else {
                eprintln!(
                    "warning: ignoring {} (not approved); it is asked for again while its content is new",
                    overlay.path.display()
                );
                None
            }
        }
    };
    Ok(overlay::load_with_overlay(
        config_path,
        overlay.as_ref(),
        host,
    )?)
}

fn ask_trust(path: &Path, text: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Ok(false);
    }
    let mut err = std::io::stderr().lock();
    writeln!(err, "{} asks for these settings:\n", path.display())?;
    for line in text.lines() {
        writeln!(err, "  | {line}")?;
    }
    write!(err, "\nApply them to runs in this repository? [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Map the plan onto the runtime's policy: same mounts in the same order, then the
/// read-only protections on top.
fn policy_from_plan(plan: &RunPlan, rootfs: PathBuf) -> Result<SandboxPolicy> {
    let limits = Limits {
        memory: plan.limits.memory_bytes,
        pids: Some(plan.limits.pids),
        cpus_milli: plan.limits.cpus.map(|c| (c * 1000.0).round() as u64),
        nofile: ags_runtime::policy::DEFAULT_NOFILE,
    };
    let mut p = SandboxPolicy::new(rootfs, plan.argv.clone(), limits)?;
    p.with_user(1000, 1000);
    p.hostname = plan.hostname.clone();
    p.tty = plan.tty && std::io::stdin().is_terminal();
    p.network = match plan.network {
        Network::Egress => NetworkMode::Egress,
        Network::None => NetworkMode::None,
        Network::Host => NetworkMode::Host,
    };
    for (k, v) in &plan.env {
        p.set_env(k, v)?;
    }
    for (k, v) in &plan.secret_env {
        p.set_env(k, v.expose())?;
    }
    for m in &plan.mounts {
        let access = match m.mode {
            MountMode::Ro => Access::ReadOnly,
            MountMode::Rw => Access::ReadWrite,
        };
        p.add_bind(&m.host, &m.container.to_string_lossy(), access)
            .with_context(|| {
                format!(
                    "cannot mount {} at {}",
                    m.host.display(),
                    m.container.display()
                )
            })?;
    }
    for ro in &plan.readonly_paths_in_workspace {
        p.add_bind(&ro.path, &ro.path.to_string_lossy(), Access::ReadOnly)
            .with_context(|| format!("cannot protect {}", ro.path.display()))?;
    }
    p.set_cwd(&plan.workdir.to_string_lossy())?;
    Ok(p)
}
