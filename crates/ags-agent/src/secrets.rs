//! Resolving `[[secret]]` entries into values, for normal (non-lockdown) runs only.
//!
//! Each secret tries its sources in order: `from_env` (the environment map passed in),
//! `secret_store` (`secret-tool lookup ATTR VALUE...`, see secret-tool(1)) and `command`
//! (an absolute program from the user's own config; overlays cannot set it). Programs run
//! with a small environment allowlist, no stdin, a timeout (the whole process group is
//! killed when it expires) and a cap on their output. Values are wrapped in
//! [`SecretValue`], whose `Debug` and `Display` never show the value; failures describe
//! what went wrong without including any output.

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::config::{EnvMap, Location, SecretConfig};

/// Largest accepted output of `secret-tool` or a secret command.
pub const MAX_SECRET_OUTPUT: usize = 64 * 1024;

/// Host variables a secret program gets (everything else is cleared): what password
/// managers and the Secret Service client need to find their agent and store.
pub const SECRET_PROGRAM_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "DBUS_SESSION_BUS_ADDRESS",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "GNUPGHOME",
    "PASSWORD_STORE_DIR",
];

/// A secret value. `Debug` and `Display` print `<redacted>`; use [`SecretValue::expose`]
/// where the value is really needed (building the container's environment).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: String) -> SecretValue {
        SecretValue(value)
    }

    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

impl std::fmt::Display for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A secret none of whose sources produced a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFailure {
    /// The variable.
    pub env: String,
    /// Where the `[[secret]]` was written.
    pub location: Location,
    /// One line per source tried, e.g. `secret-tool: not found`.
    pub attempts: Vec<String>,
}

/// The outcome of [`resolve_secrets`]: what resolved and what did not. The caller decides
/// whether a failure is fatal (ags-agent does not print).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedSecrets {
    /// Variable name and value, in config order.
    pub values: Vec<(String, SecretValue)>,
    /// Secrets that did not resolve.
    pub failures: Vec<SecretFailure>,
}

/// Resolves every secret (see the module docs). Call only for normal runs.
pub fn resolve_secrets(secrets: &[SecretConfig], env: &EnvMap) -> ResolvedSecrets {
    let mut out = ResolvedSecrets::default();
    for s in secrets {
        let mut attempts = Vec::new();
        let mut value = None;
        if let Some(var) = &s.from_env {
            match env.get(var).filter(|v| !v.is_empty()) {
                Some(v) => value = Some(v.clone()),
                None => attempts.push(format!("from_env: {var} is not set")),
            }
        }
        if value.is_none()
            && let Some(attrs) = &s.secret_store
        {
            let mut argv = vec!["secret-tool".to_owned(), "lookup".to_owned()];
            for (k, v) in attrs {
                argv.push(k.clone());
                argv.push(v.clone());
            }
            match run_capture(&argv, env, s.timeout) {
                Ok(v) => value = Some(v),
                Err(e) => attempts.push(format!("secret-tool: {e}")),
            }
        }
        if value.is_none()
            && let Some(argv) = &s.command
        {
            match run_capture(argv, env, s.timeout) {
                Ok(v) => value = Some(v),
                Err(e) => attempts.push(format!("command {}: {e}", argv[0])),
            }
        }
        match value {
            Some(v) => out.values.push((s.env.clone(), SecretValue(v))),
            None => out.failures.push(SecretFailure {
                env: s.env.clone(),
                location: s.location.clone(),
                attempts,
            }),
        }
    }
    out
}

