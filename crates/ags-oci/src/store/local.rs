//! Images made on this machine (by `ags build`): their layer blobs are committed from files
//! the builder wrote, and the finished image is recorded under its tag in one atomic
//! update of the refs index, so a failed or interrupted build never tags anything and the
//! previous image of the same tag stays usable until then.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{ImageRecord, Store, StoreError, io_err};
use crate::digest::{Digest, Verifier};
use crate::manifest::{
    Descriptor, ImageManifest, Manifest, ManifestLimits, OCI_CONFIG, OCI_MANIFEST, Platform,
    parse_manifest,
};
use crate::reference::Reference;
use crate::store::PulledImage;

impl Store {
    /// Commits the finished file `path` (written by the caller in [`Store::tmp_path`]) as the
    /// blob `digest` after checking its digest and size again, and removes `path`.
    pub fn commit_file(&self, path: &Path, digest: &Digest, size: u64) -> Result<(), StoreError> {
        let mut f = File::open(path).map_err(io_err("cannot open", path))?;
        let mut v = Verifier::new(digest.clone(), size);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(io_err("cannot read", path))?;
            if n == 0 {
                break;
            }
            v.update(&buf[..n]).map_err(|source| StoreError::Verify {
                digest: digest.clone(),
                source,
            })?;
        }
        v.finish().map_err(|source| StoreError::Verify {
            digest: digest.clone(),
            source,
        })?;
        if self.has_blob(digest, size) {
            let _ = std::fs::remove_file(path);
            return Ok(());
        }
        self.commit_partial(digest, path, &f)
    }

    /// A fresh temporary path in the store's own temporary directory (same filesystem as
    /// the blobs, so committing is a rename; cleaned by [`Store::gc`]).
    pub fn tmp_path(&self, prefix: &str) -> std::path::PathBuf {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        self.tmp_dir()
            .join(format!("{prefix}-{}-{nanos}", std::process::id()))
    }

    /// Records a locally built image: writes its config and manifest blobs (the layer
    /// blobs must be committed already) and points `reference` at it.
    pub fn commit_image(
        &self,
        reference: &Reference,
        config: &[u8],
        layers: Vec<Descriptor>,
        platform: &Platform,
    ) -> Result<PulledImage, StoreError> {
        let _lock = self.lock_shared()?;
        for l in &layers {
            if !self.has_blob(&l.digest, l.size) {
                return Err(StoreError::MissingBlob {
                    digest: l.digest.clone(),
                    path: self.blob_path(&l.digest),
                });
            }
        }
        let config_desc = Descriptor::for_data(OCI_CONFIG, config);
        self.write_blob(&config_desc.digest, config)?;
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_string()),
            config: config_desc,
            layers,
            annotations: None,
        };
        let bytes = serde_json::to_vec(&manifest).map_err(|source| StoreError::Encode {
            what: "image manifest",
            source,
        })?;
        // Parse what we wrote with the same checks as a pulled manifest.
        let manifest = match parse_manifest(
            &bytes,
            Some(OCI_MANIFEST),
            &ManifestLimits {
                max_layers: usize::MAX,
            },
        ) {
            Ok(Manifest::Image(m)) => m,
            Ok(Manifest::Index(_)) => unreachable!("an image manifest parses as one"),
            Err(source) => {
                return Err(StoreError::Manifest {
                    reference: reference.to_string(),
                    what: "built manifest".into(),
                    source,
                });
            }
        };
        let manifest_digest = Digest::of(&bytes);
        self.write_blob(&manifest_digest, &bytes)?;
        self.put_record(ImageRecord {
            reference: reference.to_string(),
            manifest_digest: manifest_digest.clone(),
            index_digest: None,
            config_digest: manifest.config.digest.clone(),
            platform: platform.clone(),
            size: manifest.layers.iter().map(|l| l.size).sum(),
            pulled_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        })?;
        Ok(PulledImage {
            reference: reference.clone(),
            manifest_digest,
            index_digest: None,
            platform: platform.clone(),
            manifest,
        })
    }
}
