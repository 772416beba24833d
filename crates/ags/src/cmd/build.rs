//! `ags build`, `ags update` and `ags update-agents`: Containerfiles to images.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ags_agent::config::{self, DEFAULT_IMAGE, EnvMap, HostContext};
use ags_build::builder::snapshot::SnapshotMode;
use ags_build::builder::{self, BuildEnv, BuildHost, BuildOptions, Built, Event};
use ags_oci::manifest::Platform;
use ags_oci::reference::Reference;
use ags_oci::store::PulledImage;
use ags_runtime::policy::NetworkMode;
use anyhow::Context;

use crate::cli::{BuildArgs, GlobalArgs, NetworkArg, UpdateArgs};
use crate::images::{self, Images};
use crate::settings::InputError;

/// The shipped default agent image definition.
pub const AGENT_CONTAINERFILE: &str =
    include_str!("../../../../containerfiles/agent.Containerfile");

/// The build arg `ags update-agents` changes so that only the agent step runs again.
pub const AGENTS_REFRESH_ARG: &str = "AGS_AGENTS_REFRESH";

/// Prints build events to stderr and pulls base images through the registry client.
struct Host<'a> {
    global: &'a GlobalArgs,
    started: Instant,
    step_started: Option<Instant>,
}

impl BuildHost for Host<'_> {
    fn image(
        &mut self,
        reference: &str,
        platform: &Platform,
        pull: bool,
    ) -> Result<PulledImage, String> {
        let r = Reference::parse(reference).map_err(|e| e.to_string())?;
        // The client lives only for this call: the sandbox of a RUN step must start from a
        // single-threaded process, and the client owns a thread.
        let imgs = Images::open(self.global).map_err(|e| format!("{e:#}"))?;
        let got = if pull {
            eprintln!("pulling {r}");
            imgs.pull(&r, platform).map(|(image, _)| image)
        } else {
            imgs.get_or_pull(&r, platform).map(|(image, _)| image)
        };
        got.map_err(|e| format!("{e:#}"))
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Step { n, total, text } => {
                self.finish_step();
                let text: String = text
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(120)
                    .collect();
                eprintln!("STEP {n}/{total}: {text}");
                self.step_started = Some(Instant::now());
            }
            Event::Cached => {
                eprintln!("--> cached");
                self.step_started = None;
            }
            Event::Warning(m) => eprintln!("warning: {m}"),
        }
    }
}

impl Host<'_> {
    fn finish_step(&mut self) {
        if let Some(t) = self.step_started.take() {
            let d = t.elapsed();
            if d.as_millis() >= 100 {
                eprintln!("--> done in {:.1}s", d.as_secs_f64());
            }
        }
    }
}

/// What to build, resolved from flags and config.
pub struct Request {
    /// The Containerfile on disk.
    pub containerfile: PathBuf,
    /// How to name it in messages.
    pub containerfile_name: String,
    /// Context directory.
    pub context: PathBuf,
    /// The tag.
    pub tag: Option<Reference>,
    /// Build args.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`.
    pub pull: bool,
    /// RUN network.
    pub network: NetworkMode,
}

/// Runs a build and prints its summary.
pub fn run_build(global: &GlobalArgs, req: Request) -> anyhow::Result<Built> {
    let settings = images::ImageSettings::from_user_config(global)?;
    let snapshots = snapshot_mode(
        std::env::var(SNAPSHOTS_ENV).ok().as_deref(),
        settings.snapshots,
    )?;
    let store_path = images::store_path(global);
    let store = ags_oci::store::Store::open(&store_path)
        .with_context(|| format!("cannot open the image store {}", store_path.display()))?;
    let (maps, _) = super::image_maps()?;
    let env = BuildEnv {
        invoker: super::invoker(),
        run_opts: ags_runtime::run::RunOptions {
            state_base: super::state_base(),
            ..Default::default()
        },
        maps,
    };
    let opts = BuildOptions {
        containerfile: req.containerfile,
        containerfile_name: req.containerfile_name,
        context: req.context,
        tag: req.tag,
        build_args: req.build_args,
        target: req.target,
        no_cache: req.no_cache,
        pull: req.pull,
        network: req.network,
        platform: Platform::host(),
        budgets: settings.budgets,
        limits: crate::settings::limits(&crate::cli::LimitArgs {
            memory: None,
            pids: None,
            cpus: None,
        })?,
        snapshots,
    };
    // Sandboxes start from this process: protect the binary first (CVE-2019-5736).
    super::seal_self()?;
    let mut host = Host {
        global,
        started: Instant::now(),
        step_started: None,
    };
    let built = builder::build(&store, &env, &opts, &mut host)?;
    host.finish_step();
    eprintln!(
        "built {} in {:.1}s ({} steps run, {} cached)",
        built.image.reference,
        host.started.elapsed().as_secs_f64(),
        built.executed,
        built.cached
    );
    Ok(built)
}