/// Runs `argv` and returns its stdout without the trailing newline. Errors never contain
/// the program's output.
fn run_capture(argv: &[String], env: &EnvMap, timeout: Duration) -> Result<String, String> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(
            SECRET_PROGRAM_ENV
                .iter()
                .filter_map(|k| env.get(*k).map(|v| (*k, v))),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own process group, so a timeout kills helpers it started as well.
        .process_group(0);
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "not found".to_owned(),
        _ => format!("cannot start: {e}"),
    })?;
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        // Reading stops after the cap; dropping the pipe then makes further writes fail.
        let res = stdout
            .take(MAX_SECRET_OUTPUT as u64 + 1)
            .read_to_end(&mut buf)
            .map(|_| buf);
        let _ = tx.send(res);
    });
    let deadline = Instant::now() + timeout;
    let kill = |child: &mut std::process::Child| {
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.kill();
        let _ = child.wait();
    };
    let output = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(Ok(buf)) => buf,
        Ok(Err(e)) => {
            kill(&mut child);
            return Err(format!("cannot read output: {e}"));
        }
        Err(_) => {
            kill(&mut child);
            return Err(format!("timed out after {}s", timeout.as_secs()));
        }
    };
    if output.len() > MAX_SECRET_OUTPUT {
        kill(&mut child);
        return Err(format!("output is larger than {MAX_SECRET_OUTPUT} bytes"));
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => {
                kill(&mut child);
                return Err(format!("timed out after {}s", timeout.as_secs()));
            }
            Err(e) => return Err(format!("cannot wait: {e}")),
        }
    };
    if !status.success() {
        return Err(format!("failed ({status})"));
    }
    let mut s = String::from_utf8(output).map_err(|_| "output is not UTF-8".to_owned())?;
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    if s.is_empty() {
        return Err("empty output".to_owned());
    }
    if s.contains('\0') {
        return Err("output contains a NUL byte".to_owned());
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn loc() -> Location {
        Location {
            file: "c.toml".into(),
            path: PathBuf::from("/c.toml"),
            line: 1,
            col: 1,
        }
    }

    fn secret(env: &str) -> SecretConfig {
        SecretConfig {
            env: env.into(),
            from_env: None,
            secret_store: None,
            command: None,
            timeout: Duration::from_secs(5),
            location: loc(),
        }
    }

    fn host_env() -> EnvMap {
        let mut e = EnvMap::new();
        e.insert("PATH".into(), "/usr/bin:/bin".into());
        e.insert("MY_TOKEN".into(), "tok-123".into());
        e
    }

    fn sh(script: &str) -> Option<Vec<String>> {
        Some(vec!["/bin/sh".into(), "-c".into(), script.into()])
    }

    #[test]
    fn redacted() {
        let v = SecretValue::new("hunter2".into());
        assert_eq!(format!("{v}"), "<redacted>");
        assert_eq!(format!("{v:?}"), "SecretValue(<redacted>)");
        let r = ResolvedSecrets {
            values: vec![("X".into(), v.clone())],
            failures: vec![],
        };
        assert!(!format!("{r:?}").contains("hunter2"));
        assert_eq!(v.expose(), "hunter2");
    }

    #[test]
    fn sources_in_order() {
        let mut a = secret("A");
        a.from_env = Some("MY_TOKEN".into());
        a.command = sh("echo from-command");
        let mut b = secret("B");
        b.from_env = Some("UNSET".into());
        b.command = sh("printf 'line\\r\\n'");
        let r = resolve_secrets(&[a, b], &host_env());
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        assert_eq!(r.values[0].0, "A");
        assert_eq!(r.values[0].1.expose(), "tok-123");
        assert_eq!(r.values[1].1.expose(), "line");
    }

    #[test]
    fn command_gets_only_allowlisted_env() {
        let mut a = secret("A");
        a.command = sh("printf '%s' \"${MY_TOKEN:-unset}\"");
        let r = resolve_secrets(&[a], &host_env());
        assert_eq!(r.values[0].1.expose(), "unset");
    }

    #[test]
    fn failures_are_reported_without_output() {
        let mut a = secret("A");
        a.command = sh("echo SECRET-OUTPUT; exit 3");
        let mut b = secret("B");
        b.command = sh("true");
        let mut c = secret("C");
        c.command = Some(vec!["/nonexistent/prog".into()]);
        let r = resolve_secrets(&[a, b, c], &host_env());
        assert!(r.values.is_empty());
        let msgs: Vec<String> = r.failures.iter().map(|f| f.attempts.join("; ")).collect();
        assert!(
            msgs[0].contains("failed") && !msgs[0].contains("SECRET-OUTPUT"),
            "{msgs:?}"
        );
        assert!(msgs[1].contains("empty output"), "{msgs:?}");
        assert!(msgs[2].contains("not found"), "{msgs:?}");
    }

    #[test]
    fn timeout_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let mut a = secret("A");
        a.timeout = Duration::from_secs(1);
        // A helper in the background that would write a marker after the timeout.
        a.command = sh(&format!("(sleep 2; touch {}) & sleep 30", marker.display()));
        let start = Instant::now();
        let r = resolve_secrets(&[a], &host_env());
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(
            r.failures[0].attempts[0].contains("timed out"),
            "{:?}",
            r.failures
        );
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "background helper survived the timeout");
    }

    #[test]
    fn output_is_capped() {
        let mut a = secret("A");
        a.command = Some(vec!["/usr/bin/yes".into()]);
        let r = resolve_secrets(&[a], &host_env());
        assert!(
            r.failures[0].attempts[0].contains("larger than"),
            "{:?}",
            r.failures
        );
    }

    #[test]
    fn secret_tool_missing_or_failing_is_a_failure() {
        let mut a = secret("A");
        a.secret_store = Some(BTreeMap::from([("service".into(), "none".into())]));
        let mut env = host_env();
        env.insert("PATH".into(), "/nonexistent".into());
        let r = resolve_secrets(&[a], &env);
        assert_eq!(r.failures.len(), 1);
        assert!(
            r.failures[0].attempts[0].starts_with("secret-tool: "),
            "{:?}",
            r.failures
        );
    }
}
