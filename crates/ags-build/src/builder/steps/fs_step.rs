//! Filesystem steps: the cache in front of them, their snapshots, the workers that
//! write them and the layers made from them.

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
use crate::builder::{BuildError, Event, StageState, chain};
use crate::parser::Span;

/// A cached step result.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheEntry {
    layer: Option<CachedLayer>,
    /// When the step ran.
    #[serde(default)]
    created: String,
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

    /// A cached result whose snapshot and blob are still there.
    fn lookup(&self, key: &str) -> Option<CacheEntry> {
        if self.opts.no_cache {
            return None;
        }
        let bytes = fs::read(self.cache_path(key)).ok()?;
        let entry: CacheEntry = serde_json::from_slice(&bytes).ok()?;
        if let Some(l) = &entry.layer {
            let digest = Digest::parse(&l.digests.digest).ok()?;
            if !self.store.has_blob(&digest, l.digests.size)
                || !self.dirs.snap.join(&l.snapshot).join("upper").is_dir()
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
            state
                .lowers
                .push(self.dirs.snap.join(&l.snapshot).join("upper"));
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

    /// Runs a filesystem step unless cached: `exec` fills the snapshot's upper directory
    /// and returns the layer it wrote (if the worker wrote one) or `None` to have it
    /// written here.
    pub(in crate::builder) fn fs_step(
        &mut self,
        state: &mut StageState,
        key: String,
        created_by: &str,
        span: Span,
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
        let snap = self.snapshot_dir(&key);
        self.remove_tree(&snap)?;
        mkdir(&snap.join("upper"))?;
        mkdir(&snap.join("work"))?;
        mkdir(&snap.join("merged"))?;
        let result = exec(self, state, &snap);
        let layer = match result {
            Ok(l) => l,
            Err(e) => {
                let _ = self.remove_tree(&snap);
                return Err(e);
            }
        };
        let layer = match layer {
            Some(l) => Some(l),
            None => self.write_layer(&snap, span)?.1,
        };
        self.executed += 1;
        let entry = CacheEntry {
            created: super::super::now_rfc3339(),
            layer: match &layer {
                Some(d) => {
                    let digest = Digest::parse(&d.digest)
                        .map_err(|e| step_err(self.cf, span, e.to_string()))?;
                    self.store
                        .commit_file(&self.layer_tmp(&snap), &digest, d.size)?;
                    Some(CachedLayer {
                        digests: d.clone(),
                        snapshot: snap
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    })
                }
                None => {
                    let _ = self.remove_tree(&snap);
                    None
                }
            },
        };
        // Only the work directory is left over from the overlay; the upper directory is
        // the layer from now on.
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

    fn layer_tmp(&self, snap: &Path) -> PathBuf {
        snap.join("layer.tar.zst")
    }

    /// Writes the snapshot's changes as a layer (worker: root of the user namespace).
    fn write_layer(
        &self,
        snap: &Path,
        span: Span,
    ) -> Result<((), Option<LayerDigests>), BuildError> {
        let out_path = self.layer_tmp(snap);
        let out = File::create(&out_path).map_err(|source| BuildError::Io {
            path: out_path.clone(),
            source,
        })?;
        let mut result = tempfile_in(&self.dirs.logs)?;
        let upper = snap.join("upper");
        let res = &result;
        run_as_root(&self.env.maps, self.privileged(), || {
            let d = diff::write_layer(&upper, &out, true).map_err(|e| chain(&e))?;
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
        Ok(((), d))
    }

    pub(in crate::builder) fn remove_tree(&self, p: &Path) -> Result<(), BuildError> {
        if fs::symlink_metadata(p).is_err() {
            return Ok(());
        }
        crate::rootfs::remove(p, &self.env.maps, self.privileged()).map_err(BuildError::from)
    }

    /// Runs `op` on the step's root mounted at `<snap>/merged` (and `views` mounted
    /// read-only) in a worker that is root of the user namespace, then writes the layer.
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
        let view_dirs: Vec<PathBuf> = (0..views.len())
            .map(|i| snap.join(format!("view-{i}")))
            .collect();
        for v in &view_dirs {
            mkdir(v)?;
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
            match_root_owner(lowers.last().expect("a lower"), &upper);
            ags_runtime::overlay::mount(&lowers, Some((&upper, &work)), &merged)
                .map_err(|e| format!("cannot mount the step's root: {e}"))?;
            let mut mounted = Vec::new();
            for (v, dir) in views.iter().zip(&view_dirs) {
                if v.len() == 1 {
                    mounted.push(v[0].clone());
                } else {
                    ags_runtime::overlay::mount(v, None, dir)
                        .map_err(|e| format!("cannot mount a --from source: {e}"))?;
                    mounted.push(dir.clone());
                }
            }
            op(&merged, &mounted)?;
            let d = diff::write_layer(&upper, &out, false).map_err(|e| chain(&e))?;
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
