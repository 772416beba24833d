//! `ags images`: the images in the store.

use anyhow::{Context, Result};

use crate::cli::GlobalArgs;
use crate::images::{self, Images};

/// Print one line per image.
pub fn execute(global: &GlobalArgs) -> Result<i32> {
    let imgs = Images::open(global)?;
    let list = imgs.store.images().context("cannot list images")?;
    println!(
        "{:<50} {:<19} {:<14} {:>10}",
        "IMAGE", "DIGEST", "PLATFORM", "SIZE"
    );
    for i in list {
        println!(
            "{:<50} {:<19} {:<14} {:>10}",
            i.reference,
            format!("sha256:{}", &i.manifest_digest.hex()[..12]),
            i.platform.to_string(),
            images::human(i.size)
        );
    }
    Ok(crate::exit::OK)
}
