//! Finding the workspace (the git top-level of the current directory, else the directory
//! itself), the git directories that must be mounted for git to work in it, and the git
//! paths that must be read-only in lockdown.
//!
//! The `.git` layout is read directly (a `.git` directory, or a `.git` file with
//! `gitdir: <path>` for worktrees, submodules and `--separate-git-dir`), without running
//! git: that works without git installed, is not affected by `safe.directory` or `GIT_*`
//! variables, and never reads the repo's (untrusted) config. The tests check the result
//! against `git rev-parse`.
//!
//! **Why some paths are protected.** Git executes code named by a repo's own metadata when
//! the user later runs git on the host: hooks, `core.fsmonitor`, `core.hooksPath`,
//! `filter.*`, `diff.external` (the CVE-2022-24765 family; see also githooks(5) and
//! git-config(1)). An agent in lockdown must not be able to plant such code, so
//! [`Workspace::lockdown_readonly`] lists, for every git directory of the workspace, its
//! `hooks` and `config` (plus a worktree's `commondir` and `config.worktree`, which redirect
//! or extend the config) and the `.git` pointer files of the workspace and its submodules.
//! Because a directory holding read-only mounts could still be renamed away and replaced
//! by a forged one, the git directories themselves are listed in
//! [`Workspace::lockdown_pinned`]: the runtime bind-mounts each onto itself (read-write),
//! which makes `rename(2)`/`rmdir(2)` of it fail with `EBUSY`.
//!
//! Not covered: a *new* repository the agent creates somewhere in the workspace (a user
//! who later runs git inside it runs its config), and submodules added during the run.

use std::path::{Path, PathBuf};

use crate::config::MountKind;

/// Errors of finding the workspace.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// A path could not be inspected.
    #[error("cannot inspect {}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A `.git` file does not point at a git directory.
    #[error("{}: not a valid `.git` file ({reason})", path.display())]
    BadGitFile {
        /// The `.git` file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A protected hooks directory could not be created.
    #[error("cannot create {}", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// How the workspace's `.git` is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitLayout {
    /// A `.git` directory.
    Plain,
    /// A `.git` file pointing at `COMMON/.git/worktrees/NAME` (`git worktree add`).
    Worktree,
    /// A `.git` file pointing at a git directory of its own: a submodule
    /// (`SUPER/.git/modules/NAME`) or `git init --separate-git-dir`.
    GitFile,
}

/// The git side of a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitInfo {
    /// The layout.
    pub layout: GitLayout,
    /// `ROOT/.git` (a directory or a file).
    pub dot_git: PathBuf,
    /// The git directory (`git rev-parse --git-dir`), canonical.
    pub git_dir: PathBuf,
    /// The common directory (`git rev-parse --git-common-dir`), canonical.
    pub common_dir: PathBuf,
}

/// A path to protect, with what it is (so the runtime knows how to bind it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedPath {
    /// Absolute host path (also the container path).
    pub path: PathBuf,
    /// Directory or file.
    pub kind: MountKind,
}

/// The workspace of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The git top-level, or the starting directory when it is not in a repo. Canonical.
    pub root: PathBuf,
    /// The starting directory, canonical (inside `root`).
    pub cwd: PathBuf,
    /// The repo, if any.
    pub git: Option<GitInfo>,
    /// Git directories outside `root` that git needs (a worktree's common dir, a
    /// submodule's directory under the superproject's `.git/modules`): mounted read-write at
    /// the same path.
    pub extra_git_dirs: Vec<PathBuf>,
    /// Git directories to bind onto themselves (read-write) in lockdown so they cannot be
    /// renamed or replaced. Does not repeat `root` or [`Workspace::extra_git_dirs`], which
    /// are mount points anyway.
    pub lockdown_pinned: Vec<PathBuf>,
    /// Paths to make read-only in lockdown (applied after all other mounts). `hooks`
    /// directories are listed even when missing: call [`Workspace::prepare_lockdown`] to
    /// create them, so that the agent cannot create one.
    pub lockdown_readonly: Vec<ProtectedPath>,
}