/// The environment variable that overrides `[build] snapshots` (for one build, or a
/// machine where the config is shared).
pub const SNAPSHOTS_ENV: &str = "AGS_BUILD_SNAPSHOTS";

/// The snapshot mode: `AGS_BUILD_SNAPSHOTS` when set, else the config's.
fn snapshot_mode(env: Option<&str>, config: SnapshotMode) -> Result<SnapshotMode, InputError> {
    match env.filter(|v| !v.is_empty()) {
        None => Ok(config),
        Some(v) => SnapshotMode::parse(v).ok_or_else(|| InputError {
            flag: SNAPSHOTS_ENV,
            message: format!("{v:?}: expected auto, overlay or copy"),
        }),
    }
}

/// `ags build`.
pub fn execute(global: &GlobalArgs, args: &BuildArgs) -> anyhow::Result<i32> {
    let context = args.context.clone();
    if !context.is_dir() {
        anyhow::bail!(InputError {
            flag: "CONTEXT",
            message: format!("{} is not a directory", context.display()),
        });
    }
    let containerfile = match &args.file {
        Some(f) => f.clone(),
        None => ["Containerfile", "Dockerfile"]
            .iter()
            .map(|n| context.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| InputError {
                flag: "--file",
                message: format!(
                    "no Containerfile or Dockerfile in {}; name one with -f",
                    context.display()
                ),
            })?,
    };
    let tag = args
        .tag
        .as_deref()
        .map(|t| images::parse_reference(t, "--tag"))
        .transpose()?;
    let built = run_build(
        global,
        Request {
            containerfile_name: containerfile.display().to_string(),
            containerfile,
            context,
            tag,
            build_args: parse_build_args(&args.build_args)?,
            target: args.target.clone(),
            no_cache: args.no_cache,
            pull: args.pull,
            network: network(args.network),
        },
    )?;
    println!("{}", built.image.reference);
    Ok(crate::exit::OK)
}

fn network(n: NetworkArg) -> NetworkMode {
    match n {
        NetworkArg::None => NetworkMode::None,
        NetworkArg::Egress => NetworkMode::Egress,
        NetworkArg::Host => NetworkMode::Host,
    }
}

/// `--build-arg K=V` (or `K` to take the value from the environment).
fn parse_build_args(args: &[String]) -> Result<BTreeMap<String, String>, InputError> {
    let mut out = BTreeMap::new();
    for a in args {
        let (k, v) = match a.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match std::env::var(a) {
                Ok(v) => (a.clone(), v),
                Err(_) => continue,
            },
        };
        if k.is_empty() {
            return Err(InputError {
                flag: "--build-arg",
                message: format!("{a:?}: expected KEY=VALUE"),
            });
        }
        out.insert(k, v);
    }
    Ok(out)
}

/// The build arg of the shipped Containerfile that adds certificate authorities.
pub const EXTRA_CA_ARG: &str = "AGS_EXTRA_CA_CERTS";

/// Where Debian-family hosts keep the certificate authorities an administrator added.
const HOST_EXTRA_CA_DIR: &str = "/usr/local/share/ca-certificates";

/// The PEM certificates the host's administrator added to its trust store. On a network
/// that intercepts TLS (a corporate proxy, a CI egress filter) the agent image needs them
/// to reach the npm registry; elsewhere there are none and nothing changes.
fn host_extra_cas() -> String {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut dirs = vec![PathBuf::from(HOST_EXTRA_CA_DIR)];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "crt") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut pem = String::new();
    for f in files {
        if let Ok(text) = std::fs::read_to_string(&f)
            && text.contains("-----BEGIN CERTIFICATE-----")
        {
            pem.push_str(text.trim());
            pem.push('\n');
        }
    }
    pem
}

