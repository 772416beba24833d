//! `ags run`: a command in a sandbox, from an image or a root directory.

use std::io::IsTerminal;

use anyhow::Context;

use crate::cli::{GlobalArgs, RunArgs};
use crate::images::{self, Images};
use crate::settings;

/// Run the command and return its exit code.
pub fn execute(global: &GlobalArgs, args: &RunArgs) -> anyhow::Result<i32> {
    let env = |k: &str| std::env::var(k).ok();
    let tty = std::io::stdin().is_terminal();
    let mut policy = match (&args.rootfs, &args.image) {
        (Some(rootfs), _) => settings::rootfs_policy(rootfs, args)?,
        (None, Some(image)) => {
            let reference = images::parse_reference(image, "IMAGE")?;
            let platform = images::parse_platform(args.platform.as_deref())?;
            let limits = settings::limits(&args.limits)?;
            let imgs = Images::open(global)?;
            let (pulled, root) = imgs.get_or_pull(&reference, &platform)?;
            let config = imgs
                .store
                .image_config(&pulled)
                .with_context(|| format!("cannot read the config of {reference}"))?;
            settings::image_policy(&root, &config, args, limits)?
        }
        (None, None) => unreachable!("clap requires IMAGE or --rootfs"),
    };
    settings::apply_flags(&mut policy, args, tty, &env)?;
    // Seal only now: pulling may have started threads, and pentacle re-executes the
    // process, which also leaves those behind before the sandbox is created.
    super::seal_self()?;
    let opts = ags_runtime::run::RunOptions {
        state_base: super::state_base(),
        ..Default::default()
    };
    ags_runtime::run::run(&policy, &super::invoker(), &opts, &mut super::warn_once()).with_context(
        || {
            format!(
                "cannot run {:?} in {}",
                policy.argv.join(" "),
                policy.rootfs.display()
            )
        },
    )
}
