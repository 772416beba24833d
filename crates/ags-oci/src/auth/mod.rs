//! Registry credentials: auth.json / Docker config lookup, credential helpers, login/logout
//! file updates, and `WWW-Authenticate` parsing.
//!
//! This module never reads environment variables: the caller passes the files to search
//! (see [`default_auth_files`]) and the `PATH` used to find `docker-credential-*` helpers.
//! Secrets are wrapped in [`Secret`], whose `Debug` and `Display` print `<redacted>`.

mod challenge;

pub use challenge::{Challenge, Scheme, parse_www_authenticate};

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;

use crate::reference::DOCKER_HUB;

/// Errors from credential lookup and auth file updates.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// An auth file could not be read.
    #[error("cannot read credentials file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An auth file is not valid JSON of the expected shape.
    #[error("invalid credentials file {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// An `auth` field is not base64 `user:password`.
    #[error("invalid \"auth\" entry for {registry:?} in {path}: {reason}")]
    BadAuthEntry {
        /// The file.
        path: PathBuf,
        /// The registry key.
        registry: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A credential helper is not installed.
    #[error("credential helper docker-credential-{helper} not found in PATH")]
    HelperNotFound {
        /// The helper name.
        helper: String,
    },
    /// A credential helper failed.
    #[error("credential helper docker-credential-{helper} failed for {registry}: {reason}")]
    Helper {
        /// The helper name.
        helper: String,
        /// The registry asked about.
        registry: String,
        /// What went wrong (never includes the helper's stdout, which may hold secrets).
        reason: String,
    },
    /// Writing an auth file failed.
    #[error("cannot write credentials file {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A secret string. `Debug` and `Display` never show it; use [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret value; only for putting it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A username and password (or token) for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub secret: Secret,
}

impl Credentials {
    /// Builds credentials.
    pub fn new(username: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            secret: Secret::new(secret),
        }
    }

    /// The `Authorization: Basic` header value.
    pub fn basic_header(&self) -> Secret {
        Secret(format!(
            "Basic {}",
            B64.encode(format!("{}:{}", self.username, self.secret.expose()))
        ))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("secret", &self.secret)
            .finish()
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:<redacted>", self.username)
    }
}

/// Something that can supply credentials for a registry host.
pub trait CredentialProvider: Send + Sync + fmt::Debug {
    /// Credentials for `registry` (a `host[:port]`, `docker.io` for Docker Hub), if any.
    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, AuthError>;
}

/// No credentials at all (anonymous pulls).
#[derive(Debug, Default, Clone, Copy)]
pub struct Anonymous;

impl CredentialProvider for Anonymous {
    fn credentials(&self, _registry: &str) -> Result<Option<Credentials>, AuthError> {
        Ok(None)
    }
}

/// A fixed map of registry -> credentials (tests, `--creds` flags).
#[derive(Debug, Default, Clone)]
pub struct StaticCredentials(pub BTreeMap<String, Credentials>);

impl CredentialProvider for StaticCredentials {
    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, AuthError> {
        Ok(self.0.get(&normalize_key(registry)).cloned())
    }
}

/// The standard credential files, in lookup order, from values the caller read from the
/// environment: `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`
/// (or `$XDG_CONFIG_HOME/containers/auth.json`), `~/.docker/config.json`.
pub fn default_auth_files(
    xdg_runtime_dir: Option<&Path>,
    xdg_config_home: Option<&Path>,
    home: Option<&Path>,
) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(d) = xdg_runtime_dir {
        out.push(d.join("containers/auth.json"));
    }
    match (xdg_config_home, home) {
        (Some(c), _) => out.push(c.join("containers/auth.json")),
        (None, Some(h)) => out.push(h.join(".config/containers/auth.json")),
        (None, None) => {}
    }
    if let Some(h) = home {
        out.push(h.join(".docker/config.json"));
    }
    out
}

/// Credential lookup over auth.json / config.json files and credential helpers.
#[derive(Debug, Clone)]
pub struct AuthFiles {
    /// Files to search, first match wins.
    pub files: Vec<PathBuf>,
    /// The `PATH` value used to find `docker-credential-*` helpers (none: helpers unusable).
    pub path_env: Option<OsString>,
    /// How long a helper may run.
    pub helper_timeout: Duration,
}