/// The sandbox image and the Containerfile it is built from, per the config.
pub struct AgentImage {
    /// The image reference.
    pub reference: Reference,
    /// The configured Containerfile, if any (else the shipped one).
    pub containerfile: Option<PathBuf>,
}

/// Reads `[sandbox] image` and `containerfile` from the user config.
pub fn agent_image(global: &GlobalArgs) -> anyhow::Result<AgentImage> {
    let env: EnvMap = std::env::vars().collect();
    let home = images::home();
    let path = images::config_path(global);
    let cfg = if path.exists() {
        Some(config::load_config(
            &path,
            HostContext {
                home: &home,
                env: &env,
            },
        )?)
    } else {
        None
    };
    let image = cfg
        .as_ref()
        .map_or(DEFAULT_IMAGE, |c| c.image())
        .to_string();
    Ok(AgentImage {
        reference: images::parse_reference(&image, "[sandbox].image")?,
        containerfile: cfg.and_then(|c| c.sandbox.containerfile.map(|l| l.value)),
    })
}

/// Builds the agent image (`ags update`, `ags update-agents`, and the first `ags --agent`
/// run when it is missing).
pub fn build_agent_image(
    global: &GlobalArgs,
    image: &AgentImage,
    refresh_agents: bool,
    no_cache: bool,
    pull: bool,
) -> anyhow::Result<Built> {
    // The shipped Containerfile needs no context: it is written to an empty directory.
    let tmp;
    let (containerfile, name, context) = match &image.containerfile {
        Some(f) => (
            f.clone(),
            f.display().to_string(),
            f.parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        ),
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
            let f = tmp.path().join("agent.Containerfile");
            std::fs::write(&f, AGENT_CONTAINERFILE)
                .with_context(|| format!("cannot write {}", f.display()))?;
            let ctx = tmp.path().join("context");
            std::fs::create_dir(&ctx)
                .with_context(|| format!("cannot create {}", ctx.display()))?;
            (f, "agent.Containerfile (shipped)".to_string(), ctx)
        }
    };
    let mut build_args = BTreeMap::new();
    if image.containerfile.is_none() {
        let pem = host_extra_cas();
        if !pem.is_empty() {
            build_args.insert(EXTRA_CA_ARG.to_string(), pem);
        }
    }
    if refresh_agents {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        build_args.insert(AGENTS_REFRESH_ARG.to_string(), now.to_string());
    } else {
        // Without a refresh the agent step keeps its cached result.
        build_args.insert(AGENTS_REFRESH_ARG.to_string(), "0".to_string());
    }
    let built = run_build(
        global,
        Request {
            containerfile,
            containerfile_name: name,
            context,
            tag: Some(image.reference.clone()),
            build_args,
            target: None,
            no_cache,
            pull,
            network: NetworkMode::Egress,
        },
    )?;
    // Unpack now, so the first agent run starts at once.
    let imgs = Images::open(global)?;
    imgs.rootfs(&built.image)?;
    Ok(built)
}

/// `ags update` / `ags update-agents`.
pub fn update(global: &GlobalArgs, args: &UpdateArgs, agents_only: bool) -> anyhow::Result<i32> {
    let image = agent_image(global)?;
    let is_tty = std::io::stderr().is_terminal();
    if is_tty {
        eprintln!(
            "{} {} ...",
            if agents_only {
                "refreshing the agent CLIs in"
            } else {
                "building"
            },
            image.reference
        );
    }
    let built = build_agent_image(global, &image, agents_only, args.no_cache, args.pull)?;
    println!("{}", built.image.reference);
    Ok(crate::exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_overrides_the_config() {
        assert_eq!(
            snapshot_mode(None, SnapshotMode::Copy).unwrap(),
            SnapshotMode::Copy
        );
        assert_eq!(
            snapshot_mode(Some(""), SnapshotMode::Copy).unwrap(),
            SnapshotMode::Copy
        );
        assert_eq!(
            snapshot_mode(Some("overlay"), SnapshotMode::Copy).unwrap(),
            SnapshotMode::Overlay
        );
        let e = snapshot_mode(Some("vfs"), SnapshotMode::Auto).unwrap_err();
        assert_eq!(e.flag, SNAPSHOTS_ENV);
        assert!(e.message.contains("auto, overlay or copy"), "{}", e.message);
    }
}
