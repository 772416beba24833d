//! ags-agent: everything about *what* runs in the sandbox, as data, before anything runs.
//!
//! It owns:
//! - [`profile`]: static agent profiles (codex, claude, gemini, opencode, pi, shell): the
//!   command, the home paths, the lockdown allow- and denylists, `--defaults` arguments;
//! - [`config`]: `~/.config/ags/config.toml` (strict schema, errors with file:line:col,
//!   path expansion from a passed-in environment, the default file, rendering back to TOML);
//! - [`overlay`]: repo overlays `PROJECT/.ags/config.toml`, their restrictions and
//!   content-hash trust;
//! - [`workspace`]: the workspace root, git dirs to mount, git paths to protect;
//! - [`staging`]: the throwaway lockdown home and the cleanup of stale ones;
//! - [`secrets`]: resolving `[[secret]]` values into redacting [`secrets::SecretValue`]s;
//! - [`keys`]: the sandbox's dedicated SSH authentication and signing keys (`ags setup`);
//! - [`lookup`]: finding an agent's command in an image tree, confined to it (`ags doctor`);
//! - [`plan`]: the [`plan::RunPlan`] (image, argv, env, ordered mounts, limits) that the
//!   runtime executes.
//!
//! The crate never prints, never reads the process environment or arguments and never
//! exits: the binary passes the home directory, the environment map and the working
//! directory in.
//!
//! # Example
//!
//! ```
//! use std::path::PathBuf;
//! use ags_agent::config::{parse_config, EnvMap, HostContext, DEFAULT_CONFIG};
//! use ags_agent::plan::{build_plan, LimitOverrides, PlanInputs};
//! use ags_agent::profile::AgentKind;
//! use ags_agent::workspace::find_workspace;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = tempfile::tempdir()?;
//! let home = tmp.path().canonicalize()?.join("home");
//! let project = home.join("src/project");
//! std::fs::create_dir_all(&project)?;
//!
//! let env = EnvMap::from([("TERM".to_owned(), "xterm".to_owned())]);
//! let host = HostContext { home: &home, env: &env };
//! let config = parse_config(&home.join(".config/ags/config.toml"), DEFAULT_CONFIG, host)?;
//! let workspace = find_workspace(&project)?;
//!
//! let plan = build_plan(&PlanInputs {
//!     profile: AgentKind::Shell.profile(),
//!     lockdown: false,
//!     workspace: &workspace,
//!     extra_dirs: &[],
//!     config: &config,
//!     host_env: &env,
//!     host_home: &home,
//!     defaults: false,
//!     tmux: false,
//!     agent_args: &[],
//!     network: None,
//!     limits: LimitOverrides::default(),
//!     staged_home: None,
//!     secrets: &[],
//! })?;
//! assert_eq!(plan.argv, ["bash"]);
//! assert_eq!(plan.mounts[0].host, project);
//! assert_eq!(plan.workdir, project);
//! # Ok(()) }
//! ```

pub mod config;
pub mod keys;
pub mod lookup;
pub mod overlay;
pub mod plan;
pub mod profile;
pub mod secrets;
pub mod staging;
pub mod workspace;

pub use config::{Config, ConfigError, EnvMap, HostContext};
pub use plan::{RunPlan, build_plan};
pub use profile::{AgentKind, AgentProfile};
pub use staging::StagedHome;
pub use workspace::{Workspace, find_workspace};
