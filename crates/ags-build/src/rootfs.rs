//! Image root filesystems: a pulled image's layers unpacked into one immutable directory
//! per image config, shared by every run and build step that uses the image.
//!
//! Layers are unpacked as root of a user namespace with the sandbox's id mapping
//! ([`ags_runtime::userns::run_as_root`]), so files keep their owners (mapped into the
//! user's subordinate ids) and `apt-get` in a later build step sees the owners it
//! expects. Without a subordinate range, every file belongs to the invoking user. A tree is
//! built under a temporary name and renamed into place only when every layer unpacked and
//! verified, so an interrupted or failed unpack never leaves a half tree under the final
//! name. Removing a tree also happens inside the namespace, because its directories
//! belong to subordinate ids that the user cannot touch from outside.

use std::fs;
use std::io::BufReader;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use ags_oci::store::{PulledImage, Store, StoreError};
use ags_oci::unpack::{Budgets, UnpackOptions, remove_tree, unpack_layer};
use ags_runtime::idmap::IdMaps;
use ags_runtime::userns::{UsernsError, error_chain, run_as_root};

/// Errors preparing or removing a root filesystem.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// Reading the image from the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A directory could not be created or read.
    #[error("cannot prepare {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Unpacking failed.
    #[error("cannot unpack {image}")]
    Unpack {
        /// The image reference.
        image: String,
        /// The cause.
        #[source]
        source: UsernsError,
    },
    /// Removing a tree failed.
    #[error("cannot remove {path}")]
    Remove {
        /// The tree.
        path: PathBuf,
        /// The cause.
        #[source]
        source: UsernsError,
    },
}

/// Directories every sandbox mounts over; created in each tree so that the read-only
/// overlay root never needs to create them.
const MOUNT_POINTS: &[&str] = &[
    "proc", "dev", "sys", "tmp", "run", "var/tmp", "home/dev", "etc",
];

/// Where the trees live: `<store>/rootfs`.
pub fn rootfs_root(store: &Store) -> PathBuf {
    store.root().join("rootfs")
}

/// The tree of one image: named after its config digest, which pins every layer.
pub fn rootfs_path(store: &Store, image: &PulledImage) -> PathBuf {
    rootfs_root(store).join(image.manifest.config.digest.hex())
}

/// The root filesystem of an image as the runtime stacks it: a bottom tree and, for an
/// image built here, the build's step snapshots above it (bottom first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRoot {
    /// The bottom layer (a shared tree).
    pub bottom: PathBuf,
    /// The layers above it.
    pub layers: Vec<PathBuf>,
}

impl ImageRoot {
    /// Every layer, bottom first.
    pub fn all(&self) -> Vec<PathBuf> {
        std::iter::once(self.bottom.clone())
            .chain(self.layers.iter().cloned())
            .collect()
    }
}

/// The image's root: an image built on this machine runs straight from its build
/// snapshots (nothing to unpack); any other image from its tree, unpacked first when it
/// is not there yet.
pub fn image_root(
    store: &Store,
    image: &PulledImage,
    budgets: &Budgets,
    maps: &IdMaps,
    privileged: bool,
) -> Result<ImageRoot, RootfsError> {
    if let Some(mut lowers) = crate::builder::layered_root(store, image) {
        let bottom = lowers.remove(0);
        return Ok(ImageRoot {
            bottom,
            layers: lowers,
        });
    }
    Ok(ImageRoot {
        bottom: materialize(store, image, budgets, maps, privileged)?,
        layers: Vec::new(),
    })
}

/// Return the image's tree, unpacking it first when it is not there yet.
pub fn materialize(
    store: &Store,
    image: &PulledImage,
    budgets: &Budgets,
    maps: &IdMaps,
    privileged: bool,
) -> Result<PathBuf, RootfsError> {
    let final_path = rootfs_path(store, image);
    if final_path.is_dir() {
        return Ok(final_path);
    }
    let root = rootfs_root(store);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&root)
        .map_err(|source| RootfsError::Io {
            path: root.clone(),
            source,
        })?;
    let layers = store.layers(image)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = root.join(format!(".tmp-{}-{nanos}", std::process::id()));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(|source| RootfsError::Io {
            path: tmp.clone(),
            source,
        })?;
    let result = run_as_root(maps, privileged, || {
        // The tree's root is the image's `/`: root's, 0755, unless a layer says otherwise
        // (the temporary directory was created 0700 by the invoking user).
        if maps.uids.iter().any(|m| m.container == 0) {
            use std::os::unix::fs::PermissionsExt as _;
            std::os::unix::fs::chown(&tmp, Some(0), Some(0))
                .and_then(|()| fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)))
                .map_err(|e| format!("{}: {e}", tmp.display()))?;
        }
        let opts = UnpackOptions {
            budgets: budgets.clone(),
            rootless: true,
            preserve_ownership: true,
        };
        for layer in &layers {
            let f = fs::File::open(&layer.path)
                .map_err(|e| format!("cannot open {}: {e}", layer.path.display()))?;
            unpack_layer(
                &tmp,
                BufReader::with_capacity(1 << 20, f),
                &layer.media_type,
                Some(&layer.diff_id.to_string()),
                &opts,
            )
            .map_err(|e| format!("layer {}: {}", layer.digest, error_chain(&e)))?;
        }
        for d in MOUNT_POINTS {
            // Best effort: a symlink at one of these (e.g. /etc) is checked at run time.
            let _ = fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(tmp.join(d));
        }
        match fs::rename(&tmp, &final_path) {
            Ok(()) => Ok(()),
            // Another ags finished the same image first: keep theirs.
            Err(_) if final_path.is_dir() => remove_tree(&tmp).map_err(|e| error_chain(&e)),
            Err(e) => Err(format!(
                "cannot rename {} to {}: {e}",
                tmp.display(),
                final_path.display()
            )),
        }
    });
    if let Err(source) = result {
        let _ = remove(&tmp, maps, privileged);
        return Err(RootfsError::Unpack {
            image: image.reference.to_string(),
            source,
        });
    }
    Ok(final_path)
}

/// Remove a tree (inside the user namespace, where its owners are mapped).
pub fn remove(path: &Path, maps: &IdMaps, privileged: bool) -> Result<(), RootfsError> {
    if !path.exists() {
        return Ok(());
    }
    run_as_root(maps, privileged, || {
        remove_tree(path).map_err(|e| error_chain(&e))
    })
    .map_err(|source| RootfsError::Remove {
        path: path.to_path_buf(),
        source,
    })
}

/// Remove the trees no image in the store refers to, and temporary trees left by unpacks
/// that died. Returns the removed paths.
pub fn gc(store: &Store, maps: &IdMaps, privileged: bool) -> Result<Vec<PathBuf>, RootfsError> {
    let root = rootfs_root(store);
    let keep: Vec<String> = store
        .images()?
        .iter()
        .map(|i| i.config_digest.hex().to_owned())
        .collect();
    let entries = match fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(RootfsError::Io { path: root, source }),
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stale_tmp = name
            .strip_prefix(".tmp-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        if stale_tmp || (!name.starts_with('.') && !keep.contains(&name)) {
            remove(&e.path(), maps, privileged)?;
            removed.push(e.path());
        }
    }
    Ok(removed)
}
