//! `ags setup`: the sandbox's own SSH keys, in `$XDG_CONFIG_HOME/ags/ssh/` (a directory
//! that is never mounted into a sandbox; see ags-agent's plan). Existing keys are kept; the
//! public keys go to stdout, one per line (authentication first, then signing), and what to
//! do with them to stderr.

use std::ffi::OsStr;

use ags_agent::keys::{self, KeyError, KeyPair, KeyState};
use anyhow::{Context, Result};

use crate::images;
use crate::render::Hint;

/// Create the missing keys and print both public keys.
pub fn execute() -> Result<i32> {
    let dir = images::config_dir().join("ssh");
    let who = format!(
        "{}@{}",
        super::invoker().name.unwrap_or_else(|| "user".into()),
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "host".into())
    );
    let mut pairs = Vec::new();
    for (name, what) in [
        (keys::AUTH_KEY, "authentication key"),
        (keys::SIGNING_KEY, "signing key"),
    ] {
        let comment = format!("{name} {who}");
        let pair = keys::ensure_key(&dir, name, &comment, OsStr::new("ssh-keygen"))
            .map_err(|e| {
                let hint = matches!(e, KeyError::NoKeygen { .. }).then(|| {
                    "install OpenSSH's client tools (Debian/Ubuntu: openssh-client, Fedora: openssh-clients)"
                });
                let err = anyhow::Error::new(e);
                match hint {
                    Some(h) => err.context(Hint(h.into())),
                    None => err,
                }
            })
            .with_context(|| format!("cannot set up the {what}"))?;
        report(&pair, what);
        pairs.push(pair);
    }
    for p in &pairs {
        println!("{}", p.public_key);
    }
    eprintln!(
        "\nNext: add the authentication key to your git host as an SSH authentication key and the\n\
         signing key as an SSH signing key (GitHub: Settings > SSH and GPG keys > New SSH key).\n\
         They belong to ags sandboxes only: revoke them there without touching your own keys."
    );
    Ok(crate::exit::OK)
}

fn report(pair: &KeyPair, what: &str) {
    let done = match pair.state {
        KeyState::Created => "created",
        KeyState::Existing => "kept existing",
        KeyState::PublicRestored => "kept existing (public key restored)",
    };
    eprintln!("{what}: {done} {}", pair.private.display());
    if let Some(mode) = pair.loose_mode {
        eprintln!(
            "warning: {} has mode {mode:04o}; ssh refuses private keys that others can read\n  hint: chmod 600 {}",
            pair.private.display(),
            pair.private.display()
        );
    }
}
