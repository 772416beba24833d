//! Looking for an agent's command in an image's root filesystem tree from the host,
//! without starting a container (`ags doctor`).
//!
//! The tree is untrusted image content: its symlinks (absolute or relative) must mean what
//! they mean inside the sandbox, never point the check at host files. Every lookup is
//! therefore resolved *in* the tree's root (openat2(2) `RESOLVE_IN_ROOT` through `pathrs`,
//! with its safe fallback on older kernels), exactly as the sandbox's own root would
//! resolve it.

use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// The `PATH` the runtime gives a sandbox (and so an agent's command) by default.
pub const DEFAULT_SEARCH_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Errors of looking into a tree.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The tree's root could not be opened.
    #[error("cannot open {}", path.display())]
    OpenRoot {
        /// The tree.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Where a command was found: its path inside the sandbox, and whether it can be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The path as the sandbox sees it, e.g. `/usr/local/bin/codex`.
    pub path: String,
    /// Whether it resolves to a regular file with an execute bit.
    pub executable: bool,
}

/// Looks `command` up in the directories of `search_path` (colon-separated, as in `PATH`),
/// inside the tree `rootfs`; a command containing `/` is looked up as it is. Returns the
/// first executable match, else the first match of any kind (a non-executable file or a
/// dangling link is worth reporting), else `None`.
pub fn find_command(
    rootfs: &Path,
    search_path: &str,
    command: &str,
) -> Result<Option<Found>, LookupError> {
    let root = pathrs::Root::open(rootfs).map_err(|e| LookupError::OpenRoot {
        path: rootfs.to_path_buf(),
        source: to_io(e),
    })?;
    let candidates: Vec<String> = if command.contains('/') {
        vec![command.to_owned()]
    } else {
        search_path
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{command}", d.trim_end_matches('/')))
            .collect()
    };
    let mut first_other = None;
    for candidate in candidates {
        let Some(executable) = probe(&root, &candidate) else {
            continue;
        };
        let found = Found {
            path: candidate,
            executable,
        };
        if executable {
            return Ok(Some(found));
        }
        first_other.get_or_insert(found);
    }
    Ok(first_other)
}

/// `None` when nothing is there; otherwise whether it is an executable regular file. A
/// link that leads nowhere counts as "there, not executable".
fn probe(root: &pathrs::Root, path: &str) -> Option<bool> {
    match root.resolve(path) {
        Ok(handle) => {
            // fstat(2) on the O_PATH descriptor: no read permission on the file is needed.
            let file = std::fs::File::from(OwnedFd::from(handle));
            let meta = file.metadata().ok()?;
            Some(meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        }
        Err(_) => root.resolve_nofollow(path).ok().map(|_| false),
    }
}

fn to_io(e: pathrs::error::Error) -> std::io::Error {
    match e.kind() {
        pathrs::error::ErrorKind::OsError(Some(errno)) => std::io::Error::from_raw_os_error(errno),
        _ => std::io::Error::other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn exe(path: &Path, mode: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn finds_commands_on_the_search_path() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        exe(&root.join("usr/bin/bash"), 0o755);
        exe(&root.join("usr/local/bin/codex"), 0o755);
        let found = |c: &str| find_command(root, DEFAULT_SEARCH_PATH, c).unwrap();
        assert_eq!(
            found("codex"),
            Some(Found {
                path: "/usr/local/bin/codex".into(),
                executable: true
            })
        );
        assert_eq!(found("bash").unwrap().path, "/usr/bin/bash");
        assert_eq!(found("claude"), None);
        assert_eq!(found("/usr/bin/bash").unwrap().path, "/usr/bin/bash");
        // Relative PATH entries are ignored, as the runtime would not find anything there
        // from the workspace either.
        assert_eq!(find_command(root, "usr/bin", "bash").unwrap(), None);
    }

    #[test]
    fn symlinks_resolve_inside_the_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        exe(&root.join("opt/node/bin/gemini.js"), 0o755);
        std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
        // Absolute links are relative to the tree's root, as in the sandbox.
        symlink("/opt/node/bin/gemini.js", root.join("usr/local/bin/gemini")).unwrap();
        symlink(
            "../../../opt/node/bin/gemini.js",
            root.join("usr/local/bin/rel"),
        )
        .unwrap();
        // A file that exists only on the host must not be found through a link.
        let host_only = tmp.path().join("host-only");
        exe(&host_only, 0o755);
        symlink(&host_only, root.join("usr/local/bin/escape")).unwrap();
        symlink("../../../../host-only", root.join("usr/local/bin/dotdot")).unwrap();
        let found = |c: &str| find_command(&root, DEFAULT_SEARCH_PATH, c).unwrap();
        assert!(found("gemini").unwrap().executable);
        assert!(found("rel").unwrap().executable);
        for hostile in ["escape", "dotdot"] {
            assert_eq!(
                found(hostile),
                Some(Found {
                    path: format!("/usr/local/bin/{hostile}"),
                    executable: false
                }),
                "{hostile} must not reach the host file"
            );
        }
    }

    #[test]
    fn non_executables_are_reported_after_executables() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        exe(&root.join("usr/local/bin/pi"), 0o644);
        assert_eq!(
            find_command(root, DEFAULT_SEARCH_PATH, "pi").unwrap(),
            Some(Found {
                path: "/usr/local/bin/pi".into(),
                executable: false
            })
        );
        exe(&root.join("usr/bin/pi"), 0o755);
        assert_eq!(
            find_command(root, DEFAULT_SEARCH_PATH, "pi").unwrap(),
            Some(Found {
                path: "/usr/bin/pi".into(),
                executable: true
            })
        );
        // A directory named like the command is not it.
        std::fs::create_dir_all(root.join("bin/opencode")).unwrap();
        assert!(
            !find_command(root, DEFAULT_SEARCH_PATH, "opencode")
                .unwrap()
                .unwrap()
                .executable
        );
    }

    #[test]
    fn a_missing_tree_is_an_error_naming_it() {
        let err =
            find_command(Path::new("/nonexistent/tree"), DEFAULT_SEARCH_PATH, "x").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/tree"), "{err}");
    }
}