/// How deep nested submodules are followed.
const MAX_SUBMODULE_DEPTH: usize = 6;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WorkspaceError + '_ {
    move |source| WorkspaceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Finds the workspace of `cwd` (see the module docs).
pub fn find_workspace(cwd: &Path) -> Result<Workspace, WorkspaceError> {
    let cwd = std::fs::canonicalize(cwd).map_err(io_err(cwd))?;
    let mut git = None;
    let mut root = cwd.clone();
    for dir in cwd.ancestors() {
        if let Some(info) = probe_dot_git(dir)? {
            root = dir.to_path_buf();
            git = Some(info);
            break;
        }
    }
    let mut ws = Workspace {
        root,
        cwd,
        git,
        extra_git_dirs: Vec::new(),
        lockdown_pinned: Vec::new(),
        lockdown_readonly: Vec::new(),
    };
    if let Some(info) = ws.git.clone() {
        ws.fill_git_paths(&info)?;
    }
    Ok(ws)
}

/// Looks at `dir/.git`: a directory with `HEAD`, or a `gitdir:` file.
fn probe_dot_git(dir: &Path) -> Result<Option<GitInfo>, WorkspaceError> {
    let dot_git = dir.join(".git");
    let meta = match std::fs::symlink_metadata(&dot_git) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&dot_git)(e)),
        Ok(m) => m,
    };
    if meta.is_dir() {
        if !dot_git.join("HEAD").exists() {
            return Ok(None);
        }
        let git_dir = std::fs::canonicalize(&dot_git).map_err(io_err(&dot_git))?;
        let common_dir = read_commondir(&git_dir)?.unwrap_or_else(|| git_dir.clone());
        return Ok(Some(GitInfo {
            layout: GitLayout::Plain,
            dot_git,
            git_dir,
            common_dir,
        }));
    }
    if !meta.is_file() {
        return Ok(None);
    }
    let bad = |reason: &str| WorkspaceError::BadGitFile {
        path: dot_git.clone(),
        reason: reason.to_owned(),
    };
    let text = read_small(&dot_git)?;
    let target = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("gitdir:"))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("no `gitdir:` line"))?;
    let git_dir = dir.join(target);
    let git_dir =
        std::fs::canonicalize(&git_dir).map_err(|e| bad(&format!("{}: {e}", git_dir.display())))?;
    if !git_dir.join("HEAD").exists() {
        return Err(bad(&format!("{} has no HEAD", git_dir.display())));
    }
    let (layout, common_dir) = match read_commondir(&git_dir)? {
        Some(common) => (GitLayout::Worktree, common),
        None => (GitLayout::GitFile, git_dir.clone()),
    };
    Ok(Some(GitInfo {
        layout,
        dot_git,
        git_dir,
        common_dir,
    }))
}

fn read_small(path: &Path) -> Result<String, WorkspaceError> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut s = String::new();
    f.take(64 * 1024)
        .read_to_string(&mut s)
        .map_err(io_err(path))?;
    Ok(s)
}

/// `GITDIR/commondir` (relative to GITDIR), canonical, if present.
fn read_commondir(git_dir: &Path) -> Result<Option<PathBuf>, WorkspaceError> {
    let file = git_dir.join("commondir");
    if !file.is_file() {
        return Ok(None);
    }
    let text = read_small(&file)?;
    let rel = text.trim();
    let common = git_dir.join(rel);
    std::fs::canonicalize(&common)
        .map(Some)
        .map_err(|e| WorkspaceError::BadGitFile {
            path: file,
            reason: format!("{}: {e}", common.display()),
        })
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, item: T) {
    if !v.contains(&item) {
        v.push(item);
    }
}

