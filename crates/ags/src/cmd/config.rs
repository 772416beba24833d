//! `ags config path` and `ags config show`: where the config comes from, and what it adds
//! up to. Neither asks about, nor approves, a repo overlay, and neither writes anything;
//! an overlay applies here exactly when it would apply to `ags --agent` without a prompt.

use anyhow::Result;

use crate::cli::GlobalArgs;
use crate::effective::{self, Host, OverlayPolicy, OverlayState};
use crate::images;

/// Print `config: PATH`, and `overlay: PATH` when the workspace has one; notes on stderr.
pub fn path(global: &GlobalArgs) -> Result<i32> {
    let config = images::config_path(global);
    println!("config: {}", config.display());
    if std::fs::symlink_metadata(&config).is_err() {
        eprintln!("note: the file does not exist yet; the first `ags --agent` run creates it");
    }
    let root = effective::current_workspace_root()?;
    let overlay = root.join(ags_agent::overlay::OVERLAY_PATH);
    if std::fs::symlink_metadata(&overlay).is_ok() {
        println!("overlay: {}", overlay.display());
        let config_dir = config.parent().unwrap_or(std::path::Path::new("."));
        let note = match ags_agent::overlay::overlay_status(config_dir, &root) {
            Ok(ags_agent::overlay::OverlayStatus::Trusted(_)) => {
                "approved: applied to normal runs (never to --lockdown)".to_owned()
            }
            Ok(_) => "not approved: `ags --agent` asks before applying it".to_owned(),
            Err(e) => format!("refused: {e}"),
        };
        eprintln!("note: overlay {note}");
    }
    Ok(crate::exit::OK)
}

/// Print the effective config as TOML, headed by comments that say where it came from.
pub fn show(global: &GlobalArgs) -> Result<i32> {
    let host = Host::current();
    let root = effective::current_workspace_root()?;
    let eff = effective::load(global, &host, Some(&root), OverlayPolicy::ApprovedOnly)?;
    print!("{}", header(&eff));
    print!("{}", eff.config.to_toml());
    Ok(crate::exit::OK)
}

fn header(eff: &effective::Effective) -> String {
    let mut out = String::from("# The effective ags config.\n");
    if eff.exists {
        out.push_str(&format!("# config: {}\n", eff.path.display()));
    } else {
        out.push_str(&format!(
            "# config: {} (does not exist yet: these are the defaults it is created with)\n",
            eff.path.display()
        ));
    }
    let overlay = match &eff.overlay {
        OverlayState::Absent => "none".to_owned(),
        OverlayState::Ignored => "not read".to_owned(),
        OverlayState::Applied(p) => {
            format!("{} (approved, applied; never in --lockdown)", p.display())
        }
        OverlayState::NotApproved(p) => format!(
            "{} (not approved, not applied; `ags --agent` asks for approval)",
            p.display()
        ),
    };
    out.push_str(&format!("# repo overlay: {overlay}\n"));
    out.push_str("# [[secret]] entries show where a value comes from, never the value.\n\n");
    out
}
