//! `ags pull`: fetch, verify, store and unpack an image.

use anyhow::Result;

use crate::cli::GlobalArgs;
use crate::images::{self, Images};

/// Pull and unpack; print the manifest digest.
pub fn execute(global: &GlobalArgs, reference: &str, platform: Option<&str>) -> Result<i32> {
    let reference = images::parse_reference(reference, "REFERENCE")?;
    let platform = images::parse_platform(platform)?;
    let imgs = Images::open(global)?;
    // Ends with the root filesystem in place, so a later `ags run` starts at once.
    let (image, _rootfs) = imgs.pull(&reference, &platform)?;
    println!("{}", image.manifest_digest);
    Ok(crate::exit::OK)
}
