//! `ags`: run AI coding agents in a rootless, daemonless, locked-down container.
//!
//! This crate is the only one that reads argv and the environment, prints, or exits. Each
//! command lives in `cmd/`; `cli.rs` holds the clap structures; errors are rendered by
//! `render.rs` as `error:` / `caused by:` / `hint:` lines with named exit codes.

mod cli;
mod cmd;
mod effective;
mod exit;
mod images;
mod render;
mod settings;

use clap::Parser;

fn main() {
    init_logging();
    let cli = cli::Cli::parse();
    let code = match cmd::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            render::error(&err);
            exit::code_for(&err)
        }
    };
    std::process::exit(code);
}

/// `AGS_LOG=debug` (or any tracing filter, e.g. `libcontainer=trace`) shows what ags and
/// libcontainer do, on stderr. Off by default.
fn init_logging() {
    if let Ok(filter) = std::env::var("AGS_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}
