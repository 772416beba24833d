//! The commented default config written on first run.

use std::io::Write as _;
use std::path::Path;

use super::ConfigError;

// ---------------------------------------------------------------------------------------
// The default file.

/// The config written on first run. Every line but the agent homes is commented out, so the
/// built-in defaults apply until the user changes something.
pub const DEFAULT_CONFIG: &str = r#"# ags configuration. Unknown keys are errors; paths expand ~, $VAR and ${VAR}.
# A repo may add settings in PROJECT/.ags/config.toml, applied only after you approve its
# exact content (never in --lockdown runs).

[sandbox]
# image = "localhost/ags/agent:latest"
# containerfile = "~/.config/ags/Containerfile"
# network = "egress"          # egress | none | host
# memory = "8g"
# pids = 4096
# cpus = 4
# Host variables passed through in normal runs (never in --lockdown):
# passthrough_env = ["EDITOR", "VISUAL"]
# tmux = false

# Extra mounts (normal runs only):
# [[mount]]
# host = "~/src/shared-notes"
# container = "/home/dev/notes"
# mode = "ro"                 # ro | rw
# kind = "dir"                # dir | file
# create = false
# optional = false

# Host binaries mounted read-only (normal runs only):
# [[tool]]
# name = "jq"
# path = "/usr/bin/jq"
# container_path = "/usr/local/bin/jq"
# optional = true

# Secrets set as environment variables (normal runs only); the first source that
# yields a value wins: from_env, then secret_store (secret-tool lookup), then command.
# [[secret]]
# env = "GITHUB_TOKEN"
# from_env = "GITHUB_TOKEN"
# secret_store = { service = "github", user = "me" }
# command = ["/usr/bin/pass", "show", "github-token"]
# timeout_secs = 5

# How images are built (ags build, ags update): step snapshots on overlayfs where the
# kernel allows it in a user namespace, full copies of the tree otherwise.
# [build]
# snapshots = "auto"          # auto | overlay | copy

# Agent homes, mounted read-write in normal runs so logins persist. In --lockdown runs
# only the agent's login and settings files are copied into a throwaway home instead.
[[agent_mount]]
agent = "codex"
host = "~/.codex"
container = "/home/dev/.codex"

[[agent_mount]]
agent = "claude"
host = "~/.claude"
container = "/home/dev/.claude"

[[agent_mount]]
agent = "claude"
host = "~/.claude.json"
container = "/home/dev/.claude.json"
kind = "file"

[[agent_mount]]
agent = "gemini"
host = "~/.gemini"
container = "/home/dev/.gemini"

[[agent_mount]]
agent = "opencode"
host = "~/.config/opencode"
container = "/home/dev/.config/opencode"

[[agent_mount]]
agent = "opencode"
host = "~/.local/share/opencode"
container = "/home/dev/.local/share/opencode"

[[agent_mount]]
agent = "pi"
host = "~/.pi"
container = "/home/dev/.pi"
"#;

/// Writes [`DEFAULT_CONFIG`] to `path` if nothing exists there yet. The write is atomic (a
/// temporary file in the same directory, fsynced, then linked into place without replacing
/// anything), so an interrupted first run leaves either no file or a complete one. Missing
/// parent directories are created with mode 0700. Returns whether the file was written.
pub fn ensure_default_config(path: &Path) -> Result<bool, ConfigError> {
    use std::os::unix::fs::DirBuilderExt as _;
    if std::fs::symlink_metadata(path).is_ok() {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let write_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ConfigError::Write { path: p, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(write_err(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.toml.")
        .tempfile_in(dir)
        .map_err(write_err(dir))?;
    tmp.write_all(DEFAULT_CONFIG.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(write_err(tmp.path()))?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {}
        // Someone else (a concurrent first run) won the race: their file is as good.
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(write_err(path)(e.error)),
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(true)
}
