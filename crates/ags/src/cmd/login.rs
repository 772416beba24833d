//! `ags login` / `ags logout`: credentials in the containers auth file.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use ags_oci::auth::{
    Credentials, StaticCredentials, normalize_key, remove_credentials, store_credentials,
};
use ags_oci::registry::{ClientOptions, RegistryClient};
use anyhow::{Context, Result, bail};

use crate::cli::GlobalArgs;
use crate::images;

fn read_password(from_stdin: bool) -> Result<String> {
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_owned());
    }
    eprint!("Password: ");
    let _ = std::io::stderr().flush();
    // Turn echo off while the password is typed; the guard restores the terminal.
    let fd = std::io::stdin();
    let saved = nix::sys::termios::tcgetattr(&fd).context("cannot read terminal settings")?;
    let mut quiet = saved.clone();
    quiet
        .local_flags
        .remove(nix::sys::termios::LocalFlags::ECHO);
    nix::sys::termios::tcsetattr(&fd, nix::sys::termios::SetArg::TCSANOW, &quiet)
        .context("cannot turn off echo")?;
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    let _ = nix::sys::termios::tcsetattr(&fd, nix::sys::termios::SetArg::TCSANOW, &saved);
    eprintln!();
    r.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Check the credentials against the registry, then store them.
pub fn login(
    global: &GlobalArgs,
    registry: &str,
    username: &str,
    password_stdin: bool,
) -> Result<i32> {
    let password = read_password(password_stdin)?;
    if password.is_empty() {
        bail!(crate::settings::InputError {
            flag: "--password-stdin",
            message: "the password is empty".into()
        });
    }
    let creds = Credentials::new(username, password);
    let mut map = BTreeMap::new();
    map.insert(normalize_key(registry), creds.clone());
    let client = RegistryClient::new(
        images::registry_config(global)?,
        Arc::new(StaticCredentials(map)),
        ClientOptions::default(),
    );
    client
        .check_login(registry)
        .with_context(|| format!("login to {registry} failed"))?;
    let file = images::login_file();
    store_credentials(&file, registry, &creds)
        .with_context(|| format!("cannot write {}", file.display()))?;
    eprintln!("Login succeeded; credentials saved in {}", file.display());
    Ok(crate::exit::OK)
}

/// Remove stored credentials from every auth file ags writes.
pub fn logout(registry: &str) -> Result<i32> {
    let file = images::login_file();
    let removed = remove_credentials(&file, registry)
        .with_context(|| format!("cannot update {}", file.display()))?;
    if !removed {
        bail!(crate::settings::InputError {
            flag: "REGISTRY",
            message: format!("not logged in to {registry} (in {})", file.display())
        });
    }
    eprintln!("Removed credentials for {registry}");
    Ok(crate::exit::OK)
}
