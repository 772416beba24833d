//! Reclaiming build cache: step results whose layer no stored image uses, their snapshot
//! directories, and snapshots an interrupted build left without a cache entry.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

use ags_oci::store::Store;
use ags_runtime::idmap::IdMaps;

use super::{BuildError, build_root};

/// Removes unused build cache; returns the snapshot directories removed. Run it before
/// [`Store::gc`], which then removes the layer blobs no image uses.
pub fn gc(store: &Store, maps: &IdMaps, privileged: bool) -> Result<Vec<PathBuf>, BuildError> {
    let root = build_root(store);
    let cache = root.join("cache");
    let snap = root.join("snap");
    let mut used_layers = HashSet::new();
    let mut used_configs = HashSet::new();
    for rec in store.images()? {
        used_configs.insert(format!("{}.json", rec.config_digest.hex()));
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
            let keep = match layer {
                // A "no change" result costs nothing to keep.
                None => entry.is_some(),
                Some(l) => {
                    let used = l["digests"]["digest"]
                        .as_str()
                        .is_some_and(|d| used_layers.contains(d));
                    if used && let Some(s) = l["snapshot"].as_str() {
                        kept_snaps.insert(s.to_string());
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
