//! `ags gc`: remove blobs and root filesystems no image refers to.

use anyhow::{Context, Result};

use crate::cli::GlobalArgs;
use crate::images::{self, Images};

/// Run the collection and report what it freed.
pub fn execute(global: &GlobalArgs) -> Result<i32> {
    let imgs = Images::open(global)?;
    reclaim(&imgs)?;
    Ok(crate::exit::OK)
}

/// Remove unreferenced root filesystems, then unreferenced blobs.
pub fn reclaim(imgs: &Images) -> Result<()> {
    let (maps, privileged) = super::image_maps()?;
    let snaps = ags_build::builder::gc(&imgs.store, &maps, privileged)
        .context("cannot remove unused build cache")?;
    let trees = ags_build::rootfs::gc(&imgs.store, &maps, privileged)
        .context("cannot remove unused root filesystems")?;
    let report = imgs.store.gc().context("cannot remove unused blobs")?;
    eprintln!(
        "removed {} blobs ({}), {} root filesystems and {} build snapshots",
        report.removed.len(),
        images::human(report.bytes_freed),
        trees.len(),
        snaps.len()
    );
    Ok(())
}
