//! `ags install [--link-self]`: put the running binary at `~/.local/bin/ags`.
//!
//! A copy is written to a temporary file in `~/.local/bin` and renamed over the old one,
//! so a shell that starts `ags` meanwhile runs either the old or the new binary, never a
//! half-written one; a running old binary keeps working (its inode lives on). With
//! `--link-self` the same is done with a symlink to the running binary, which suits a
//! binary you rebuild in place. Running either again changes nothing.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::images;
use crate::render::Hint;

/// What an install did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Written now.
    Installed,
    /// Already there as asked.
    Unchanged,
}

/// Install and report on stderr; warn when `~/.local/bin` is not on `PATH`.
pub fn execute(link_self: bool) -> Result<i32> {
    let bin_dir = images::home().join(".local/bin");
    let target = bin_dir.join("ags");
    let exe = std::env::current_exe().context("cannot find the running ags binary")?;
    if exe.to_string_lossy().ends_with(" (deleted)") {
        bail!(
            "the running ags binary {} was deleted; run the new one",
            exe.display()
        );
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&bin_dir)
        .with_context(|| format!("cannot create {}", bin_dir.display()))?;
    if link_self {
        let exe = exe
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", exe.display()))?;
        match install_link(&exe, &target)? {
            Outcome::Installed => eprintln!("linked {} -> {}", target.display(), exe.display()),
            Outcome::Unchanged => {
                eprintln!("{} already links to {}", target.display(), exe.display())
            }
        }
    } else {
        // /proc/self/exe is the binary that is running, even if its path was replaced.
        match install_copy(Path::new("/proc/self/exe"), &target)? {
            Outcome::Installed => eprintln!("installed {}", target.display()),
            Outcome::Unchanged => eprintln!("{} is up to date", target.display()),
        }
    }
    let path_env = std::env::var_os("PATH").unwrap_or_default();
    if !on_path(&bin_dir, &path_env) {
        eprintln!(
            "warning: {} is not on PATH\n  hint: add it in your shell's startup file: export PATH=\"$HOME/.local/bin:$PATH\"",
            bin_dir.display()
        );
    }
    Ok(crate::exit::OK)
}

/// Whether `dir` is one of the entries of `path_env`.
fn on_path(dir: &Path, path_env: &std::ffi::OsStr) -> bool {
    let canonical = dir.canonicalize().ok();
    std::env::split_paths(path_env).any(|p| {
        p == dir
            || p.components().eq(dir.components())
            || (canonical.is_some() && p.canonicalize().ok() == canonical)
    })
}

/// Copy `source` to `target` (mode 0755) through a temporary file in the same directory,
/// unless `target` is already a regular file with the same content.
fn install_copy(source: &Path, target: &Path) -> Result<Outcome> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let mut src =
        fs::File::open(source).with_context(|| format!("cannot read {}", source.display()))?;
    let src_meta = src
        .metadata()
        .with_context(|| format!("cannot read {}", source.display()))?;
    if let Ok(meta) = fs::symlink_metadata(target)
        && meta.is_file()
    {
        let same_inode = meta.dev() == src_meta.dev() && meta.ino() == src_meta.ino();
        if same_inode || (meta.len() == src_meta.len() && same_content(source, target)?) {
            fix_mode(target, &meta)?;
            return Ok(Outcome::Unchanged);
        }
    }
    refuse_directory(target)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".ags.install-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let written = std::io::copy(&mut src, tmp.as_file_mut()).with_context(|| {
        format!(
            "cannot copy {} to {}",
            source.display(),
            tmp.path().display()
        )
    })?;
    if written != src_meta.len() {
        bail!(
            "{} changed while it was copied ({} of {} bytes)",
            source.display(),
            written,
            src_meta.len()
        );
    }
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o755))
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", tmp.path().display()))?;
    tmp.persist(target)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot rename the new binary to {}", target.display()))?;
    sync_dir(dir);
    Ok(Outcome::Installed)
}

