//! `ags completions`: shell completion scripts generated from the clap definitions.

use clap::CommandFactory;

use crate::cli::{Cli, Shell};

/// Print the script to stdout.
pub fn execute(shell: Shell) -> anyhow::Result<i32> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut Cli::command(), "ags", &mut std::io::stdout());
    Ok(crate::exit::OK)
}
