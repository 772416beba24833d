//! Mounting overlayfs roots: the read-only root of a run (image layers plus a throw-away
//! upper layer) and the writable root of a build step. Must be called inside the
//! sandbox's user namespace, in a private mount namespace.

use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount as mount2};

/// mount(2) takes at most one page of options; longer stacks are given relative to their
/// common ancestor.
const MAX_OPTIONS: usize = 3500;

/// Mounts an overlay at `target` with `lowers` (bottom first) and, when given, an
/// (upper, work) pair; without one the overlay is read-only and needs at least two lowers.
///
/// `userxattr` is tried first: unprivileged overlay mounts (Linux 5.11+) keep whiteouts
/// and opaque markers in `user.overlay.*` xattrs, so layers written by one build step read
/// back the same way in the next (overlayfs docs, "Permission model", "User xattr").
pub fn mount(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), nix::Error> {
    mount_with(lowers, upper, target, false)
}

/// Like [`mount`] with an upper layer that is thrown away after use (a run's), mounted
/// `volatile` when the kernel knows the option (Linux 5.10+): overlayfs then skips the
/// syncfs(2) of the whole filesystem holding the upper layer that it otherwise does when
/// the overlay is unmounted (overlayfs docs, "Volatile mount"), which happens when ags
/// exits. With the state directory on disk that sync took about 2 ms (more when other
/// processes have dirty data) at the end of every run. Nothing worth keeping is lost: the
/// upper layer is deleted after the run, and the `work/incompat/volatile` marker left in
/// the work directory goes with the run directory.
pub fn mount_scratch(
    lowers: &[PathBuf],
    upper: (&Path, &Path),
    target: &Path,
) -> Result<(), nix::Error> {
    mount_with(lowers, Some(upper), target, true)
}

fn mount_with(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
    volatile: bool,
) -> Result<(), nix::Error> {
    let mut dirs: Vec<&Path> = lowers.iter().rev().map(PathBuf::as_path).collect();
    let nlower = dirs.len();
    if let Some((u, w)) = upper {
        dirs.push(u);
        dirs.push(w);
    }
    let long = dirs.iter().map(|d| d.as_os_str().len() + 1).sum::<usize>() > MAX_OPTIONS;
    let base_dir = long.then(|| common_ancestor(&dirs)).flatten();
    let rel = |p: &Path| -> String {
        match &base_dir {
            Some(b) => escape(p.strip_prefix(b).unwrap_or(p)),
            None => escape(p),
        }
    };
    let mut base = format!(
        "lowerdir={}",
        dirs[..nlower]
            .iter()
            .map(|p| rel(p))
            .collect::<Vec<_>>()
            .join(":")
    );
    if upper.is_some() {
        base.push_str(&format!(
            ",upperdir={},workdir={}",
            rel(dirs[nlower]),
            rel(dirs[nlower + 1])
        ));
    }
    let saved_cwd = match &base_dir {
        Some(b) => {
            let cwd = std::env::current_dir().map_err(|_| nix::Error::EINVAL)?;
            nix::unistd::chdir(b.as_path())?;
            Some(cwd)
        }
        None => None,
    };
    let mut attempts = Vec::with_capacity(3);
    if volatile && upper.is_some() {
        attempts.push(format!("{base},userxattr,volatile"));
    }
    attempts.push(format!("{base},userxattr"));
    attempts.push(base);
    let mut result = Err(nix::Error::EINVAL);
    for opts in attempts {
        result = mount2(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(opts.as_str()),
        );
        if result.is_ok() {
            break;
        }
    }
    if let Some(cwd) = saved_cwd {
        let _ = std::env::set_current_dir(cwd);
    }
    result
}

/// overlayfs splits its options on ',' and ':' and unescapes '\'.
fn escape(p: &Path) -> String {
    p.to_string_lossy()
        .replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace(':', "\\:")
}

/// The deepest directory that contains every path of `paths` (all absolute).
fn common_ancestor(paths: &[&Path]) -> Option<PathBuf> {
    let mut base = paths.first()?.parent()?.to_path_buf();
    while !paths.iter().all(|p| p.starts_with(&base)) {
        base = base.parent()?.to_path_buf();
    }
    Some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_option_separators() {
        assert_eq!(escape(Path::new("/a,b:c\\d")), "/a\\,b\\:c\\\\d");
    }

    #[test]
    fn common_ancestor_of_layer_dirs() {
        let a = Path::new("/s/build/snap/1/upper");
        let b = Path::new("/s/build/snap/2/upper");
        let c = Path::new("/s/rootfs/abc");
        assert_eq!(
            common_ancestor(&[a, b]),
            Some(PathBuf::from("/s/build/snap"))
        );
        assert_eq!(common_ancestor(&[a, b, c]), Some(PathBuf::from("/s")));
        assert_eq!(
            common_ancestor(&[Path::new("/x"), Path::new("/y")]),
            Some(PathBuf::from("/"))
        );
    }
}
