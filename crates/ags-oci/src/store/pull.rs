//! `Store::pull`: resolve index -> platform manifest -> config + layers, download layers in
//! parallel with resume, then record the image. The refs index is written last, so a
//! failing pull leaves the previous record for the same tag untouched.
//!
//! Layers are fetched base first (at most `jobs` at once), and the [`PullProgress`] hears
//! about the verified manifest and config before any layer and about each layer once it
//! is committed, so a caller can unpack layers while later ones are still downloading.

use std::fs::OpenOptions;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{FileLock, ImageRecord, Store, StoreError};
use crate::digest::Digest;
use crate::manifest::{
    Descriptor, ImageConfig, ImageManifest, MAX_CONFIG_SIZE, Manifest, ManifestError,
    ManifestLimits, Platform, parse_manifest,
};
use crate::reference::Reference;
use crate::registry::RegistryClient;

/// Receives pull progress; the binary implements it with indicatif bars.
/// All methods default to doing nothing.
pub trait PullProgress: Send + Sync {
    /// The manifest was resolved; `layers` layers will be fetched.
    fn resolved(&self, _reference: &Reference, _manifest_digest: &Digest, _layers: usize) {}
    /// The platform manifest and the image config are verified (digest, size, layer count
    /// against the config's diff_ids, platform); the layers are fetched next. Called once
    /// per pull, before any `layer_started`, so that a receiver can get ready to unpack
    /// each layer as soon as `layer_done` reports it. The documents are not in the store
    /// yet: they are committed only when every layer is.
    fn ready(&self, _reference: &Reference, _manifest: &ImageManifest, _config: &ImageConfig) {}
    /// A layer download starts (also called for layers already in the store).
    fn layer_started(&self, _digest: &Digest, _total_size: u64) {}
    /// `bytes` of the layer are now present (including any resumed prefix).
    fn layer_progress(&self, _digest: &Digest, _bytes: u64) {}
    /// The layer is verified and committed: [`Store::blob_path`] holds it from now on.
    /// Called once per distinct digest, from the download threads, in no particular order.
    fn layer_done(&self, _digest: &Digest) {}
}

/// A [`PullProgress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl PullProgress for NoProgress {}

/// Options for [`Store::pull`].
#[derive(Clone)]
pub struct PullOptions {
    /// The platform to select from an index (default: the host's).
    pub platform: Platform,
    /// Cap on layers per image.
    pub max_layers: usize,
    /// Layers downloaded at once (at least 1).
    pub jobs: usize,
    /// Progress receiver.
    pub progress: Arc<dyn PullProgress>,
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("platform", &self.platform)
            .field("max_layers", &self.max_layers)
            .field("jobs", &self.jobs)
            .finish_non_exhaustive()
    }
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            platform: Platform::host(),
            max_layers: crate::manifest::DEFAULT_MAX_LAYERS,
            jobs: 3,
            progress: Arc::new(NoProgress),
        }
    }
}

/// An image present in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The reference it was pulled as.
    pub reference: Reference,
    /// The platform manifest's digest.
    pub manifest_digest: Digest,
    /// The index digest, when the reference named an index.
    pub index_digest: Option<Digest>,
    /// The selected platform.
    pub platform: Platform,
    /// The platform manifest.
    pub manifest: ImageManifest,
}

