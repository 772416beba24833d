//! Image root filesystems: a pulled image's layers unpacked into one immutable directory
//! per image config, shared by every run and build step that uses the image.
//!
//! Layers are unpacked as root of a user namespace with the sandbox's id mapping
//! ([`ags_runtime::userns::spawn_as_root`]), so files keep their owners (mapped into the
//! user's subordinate ids) and `apt-get` in a later build step sees the owners it
//! expects. Without a subordinate range, every file belongs to the invoking user. Removing
//! a tree also happens inside the namespace, because its directories belong to subordinate
//! ids that the user cannot touch from outside.
//!
//! # The unpack worker
//!
//! A tree is built by a worker process (forked from `ags`, root of the namespace) under a
//! temporary name, `.tmp-<worker pid>-<nanoseconds>`, and renamed into place only when
//! every layer unpacked and matched its diff_id and `ags` said the image is complete, so
//! an interrupted or failed unpack never leaves a half tree under the final name. `ags`
//! hands the worker layer indices over a pipe, in order, each one only once its blob is
//! verified and committed to the store, then a commit order. [`StreamingUnpack`] does
//! that during [`Store::pull`]: the worker starts as soon as the image config is verified
//! ([`PullProgress::ready`]), so setting up the namespace and unpacking layer N overlap
//! the download of the layers after N, and `ags pull` ends with the tree in place.
//! [`materialize`] does the same for an image already in the store.
//!
//! Cleanup does not depend on `ags` ending well: the worker has its own session (Ctrl-C
//! stops only `ags`) and treats end-of-file on the pipe (`ags` exited, was killed, or the
//! pull failed) as "abandon": it removes its temporary tree and exits, also in the middle
//! of a layer (it checks every MiB). A worker that is killed itself leaves a tree named
//! after a pid that no longer exists; the next worker and [`gc`] remove such trees.

mod worker;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ags_oci::Digest;
use ags_oci::manifest::{ImageConfig, ImageManifest};
use ags_oci::reference::Reference;
use ags_oci::store::{LayerInfo, PullProgress, PulledImage, Store, StoreError};
use ags_oci::unpack::{Budgets, remove_tree};
use ags_runtime::idmap::IdMaps;
use ags_runtime::userns::{UsernsError, error_chain, run_as_root};

use self::worker::{Worker, stale_tmp};

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

/// Where the trees live: `<store>/rootfs`.
pub fn rootfs_root(store: &Store) -> PathBuf {
    store.root().join("rootfs")
}

/// The tree of one image: named after its config digest, which pins every layer.
pub fn rootfs_path(store: &Store, image: &PulledImage) -> PathBuf {
    tree_path(store, &image.manifest.config.digest)
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

fn tree_path(store: &Store, config: &Digest) -> PathBuf {
    rootfs_root(store).join(config.hex())
}

/// Return the image's tree, unpacking it first when it is not there yet. The image's
/// layers must all be in the store.
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
    let layers = store.layers(image)?;
    let digests: Vec<Digest> = layers.iter().map(|l| l.digest.clone()).collect();
    let mut worker = Worker::start(
        &rootfs_root(store),
        final_path.clone(),
        layers,
        budgets,
        maps,
        privileged,
    )
    .map_err(|e| e.for_image(&image.reference))?;
    for d in &digests {
        worker.layer_done(d);
    }
    worker.commit().map_err(|source| RootfsError::Unpack {
        image: image.reference.to_string(),
        source,
    })?;
    Ok(final_path)
}

/// Unpacks `layers` (all in the store) into a new tree at `final_path`, through an unpack
/// worker whose temporary tree goes under `root`: the tree appears complete or not at
/// all. `what` names the tree in errors.
pub(crate) fn unpack_tree(
    root: &Path,
    final_path: PathBuf,
    layers: Vec<LayerInfo>,
    what: &str,
    budgets: &Budgets,
    maps: &IdMaps,
    privileged: bool,
) -> Result<(), RootfsError> {
    let digests: Vec<Digest> = layers.iter().map(|l| l.digest.clone()).collect();
    let unpack = |source| RootfsError::Unpack {
        image: what.to_string(),
        source,
    };
    let mut worker = Worker::start(root, final_path, layers, budgets, maps, privileged).map_err(
        |e| match e {
            worker::StartError::Io(path, source) => RootfsError::Io { path, source },
            worker::StartError::Spawn(source) => unpack(source),
        },
    )?;
    for d in &digests {
        worker.layer_done(d);
    }
    worker.commit().map_err(unpack)
}

