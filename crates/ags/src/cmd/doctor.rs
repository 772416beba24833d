//! `ags doctor`: check the host, the config, the agent image and the agent CLIs in it, and
//! print a fix for each problem. Nothing is started, written or pulled: the image checks
//! read the store and the image's unpacked tree as they are.
//!
//! Only failures that stop every sandbox (the required host checks, a config with errors)
//! make the exit status non-zero. A missing image is a warning: the first `ags --agent`
//! run builds or pulls it.

use std::path::PathBuf;

use ags_agent::config::{Config, DEFAULT_IMAGE};
use ags_agent::lookup::{self, DEFAULT_SEARCH_PATH};
use ags_agent::profile::AgentKind;
use ags_oci::store::{Store, StoreError};
use ags_runtime::host::{self, Status};

use crate::cli::GlobalArgs;
use crate::effective::{self, Host, OverlayPolicy, OverlayState};
use crate::{exit, images};

/// One line of the report.
#[derive(Debug)]
struct Line {
    name: String,
    status: Status,
    detail: String,
    hint: Option<String>,
    /// Whether a failure stops every sandbox.
    required: bool,
}

impl Line {
    fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: Status::Ok,
            detail: detail.into(),
            hint: None,
            required: false,
        }
    }

    fn warn(name: impl Into<String>, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: Status::Warn,
            detail: detail.into(),
            hint: Some(hint.into()),
            required: false,
        }
    }
}

/// Print every check; exit non-zero when something required is missing.
pub fn execute(global: &GlobalArgs) -> anyhow::Result<i32> {
    let me = super::invoker();
    let mut lines: Vec<Line> = host::checks(me.name.as_deref(), me.uid)
        .into_iter()
        .map(|c| Line {
            name: c.name.to_owned(),
            status: c.status,
            detail: c.detail,
            hint: c.hint,
            required: c.required,
        })
        .collect();
    if let Some(config) = config_check(global, &mut lines) {
        image_checks(global, &config, &mut lines);
    }
    lines.push(keys_check());

    let mut failed = false;
    for l in &lines {
        let tag = match l.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        println!("[{tag}] {}: {}", l.name, l.detail);
        if let Some(h) = &l.hint {
            println!("       fix: {h}");
        }
        failed |= l.status == Status::Fail && l.required;
    }
    Ok(if failed { exit::CHECK_FAILED } else { exit::OK })
}

/// The effective config (as `ags --agent` would use it without asking about an overlay).
fn config_check(global: &GlobalArgs, lines: &mut Vec<Line>) -> Option<Config> {
    let host = Host::current();
    // Outside a readable workspace there is simply no overlay to consider.
    let root = effective::current_workspace_root().ok();
    match effective::load(global, &host, root.as_deref(), OverlayPolicy::ApprovedOnly) {
        Ok(eff) => {
            let mut detail = if eff.exists {
                eff.path.display().to_string()
            } else {
                format!(
                    "{} does not exist yet: defaults apply (the first `ags --agent` run creates it)",
                    eff.path.display()
                )
            };
            match &eff.overlay {
                OverlayState::Applied(p) => {
                    detail.push_str(&format!(", with the approved overlay {}", p.display()))
                }
                OverlayState::NotApproved(p) => detail.push_str(&format!(
                    ", without the overlay {} (not approved)",
                    p.display()
                )),
                OverlayState::Absent | OverlayState::Ignored => {}
            }
            lines.push(Line::ok("config", detail));
            Some(eff.config)
        }
        Err(e) => {
            let detail = e
                .chain()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(": ");
            lines.push(Line {
                name: "config".into(),
                status: Status::Fail,
                detail,
                hint: Some(
                    "fix the file and line named above; `ags config show` prints what applies"
                        .into(),
                ),
                required: true,
            });
            None
        }
    }
}

