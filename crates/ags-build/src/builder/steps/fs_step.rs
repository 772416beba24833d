//! Filesystem steps: the cache in front of them, their snapshots (overlay upper
//! directories or full copies, see [`crate::builder::snapshot`]), the workers that write
//! them and the layers made from them.

use std::fs::{self, File};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use ags_oci::digest::Digest;
use ags_oci::manifest::Descriptor;
use ags_runtime::userns::run_as_root;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Builder, mkdir, step_err};
use crate::builder::diff::{self, LAYER_MEDIA_TYPE, LayerDigests};
use crate::builder::snapshot::{self, SnapshotKind};
use crate::builder::{BuildError, Event, StageState, chain};
use crate::parser::Span;

/// A cached step result.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheEntry {
    layer: Option<CachedLayer>,
    /// When the step ran.
    #[serde(default)]
    created: String,
    /// The kind of the snapshot (entries written before copy snapshots existed are
    /// overlay ones).
    #[serde(default)]
    snapshots: SnapshotKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CachedLayer {
    digests: LayerDigests,
    snapshot: String,
}

impl Builder<'_> {
    fn cache_path(&self, key: &str) -> PathBuf {
        self.dirs.cache.join(format!("{key}.json"))
    }

    fn snapshot_dir(&self, key: &str) -> PathBuf {
        self.dirs.snap.join(&key[..32])
    }

    /// The directory of a snapshot that holds its files (`upper` or `tree`).
    fn snapshot_files(&self, name: &str) -> PathBuf {
        self.dirs.snap.join(name).join(self.kind.dir_name())
    }

    /// A cached result of this build's snapshot kind whose blob is still there, and (for
    /// overlay snapshots, which later steps stack) its snapshot. A copy snapshot's tree
    /// is needed only when a later step runs on it or the image runs from it, and is
    /// rebuilt from the layers then if `ags gc` removed it ([`Self::ensure_tree`]).
    fn lookup(&self, key: &str) -> Option<CacheEntry> {
        if self.opts.no_cache {
            return None;
        }
        let bytes = fs::read(self.cache_path(key)).ok()?;
        let entry: CacheEntry = serde_json::from_slice(&bytes).ok()?;
        if entry.snapshots != self.kind {
            return None;
        }
        if let Some(l) = &entry.layer {
            let digest = Digest::parse(&l.digests.digest).ok()?;
            if !self.store.has_blob(&digest, l.digests.size)
                || (self.kind == SnapshotKind::Overlay
                    && !self.snapshot_files(&l.snapshot).is_dir())
            {
                return None;
            }
        }
        Some(entry)
    }

    fn apply_entry(&self, state: &mut StageState, entry: &CacheEntry) -> Result<(), BuildError> {
        if let Some(l) = &entry.layer {
            let digest = Digest::parse(&l.digests.digest)
                .map_err(|e| step_err(self.cf, Span::default(), e.to_string()))?;
            let files = self.snapshot_files(&l.snapshot);
            match self.kind {
                SnapshotKind::Overlay => state.lowers.push(files),
                // A full tree: it replaces the parent's.
                SnapshotKind::Copy => state.lowers = vec![files],
            }
            state.layers.push(Descriptor {
                media_type: LAYER_MEDIA_TYPE.to_string(),
                digest,
                size: l.digests.size,
                urls: None,
                platform: None,
                annotations: None,
            });
            if !state.config.get("rootfs").is_some_and(Value::is_object) {
                state.config["rootfs"] = json!({"type": "layers", "diff_ids": []});
            }
            let ids = state.config["rootfs"]
                .as_object_mut()
                .expect("object")
                .entry("diff_ids")
                .or_insert_with(|| json!([]));
            if let Some(a) = ids.as_array_mut() {
                a.push(json!(l.digests.diff_id));
            }
        }
        Ok(())
    }

    /// Runs a filesystem step unless cached: `exec` changes the step's snapshot (an
    /// overlay's upper directory, or `<snap>/tree`) and returns the layer it wrote (if
    /// the worker wrote one) or `None` to have it written here. With copy snapshots,
    /// `unchanged` may tell from the parent's tree that the step has nothing to do, which
    /// spares the copy.
    pub(in crate::builder) fn fs_step(
        &mut self,
        state: &mut StageState,
        key: String,
        created_by: &str,
        span: Span,
        unchanged: impl FnOnce(&Self, &StageState) -> Result<bool, BuildError>,
        exec: impl FnOnce(&mut Self, &StageState, &Path) -> Result<Option<LayerDigests>, BuildError>,
    ) -> Result<(), BuildError> {
        if let Some(entry) = self.lookup(&key) {
            self.apply_entry(state, &entry)?;
            if !entry.created.is_empty() {
                state.created = entry.created.clone();
            }
            state.history(created_by, entry.layer.is_none());
            state.key = key;
            self.cached += 1;
            self.host.event(Event::Cached);
            return Ok(());
        }
        self.dirty = true;
        // An entry of an earlier build (this one has --no-cache) must not outlive the
        // snapshot it names: the snapshot is rebuilt below and may end up half done.
        let _ = fs::remove_file(self.cache_path(&key));
        let snap = self.snapshot_dir(&key);
        self.remove_tree(&snap)?;
        if self.kind == SnapshotKind::Copy && unchanged(self, state)? {
            return self.record(state, key, created_by, span, &snap, None);
        }
        mkdir(&snap)?;
        let prepared = match self.kind {
            SnapshotKind::Overlay => ["upper", "work", "merged"]
                .iter()
                .try_for_each(|d| mkdir(&snap.join(d))),
            SnapshotKind::Copy => self.prepare_copy(state, &snap, span),
        };
        let result = prepared.and_then(|()| exec(self, state, &snap));
        let layer = match result {
            Ok(Some(l)) => Ok(Some(l)),
            Ok(None) => self.write_layer(state, &snap, span),
            Err(e) => Err(e),
        };
        match layer {
            Ok(layer) => self.record(state, key, created_by, span, &snap, layer),
            Err(e) => {
                let _ = self.remove_tree(&snap);
                Err(e)
            }
        }
    }

    /// Commits a step's layer (and keeps its snapshot) or drops the snapshot of a step
    /// that changed nothing, then records the result in the cache.
    fn record(
        &mut self,
        state: &mut StageState,
        key: String,
        created_by: &str,
        span: Span,
        snap: &Path,
        layer: Option<LayerDigests>,
    ) -> Result<(), BuildError> {
        self.executed += 1;
        let entry = CacheEntry {
            created: super::super::now_rfc3339(),
            snapshots: self.kind,
            layer: match &layer {
                Some(d) => {
                    let digest = Digest::parse(&d.digest)
                        .map_err(|e| step_err(self.cf, span, e.to_string()))?;
                    self.store
                        .commit_file(&self.layer_tmp(snap), &digest, d.size)?;
                    snapshot::discard_baseline(snap);
                    Some(CachedLayer {
                        digests: d.clone(),
                        snapshot: snap
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    })
                }
                None => {
                    let _ = self.remove_tree(snap);
                    None
                }
            },
        };
        // The snapshot is complete: only now does the cache point at it.
        let bytes = serde_json::to_vec(&entry).expect("serializable");
        let tmp = self.dirs.cache.join(format!(".{key}.tmp"));
        fs::write(&tmp, &bytes)
            .and_then(|()| fs::rename(&tmp, self.cache_path(&key)))
            .map_err(|source| BuildError::Io {
                path: self.cache_path(&key),
                source,
            })?;
        self.apply_entry(state, &entry)?;
        state.created = entry.created.clone();
        state.history(created_by, entry.layer.is_none());
        state.key = key;
        Ok(())
    }

    /// Whether `dir` (a container path) is a directory in the state's tree already,
    /// resolved inside it (symlinks included) as creating it would be.
    pub(in crate::builder) fn is_dir_in_tree(
        &self,
        state: &StageState,
        dir: &str,
        span: Span,
    ) -> Result<bool, BuildError> {
        self.ensure_tree(state)?;
        let root = state.lowers[0].clone();
        let dir = dir.to_string();
        let found = run_as_root(&self.env.maps, self.privileged(), || {
            let root = pathrs::Root::open(&root).map_err(|e| format!("{}: {e}", root.display()))?;
            let is_dir = root
                .resolve(&dir)
                .ok()
                .and_then(|h| rustix::fs::fstat(&h).ok())
                .is_some_and(|st| {
                    rustix::fs::FileType::from_raw_mode(st.st_mode)
                        == rustix::fs::FileType::Directory
                });
            // The answer is the exit status: a missing directory is no error.
            if is_dir { Ok(()) } else { Err(String::new()) }
        });
        match found {
            Ok(()) => Ok(true),
            Err(ags_runtime::userns::UsernsError::Work(m)) if m.is_empty() => Ok(false),
            Err(e) => Err(step_err(self.cf, span, chain(&e))),
        }
    }

    /// Copy snapshots: `<snap>/tree` becomes a copy of the parent's tree.
    fn prepare_copy(&self, state: &StageState, snap: &Path, span: Span) -> Result<(), BuildError> {
        self.ensure_tree(state)?;
        let parent = state.lowers[0].clone();
        run_as_root(&self.env.maps, self.privileged(), || {
            snapshot::prepare_copy(&parent, snap)
                .map(|_| ())
                .map_err(|e| chain(&e))
        })
        .map_err(|e| {
            step_err(
                self.cf,
                span,
                format!("cannot copy the step's root: {}", chain(&e)),
            )
        })
    }

    /// Copy snapshots: makes sure the state's tree exists, rebuilding it from the state's
    /// layers when `ags gc` removed it (it keeps only the trees images run from).
    pub(in crate::builder) fn ensure_tree(&self, state: &StageState) -> Result<(), BuildError> {
        if self.kind != SnapshotKind::Copy || state.lowers[0].is_dir() {
            return Ok(());
        }
        let tree = &state.lowers[0];
        let diff_ids: Vec<String> = state.config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let layers = state
            .layers
            .iter()
            .zip(diff_ids.iter().chain(std::iter::repeat(&String::new())))
            .map(|(d, id)| {
                Ok(ags_oci::store::LayerInfo {
                    path: self.store.blob_path(&d.digest),
                    media_type: d.media_type.clone(),
                    digest: d.digest.clone(),
                    diff_id: Digest::parse(id).map_err(|e| {
                        step_err(self.cf, Span::default(), format!("layer {}: {e}", d.digest))
                    })?,
                    size: d.size,
                })
            })
            .collect::<Result<Vec<_>, BuildError>>()?;
        // Unpacked next to where it goes, under the snapshot's directory.
        let dir = tree.parent().expect("a snapshot directory");
        crate::rootfs::unpack_tree(
            dir,
            tree.clone(),
            layers,
            &tree.display().to_string(),
            &self.opts.budgets,
            &self.env.maps,
            self.privileged(),
        )?;
        Ok(())
    }

    fn layer_tmp(&self, snap: &Path) -> PathBuf {
        snap.join("layer.tar.zst")
    }

    /// Writes the snapshot's changes as a layer after a `RUN` (worker: root of the user
    /// namespace).
    fn write_layer(
        &self,
        state: &StageState,
        snap: &Path,
        span: Span,
    ) -> Result<Option<LayerDigests>, BuildError> {
        let out_path = self.layer_tmp(snap);
        let out = File::create(&out_path).map_err(|source| BuildError::Io {
            path: out_path.clone(),
            source,
        })?;
        let mut result = tempfile_in(&self.dirs.logs)?;
        let upper = snap.join("upper");
        let parent = state.lowers[0].clone();
        let kind = self.kind;
        let res = &result;
        run_as_root(&self.env.maps, self.privileged(), || {
            let d = match kind {
                SnapshotKind::Overlay => diff::write_layer(&upper, &out, true),
                SnapshotKind::Copy => snapshot::copy_layer(&parent, snap, &out, true),
            }
            .map_err(|e| chain(&e))?;
            serde_json::to_writer(res, &d).map_err(|e| e.to_string())
        })
        .map_err(|e| step_err(self.cf, span, chain(&e)))?;
        let mut s = String::new();
        result.rewind().ok();
        result.read_to_string(&mut s).ok();
        let d: Option<LayerDigests> =
            serde_json::from_str(&s).map_err(|e| step_err(self.cf, span, e.to_string()))?;
        if d.is_none() {
            let _ = fs::remove_file(&out_path);
        }
        Ok(d)
    }

    pub(in crate::builder) fn remove_tree(&self, p: &Path) -> Result<(), BuildError> {
        if fs::symlink_metadata(p).is_err() {
            return Ok(());
        }
        crate::rootfs::remove(p, &self.env.maps, self.privileged()).map_err(BuildError::from)
    }

    /// Runs `op` on the step's root (an overlay mounted at `<snap>/merged`, or
    /// `<snap>/tree`) with `views` (`--from` roots) read-only, in a worker that is root of
    /// the user namespace, then writes the layer.
    pub(in crate::builder) fn worker(
        &self,
        state: &StageState,
        snap: &Path,
        views: &[Vec<PathBuf>],
        op: impl FnOnce(&Path, &[PathBuf]) -> Result<(), String>,
    ) -> Result<Option<LayerDigests>, BuildError> {
        let out_path = self.layer_tmp(snap);
        let out = File::create(&out_path).map_err(|source| BuildError::Io {
            path: out_path.clone(),
            source,
        })?;
        let mut result = tempfile_in(&self.dirs.logs)?;
        let res = &result;
        let (upper, work, merged) = (snap.join("upper"), snap.join("work"), snap.join("merged"));
        let lowers = state.lowers.clone();
        let kind = self.kind;
        let view_dirs: Vec<PathBuf> = (0..views.len())
            .map(|i| snap.join(format!("view-{i}")))
            .collect();
        for (v, dir) in views.iter().zip(&view_dirs) {
            if v.len() > 1 {
                mkdir(dir)?;
            }
        }
        run_as_root(&self.env.maps, self.privileged(), || {
            use nix::mount::{MsFlags, mount};
            use nix::sched::{CloneFlags, unshare};
            unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare: {e}"))?;
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .map_err(|e| format!("mount --make-rprivate /: {e}"))?;
            let root = match kind {
                SnapshotKind::Overlay => {
                    match_root_owner(lowers.last().expect("a lower"), &upper);
                    ags_runtime::overlay::mount(&lowers, Some((&upper, &work)), &merged)
                        .map_err(|e| format!("cannot mount the step's root: {e}"))?;
                    merged.clone()
                }
                SnapshotKind::Copy => snap.join(snapshot::TREE),
            };
            let mut mounted = Vec::new();
            for (v, dir) in views.iter().zip(&view_dirs) {
                if v.len() == 1 {
                    mounted.push(v[0].clone());
                } else {
                    // Only overlay stacks have more than one directory.
                    ags_runtime::overlay::mount(v, None, dir)
                        .map_err(|e| format!("cannot mount a --from source: {e}"))?;
                    mounted.push(dir.clone());
                }
            }
            op(&root, &mounted)?;
            let d = match kind {
                SnapshotKind::Overlay => diff::write_layer(&upper, &out, false),
                SnapshotKind::Copy => snapshot::copy_layer(&lowers[0], snap, &out, false),
            }
            .map_err(|e| chain(&e))?;
            serde_json::to_writer(res, &d).map_err(|e| e.to_string())
        })
        .map_err(|e| BuildError::Step {
            file: self.cf.file.clone(),
            span: Span::default(),
            message: chain(&e),
        })?;
        let mut s = String::new();
        result.rewind().ok();
        result.read_to_string(&mut s).ok();
        let d: Option<LayerDigests> = serde_json::from_str(&s).map_err(|e| BuildError::Io {
            path: snap.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
        if d.is_none() {
            let _ = fs::remove_file(&out_path);
        }
        Ok(d)
    }
}

fn tempfile_in(dir: &Path) -> Result<File, BuildError> {
    tempfile::tempfile_in(dir).map_err(|source| BuildError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// The merged root takes its owner and mode from the upper directory: give it those of
/// the layer below.
fn match_root_owner(lower: &Path, upper: &Path) {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    if let Ok(meta) = fs::metadata(lower) {
        let _ = std::os::unix::fs::chown(upper, Some(meta.uid()), Some(meta.gid()));
        let _ = fs::set_permissions(upper, fs::Permissions::from_mode(meta.mode() & 0o7777));
    }
}