/// Unpacks an image while [`Store::pull`] downloads it: give it to the pull as its
/// [`PullProgress`] (it passes every event on to `inner`, the progress display), then call
/// [`StreamingUnpack::finish`] with the pulled image. When the pull fails instead, dropping
/// this abandons the unpack: the worker removes its temporary tree, and the drop waits
/// for it.
pub struct StreamingUnpack {
    store: Store,
    budgets: Budgets,
    maps: IdMaps,
    privileged: bool,
    inner: Arc<dyn PullProgress>,
    /// The worker of the image `ready` announced, by config digest.
    worker: Mutex<Option<(Digest, Worker)>>,
}

impl std::fmt::Debug for StreamingUnpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingUnpack")
            .field("store", &self.store)
            .field("privileged", &self.privileged)
            .finish_non_exhaustive()
    }
}

impl StreamingUnpack {
    /// Unpack into `store`'s trees with `maps` (the sandbox's id mapping) and `budgets`.
    pub fn new(
        store: &Store,
        budgets: &Budgets,
        maps: &IdMaps,
        privileged: bool,
        inner: Arc<dyn PullProgress>,
    ) -> Self {
        Self {
            store: store.clone(),
            budgets: budgets.clone(),
            maps: maps.clone(),
            privileged,
            inner,
            worker: Mutex::new(None),
        }
    }

    /// The pull of `image` succeeded (every layer is committed and the image recorded):
    /// let the worker finish and rename its tree into place, and return the tree. When no
    /// worker ran for this image (the tree existed already, or the worker could not be
    /// started), this is [`materialize`].
    pub fn finish(&self, image: &PulledImage) -> Result<PathBuf, RootfsError> {
        let running = self.slot().take();
        match running {
            Some((config, worker)) if config == image.manifest.config.digest => {
                worker.commit().map_err(|source| RootfsError::Unpack {
                    image: image.reference.to_string(),
                    source,
                })?;
                Ok(rootfs_path(&self.store, image))
            }
            other => {
                drop(other);
                materialize(
                    &self.store,
                    image,
                    &self.budgets,
                    &self.maps,
                    self.privileged,
                )
            }
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<(Digest, Worker)>> {
        self.worker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PullProgress for StreamingUnpack {
    fn resolved(&self, reference: &Reference, manifest_digest: &Digest, layers: usize) {
        self.inner.resolved(reference, manifest_digest, layers);
    }

    fn ready(&self, reference: &Reference, manifest: &ImageManifest, config: &ImageConfig) {
        self.inner.ready(reference, manifest, config);
        let mut slot = self.slot();
        // A pull announces one image; should another come, the first is abandoned.
        *slot = None;
        let final_path = tree_path(&self.store, &manifest.config.digest);
        if final_path.is_dir() {
            return;
        }
        let layers = self.store.layers_of(manifest, config);
        // A worker that cannot start leaves the work to finish(), whose materialize
        // reports the error if it persists.
        if let Ok(worker) = Worker::start(
            &rootfs_root(&self.store),
            final_path,
            layers,
            &self.budgets,
            &self.maps,
            self.privileged,
        ) {
            *slot = Some((manifest.config.digest.clone(), worker));
        }
    }

    fn layer_started(&self, digest: &Digest, total_size: u64) {
        self.inner.layer_started(digest, total_size);
    }

    fn layer_progress(&self, digest: &Digest, bytes: u64) {
        self.inner.layer_progress(digest, bytes);
    }

    fn layer_done(&self, digest: &Digest) {
        self.inner.layer_done(digest);
        if let Some((_, worker)) = self.slot().as_mut() {
            worker.layer_done(digest);
        }
    }
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
        if stale_tmp(&name) || (!name.starts_with('.') && !keep.contains(&name)) {
            remove(&e.path(), maps, privileged)?;
            removed.push(e.path());
        }
    }
    Ok(removed)
}
