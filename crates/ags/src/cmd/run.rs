//! `ags run`: a command in a sandbox rooted at a directory.

use std::io::IsTerminal;

use anyhow::Context;

use crate::cli::RunArgs;
use crate::settings;

/// Run the command and return its exit code.
pub fn execute(args: &RunArgs) -> anyhow::Result<i32> {
    super::seal_self()?;
    let env = |k: &str| std::env::var(k).ok();
    let settings = settings::run_settings(args, std::io::stdin().is_terminal(), &env)?;
    let opts = ags_runtime::run::RunOptions {
        state_base: super::state_base(),
        ..Default::default()
    };
    let mut warn = |w: ags_runtime::run::Warning| match w {
        ags_runtime::run::Warning::SingleIdMap(m) => eprintln!("warning: {m}"),
        ags_runtime::run::Warning::NoCgroupDelegation(m) => eprintln!(
            "warning: resource limits degraded: {m}; memory/CPU limits are not enforced and processes are capped with RLIMIT_NPROC (see `ags doctor`)"
        ),
    };
    ags_runtime::run::run(&settings.policy, &super::invoker(), &opts, &mut warn).with_context(
        || {
            format!(
                "cannot run {:?} in {}",
                args.command.join(" "),
                settings.policy.rootfs.display()
            )
        },
    )
}
