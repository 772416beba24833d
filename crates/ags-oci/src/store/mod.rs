//! The content store: verified blobs, partial downloads, the refs index, locking and gc.
//!
//! Layout under the root the caller chooses (the binary passes `$XDG_DATA_HOME/ags`):
//! ```text
//! lock                    flock: shared while pulling, exclusive for remove and gc
//! refs.lock               flock: exclusive while rewriting refs.json
//! refs.json               tag -> manifest digest index (written atomically)
//! blobs/sha256/<hex>      verified content only, renamed into place after verification
//! tmp/partial-<hex>       interrupted downloads, resumed by the next pull
//! tmp/...                 other in-flight writes
//! ```
//! Locks are flock(2) locks (see the man page: they belong to the open file description and
//! vanish when the process dies, so a SIGKILLed pull never leaves the store locked).
//! A blob appears under `blobs/` only after its digest and size were checked and the data
//! was fsynced, so a crash or SIGKILL at any point leaves either no blob or a whole one.

mod local;
mod pull;

pub use pull::{NoProgress, PullOptions, PullProgress, PulledImage};

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, DigestError, Verifier};
use crate::manifest::{
    ImageConfig, ImageManifest, Manifest, ManifestError, ManifestLimits, Platform, parse_manifest,
};
use crate::reference::{Reference, ReferenceError};
use crate::registry::RegistryError;

/// Errors from the content store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done ("cannot create", "cannot read", ...).
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// refs.json is corrupt.
    #[error("corrupt image index {path}")]
    CorruptRefs {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A registry operation failed during a pull.
    #[error("cannot pull {reference}")]
    Registry {
        /// The image being pulled.
        reference: String,
        /// The cause (boxed: registry errors are large).
        #[source]
        source: Box<RegistryError>,
    },
    /// A manifest or config in the store or from the registry is invalid.
    #[error("invalid {what} for {reference}")]
    Manifest {
        /// The image.
        reference: String,
        /// What document.
        what: String,
        /// The cause.
        #[source]
        source: ManifestError,
    },
    /// Content failed verification while being committed.
    #[error("content for {digest} failed verification")]
    Verify {
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: DigestError,
    },
    /// The image is not in the store.
    #[error("image {0} is not in the store (pull it first)")]
    NotFound(String),
    /// A blob the refs point to is missing.
    #[error("blob {digest} is missing from {path} (the store is damaged; pull the image again)")]
    MissingBlob {
        /// The blob.
        digest: Digest,
        /// Where it should be.
        path: PathBuf,
    },
    /// A stored reference no longer parses.
    #[error("invalid reference in image index")]
    Reference(#[source] ReferenceError),
    /// The image is for another platform.
    #[error("{reference} is for {found}, not {wanted}")]
    WrongPlatform {
        /// The image.
        reference: String,
        /// Platform from the image config.
        found: String,
        /// Platform asked for.
        wanted: String,
    },
    /// A pull was cancelled.
    #[error("pull of {0} cancelled")]
    Cancelled(String),
    /// Serializing a document failed (a bug in ags).
    #[error("cannot encode the {what}")]
    Encode {
        /// What was encoded.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// An flock(2) held on a file; released on drop (closing the descriptor).
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    fn acquire(path: &Path, exclusive: bool) -> Result<Self, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err("cannot open lock file", path))?;
        Self::lock_file(file, exclusive, path)
    }

    pub(crate) fn lock_file(file: File, exclusive: bool, path: &Path) -> Result<Self, StoreError> {
        let op = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        loop {
            // SAFETY: flock only reads the descriptor number; `file` owns a valid open
            // descriptor for the duration of the call.
            let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
            if rc == 0 {
                return Ok(Self { _file: file });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(StoreError::Io {
                    op: "cannot lock",
                    path: path.to_path_buf(),
                    source: err,
                });
            }
        }
    }
}

