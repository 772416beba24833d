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

    /// Memory limit, e.g. 4g.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,

    /// Maximum number of processes.
    #[arg(long, value_name = "N")]
    pub pids: Option<u64>,

    /// CPU limit in cores.
    #[arg(long, value_name = "CPUS")]
    pub cpus: Option<String>,

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
            (self.memory.is_some(), "--memory"),
            (self.pids.is_some(), "--pids"),
            (self.cpus.is_some(), "--cpus"),
            (!self.agent_args.is_empty(), "AGENT ARGS"),
        ]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name))
    }
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
    /// Check that this host can run rootless sandboxes, with a fix for each problem.
    Doctor,
    /// Print a shell completion script.
    Completions {
        /// The shell.
        #[arg(long, value_enum)]
        shell: Shell,
    },
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

    /// Memory limit, e.g. 512m or 2g [default: half the RAM, at most 8g].
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,

    /// Maximum number of processes [default: 4096].
    #[arg(long, value_name = "N")]
    pub pids: Option<u64>,

    /// CPU limit in cores, e.g. 1.5 [default: no limit].
    #[arg(long, value_name = "CPUS")]
    pub cpus: Option<String>,

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