/// Make `target` a symlink to `exe` (absolute), replacing what is there atomically.
fn install_link(exe: &Path, target: &Path) -> Result<Outcome> {
    let dir = target.parent().unwrap_or(Path::new("."));
    if let Ok(current) = fs::read_link(target) {
        if current == exe {
            return Ok(Outcome::Unchanged);
        }
    } else if let Ok(real) = target.canonicalize()
        && real == exe
    {
        // A symlink to itself would make `ags` unrunnable.
        return Err(anyhow::anyhow!(
            "ags is running from {} itself; there is nothing to link to",
            target.display()
        )
        .context(Hint(
            "run `ags install --link-self` with the binary the link should point to, e.g. target/release/ags"
                .into(),
        )));
    }
    refuse_directory(target)?;
    // A fresh, unpredictable name in the target directory, then rename(2) over the target.
    let tmp = tempfile::Builder::new()
        .prefix(".ags.link-")
        .tempdir_in(dir)
        .with_context(|| format!("cannot create a temporary directory in {}", dir.display()))?;
    let link = tmp.path().join("ags");
    std::os::unix::fs::symlink(exe, &link)
        .with_context(|| format!("cannot create {}", link.display()))?;
    fs::rename(&link, target).with_context(|| format!("cannot replace {}", target.display()))?;
    sync_dir(dir);
    Ok(Outcome::Installed)
}

fn refuse_directory(target: &Path) -> Result<()> {
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => bail!("{} is a directory", target.display()),
        _ => Ok(()),
    }
}

/// An installed copy keeps mode 0755 (a copy made by hand may lack the execute bits).
fn fix_mode(target: &Path, meta: &fs::Metadata) -> Result<()> {
    if meta.permissions().mode() & 0o777 != 0o755 {
        fs::set_permissions(target, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot set the mode of {}", target.display()))?;
    }
    Ok(())
}

fn same_content(a: &Path, b: &Path) -> Result<bool> {
    let open = |p: &Path| fs::File::open(p).with_context(|| format!("cannot read {}", p.display()));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n =
            read_full(&mut fa, &mut ba).with_context(|| format!("cannot read {}", a.display()))?;
        let m =
            read_full(&mut fb, &mut bb).with_context(|| format!("cannot read {}", b.display()))?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Persist the rename (best effort: the install itself already happened).
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn write(p: &Path, content: &str, mode: u32) {
        let mut f = fs::File::create(p).unwrap();
        f.write_all(content.as_bytes()).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn copy_is_atomic_idempotent_and_executable() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("build-ags");
        write(&src, "binary v1", 0o700);
        let target = tmp.path().join("bin-ags");
        assert_eq!(install_copy(&src, &target).unwrap(), Outcome::Installed);
        assert_eq!(fs::read_to_string(&target).unwrap(), "binary v1");
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755);
        let ino = fs::metadata(&target).unwrap().ino();
        assert_eq!(install_copy(&src, &target).unwrap(), Outcome::Unchanged);
        assert_eq!(fs::metadata(&target).unwrap().ino(), ino, "not rewritten");
        // A new build replaces it (a new inode: running copies keep the old one).
        write(&src, "binary v2", 0o755);
        assert_eq!(install_copy(&src, &target).unwrap(), Outcome::Installed);
        assert_eq!(fs::read_to_string(&target).unwrap(), "binary v2");
        assert_ne!(fs::metadata(&target).unwrap().ino(), ino);
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn copy_replaces_a_symlink_and_refuses_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        write(&src, "bin", 0o755);
        let target = tmp.path().join("ags");
        std::os::unix::fs::symlink(&src, &target).unwrap();
        assert_eq!(install_copy(&src, &target).unwrap(), Outcome::Installed);
        assert!(fs::symlink_metadata(&target).unwrap().is_file());
        let dir_target = tmp.path().join("dir");
        fs::create_dir(&dir_target).unwrap();
        let err = install_copy(&src, &dir_target).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn link_is_idempotent_and_never_points_at_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = tmp.path().join("target-ags");
        write(&exe, "bin", 0o755);
        let target = tmp.path().join("ags");
        write(&target, "an old copy", 0o755);
        assert_eq!(install_link(&exe, &target).unwrap(), Outcome::Installed);
        assert_eq!(fs::read_link(&target).unwrap(), exe);
        assert_eq!(install_link(&exe, &target).unwrap(), Outcome::Unchanged);
        // Running the installed copy itself: refused, nothing changed.
        let copy = tmp.path().join("copy-ags");
        write(&copy, "bin", 0o755);
        let err = install_link(&copy, &copy).unwrap_err();
        assert!(format!("{err:#}").contains("itself"), "{err:#}");
        assert!(fs::symlink_metadata(&copy).unwrap().is_file());
    }

    #[test]
    fn path_membership() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let env = |s: String| std::ffi::OsString::from(s);
        assert!(on_path(&bin, &env(format!("/usr/bin:{}", bin.display()))));
        assert!(on_path(&bin, &env(format!("{}/", bin.display()))));
        assert!(on_path(&bin, &env(format!("{}/../bin", bin.display()))));
        assert!(!on_path(&bin, &env("/usr/bin:/bin".into())));
        assert!(!on_path(&bin, &env(String::new())));
    }
}