impl AuthFiles {
    /// Looks in `files`, running helpers found via `path_env`.
    pub fn new(files: Vec<PathBuf>, path_env: Option<OsString>) -> Self {
        Self {
            files,
            path_env,
            helper_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Normalizes an auths key or registry name: strips the scheme and path, maps Docker Hub
/// aliases (`index.docker.io`, `https://index.docker.io/v1/`, `registry-1.docker.io`).
pub fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    crate::reference::normalize_registry(host)
}

fn read_auth_file(path: &Path) -> Result<Option<AuthFile>, AuthError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(AuthError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(AuthFile::default()));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| AuthError::Parse {
            path: path.to_path_buf(),
            source,
        })
}

fn decode_entry(path: &Path, key: &str, e: &AuthEntry) -> Result<Option<Credentials>, AuthError> {
    let bad = |reason| AuthError::BadAuthEntry {
        path: path.to_path_buf(),
        registry: key.to_string(),
        reason,
    };
    if let Some(auth) = e.auth.as_deref().filter(|a| !a.is_empty()) {
        let raw = B64.decode(auth.trim()).map_err(|_| bad("not base64"))?;
        let s = String::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
        let (u, p) = s.split_once(':').ok_or_else(|| bad("missing ':'"))?;
        return Ok(Some(Credentials::new(u, p)));
    }
    if let (Some(u), Some(p)) = (&e.username, &e.password) {
        return Ok(Some(Credentials::new(u.clone(), p.clone())));
    }
    Ok(None)
}

impl CredentialProvider for AuthFiles {
    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, AuthError> {
        let want = normalize_key(registry);
        for path in &self.files {
            let Some(file) = read_auth_file(path)? else {
                continue;
            };
            // Per-registry helpers take precedence, as in Docker.
            if let Some((_, helper)) = file
                .cred_helpers
                .iter()
                .find(|(k, _)| normalize_key(k) == want)
            {
                return run_helper(self, helper, &want);
            }
            if let Some((k, e)) = file.auths.iter().find(|(k, _)| normalize_key(k) == want) {
                if let Some(c) = decode_entry(path, k, e)? {
                    return Ok(Some(c));
                }
            }
            if let Some(store) = file.creds_store.as_deref().filter(|s| !s.is_empty()) {
                if let Some(c) = run_helper(self, store, &want)? {
                    return Ok(Some(c));
                }
            }
        }
        Ok(None)
    }
}

fn find_in_path(path_env: Option<&OsString>, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path_env?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[derive(Deserialize)]
struct HelperReply {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Runs `docker-credential-<helper> get` with the server URL on stdin.
fn run_helper(
    files: &AuthFiles,
    helper: &str,
    registry: &str,
) -> Result<Option<Credentials>, AuthError> {
    let fail = |reason: String| AuthError::Helper {
        helper: helper.to_string(),
        registry: registry.to_string(),
        reason,
    };
    if !helper
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(fail("invalid helper name".into()));
    }
    let exe = find_in_path(
        files.path_env.as_ref(),
        &format!("docker-credential-{helper}"),
    )
    .ok_or_else(|| AuthError::HelperNotFound {
        helper: helper.to_string(),
    })?;
    // Helpers store Docker Hub under its historical v1 URL.
    let server = if registry == DOCKER_HUB {
        "https://index.docker.io/v1/"
    } else {
        registry
    };
    let mut cmd = Command::new(&exe);
    cmd.arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = &files.path_env {
        cmd.env("PATH", p);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot run {}: {e}", exe.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading stdin is fine; its exit status tells.
        let _ = stdin.write_all(server.as_bytes());
    }
    // Read outputs on threads so a chatty helper cannot block on a full pipe.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.take(1 << 20).read_to_end(&mut v);
        }
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.take(1 << 16).read_to_end(&mut v);
        }
        v
    });
    let deadline = Instant::now() + files.helper_timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "timed out after {} s",
                    files.helper_timeout.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(fail(format!("wait failed: {e}"))),
        }
    };
    let out = out_t.join().unwrap_or_default();
    let err = err_t.join().unwrap_or_default();
    if !status.success() {
        let msg = String::from_utf8_lossy(if out.is_empty() { &err } else { &out });
        // The helper protocol reports a missing entry on stdout with this text.
        if msg.contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!("exited with {status}")));
    }
    let reply: HelperReply = serde_json::from_slice(&out)
        .map_err(|_| fail("reply is not JSON with Username and Secret".into()))?;
    if reply.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials::new(reply.username, reply.secret)))
}

