//! ags-runtime: the sandbox policy, its OCI runtime spec, and running it through youki's
//! `libcontainer`, rootless and without a daemon.
//!
//! The crate owns:
//! - [`policy::SandboxPolicy`]: the whole sandbox as data (rootfs, command, environment,
//!   ordered mounts, network mode, limits), deny by default, built in one place;
//! - [`spec::build`]: policy to `config.json` (namespaces, empty capability sets,
//!   no_new_privs, [`seccomp`] profile, masked and read-only paths, tmpfs limits);
//! - [`run::run`]: namespaces via the [`holder`], id maps ([`idmap`]), cgroup limits or
//!   their fallback ([`cgroups`]), pasta egress ([`network`]), terminal and signal relay
//!   ([`tty`]), exit status, and teardown, including after a SIGKILL ([`state`]);
//! - [`host`]: the checks behind `ags doctor`.
//!
//! ```no_run
//! use ags_runtime::policy::{Limits, SandboxPolicy};
//! use ags_runtime::run::{Invoker, RunOptions, run};
//!
//! let policy = SandboxPolicy::new("/srv/rootfs".into(), vec!["/bin/true".into()], Limits::defaults(None))?;
//! let me = Invoker { uid: 1000, gid: 1000, name: Some("alice".into()) };
//! let code = run(&policy, &me, &RunOptions::default(), &mut |w| eprintln!("warning: {w:?}"))?;
//! assert_eq!(code, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod cgroups;
pub mod holder;
pub mod host;
pub mod idmap;
pub mod network;
pub mod overlay;
pub mod policy;
pub mod run;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod tty;
pub mod userns;
