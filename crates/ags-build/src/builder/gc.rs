//! Reclaiming build cache: step results whose layer no stored image uses, their snapshot
//! directories, and snapshots an interrupted build left without a cache entry.
//!
//! Overlay snapshots are kept as long as their layer is used: each is a layer of its
//! image's root. A copy snapshot is a full tree, and an image runs from its last one
//! only, so only the trees a stored image runs from are kept; the cache entries of the
//! other steps stay (while their layers are used), and a rebuild that needs one of their
//! trees again unpacks it from the layers.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

use ags_oci::store::Store;
use ags_runtime::idmap::IdMaps;

use super::snapshot::SnapshotKind;
use super::{BuildError, build_root, recorded_layout};

/// Removes unused build cache; returns the snapshot directories removed. Run it before
/// [`Store::gc`], which then removes the layer blobs no image uses.
pub fn gc(store: &Store, maps: &IdMaps, privileged: bool) -> Result<Vec<PathBuf>, BuildError> {
    let root = build_root(store);
    let cache = root.join("cache");
    let snap = root.join("snap");
    let mut used_layers = HashSet::new();
    let mut used_configs = HashSet::new();
    // The snapshot directories stored images run from.
    let mut image_snaps = HashSet::new();
    for rec in store.images()? {
        used_configs.insert(format!("{}.json", rec.config_digest.hex()));
        if let Some((_, dirs)) = recorded_layout(store, rec.config_digest.hex()) {
            for d in dirs {
                if let Some(name) = d
                    .parent()
                    .filter(|p| p.parent() == Some(snap.as_path()))
                    .and_then(|p| p.file_name())
                {
                    image_snaps.insert(name.to_string_lossy().into_owned());
                }
            }
        }
        let reference = Store::record_reference(&rec)?;
        if let Ok(img) = store.get(&reference, Some(&rec.platform)) {
            used_layers.extend(img.manifest.layers.iter().map(|l| l.digest.to_string()));
        }
    }
    let mut kept_snaps = HashSet::new();
    if let Ok(entries) = fs::read_dir(&cache) {
        for e in entries.flatten() {
            let path = e.path();
            let entry: Option<serde_json::Value> = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let layer = entry
                .as_ref()
                .and_then(|v| v.get("layer"))
                .filter(|l| !l.is_null());
            let kind = entry
                .as_ref()
                .and_then(|v| v.get("snapshots"))
                .and_then(|k| serde_json::from_value(k.clone()).ok())
                .unwrap_or(SnapshotKind::Overlay);
            let keep = match layer {
                // A "no change" result costs nothing to keep.
                None => entry.is_some(),
                Some(l) => {
                    let used = l["digests"]["digest"]
                        .as_str()
                        .is_some_and(|d| used_layers.contains(d));
                    if used && let Some(s) = l["snapshot"].as_str() {
                        let needed = match kind {
                            SnapshotKind::Overlay => true,
                            SnapshotKind::Copy => image_snaps.contains(s),
                        };
                        if needed {
                            kept_snaps.insert(s.to_string());
                        }
                    }
                    used
                }
            };
            if !keep {
                let _ = fs::remove_file(&path);
            }
        }
    }
    if let Ok(entries) = fs::read_dir(root.join("images")) {
        for e in entries.flatten() {
            if !used_configs.contains(&*e.file_name().to_string_lossy()) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    let mut removed = Vec::new();
    if let Ok(entries) = fs::read_dir(&snap) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !kept_snaps.contains(&name) {
                crate::rootfs::remove(&e.path(), maps, privileged)?;
                removed.push(e.path());
            }
        }
    }
    Ok(removed)
}