fn load_json_object(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>, AuthError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(source) => {
            return Err(AuthError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Default::default());
    }
    serde_json::from_slice(&bytes).map_err(|source| AuthError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `path` atomically with mode 0600: temp file in the same directory, fsync, rename.
fn write_atomic_0600(path: &Path, data: &[u8]) -> Result<(), AuthError> {
    let werr = |source| AuthError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.as_os_str().is_empty() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(werr)?;
    }
    // tempfile creates the file with mode 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(".auth.json.")
        .tempfile_in(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
        .map_err(werr)?;
    tmp.write_all(data).map_err(werr)?;
    tmp.as_file().sync_all().map_err(werr)?;
    tmp.persist(path).map_err(|e| werr(e.error))?;
    Ok(())
}

/// Stores credentials for `registry` in a containers-style auth.json (for `ags login`),
/// keeping every other entry and key in the file.
pub fn store_credentials(
    path: &Path,
    registry: &str,
    creds: &Credentials,
) -> Result<(), AuthError> {
    let mut obj = load_json_object(path)?;
    let auths = obj
        .entry("auths")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if !auths.is_object() {
        *auths = serde_json::Value::Object(Default::default());
    }
    let key = normalize_key(registry);
    if let Some(map) = auths.as_object_mut() {
        // Drop aliases of the same registry so lookup cannot find a stale one first.
        map.retain(|k, _| normalize_key(k) != key);
        let encoded = B64.encode(format!("{}:{}", creds.username, creds.secret.expose()));
        map.insert(key, serde_json::json!({ "auth": encoded }));
    }
    let data = serde_json::to_vec_pretty(&obj).map_err(|e| AuthError::Parse {
        path: path.to_path_buf(),
        source: e,
    })?;
    write_atomic_0600(path, &data)
}

/// Removes `registry`'s entry (and its aliases) from an auth.json (for `ags logout`).
/// Returns whether anything was removed.
pub fn remove_credentials(path: &Path, registry: &str) -> Result<bool, AuthError> {
    let mut obj = load_json_object(path)?;
    let key = normalize_key(registry);
    let mut removed = false;
    if let Some(map) = obj.get_mut("auths").and_then(|a| a.as_object_mut()) {
        let before = map.len();
        map.retain(|k, _| normalize_key(k) != key);
        removed = map.len() != before;
    }
    if removed {
        let data = serde_json::to_vec_pretty(&obj).map_err(|e| AuthError::Parse {
            path: path.to_path_buf(),
            source: e,
        })?;
        write_atomic_0600(path, &data)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn b64(s: &str) -> String {
        B64.encode(s)
    }

    #[test]
    fn secrets_redacted() {
        let c = Credentials::new("alice", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{c}").contains("hunter2"));
        assert!(!format!("{:?}", c.basic_header()).contains(&b64("alice:hunter2")));
        assert_eq!(
            c.basic_header().expose(),
            format!("Basic {}", b64("alice:hunter2"))
        );
    }

    #[test]
    fn normalize_table() {
        for (k, want) in [
            ("https://index.docker.io/v1/", "docker.io"),
            ("index.docker.io", "docker.io"),
            ("registry-1.docker.io", "docker.io"),
            ("docker.io", "docker.io"),
            ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
            ("quay.io", "quay.io"),
        ] {
            assert_eq!(normalize_key(k), want, "{k}");
        }
    }

    #[test]
    fn lookup_order_and_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("run/containers/auth.json");
        let second = dir.path().join("docker/config.json");
        std::fs::create_dir_all(first.parent().unwrap()).unwrap();
        std::fs::create_dir_all(second.parent().unwrap()).unwrap();
        std::fs::write(
            &first,
            format!(
                r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{}"}}}}}}"#,
                b64("a:1")
            ),
        )
        .unwrap();
        std::fs::write(
            &second,
            format!(
                r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{}"}},"https://index.docker.io/v1/":{{"auth":"{}"}},"bad.io":{{"auth":"!!"}}}}}}"#,
                b64("b:2"),
                b64("hub:3")
            ),
        )
        .unwrap();
        let files = AuthFiles::new(
            vec![
                dir.path().join("missing.json"),
                first.clone(),
                second.clone(),
            ],
            None,
        );
        let c = files.credentials("127.0.0.1:5000").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.secret.expose()), ("a", "1"));
        let c = files.credentials("docker.io").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.secret.expose()), ("hub", "3"));
        assert!(files.credentials("quay.io").unwrap().is_none());
        let err = files.credentials("bad.io").unwrap_err().to_string();
        assert!(
            err.contains("config.json") && err.contains("not base64"),
            "{err}"
        );
        std::fs::write(&first, "{not json").unwrap();
        let err = files.credentials("x").unwrap_err().to_string();
        assert!(err.contains(&first.display().to_string()), "{err}");
    }

    #[test]
    fn helpers_and_store() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let script = |name: &str, body: &str| {
            let p = bin.join(format!("docker-credential-{name}"));
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        script(
            "good",
            r#"read reg; [ "$1" = get ] || exit 3; printf '{"ServerURL":"%s","Username":"u-%s","Secret":"s3cret"}' "$reg" "$reg""#,
        );
        script(
            "store",
            r#"echo "credentials not found in native keychain"; exit 1"#,
        );
        script("slow", "sleep 5");
        script("broken", "echo 'oops s3cret'; exit 2");
        let cfg = dir.path().join("config.json");
        std::fs::write(
            &cfg,
            r#"{"credHelpers":{"helped.io":"good","index.docker.io":"good","slow.io":"slow","broken.io":"broken","missing.io":"nope"},"credsStore":"store"}"#,
        )
        .unwrap();
        let path_env =
            std::env::join_paths([bin.clone(), "/usr/bin".into(), "/bin".into()]).unwrap();
        let mut files = AuthFiles::new(vec![cfg], Some(path_env));
        files.helper_timeout = Duration::from_millis(500);
        let c = files.credentials("helped.io").unwrap().unwrap();
        assert_eq!(c.username, "u-helped.io");
        assert_eq!(c.secret.expose(), "s3cret");
        let c = files.credentials("docker.io").unwrap().unwrap();
        assert_eq!(c.username, "u-https://index.docker.io/v1/");
        assert!(files.credentials("other.io").unwrap().is_none());
        let e = files.credentials("slow.io").unwrap_err().to_string();
        assert!(e.contains("timed out"), "{e}");
        let e = files.credentials("broken.io").unwrap_err().to_string();
        assert!(e.contains("exited") && !e.contains("s3cret"), "{e}");
        let e = files.credentials("missing.io").unwrap_err().to_string();
        assert!(e.contains("docker-credential-nope not found"), "{e}");
    }

    #[test]
    fn store_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("containers/auth.json");
        store_credentials(&path, "127.0.0.1:5000", &Credentials::new("u", "p:w")).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::write(
            &path,
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"127.0.0.1:5000":{{"auth":"{}"}}}},"other":1}}"#,
                b64("x:y"),
                b64("u:p:w")
            ),
        )
        .unwrap();
        store_credentials(&path, "docker.io", &Credentials::new("hub", "new")).unwrap();
        let files = AuthFiles::new(vec![path.clone()], None);
        let c = files.credentials("docker.io").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.secret.expose()), ("hub", "new"));
        let c = files.credentials("127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(c.secret.expose(), "p:w");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"other\": 1"), "{text}");
        assert!(!text.contains("index.docker.io"), "{text}");
        assert!(remove_credentials(&path, "index.docker.io").unwrap());
        assert!(!remove_credentials(&path, "docker.io").unwrap());
        assert!(files.credentials("docker.io").unwrap().is_none());
        assert!(!remove_credentials(&dir.path().join("none.json"), "x").unwrap());
        // No temp files left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