impl Workspace {
    fn fill_git_paths(&mut self, info: &GitInfo) -> Result<(), WorkspaceError> {
        // Mounts git needs: the common dir (which holds a worktree's git dir) and the git
        // dir when it lies elsewhere.
        for d in [&info.common_dir, &info.git_dir] {
            let covered =
                d.starts_with(&self.root) || self.extra_git_dirs.iter().any(|e| d.starts_with(e));
            if !covered {
                push_unique(&mut self.extra_git_dirs, d.clone());
            }
        }

        // Every git directory whose metadata git would act on.
        let mut git_dirs = vec![info.git_dir.clone()];
        push_unique(&mut git_dirs, info.common_dir.clone());
        let worktrees = info.common_dir.join("worktrees");
        if let Ok(entries) = std::fs::read_dir(&worktrees) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() && !p.is_symlink() {
                    push_unique(&mut git_dirs, p);
                }
            }
        }
        for base in git_dirs.clone() {
            collect_module_dirs(&base.join("modules"), 0, &mut git_dirs);
        }

        for g in &git_dirs {
            let is_mount_point = self.extra_git_dirs.contains(g) || *g == self.root;
            if !is_mount_point {
                push_unique(&mut self.lockdown_pinned, g.clone());
            }
            let ro = &mut self.lockdown_readonly;
            push_unique(
                ro,
                ProtectedPath {
                    path: g.join("hooks"),
                    kind: MountKind::Dir,
                },
            );
            for f in ["config", "commondir", "config.worktree"] {
                let p = g.join(f);
                if p.is_file() {
                    push_unique(
                        ro,
                        ProtectedPath {
                            path: p,
                            kind: MountKind::File,
                        },
                    );
                }
            }
        }

        // `.git` pointer files: the workspace's own and those of checked-out submodules.
        let mut pointer_files = Vec::new();
        if info.layout != GitLayout::Plain {
            pointer_files.push(info.dot_git.clone());
        }
        collect_submodule_pointers(&self.root, 0, &mut pointer_files);
        for p in pointer_files {
            push_unique(
                &mut self.lockdown_readonly,
                ProtectedPath {
                    path: p,
                    kind: MountKind::File,
                },
            );
        }
        Ok(())
    }

    /// Creates missing `hooks` directories of the protected git directories (mode 0755, as
    /// git itself does), so that they can be mounted read-only. Call before a lockdown run.
    pub fn prepare_lockdown(&self) -> Result<(), WorkspaceError> {
        use std::os::unix::fs::DirBuilderExt as _;
        for p in &self.lockdown_readonly {
            if p.kind == MountKind::Dir && std::fs::symlink_metadata(&p.path).is_err() {
                std::fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&p.path)
                    .map_err(|source| WorkspaceError::Create {
                        path: p.path.clone(),
                        source,
                    })?;
            }
        }
        Ok(())
    }
}

/// Finds submodule git directories under `modules` (names may contain `/`, and submodules
/// nest as `modules/a/modules/b`).
fn collect_module_dirs(modules: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > MAX_SUBMODULE_DEPTH * 4 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(modules) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if p.join("HEAD").is_file() {
            push_unique(out, p.clone());
            collect_module_dirs(&p.join("modules"), depth + 1, out);
        } else {
            collect_module_dirs(&p, depth + 1, out);
        }
    }
}

/// Finds `PATH/.git` files of the submodules listed in `dir/.gitmodules`, recursively.
fn collect_submodule_pointers(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth >= MAX_SUBMODULE_DEPTH {
        return;
    }
    let Ok(text) = std::fs::read_to_string(dir.join(".gitmodules")) else {
        return;
    };
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim() != "path" {
            continue;
        }
        let rel = Path::new(value.trim().trim_matches('"'));
        let safe = rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe || rel.as_os_str().is_empty() {
            continue;
        }
        let sub = dir.join(rel);
        let dot_git = sub.join(".git");
        if std::fs::symlink_metadata(&dot_git).is_ok_and(|m| m.is_file()) {
            push_unique(out, dot_git);
        }
        collect_submodule_pointers(&sub, depth + 1, out);
    }
}

#[cfg(test)]
mod tests;