impl Store {
    /// Pulls `reference` through `client` into the store and records it.
    pub fn pull(
        &self,
        client: &RegistryClient,
        reference: &Reference,
        opts: &PullOptions,
    ) -> Result<PulledImage, StoreError> {
        let _lock = self.lock_shared()?;
        let name = reference.to_string();
        let reg = |source| StoreError::Registry {
            reference: name.clone(),
            source: Box::new(source),
        };
        let bad = |what: &str, source: ManifestError| StoreError::Manifest {
            reference: name.clone(),
            what: what.to_string(),
            source,
        };
        let limits = ManifestLimits {
            max_layers: opts.max_layers,
        };

        let top = client.get_manifest(reference).map_err(reg)?;
        let parsed = parse_manifest(&top.bytes, top.content_type.as_deref(), &limits)
            .map_err(|e| bad("manifest", e))?;
        let (index, manifest_doc, manifest) = match parsed {
            Manifest::Image(m) => (None, top, m),
            Manifest::Index(idx) => {
                let desc = idx.select(&opts.platform).map_err(|e| bad("index", e))?;
                let fetched = client
                    .get_manifest_by_digest(
                        reference.registry(),
                        reference.repository(),
                        &desc.digest,
                    )
                    .map_err(reg)?;
                match parse_manifest(&fetched.bytes, fetched.content_type.as_deref(), &limits)
                    .map_err(|e| bad("platform manifest", e))?
                {
                    Manifest::Image(m) => (Some(top), fetched, m),
                    Manifest::Index(_) => {
                        return Err(bad(
                            "platform manifest",
                            ManifestError::Ambiguous("index entry points to another index".into()),
                        ));
                    }
                }
            }
        };
        opts.progress
            .resolved(reference, &manifest_doc.digest, manifest.layers.len());

        let config_bytes = if self.has_blob(&manifest.config.digest, manifest.config.size) {
            self.read_blob(&manifest.config.digest)?
        } else {
            client
                .get_blob_bytes(
                    reference.registry(),
                    reference.repository(),
                    &manifest.config.digest,
                    manifest.config.size,
                    MAX_CONFIG_SIZE,
                )
                .map_err(reg)?
        };
        let config = ImageConfig::parse(&config_bytes).map_err(|e| bad("image config", e))?;
        config
            .check_layers(&manifest)
            .map_err(|e| bad("image config", e))?;
        Self::check_platform(reference, &config, &opts.platform)?;
        opts.progress.ready(reference, &manifest, &config);

        self.fetch_layers(client, reference, &manifest.layers, opts)?;

        // Everything verified: commit the small documents, then the record.
        if let Some(idx) = &index {
            self.write_blob(&idx.digest, &idx.bytes)?;
        }
        self.write_blob(&manifest_doc.digest, &manifest_doc.bytes)?;
        self.write_blob(&manifest.config.digest, &config_bytes)?;
        let platform = Platform {
            os: if config.os.is_empty() {
                opts.platform.os.clone()
            } else {
                config.os.clone()
            },
            architecture: if config.architecture.is_empty() {
                opts.platform.architecture.clone()
            } else {
                config.architecture.clone()
            },
            variant: config
                .variant
                .clone()
                .or_else(|| opts.platform.variant.clone()),
            os_version: None,
        };
        let rec = ImageRecord {
            reference: name.clone(),
            manifest_digest: manifest_doc.digest.clone(),
            index_digest: index.as_ref().map(|i| i.digest.clone()),
            config_digest: manifest.config.digest.clone(),
            platform: platform.clone(),
            size: manifest.layers.iter().map(|l| l.size).sum(),
            pulled_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        self.put_record(rec)?;
        Ok(PulledImage {
            reference: reference.clone(),
            manifest_digest: manifest_doc.digest,
            index_digest: index.map(|i| i.digest),
            platform,
            manifest,
        })
    }

    fn fetch_layers(
        &self,
        client: &RegistryClient,
        reference: &Reference,
        layers: &[Descriptor],
        opts: &PullOptions,
    ) -> Result<(), StoreError> {
        // Deduplicate: an image may list the same layer twice.
        let mut queue: Vec<&Descriptor> = Vec::new();
        for l in layers {
            if !queue.iter().any(|q| q.digest == l.digest) {
                queue.push(l);
            }
        }
        queue.reverse();
        let queue = Mutex::new(queue);
        let cancel = AtomicBool::new(false);
        let first_error: Mutex<Option<StoreError>> = Mutex::new(None);
        let workers = opts.jobs.max(1).min(layers.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        if cancel.load(Ordering::Relaxed) {
                            return;
                        }
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                        let Some(desc) = next else { return };
                        if let Err(e) = self.fetch_layer(client, reference, desc, opts, &cancel) {
                            // Record before cancelling so the first real error wins over
                            // the "cancelled" errors of the other workers.
                            let mut slot = first_error.lock().unwrap_or_else(|e| e.into_inner());
                            if slot.is_none() {
                                *slot = Some(e);
                            }
                            drop(slot);
                            cancel.store(true, Ordering::Relaxed);
                            return;
                        }
                    }
                });
            }
        });
        match first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn fetch_layer(
        &self,
        client: &RegistryClient,
        reference: &Reference,
        desc: &Descriptor,
        opts: &PullOptions,
        cancel: &AtomicBool,
    ) -> Result<(), StoreError> {
        let progress = &opts.progress;
        progress.layer_started(&desc.digest, desc.size);
        if self.has_blob(&desc.digest, desc.size) {
            progress.layer_progress(&desc.digest, desc.size);
            progress.layer_done(&desc.digest);
            return Ok(());
        }
        let partial = self.partial_path(&desc.digest);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&partial)
            .map_err(super::io_err("cannot open", &partial))?;
        // Two processes pulling the same layer take turns on its partial file.
        let lock_fd = file
            .try_clone()
            .map_err(super::io_err("cannot open", &partial))?;
        let _partial_lock = FileLock::lock_file(lock_fd, true, &partial)?;
        if self.has_blob(&desc.digest, desc.size) {
            // Another process committed it while we waited.
            progress.layer_progress(&desc.digest, desc.size);
            progress.layer_done(&desc.digest);
            return Ok(());
        }
        let digest = desc.digest.clone();
        let mut report = |n: u64| progress.layer_progress(&digest, n);
        client
            .download_blob(
                reference.registry(),
                reference.repository(),
                &desc.digest,
                desc.size,
                &mut file,
                &partial,
                &mut report,
                cancel,
            )
            .map_err(|source| {
                if cancel.load(Ordering::Relaxed) {
                    StoreError::Cancelled(reference.to_string())
                } else {
                    StoreError::Registry {
                        reference: reference.to_string(),
                        source: Box::new(source),
                    }
                }
            })?;
        self.commit_partial(&desc.digest, &partial, &file)?;
        progress.layer_done(&desc.digest);
        Ok(())
    }
}
