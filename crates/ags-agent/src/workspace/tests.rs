use super::*;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(["-c", "protocol.file.allow=always"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `git rev-parse --show-toplevel --git-dir --git-common-dir`, made absolute and canonical.
fn rev_parse(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let out = git(
        dir,
        &[
            "rev-parse",
            "--show-toplevel",
            "--git-dir",
            "--git-common-dir",
        ],
    );
    let abs = |s: &str| std::fs::canonicalize(dir.join(s)).unwrap();
    let l: Vec<&str> = out.lines().collect();
    (abs(l[0]), abs(l[1]), abs(l[2]))
}

fn init_repo(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    git(path, &["init", "-q"]);
    std::fs::write(path.join("README"), "hi\n").unwrap();
    git(path, &["add", "README"]);
    git(path, &["commit", "-qm", "init"]);
}

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = std::fs::canonicalize(t.path()).unwrap();
    (t, p)
}

fn ro_paths(ws: &Workspace) -> Vec<PathBuf> {
    ws.lockdown_readonly
        .iter()
        .map(|p| p.path.clone())
        .collect()
}

fn assert_matches_git(ws: &Workspace, dir: &Path) {
    let (top, git_dir, common) = rev_parse(dir);
    let g = ws.git.as_ref().unwrap();
    assert_eq!(ws.root, top);
    assert_eq!(g.git_dir, git_dir);
    assert_eq!(g.common_dir, common);
}

#[test]
fn not_a_repo() {
    let (_t, p) = tmp();
    std::fs::create_dir(p.join("d")).unwrap();
    let ws = find_workspace(&p.join("d")).unwrap();
    assert_eq!(ws.root, p.join("d"));
    assert!(ws.git.is_none());
    assert!(ws.extra_git_dirs.is_empty() && ws.lockdown_readonly.is_empty());
}

#[test]
fn plain_repo_from_subdir() {
    let (_t, p) = tmp();
    let repo = p.join("repo");
    init_repo(&repo);
    std::fs::create_dir_all(repo.join("src/deep")).unwrap();
    let ws = find_workspace(&repo.join("src/deep")).unwrap();
    assert_matches_git(&ws, &repo.join("src/deep"));
    assert_eq!(ws.cwd, repo.join("src/deep"));
    assert_eq!(ws.git.as_ref().unwrap().layout, GitLayout::Plain);
    assert!(ws.extra_git_dirs.is_empty());
    assert_eq!(ws.lockdown_pinned, [repo.join(".git")]);
    assert_eq!(
        ro_paths(&ws),
        [repo.join(".git/hooks"), repo.join(".git/config")]
    );
    assert_eq!(ws.lockdown_readonly[0].kind, MountKind::Dir);
    assert_eq!(ws.lockdown_readonly[1].kind, MountKind::File);
}

#[test]
fn worktree() {
    let (_t, p) = tmp();
    let main = p.join("main");
    init_repo(&main);
    git(&main, &["worktree", "add", "-q", "../wt", "-b", "feature"]);
    let wt = p.join("wt");
    let ws = find_workspace(&wt).unwrap();
    assert_matches_git(&ws, &wt);
    let g = ws.git.as_ref().unwrap();
    assert_eq!(g.layout, GitLayout::Worktree);
    assert_eq!(g.git_dir, main.join(".git/worktrees/wt"));
    assert_eq!(g.common_dir, main.join(".git"));
    // The common dir holds the worktree's git dir: one mount covers both.
    assert_eq!(ws.extra_git_dirs, [main.join(".git")]);
    assert_eq!(ws.lockdown_pinned, [main.join(".git/worktrees/wt")]);
    let ro = ro_paths(&ws);
    for want in [
        main.join(".git/worktrees/wt/hooks"),
        main.join(".git/worktrees/wt/commondir"),
        main.join(".git/hooks"),
        main.join(".git/config"),
        wt.join(".git"),
    ] {
        assert!(ro.contains(&want), "{want:?} not in {ro:?}");
    }

    // From the main checkout, the worktree's admin dir is protected too.
    let ws = find_workspace(&main).unwrap();
    assert!(ws.extra_git_dirs.is_empty());
    assert!(ws.lockdown_pinned.contains(&main.join(".git/worktrees/wt")));
    assert!(ro_paths(&ws).contains(&main.join(".git/worktrees/wt/commondir")));
}

#[test]
fn submodule() {
    let (_t, p) = tmp();
    let lib = p.join("lib");
    init_repo(&lib);
    let sup = p.join("super");
    init_repo(&sup);
    git(
        &sup,
        &[
            "submodule",
            "add",
            "-q",
            lib.to_str().unwrap(),
            "vendor/lib",
        ],
    );
    git(&sup, &["commit", "-qm", "add sub"]);
    let sub = sup.join("vendor/lib");

    let ws = find_workspace(&sub).unwrap();
    assert_matches_git(&ws, &sub);
    let g = ws.git.as_ref().unwrap();
    assert_eq!(g.layout, GitLayout::GitFile);
    assert_eq!(g.git_dir, sup.join(".git/modules/vendor/lib"));
    assert_eq!(ws.extra_git_dirs, [sup.join(".git/modules/vendor/lib")]);
    let ro = ro_paths(&ws);
    assert!(ro.contains(&sup.join(".git/modules/vendor/lib/hooks")));
    assert!(ro.contains(&sup.join(".git/modules/vendor/lib/config")));
    assert!(ro.contains(&sub.join(".git")));

    // From the superproject: the module's git dir is pinned and protected, and the
    // submodule's `.git` pointer is read-only.
    let ws = find_workspace(&sup).unwrap();
    assert_matches_git(&ws, &sup);
    assert!(ws.extra_git_dirs.is_empty());
    assert!(
        ws.lockdown_pinned
            .contains(&sup.join(".git/modules/vendor/lib"))
    );
    let ro = ro_paths(&ws);
    assert!(ro.contains(&sup.join(".git/modules/vendor/lib/hooks")));
    assert!(ro.contains(&sup.join(".git/modules/vendor/lib/config")));
    assert!(ro.contains(&sub.join(".git")));
}

#[test]
fn separate_git_dir() {
    let (_t, p) = tmp();
    let w = p.join("w");
    std::fs::create_dir(&w).unwrap();
    git(
        &w,
        &[
            "init",
            "-q",
            "--separate-git-dir",
            p.join("store.git").to_str().unwrap(),
        ],
    );
    let ws = find_workspace(&w).unwrap();
    assert_matches_git(&ws, &w);
    assert_eq!(ws.extra_git_dirs, [p.join("store.git")]);
}

#[test]
fn prepare_lockdown_creates_missing_hooks() {
    let (_t, p) = tmp();
    let repo = p.join("r");
    init_repo(&repo);
    std::fs::remove_dir_all(repo.join(".git/hooks")).unwrap();
    let ws = find_workspace(&repo).unwrap();
    assert!(ro_paths(&ws).contains(&repo.join(".git/hooks")));
    ws.prepare_lockdown().unwrap();
    assert!(repo.join(".git/hooks").is_dir());
}

#[test]
fn bad_git_file_is_an_error() {
    let (_t, p) = tmp();
    std::fs::write(p.join(".git"), "nonsense\n").unwrap();
    let e = find_workspace(&p).unwrap_err().to_string();
    assert!(e.contains(".git: not a valid `.git` file"), "{e}");
    std::fs::write(p.join(".git"), "gitdir: /nonexistent/x\n").unwrap();
    assert!(find_workspace(&p).is_err());
}

#[test]
fn git_dir_without_head_is_ignored() {
    let (_t, p) = tmp();
    std::fs::create_dir_all(p.join("a/.git")).unwrap();
    let ws = find_workspace(&p.join("a")).unwrap();
    assert!(ws.git.is_none() || ws.root != p.join("a"));
}
