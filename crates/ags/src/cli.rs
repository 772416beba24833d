//! The command line, as clap structures. Nothing here has side effects; `settings.rs`
//! turns these into validated settings and `cmd/` executes them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run AI coding agents in a rootless, daemonless, locked-down container.
#[derive(Debug, Parser)]
#[command(
    name = "ags",
    version,
    about,
    propagate_version = true,
    max_term_width = 100,
    after_help = "Run an agent: ags --agent codex [--lockdown] [-d DIR]... [-- AGENT ARGS]"
)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// Run mode: start an agent in the sandbox.
    #[command(flatten)]
    pub agent: AgentArgs,

    /// The command to run (none: run mode, which needs --agent).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Run mode (`ags --agent NAME ...`).
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent to run: codex, claude, gemini, opencode, pi or shell.
    #[arg(long, value_parser = ["codex", "claude", "gemini", "opencode", "pi", "shell"])]
    pub agent: Option<String>,

    /// Hardened, throw-away session for untrusted repositories: staged login files only,
    /// no secrets, mounts, tools or repo config; .git/hooks and .git/config read-only.
    #[arg(long)]
    pub lockdown: bool,

    /// Also mount this directory read-write at the same path (repeatable).
    #[arg(short = 'd', long = "add-dir", value_name = "DIR")]
    pub add_dirs: Vec<PathBuf>,

    /// Prepend the agent's unattended-mode flags (claude: --dangerously-skip-permissions, gemini: --yolo).
    #[arg(short = 'D', long)]
    pub defaults: bool,

    /// Start the agent inside tmux.
    #[arg(long)]
    pub tmux: bool,

    /// Network access [default: egress, or [sandbox].network].
    #[arg(long, value_enum, value_name = "MODE")]
    pub network: Option<AgentNetworkArg>,

    /// Resource limits.
    #[command(flatten)]
    pub limits: LimitArgs,

    /// Arguments passed to the agent.
    #[arg(last = true, value_name = "AGENT ARGS")]
    pub agent_args: Vec<String>,
}

impl AgentArgs {
    /// The first run-mode flag given, if any (they make no sense with a subcommand).
    pub fn first_flag(&self) -> Option<&'static str> {
        [
            (self.agent.is_some(), "--agent"),
            (self.lockdown, "--lockdown"),
            (!self.add_dirs.is_empty(), "--add-dir"),
            (self.defaults, "--defaults"),
            (self.tmux, "--tmux"),
            (self.network.is_some(), "--network"),
            (self.limits.memory.is_some(), "--memory"),
            (self.limits.pids.is_some(), "--pids"),
            (self.limits.cpus.is_some(), "--cpus"),
            (!self.agent_args.is_empty(), "AGENT ARGS"),
        ]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name))
    }
}

/// Resource limits, shared by run mode and `ags run`. Run mode's defaults come from
/// `[sandbox]` in the config; `ags run`'s from the runtime.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Memory limit, e.g. 512m or 4g, at least 4m [default: agents: [sandbox].memory;
    /// ags run: half the RAM, at most 8g].
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,

    /// Maximum number of processes, at least 2 [default: agents: [sandbox].pids, else 4096].
    #[arg(long, value_name = "N")]
    pub pids: Option<u64>,

    /// CPU limit in cores, e.g. 1.5 [default: agents: [sandbox].cpus, else no limit].
    #[arg(long, value_name = "CPUS")]
    pub cpus: Option<String>,
}

/// Network modes for agents.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum AgentNetworkArg {
    /// Internet access through pasta, with no route to services on the host.
    Egress,
    /// Only a loopback interface.
    None,
}

/// Options shared by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file [default: $XDG_CONFIG_HOME/ags/config.toml].
    #[arg(long, global = true, env = "AGS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Image store directory [default: $XDG_DATA_HOME/ags].
    #[arg(long, global = true, env = "AGS_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
}

/// ags commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a sandbox, from an image or a root directory.
    Run(Box<RunArgs>),
    /// Pull an image from a registry and unpack it.
    Pull {
        /// Image reference, e.g. debian:12 or registry.example:5000/team/img@sha256:...
        reference: String,
        /// Platform to pick from a multi-platform image, os/arch[/variant] [default: this host].
        #[arg(long, value_name = "PLATFORM")]
        platform: Option<String>,
    },
    /// List the images in the store.
    Images,
    /// Remove images and reclaim what only they used.
    Rmi {
        /// Image references.
        #[arg(required = true)]
        references: Vec<String>,
    },
    /// Remove blobs and root filesystems that no image refers to.
    Gc,
    /// Log in to a registry (writes the containers auth file).
    Login {
        /// Registry host, e.g. ghcr.io or 127.0.0.1:5000.
        registry: String,
        /// User name.
        #[arg(short, long)]
        username: String,
        /// Read the password from stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a registry's credentials from the containers auth file.
    Logout {
        /// Registry host.
        registry: String,
    },
    /// Build an image from a Containerfile (Dockerfile).
    Build(Box<BuildArgs>),
    /// Build (or rebuild) the agent sandbox image from its Containerfile.
    Update(UpdateArgs),
    /// Refresh only the agent CLIs in the sandbox image (its last build step).
    UpdateAgents(UpdateArgs),
    /// Check the host, the agent image and its agent CLIs, with a fix for each problem.
    Doctor,
    /// Print a shell completion script.
    Completions {
        /// The shell.
        #[arg(long, value_enum)]
        shell: Shell,
    },
    /// Create the sandbox's own SSH keys (authentication and signing) and print them.
    Setup,
    /// Install this ags binary as ~/.local/bin/ags.
    Install {
        /// Make ~/.local/bin/ags a symlink to this binary instead of a copy.
        #[arg(long)]
        link_self: bool,
    },
    /// Print shell aliases that run each agent in the sandbox (codex, codex-lockdown, ...).
    CreateAliases {
        /// The shell to print them for [default: from $SHELL, else bash].
        #[arg(long, value_enum)]
        shell: Option<Shell>,
    },
    /// Show where the config is read from, or the effective config.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `ags config`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the config file's path, and the repo overlay's when there is one.
    Path,
    /// Print the effective config (your file merged with the approved repo overlay) as TOML.
    Show,
}

