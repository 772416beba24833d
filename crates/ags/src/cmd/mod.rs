//! One module per command.

mod agent;
mod aliases;
pub mod build;
mod completions;
mod config;
mod doctor;
mod gc;
mod images;
mod install;
mod login;
mod pull;
mod rmi;
mod run;
mod setup;

use anyhow::Context;

use crate::cli::{Cli, Command, ConfigCommand};

/// Execute a parsed command line and return the exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let g = &cli.global;
    let Some(command) = cli.command else {
        return agent::execute(g, &cli.agent);
    };
    if let Some(flag) = cli.agent.first_flag() {
        anyhow::bail!(crate::settings::InputError {
            flag,
            message:
                "is a run-mode option (ags --agent NAME ...); put command options after the command"
                    .into(),
        });
    }
    match command {
        Command::Run(args) => run::execute(g, &args),
        Command::Pull {
            reference,
            platform,
        } => pull::execute(g, &reference, platform.as_deref()),
        Command::Images => images::execute(g),
        Command::Rmi { references } => rmi::execute(g, &references),
        Command::Gc => gc::execute(g),
        Command::Login {
            registry,
            username,
            password_stdin,
        } => login::login(g, &registry, &username, password_stdin),
        Command::Logout { registry } => login::logout(&registry),
        Command::Build(args) => build::execute(g, &args),
        Command::Update(args) => build::update(g, &args, false),
        Command::UpdateAgents(args) => build::update(g, &args, true),
        Command::Doctor => doctor::execute(g),
        Command::Completions { shell } => completions::execute(shell),
        Command::Setup => setup::execute(),
        Command::Install { link_self } => install::execute(link_self),
        Command::CreateAliases { shell } => aliases::execute(shell),
        Command::Config(ConfigCommand::Path) => config::path(g),
        Command::Config(ConfigCommand::Show) => config::show(g),
    }
}

/// The invoking user, from the process credentials and the passwd database.
pub fn invoker() -> ags_runtime::run::Invoker {
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name);
    ags_runtime::run::Invoker {
        uid: uid.as_raw(),
        gid: gid.as_raw(),
        name,
    }
}

/// Protect the host binary against CVE-2019-5736: a process in the sandbox could open
/// `/proc/<pid>/exe` of a runtime process that has entered its namespaces and overwrite the
/// binary on the host. Re-executing from a sealed, read-only memfd copy (pentacle) makes
/// that link point at an immutable anonymous file instead. youki does the same in its own
/// `main`, which is why libcontainer, as a library, cannot do it for us.
///
/// The copy costs several milliseconds per start, so it is skipped when it cannot matter:
/// overwriting the binary needs write permission on it, and every process of a sandbox runs
/// as the invoking user or one of its subordinate ids, with no capability in the initial
/// user namespace. A binary the invoking user cannot write and that has no group or other
/// write bit (for example root's, in /usr/local/bin) is out of their reach either way.
pub fn seal_self() -> anyhow::Result<()> {
    if pentacle::is_sealed() || !exe_is_writable_by_sandbox() {
        return Ok(());
    }
    tracing::debug!("re-executing from a sealed copy");
    pentacle::ensure_sealed().context(
        "cannot re-execute from a sealed copy of the ags binary (CVE-2019-5736 protection)",
    )
}

/// Whether anyone a sandbox runs as could write the running binary.
fn exe_is_writable_by_sandbox() -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata("/proc/self/exe") else {
        return true;
    };
    if meta.permissions().mode() & 0o022 != 0 {
        return true;
    }
    // access(2) checks with the real uid: the invoking user, whom the sandbox user maps to.
    // (Root passes every check, so root always seals.)
    nix::unistd::access("/proc/self/exe", nix::unistd::AccessFlags::W_OK).is_ok()
}

/// The state directory base for this user.
pub fn state_base() -> std::path::PathBuf {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").map(std::path::PathBuf::from);
    ags_runtime::state::default_base(xdg.as_deref(), nix::unistd::geteuid().as_raw())
}

/// Print each warning once per process.
pub fn warn_once() -> impl FnMut(ags_runtime::run::Warning) {
    let mut seen = std::collections::HashSet::new();
    move |w| {
        let msg = match w {
            ags_runtime::run::Warning::SingleIdMap(m) => m,
            ags_runtime::run::Warning::NoCgroupDelegation(m) => format!(
                "resource limits degraded: {m}; memory/CPU limits are not enforced and processes are capped with RLIMIT_NPROC (see `ags doctor`)"
            ),
        };
        if seen.insert(msg.clone()) {
            eprintln!("warning: {msg}");
        }
    }
}

/// The id maps images are unpacked and run with: the invoking user is container uid/gid
/// 1000 ("dev"), the other ids come from its subordinate ranges.
pub fn image_maps() -> anyhow::Result<(ags_runtime::idmap::IdMaps, bool)> {
    let me = invoker();
    let opts = ags_runtime::run::RunOptions::default();
    let maps = ags_runtime::run::id_maps(&me, &opts, (1000, 1000), &mut warn_once())
        .context("cannot work out the user namespace mapping")?;
    Ok((maps, me.uid == 0))
}
