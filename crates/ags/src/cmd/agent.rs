//! Run mode: `ags --agent NAME [--lockdown] [-d DIR]... [-- AGENT ARGS]`.
//!
//! Settings come from the config file (created with defaults on first run), the repo
//! overlay (only once the user approved its exact content, never in lockdown) and the
//! flags; ags-agent turns them into a run plan (mounts, env, argv); this module turns the
//! plan into a sandbox policy and runs it. In lockdown the agent's home is a staged copy of
//! its login/settings files, deleted when the run ends.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use ags_agent::config::{self, MountMode, Network};
use ags_agent::plan::{self, LimitOverrides, PlanInputs, RunPlan};
use ags_agent::profile::AgentKind;
use ags_agent::staging::{self, StagedHome};
use ags_agent::workspace;
use ags_runtime::policy::{Access, Limits, NetworkMode, SandboxPolicy};
use anyhow::{Context, Result, bail};

use crate::cli::{AgentArgs, AgentNetworkArg, GlobalArgs};
use crate::effective::{self, Host, OverlayPolicy, OverlayState};
use crate::images::{self, ImageSettings, Images};
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
    let host = Host::current();
    let cwd = std::env::current_dir().context("cannot read the current directory")?;

    let config_path = images::config_path(global);
    if config::ensure_default_config(&config_path)
        .with_context(|| format!("cannot create {}", config_path.display()))?
    {
        eprintln!("created a default config at {}", config_path.display());
    }
    let ws = workspace::find_workspace(&cwd).context("cannot determine the workspace")?;

    // The one reading of the config in this run: the plan, and the registries and unpack
    // budgets of the pull below, all come from it.
    let policy = if args.lockdown {
        OverlayPolicy::Ignore
    } else {
        OverlayPolicy::Ask
    };
    let effective = effective::load(global, &host, Some(&ws.root), policy)?;
    if let OverlayState::NotApproved(path) = &effective.overlay {
        eprintln!(
            "warning: ignoring {} (not approved); it is asked for again while its content is new",
            path.display()
        );
    }
    let config = effective.config;
    let image_settings = ImageSettings::from_config(&config)?;
    let (env, home) = (&host.env, &host.home);

    let state = super::state_base();
    let staging_base = state.join("staging");
    let staged: Option<StagedHome> = if args.lockdown {
        ws.prepare_lockdown()
            .context("cannot prepare the workspace for lockdown")?;
        create_private_dir(&staging_base)?;
        // Stagings of runs killed with SIGKILL are removed here.
        let _ = staging::cleanup_stale(&staging_base);
        let sources = staging::home_sources(profile, home, &config.agent_mounts);
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
        let resolved = ags_agent::secrets::resolve_secrets(&config.secrets, env);
        for f in &resolved.failures {
            eprintln!(
                "warning: secret {} not set ({})",
                f.env,
                f.attempts.join("; ")
            );
        }
        resolved.values
    };

    let flags = settings::limit_flags(&args.limits)?;
    let limits = LimitOverrides {
        memory_bytes: flags.memory_bytes,
        pids: flags.pids,
        cpus: flags.cpus_milli.map(|m| m as f64 / 1000.0),
    };
    let plan = plan::build_plan(&PlanInputs {
        profile,
        lockdown: args.lockdown,
        workspace: &ws,
        extra_dirs: &args.add_dirs,
        config: &config,
        host_env: env,
        host_home: home,
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

    let imgs = Images::open_with(global, image_settings)?;
    let reference = images::parse_reference(&plan.image, "[sandbox].image")?;
    let platform = images::parse_platform(None)?;
    let pulled = match imgs.store.get(&reference, Some(&platform)) {
        Ok(p) => p,
        Err(ags_oci::store::StoreError::NotFound(_))
            if plan.image == config::DEFAULT_IMAGE || config.sandbox.containerfile.is_some() =>
        {
            // The first run on a new machine: build the sandbox image (what `ags update`
            // does), with the build's progress on stderr.
            eprintln!(
                "the sandbox image {reference} is not built yet: building it now (rebuild later with `ags update`)"
            );
            let image = super::build::AgentImage {
                reference: reference.clone(),
                containerfile: config
                    .sandbox
                    .containerfile
                    .as_ref()
                    .map(|l| l.value.clone()),
            };
            super::build::build_agent_image(global, &image, false, false, false)?.image
        }
        Err(ags_oci::store::StoreError::NotFound(_)) => {
            eprintln!("pulling {reference}");
            imgs.pull(&reference, &platform)?.0
        }
        Err(e) => return Err(e).context("cannot read the image store"),
    };
    let root = imgs.rootfs(&pulled)?;
    let mut policy = policy_from_plan(&plan, root.bottom.clone())?;
    policy.layers = root.layers;
    // The image decides where its programs are (the agent image puts the agent CLIs in
    // /opt/ags-agents/bin): its PATH, when it sets one, replaces the default.
    let image_config = imgs
        .store
        .image_config(&pulled)
        .with_context(|| format!("cannot read the config of {reference}"))?;
    if let Some(path) = image_config
        .env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
    {
        policy
            .set_env("PATH", path)
            .context("the image's PATH is invalid")?;
    }
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

/// Map the plan onto the runtime's policy: same mounts in the same order, then the
/// read-only protections on top.
fn policy_from_plan(plan: &RunPlan, rootfs: PathBuf) -> Result<SandboxPolicy> {
    let limits = Limits {
        // No configured limit: the runtime's default (half the RAM, at most 8g), as for
        // `ags run`; a sandbox never runs without one.
        memory: plan
            .limits
            .memory_bytes
            .or(Limits::defaults(crate::settings::host_memory()).memory),
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