/// Shells for completion scripts.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    /// bash
    Bash,
    /// zsh
    Zsh,
    /// fish
    Fish,
}

/// Network modes on the command line.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum NetworkArg {
    /// Only a loopback interface.
    None,
    /// Internet access through pasta, with no route to services on the host.
    Egress,
    /// The host's network, shared (not isolated).
    Host,
}

/// `ags run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Root filesystem directory of the sandbox (mounted read-only), instead of an image.
    #[arg(long, value_name = "DIR", conflicts_with = "image")]
    pub rootfs: Option<PathBuf>,

    /// Image to run (pulled first when not in the store).
    #[arg(value_name = "IMAGE", required_unless_present = "rootfs")]
    pub image: Option<String>,

    /// Platform of the image, os/arch[/variant] [default: this host].
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,

    /// Bind-mount a host path: HOST:CONTAINER[:ro|rw] (repeatable).
    #[arg(short = 'v', long = "volume", value_name = "HOST:CTR[:ro]")]
    pub volumes: Vec<String>,

    /// Working directory inside the sandbox.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,

    /// Set an environment variable: KEY=VALUE, or KEY to copy it from the host (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,

    /// Mount a tmpfs: PATH[:size=SIZE][,exec] (repeatable).
    #[arg(long = "tmpfs", value_name = "PATH[:size=SIZE]")]
    pub tmpfs: Vec<String>,

    /// Network access.
    #[arg(long, value_enum, default_value = "none")]
    pub network: NetworkArg,

    /// Resource limits.
    #[command(flatten)]
    pub limits: LimitArgs,

    /// Container user as UID[:GID]; 0 is root inside the sandbox only [default: 1000].
    #[arg(short = 'u', long, value_name = "UID[:GID]")]
    pub user: Option<String>,

    /// Hostname inside the sandbox.
    #[arg(long, default_value = "ags")]
    pub hostname: String,

    /// Allocate a terminal: auto (when stdin is a terminal), always or never.
    #[arg(long, value_enum, default_value = "auto")]
    pub tty: TtyArg,

    /// The command and its arguments [default: the image's entrypoint and command].
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Terminal allocation.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum TtyArg {
    /// When stdin is a terminal.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// `ags build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The Containerfile [default: CONTEXT/Containerfile, else CONTEXT/Dockerfile].
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Name of the resulting image, e.g. localhost/myimage:1 [default: untagged].
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tag: Option<String>,

    /// Set a build argument: KEY=VALUE, or KEY to take it from the environment (repeatable).
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_args: Vec<String>,

    /// Build this stage (name or index) instead of the last one.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,

    /// Run every step again, ignoring the build cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Pull base images even when they are in the store.
    #[arg(long)]
    pub pull: bool,

    /// Network of RUN steps.
    #[arg(long, value_enum, default_value = "egress")]
    pub network: NetworkArg,

    /// The build context directory.
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,
}

/// `ags update` and `ags update-agents`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Run every step again, ignoring the build cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Pull the base image even when it is in the store.
    #[arg(long)]
    pub pull: bool,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every flag, argument and command of every subcommand has help text.
    #[test]
    fn everything_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg
                    .get_help()
                    .is_none_or(|h| h.to_string().trim().is_empty())
                {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(sub_path.clone());
                }
                walk(sub, &sub_path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "ags", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }

    #[test]
    fn limits_are_shared_by_run_mode_and_run() {
        let cli =
            Cli::try_parse_from(["ags", "--agent", "codex", "--memory", "2g", "--pids", "64"])
                .unwrap();
        assert_eq!(cli.agent.limits.memory.as_deref(), Some("2g"));
        assert_eq!(cli.agent.limits.pids, Some(64));
        let cli = Cli::try_parse_from(["ags", "run", "--cpus", "1.5", "img"]).unwrap();
        let Some(Command::Run(run)) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.limits.cpus.as_deref(), Some("1.5"));
    }

    #[test]
    fn new_commands_parse() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).unwrap().command.unwrap();
        assert!(matches!(
            parse(&["ags", "install", "--link-self"]),
            Command::Install { link_self: true }
        ));
        assert!(matches!(
            parse(&["ags", "create-aliases", "--shell", "fish"]),
            Command::CreateAliases {
                shell: Some(Shell::Fish)
            }
        ));
        assert!(matches!(parse(&["ags", "setup"]), Command::Setup));
        // `config` the command and `--config` the global option live side by side.
        let cli = Cli::try_parse_from(["ags", "--config", "/x.toml", "config", "path"]).unwrap();
        assert_eq!(
            cli.global.config.as_deref(),
            Some(std::path::Path::new("/x.toml"))
        );
        assert!(matches!(
            cli.command,
            Some(Command::Config(ConfigCommand::Path))
        ));
        assert!(matches!(
            parse(&["ags", "config", "show"]),
            Command::Config(ConfigCommand::Show)
        ));
        assert!(Cli::try_parse_from(["ags", "config"]).is_err());
    }
}
