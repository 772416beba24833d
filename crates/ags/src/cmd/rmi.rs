//! `ags rmi`: remove images, then reclaim what only they used.

use anyhow::{Context, Result};

use crate::cli::GlobalArgs;
use crate::images::{self, Images};

/// Remove each reference; fail on the first that is not in the store.
pub fn execute(global: &GlobalArgs, references: &[String]) -> Result<i32> {
    let imgs = Images::open(global)?;
    for r in references {
        let reference = images::parse_reference(r, "REFERENCE")?;
        imgs.store
            .remove(&reference)
            .with_context(|| format!("cannot remove {reference}"))?;
        println!("removed {reference}");
    }
    super::gc::reclaim(&imgs)?;
    Ok(crate::exit::OK)
}