/// One entry of the refs index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The canonical reference (with tag, and digest if pulled by digest).
    pub reference: String,
    /// The platform-specific manifest digest.
    pub manifest_digest: Digest,
    /// The index digest, when the reference resolved to an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<Digest>,
    /// The config blob digest.
    pub config_digest: Digest,
    /// The platform selected.
    pub platform: Platform,
    /// Total compressed layer size in bytes.
    pub size: u64,
    /// Seconds since the Unix epoch when pulled.
    pub pulled_at: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RefsFile {
    version: u32,
    images: Vec<ImageRecord>,
}

/// What [`Store::gc`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted.
    pub removed: Vec<Digest>,
    /// Bytes freed (blobs and leftover temporary files).
    pub bytes_freed: u64,
}

/// A layer ready for unpacking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// The verified compressed blob.
    pub path: PathBuf,
    /// Its media type (gzip / zstd / plain tar).
    pub media_type: String,
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Digest of the uncompressed tar (from the image config), to verify while unpacking.
    pub diff_id: Digest,
    /// Compressed size.
    pub size: u64,
}

/// The content store.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed, mode 0700) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        use std::os::unix::fs::DirBuilderExt as _;
        let root = root.into();
        for dir in [root.clone(), root.join("blobs/sha256"), root.join("tmp")] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io_err("cannot create directory", &dir))?;
        }
        Ok(Self { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a committed blob lives (it may not exist).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub(crate) fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("partial-{}", digest.hex()))
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn refs_path(&self) -> PathBuf {
        self.root.join("refs.json")
    }

    pub(crate) fn lock_shared(&self) -> Result<FileLock, StoreError> {
        FileLock::acquire(&self.root.join("lock"), false)
    }

    fn lock_exclusive(&self) -> Result<FileLock, StoreError> {
        FileLock::acquire(&self.root.join("lock"), true)
    }

    /// Whether a verified blob of that digest is present with the expected size.
    pub fn has_blob(&self, digest: &Digest, size: u64) -> bool {
        std::fs::metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Reads a committed blob.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        std::fs::read(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::MissingBlob {
                    digest: digest.clone(),
                    path: path.clone(),
                }
            } else {
                StoreError::Io {
                    op: "cannot read",
                    path: path.clone(),
                    source: e,
                }
            }
        })
    }

    /// Verifies `data` and commits it as a blob (temp file, fsync, rename).
    pub fn write_blob(&self, digest: &Digest, data: &[u8]) -> Result<(), StoreError> {
        let mut v = Verifier::new(digest.clone(), data.len() as u64);
        v.update(data)
            .and_then(|()| v.finish())
            .map_err(|source| StoreError::Verify {
                digest: digest.clone(),
                source,
            })?;
        if self.has_blob(digest, data.len() as u64) {
            return Ok(());
        }
        let tmp_dir = self.tmp_dir();
        let mut tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp_dir)
            .map_err(io_err("cannot create temporary file in", &tmp_dir))?;
        tmp.write_all(data)
            .map_err(io_err("cannot write", tmp.path()))?;
        tmp.as_file()
            .sync_all()
            .map_err(io_err("cannot sync", tmp.path()))?;
        let dest = self.blob_path(digest);
        tmp.persist(&dest).map_err(|e| StoreError::Io {
            op: "cannot rename into",
            path: dest.clone(),
            source: e.error,
        })?;
        self.sync_blob_dir();
        Ok(())
    }

    /// Moves a fully verified partial download into place.
    pub(crate) fn commit_partial(
        &self,
        digest: &Digest,
        partial: &Path,
        file: &File,
    ) -> Result<(), StoreError> {
        file.sync_all().map_err(io_err("cannot sync", partial))?;
        let dest = self.blob_path(digest);
        std::fs::rename(partial, &dest).map_err(io_err("cannot rename into", &dest))?;
        self.sync_blob_dir();
        Ok(())
    }

    fn sync_blob_dir(&self) {
        // Best effort: persisting the rename across power loss; the data itself is synced.
        if let Ok(d) = File::open(self.root.join("blobs/sha256")) {
            let _ = d.sync_all();
        }
    }

    fn read_refs(&self) -> Result<RefsFile, StoreError> {
        let path = self.refs_path();
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|source| StoreError::CorruptRefs { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(RefsFile {
                version: 1,
                images: Vec::new(),
            }),
            Err(e) => Err(StoreError::Io {
                op: "cannot read",
                path,
                source: e,
            }),
        }
    }

    fn write_refs(&self, refs: &RefsFile) -> Result<(), StoreError> {
        let path = self.refs_path();
        let data = serde_json::to_vec_pretty(refs).map_err(|source| StoreError::CorruptRefs {
            path: path.clone(),
            source,
        })?;
        let mut tmp = tempfile::Builder::new()
            .prefix("refs-")
            .tempfile_in(self.tmp_dir())
            .map_err(io_err("cannot create temporary file in", &self.tmp_dir()))?;
        tmp.write_all(&data)
            .map_err(io_err("cannot write", tmp.path()))?;
        tmp.as_file()
            .sync_all()
            .map_err(io_err("cannot sync", tmp.path()))?;
        tmp.persist(&path).map_err(|e| StoreError::Io {
            op: "cannot rename into",
            path: path.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// Read-modify-write of refs.json under refs.lock.
    fn update_refs<T>(&self, f: impl FnOnce(&mut RefsFile) -> T) -> Result<T, StoreError> {
        let _l = FileLock::acquire(&self.root.join("refs.lock"), true)?;
        let mut refs = self.read_refs()?;
        let out = f(&mut refs);
        refs.version = 1;
        self.write_refs(&refs)?;
        Ok(out)
    }

    /// Adds or replaces the record for (reference, platform).
    pub(crate) fn put_record(&self, rec: ImageRecord) -> Result<(), StoreError> {
        self.update_refs(|r| {
            r.images
                .retain(|i| !(i.reference == rec.reference && i.platform == rec.platform));
            r.images.push(rec);
        })
    }

    /// All images in the store.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        Ok(self.read_refs()?.images)
    }

    /// The stored image for `reference` (and `platform`, when given).
    pub fn get(
        &self,
        reference: &Reference,
        platform: Option<&Platform>,
    ) -> Result<PulledImage, StoreError> {
        let name = reference.to_string();
        let refs = self.read_refs()?;
        let rec = refs
            .images
            .iter()
            .rev()
            .find(|i| i.reference == name && platform.is_none_or(|p| p.matches(&i.platform)))
            .ok_or_else(|| StoreError::NotFound(name.clone()))?;
        self.load(reference, rec)
    }

    pub(crate) fn load(
        &self,
        reference: &Reference,
        rec: &ImageRecord,
    ) -> Result<PulledImage, StoreError> {
        let bytes = self.read_blob(&rec.manifest_digest)?;
        let manifest = match parse_manifest(
            &bytes,
            None,
            &ManifestLimits {
                max_layers: usize::MAX,
            },
        ) {
            Ok(Manifest::Image(m)) => m,
            Ok(Manifest::Index(_)) => {
                return Err(StoreError::Manifest {
                    reference: reference.to_string(),
                    what: "stored manifest".into(),
                    source: ManifestError::Ambiguous("stored manifest is an index".into()),
                });
            }
            Err(source) => {
                return Err(StoreError::Manifest {
                    reference: reference.to_string(),
                    what: "stored manifest".into(),
                    source,
                });
            }
        };
        Ok(PulledImage {
            reference: reference.clone(),
            manifest_digest: rec.manifest_digest.clone(),
            index_digest: rec.index_digest.clone(),
            platform: rec.platform.clone(),
            manifest,
        })
    }

    /// The image config of a pulled image.
    pub fn image_config(&self, image: &PulledImage) -> Result<ImageConfig, StoreError> {
        let bytes = self.read_blob(&image.manifest.config.digest)?;
        ImageConfig::parse(&bytes).map_err(|source| StoreError::Manifest {
            reference: image.reference.to_string(),
            what: "image config".into(),
            source,
        })
    }

    /// The layers of a pulled image, base first, for the unpacker.
    pub fn layers(&self, image: &PulledImage) -> Result<Vec<LayerInfo>, StoreError> {
        let config = self.image_config(image)?;
        config
            .check_layers(&image.manifest)
            .map_err(|source| StoreError::Manifest {
                reference: image.reference.to_string(),
                what: "image config".into(),
                source,
            })?;
        let layers = self.layers_of(&image.manifest, &config);
        if let Some(missing) = layers.iter().find(|l| !self.has_blob(&l.digest, l.size)) {
            return Err(StoreError::MissingBlob {
                digest: missing.digest.clone(),
                path: missing.path.clone(),
            });
        }
        Ok(layers)
    }

    /// The layers of `manifest`, base first, with their diff_ids from `config` (which the
    /// caller has checked against the manifest: [`ImageConfig::check_layers`]) and where
    /// their blobs are or will be; whether the blobs are there yet is not checked, for an
    /// unpacker that starts while the image is being pulled ([`PullProgress::ready`]).
    pub fn layers_of(&self, manifest: &ImageManifest, config: &ImageConfig) -> Vec<LayerInfo> {
        manifest
            .layers
            .iter()
            .zip(&config.diff_ids)
            .map(|(l, diff_id)| LayerInfo {
                path: self.blob_path(&l.digest),
                media_type: l.media_type.clone(),
                digest: l.digest.clone(),
                diff_id: diff_id.clone(),
                size: l.size,
            })
            .collect()
    }

    /// Removes every record for `reference` (all platforms). Blobs stay until [`Store::gc`].
    /// Returns how many records were removed.
    pub fn remove(&self, reference: &Reference) -> Result<usize, StoreError> {
        let _l = self.lock_exclusive()?;
        let name = reference.to_string();
        let n = self.update_refs(|r| {
            let before = r.images.len();
            r.images.retain(|i| i.reference != name);
            before - r.images.len()
        })?;
        if n == 0 {
            return Err(StoreError::NotFound(name));
        }
        Ok(n)
    }

    /// Deletes blobs no record references, and leftover temporary files (including partial
    /// downloads). Waits for running pulls to finish first.
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        let _l = self.lock_exclusive()?;
        let refs = self.read_refs()?;
        let mut keep: HashSet<Digest> = HashSet::new();
        for rec in &refs.images {
            keep.insert(rec.manifest_digest.clone());
            keep.insert(rec.config_digest.clone());
            if let Some(i) = &rec.index_digest {
                keep.insert(i.clone());
            }
            // Keep the layers of every manifest we can still read; if a manifest is
            // missing there is nothing of it to keep.
            if let Ok(bytes) = self.read_blob(&rec.manifest_digest) {
                if let Ok(Manifest::Image(m)) = parse_manifest(
                    &bytes,
                    None,
                    &ManifestLimits {
                        max_layers: usize::MAX,
                    },
                ) {
                    keep.extend(m.layers.iter().map(|l| l.digest.clone()));
                    keep.insert(m.config.digest);
                }
            }
        }
        let mut report = GcReport::default();
        let blobs = self.root.join("blobs/sha256");
        for entry in std::fs::read_dir(&blobs).map_err(io_err("cannot list", &blobs))? {
            let entry = entry.map_err(io_err("cannot list", &blobs))?;
            let name = entry.file_name();
            let path = entry.path();
            let digest = name.to_str().and_then(|n| Digest::from_hex(n).ok());
            if digest.as_ref().is_some_and(|d| keep.contains(d)) {
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(&path).map_err(io_err("cannot remove", &path))?;
            report.bytes_freed += size;
            if let Some(d) = digest {
                report.removed.push(d);
            }
        }
        let tmp = self.tmp_dir();
        for entry in std::fs::read_dir(&tmp).map_err(io_err("cannot list", &tmp))? {
            let entry = entry.map_err(io_err("cannot list", &tmp))?;
            let path = entry.path();
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(&path).map_err(io_err("cannot remove", &path))?;
            report.bytes_freed += size;
        }
        report.removed.sort();
        Ok(report)
    }

    /// Parses a stored record's reference.
    pub fn record_reference(rec: &ImageRecord) -> Result<Reference, StoreError> {
        Reference::parse(&rec.reference).map_err(StoreError::Reference)
    }

    pub(crate) fn check_platform(
        reference: &Reference,
        config: &ImageConfig,
        wanted: &Platform,
    ) -> Result<(), StoreError> {
        if config.os.is_empty() || config.architecture.is_empty() {
            return Ok(());
        }
        let found = Platform {
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            variant: config.variant.clone(),
            os_version: None,
        };
        if !wanted.matches(&found) {
            return Err(StoreError::WrongPlatform {
                reference: reference.to_string(),
                found: found.to_string(),
                wanted: wanted.to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_verified_and_gc() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let data = b"blob data";
        let d = Digest::of(data);
        assert!(store.write_blob(&Digest::of(b"other"), data).is_err());
        assert!(!store.blob_path(&Digest::of(b"other")).exists());
        store.write_blob(&d, data).unwrap();
        assert!(store.has_blob(&d, data.len() as u64));
        assert_eq!(store.read_blob(&d).unwrap(), data);
        std::fs::write(store.partial_path(&Digest::of(b"x")), b"xx").unwrap();
        let report = store.gc().unwrap();
        assert_eq!(report.removed, vec![d.clone()]);
        assert_eq!(report.bytes_freed, data.len() as u64 + 2);
        assert!(!store.blob_path(&d).exists());
        assert!(std::fs::read_dir(store.tmp_dir()).unwrap().next().is_none());
        let err = store
            .remove(&Reference::parse("nothing").unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("not in the store"), "{err}");
    }

    #[test]
    fn layers_line_up_with_diff_ids_and_must_be_present() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let blobs: [&[u8]; 2] = [b"layer one", b"layer two"];
        let diff_ids = [Digest::of(b"tar one"), Digest::of(b"tar two")];
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}","{}"]}}}}"#,
            diff_ids[0], diff_ids[1]
        );
        let config_digest = Digest::of(config.as_bytes());
        store.write_blob(&config_digest, config.as_bytes()).unwrap();
        let layer = |b: &[u8]| {
            format!(
                r#"{{"mediaType":"{}","digest":"{}","size":{}}}"#,
                crate::manifest::OCI_LAYER_GZIP,
                Digest::of(b),
                b.len()
            )
        };
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config_digest}","size":{}}},"layers":[{},{}]}}"#,
            crate::manifest::OCI_MANIFEST,
            crate::manifest::OCI_CONFIG,
            config.len(),
            layer(blobs[0]),
            layer(blobs[1])
        );
        let Ok(Manifest::Image(manifest)) =
            parse_manifest(manifest.as_bytes(), None, &ManifestLimits::default())
        else {
            panic!("manifest does not parse");
        };
        let parsed = ImageConfig::parse(config.as_bytes()).unwrap();
        // Before the blobs are there: for an unpacker that starts during the pull.
        let layers = store.layers_of(&manifest, &parsed);
        assert_eq!(layers.len(), 2);
        for ((l, blob), diff_id) in layers.iter().zip(blobs).zip(&diff_ids) {
            assert_eq!(l.digest, Digest::of(blob));
            assert_eq!(l.path, store.blob_path(&l.digest));
            assert_eq!(&l.diff_id, diff_id);
            assert_eq!(l.size, blob.len() as u64);
            assert_eq!(l.media_type, crate::manifest::OCI_LAYER_GZIP);
        }
        let image = PulledImage {
            reference: Reference::parse("example.com/a:1").unwrap(),
            manifest_digest: Digest::of(b"manifest"),
            index_digest: None,
            platform: Platform::host(),
            manifest,
        };
        store.write_blob(&Digest::of(blobs[0]), blobs[0]).unwrap();
        match store.layers(&image) {
            Err(StoreError::MissingBlob { digest, .. }) => assert_eq!(digest, Digest::of(blobs[1])),
            other => panic!("{other:?}"),
        }
        store.write_blob(&Digest::of(blobs[1]), blobs[1]).unwrap();
        assert_eq!(store.layers(&image).unwrap(), layers);
    }

    #[test]
    fn corrupt_refs_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("refs.json"), "{oops").unwrap();
        let err = store.images().unwrap_err().to_string();
        assert!(err.contains("refs.json"), "{err}");
    }
}