/// The configured image in the store, then each agent's command in its tree.
fn image_checks(global: &GlobalArgs, config: &Config, lines: &mut Vec<Line>) {
    let image = config.image();
    let is_default = image == DEFAULT_IMAGE;
    let reference = match images::parse_reference(image, "[sandbox].image") {
        Ok(r) => r,
        Err(e) => {
            lines.push(Line {
                name: "image".into(),
                status: Status::Fail,
                detail: e.to_string(),
                hint: Some("set [sandbox].image to an image reference, e.g. debian:12".into()),
                required: true,
            });
            return;
        }
    };
    let missing_hint = if is_default {
        "run `ags update` to build it (the first `ags --agent` run builds it too)".to_owned()
    } else {
        format!("run `ags pull {image}` (the first `ags --agent` run pulls it too)")
    };
    let not_checked = |why: &str| {
        Line::warn(
            "agent CLIs",
            format!("not checked: {why}"),
            "run `ags doctor` again once the image is there",
        )
    };
    // Opening a store creates it: look before, since doctor writes nothing.
    let store_dir = images::store_path(global);
    let store = match store_dir.is_dir().then(|| Store::open(&store_dir)) {
        Some(Ok(s)) => s,
        None => {
            lines.push(Line::warn(
                "image",
                format!(
                    "{image} is not in the store ({} does not exist)",
                    store_dir.display()
                ),
                missing_hint,
            ));
            lines.push(not_checked("the image is not in the store"));
            return;
        }
        Some(Err(e)) => {
            lines.push(Line::warn(
                "image",
                format!("cannot open the image store: {}", error_chain(&e)),
                format!("check the permissions of {}", store_dir.display()),
            ));
            return;
        }
    };
    let platform = ags_oci::platform::Platform::host();
    let pulled = match store.get(&reference, Some(&platform)) {
        Ok(p) => p,
        Err(StoreError::NotFound(_)) => {
            lines.push(Line::warn(
                "image",
                format!("{image} is not in the store"),
                missing_hint,
            ));
            lines.push(not_checked("the image is not in the store"));
            return;
        }
        Err(e) => {
            lines.push(Line::warn(
                "image",
                format!("cannot read {image} from the store: {}", error_chain(&e)),
                missing_hint,
            ));
            return;
        }
    };
    lines.push(Line::ok(
        "image",
        format!(
            "{image} ({}, {})",
            &pulled.manifest_digest.to_string()[..19],
            pulled.platform
        ),
    ));
    // A built image runs from its build snapshots: look in them, top layer first.
    let layers: Vec<PathBuf> = match ags_build::builder::layered_root(&store, &pulled) {
        Some(l) => l.into_iter().rev().collect(),
        None => vec![ags_build::rootfs::rootfs_path(&store, &pulled)],
    };
    if !layers[0].is_dir() {
        lines.push(Line::warn(
            "agent CLIs",
            "not checked: the image is not unpacked yet",
            "the first `ags --agent` run unpacks it",
        ));
        return;
    }
    for kind in AgentKind::ALL {
        lines.push(agent_check(kind, &layers, image, is_default));
    }
}

/// Whether an agent's command is on the sandbox's `PATH` in the image tree.
fn agent_check(kind: AgentKind, layers: &[PathBuf], image: &str, is_default: bool) -> Line {
    let command = kind.profile().command;
    let name = format!("agent {}", kind.name());
    let install_hint = if is_default {
        "run `ags update-agents` to install the agent CLIs".to_owned()
    } else {
        format!("install {command} in {image}, or set [sandbox].image to an image that has it")
    };
    let found = layers.iter().try_fold(None, |acc, tree| match acc {
        Some(f) => Ok(Some(f)),
        None => lookup::find_command(tree, DEFAULT_SEARCH_PATH, command),
    });
    match found {
        Ok(Some(found)) if found.executable => Line::ok(name, found.path),
        Ok(Some(found)) => Line::warn(
            name,
            format!(
                "{} is in the image but is not an executable file",
                found.path
            ),
            install_hint,
        ),
        Ok(None) => Line::warn(
            name,
            format!("{command} is not in {image} (searched {DEFAULT_SEARCH_PATH})"),
            install_hint,
        ),
        Err(e) => Line::warn(
            name,
            format!("cannot look into the image: {}", error_chain(&e)),
            format!("check the permissions of {}", layers[0].display()),
        ),
    }
}

/// Whether `ags setup` made the sandbox's SSH keys.
fn keys_check() -> Line {
    let dir = images::config_dir().join("ssh");
    let missing: Vec<&str> = [ags_agent::keys::AUTH_KEY, ags_agent::keys::SIGNING_KEY]
        .into_iter()
        .filter(|k| !dir.join(k).is_file())
        .collect();
    if missing.is_empty() {
        Line::ok("ssh keys", format!("{}", dir.display()))
    } else {
        Line::warn(
            "ssh keys",
            format!("{} missing in {}", missing.join(" and "), dir.display()),
            "run `ags setup` to create them",
        )
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}
