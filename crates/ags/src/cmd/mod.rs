//! One module per command.

mod completions;
mod doctor;
mod run;

use crate::cli::{Cli, Command};

/// Execute a parsed command line and return the exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run::execute(&args),
        Command::Doctor => doctor::execute(),
        Command::Completions { shell } => completions::execute(shell),
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
pub fn seal_self() -> anyhow::Result<()> {
    use anyhow::Context;
    pentacle::ensure_sealed().context(
        "cannot re-execute from a sealed copy of the ags binary (CVE-2019-5736 protection)",
    )
}

/// The state directory base for this user.
pub fn state_base() -> std::path::PathBuf {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").map(std::path::PathBuf::from);
    ags_runtime::state::default_base(xdg.as_deref(), nix::unistd::geteuid().as_raw())
}
