//! The effective config: the user's file merged with the current repository's overlay
//! when the user approved the overlay's content, read once per command. Run mode, the pull
//! path it drives, `ags config show` and `ags doctor` all take their settings from here,
//! so they agree on what applies.
//!
//! Only run mode asks for approval (on a terminal) and creates the default file; the
//! inspecting commands never prompt and never write.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use ags_agent::config::{self, Config, EnvMap, HostContext};
use ags_agent::overlay::{self, OverlayStatus};
use anyhow::{Context, Result};

use crate::cli::GlobalArgs;
use crate::images;

/// How a command treats the repo overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayPolicy {
    /// `--lockdown`: an overlay is untrusted input and never read.
    Ignore,
    /// Run mode: ask on a terminal when the content is new, skip with a warning otherwise.
    Ask,
    /// Inspecting commands: apply it when approved before, never ask.
    ApprovedOnly,
}

/// What happened to the repo overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverlayState {
    /// The workspace has no `.ags/config.toml`.
    Absent,
    /// Not read (`--lockdown`).
    Ignored,
    /// Applied: its content is approved.
    Applied(PathBuf),
    /// Not applied: its current content is not approved.
    NotApproved(PathBuf),
}

/// The config a command works with.
#[derive(Debug)]
pub struct Effective {
    /// The user's config file.
    pub path: PathBuf,
    /// Whether that file exists (when not, the config is the default file's content).
    pub exists: bool,
    /// The merged, validated config.
    pub config: Config,
    /// The overlay's fate.
    pub overlay: OverlayState,
}

/// The host context for path expansion: the home directory and the process environment.
pub struct Host {
    /// `$HOME`.
    pub home: PathBuf,
    /// The environment.
    pub env: EnvMap,
}

impl Host {
    /// From the process.
    pub fn current() -> Self {
        Self {
            home: images::home(),
            env: std::env::vars().collect(),
        }
    }

    /// As ags-agent takes it.
    pub fn context(&self) -> HostContext<'_> {
        HostContext {
            home: &self.home,
            env: &self.env,
        }
    }
}

/// Read the effective config for a workspace (`None`: outside any, so no overlay).
pub fn load(
    global: &GlobalArgs,
    host: &Host,
    workspace_root: Option<&Path>,
    policy: OverlayPolicy,
) -> Result<Effective> {
    let path = images::config_path(global);
    let exists = std::fs::symlink_metadata(&path).is_ok();
    let config_dir = path.parent().unwrap_or(Path::new("."));
    let (overlay, state) = match (policy, workspace_root) {
        (OverlayPolicy::Ignore, _) => (None, OverlayState::Ignored),
        (_, None) => (None, OverlayState::Absent),
        (policy, Some(root)) => match overlay::overlay_status(config_dir, root)? {
            OverlayStatus::Absent => (None, OverlayState::Absent),
            OverlayStatus::Trusted(o) => {
                let p = o.path.clone();
                (Some(o), OverlayState::Applied(p))
            }
            OverlayStatus::Untrusted { hash, overlay } => {
                if policy == OverlayPolicy::Ask && ask_trust(&overlay.path, &overlay.text)? {
                    overlay::trust(config_dir, root, &hash)?;
                    let p = overlay.path.clone();
                    (Some(overlay), OverlayState::Applied(p))
                } else {
                    (None, OverlayState::NotApproved(overlay.path))
                }
            }
        },
    };
    let config = if exists {
        overlay::load_with_overlay(&path, overlay.as_ref(), host.context())?
    } else {
        overlay::parse_with_overlay(
            &path,
            config::DEFAULT_CONFIG,
            overlay.as_ref(),
            host.context(),
        )?
    };
    Ok(Effective {
        path,
        exists,
        config,
        overlay: state,
    })
}

/// The workspace root of the current directory, for overlay lookup.
pub fn current_workspace_root() -> Result<PathBuf> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Ok(ags_agent::workspace::find_workspace(&cwd)
        .context("cannot determine the workspace")?
        .root)
}

fn ask_trust(path: &Path, text: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Ok(false);
    }
    let mut err = std::io::stderr().lock();
    writeln!(err, "{} asks for these settings:\n", path.display())?;
    for line in text.lines() {
        writeln!(err, "  | {line}")?;
    }
    write!(err, "\nApply them to runs in this repository? [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
