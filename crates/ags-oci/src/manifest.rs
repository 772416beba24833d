//! OCI and Docker schema-2 manifests, indexes / manifest lists, platforms and image configs.
//!
//! Parsing is strict where it matters for security:
//! - documents over [`MAX_MANIFEST_SIZE`] (4 MiB, containerd's limit) are refused;
//! - a document whose `mediaType` disagrees with the HTTP `Content-Type`, or which carries
//!   both `manifests` and `layers`/`config`, is refused. Such ambiguous documents let one
//!   digest be read as an image by one tool and as an index by another (CVE-2021-41190,
//!   GHSA-77vh-xpmg-72qh);
//! - descriptors with `urls` (Docker "foreign layers") are refused: fetching them would send
//!   requests to arbitrary hosts named by the image author;
//! - layer and index entry counts are capped.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
pub use crate::platform::{Platform, oci_arch};

/// containerd's manifest size cap.
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;
/// Image configs are small JSON documents; anything past this is refused.
pub const MAX_CONFIG_SIZE: u64 = 8 * 1024 * 1024;
/// Default cap on layers per image.
pub const DEFAULT_MAX_LAYERS: usize = 128;
/// Cap on entries in an index.
pub const MAX_INDEX_ENTRIES: usize = 1024;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema-2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The `Accept` header value for manifest requests: all four supported types.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Errors from parsing manifests, indexes, configs and platforms.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The document is larger than the cap.
    #[error("manifest is {size} bytes, over the {max} byte limit")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// Not valid JSON or wrong shape.
    #[error("manifest is not valid JSON")]
    Json(#[source] serde_json::Error),
    /// An unsupported media type.
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    /// Docker schema 1 or another unknown schema version.
    #[error("unsupported manifest schema version {0} (only schema 2 is supported)")]
    SchemaVersion(u64),
    /// mediaType field and Content-Type disagree, or the shape contradicts the type.
    #[error("ambiguous manifest: {0} (refused, see CVE-2021-41190)")]
    Ambiguous(String),
    /// A descriptor with `urls` (a foreign / non-distributable layer).
    #[error("descriptor {0} has external urls (foreign layer); refusing to fetch it")]
    ForeignUrls(Digest),
    /// Too many layers.
    #[error("image has {count} layers, over the limit of {max}")]
    TooManyLayers {
        /// Layer count.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// Too many index entries.
    #[error("index has {count} entries, over the limit of {max}")]
    TooManyEntries {
        /// Entry count.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// No index entry matches the wanted platform.
    #[error("no image for platform {wanted} (available: {available})")]
    NoMatchingPlatform {
        /// The wanted platform (`os/arch[/variant]`).
        wanted: String,
        /// Comma-separated list of what the index offers.
        available: String,
    },
    /// A platform string like `linux/arm64/v8` failed to parse.
    #[error("invalid platform {0:?} (expected os/arch[/variant], e.g. linux/arm64/v8)")]
    InvalidPlatform(String),
    /// The image config is not valid.
    #[error("invalid image config")]
    Config(#[source] serde_json::Error),
    /// The image config's diff_ids do not line up with the manifest's layers.
    #[error("image config lists {diff_ids} diff_ids but the manifest has {layers} layers")]
    DiffIdCount {
        /// Number of diff ids.
        diff_ids: usize,
        /// Number of layers.
        layers: usize,
    },
}

/// A content descriptor as found in manifests and indexes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// External URLs (foreign layers); always refused by this crate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// The platform (index entries only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<HashMap<String, String>>,
}

impl Descriptor {
    /// A plain descriptor for `data` with the given media type.
    pub fn for_data(media_type: &str, data: &[u8]) -> Self {
        Self {
            media_type: media_type.to_string(),
            digest: Digest::of(data),
            size: data.len() as u64,
            urls: None,
            platform: None,
            annotations: None,
        }
    }

    fn check_no_urls(&self) -> Result<(), ManifestError> {
        match &self.urls {
            Some(u) if !u.is_empty() => Err(ManifestError::ForeignUrls(self.digest.clone())),
            _ => Ok(()),
        }
    }
}

/// A single-platform image manifest (OCI or Docker schema 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u64,
    /// The document's own media type field, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// Layers, base first.
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<HashMap<String, String>>,
}

/// A multi-platform index (OCI image index or Docker manifest list).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u64,
    /// The document's own media type field, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Per-platform manifests.
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<HashMap<String, String>>,
}

/// A parsed manifest document.
// Both variants are a few hundred bytes at most and built once per pull; boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Manifest {
    /// A single-platform image.
    Image(ImageManifest),
    /// An index of per-platform images.
    Index(ImageIndex),
}

/// Limits applied while parsing.
#[derive(Clone, Copy, Debug)]
pub struct ManifestLimits {
    /// Maximum number of layers.
    pub max_layers: usize,
}

impl Default for ManifestLimits {
    fn default() -> Self {
        Self {
            max_layers: DEFAULT_MAX_LAYERS,
        }
    }
}

/// The raw shape, every field optional, used to detect ambiguous documents before typing.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<u64>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
    fs_layers: Option<serde_json::Value>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Image,
    Index,
}

fn kind_of(media_type: &str) -> Option<Kind> {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Some(Kind::Image),
        OCI_INDEX | DOCKER_MANIFEST_LIST => Some(Kind::Index),
        _ => None,
    }
}

/// Strips parameters (`; charset=utf-8`) and treats generic JSON types as "not stated".
fn effective_content_type(ct: Option<&str>) -> Option<String> {
    let ct = ct?.split(';').next()?.trim().to_ascii_lowercase();
    match ct.as_str() {
        "" | "application/json" | "text/plain" | "application/octet-stream" => None,
        _ => Some(ct),
    }
}

/// Parses a manifest or index, applying every check described in the module docs.
///
/// `content_type` is the HTTP `Content-Type` the registry sent (if any).
pub fn parse_manifest(
    bytes: &[u8],
    content_type: Option<&str>,
    limits: &ManifestLimits,
) -> Result<Manifest, ManifestError> {
    if bytes.len() > MAX_MANIFEST_SIZE {
        return Err(ManifestError::TooLarge {
            size: bytes.len(),
            max: MAX_MANIFEST_SIZE,
        });
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(ManifestError::Json)?;
    match probe.schema_version {
        Some(2) => {}
        Some(v) => return Err(ManifestError::SchemaVersion(v)),
        None if probe.fs_layers.is_some() => return Err(ManifestError::SchemaVersion(1)),
        None => return Err(ManifestError::Ambiguous("missing schemaVersion".into())),
    }
    let ct = effective_content_type(content_type);
    let ct_kind = match &ct {
        Some(ct) => {
            Some(kind_of(ct).ok_or_else(|| ManifestError::UnsupportedMediaType(ct.clone()))?)
        }
        None => None,
    };
    let field_kind = match &probe.media_type {
        Some(mt) => {
            Some(kind_of(mt).ok_or_else(|| ManifestError::UnsupportedMediaType(mt.clone()))?)
        }
        None => None,
    };
    if let (Some(ct), Some(field)) = (&ct, &probe.media_type) {
        if ct != field {
            return Err(ManifestError::Ambiguous(format!(
                "mediaType field {field:?} disagrees with Content-Type {ct:?}"
            )));
        }
    }
    let has_manifests = probe.manifests.is_some();
    let has_image_fields = probe.layers.is_some() || probe.config.is_some();
    if has_manifests && has_image_fields {
        return Err(ManifestError::Ambiguous(
            "document has both \"manifests\" and \"layers\"/\"config\"".into(),
        ));
    }
    let shape_kind = if has_manifests {
        Kind::Index
    } else {
        Kind::Image
    };
    let kind = ct_kind.or(field_kind).unwrap_or(shape_kind);
    if kind != shape_kind {
        return Err(ManifestError::Ambiguous(format!(
            "declared as {} but shaped like {}",
            if kind == Kind::Index {
                "an index"
            } else {
                "an image manifest"
            },
            if shape_kind == Kind::Index {
                "an index"
            } else {
                "an image manifest"
            },
        )));
    }
    match kind {
        Kind::Image => {
            let m: ImageManifest = serde_json::from_slice(bytes).map_err(ManifestError::Json)?;
            if m.layers.len() > limits.max_layers {
                return Err(ManifestError::TooManyLayers {
                    count: m.layers.len(),
                    max: limits.max_layers,
                });
            }
            m.config.check_no_urls()?;
            for l in &m.layers {
                l.check_no_urls()?;
            }
            Ok(Manifest::Image(m))
        }
        Kind::Index => {
            let i: ImageIndex = serde_json::from_slice(bytes).map_err(ManifestError::Json)?;
            if i.manifests.len() > MAX_INDEX_ENTRIES {
                return Err(ManifestError::TooManyEntries {
                    count: i.manifests.len(),
                    max: MAX_INDEX_ENTRIES,
                });
            }
            for m in &i.manifests {
                m.check_no_urls()?;
            }
            Ok(Manifest::Index(i))
        }
    }
}

impl ImageIndex {
    /// Picks the manifest for `wanted`. Entries without a platform or with
    /// `unknown/unknown` (build attestations) are never chosen. When several entries match,
    /// an exact variant match wins, then the first in document order.
    pub fn select(&self, wanted: &Platform) -> Result<&Descriptor, ManifestError> {
        let candidates: Vec<&Descriptor> = self
            .manifests
            .iter()
            .filter(|d| d.platform.as_ref().is_some_and(|p| wanted.matches(p)))
            .collect();
        let exact = candidates
            .iter()
            .find(|d| d.platform.as_ref().map(|p| &p.variant) == Some(&wanted.variant));
        match exact.or(candidates.first()) {
            Some(d) => Ok(d),
            None => Err(ManifestError::NoMatchingPlatform {
                wanted: wanted.to_string(),
                available: self.platforms().join(", "),
            }),
        }
    }

    fn platforms(&self) -> Vec<String> {
        self.manifests
            .iter()
            .filter_map(|d| d.platform.as_ref())
            .filter(|p| p.os != "unknown")
            .map(ToString::to_string)
            .collect()
    }
}

/// The parts of an image config the runtime needs, plus the full oci-spec document.
#[derive(Clone, Debug)]
pub struct ImageConfig {
    /// `config.Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `config.Cmd`.
    pub cmd: Vec<String>,
    /// `config.Env` (`KEY=value` strings).
    pub env: Vec<String>,
    /// `config.WorkingDir`.
    pub working_dir: Option<String>,
    /// `config.User`.
    pub user: Option<String>,
    /// `rootfs.diff_ids`: digests of the uncompressed layers, base first.
    pub diff_ids: Vec<Digest>,
    /// `os`.
    pub os: String,
    /// `architecture`.
    pub architecture: String,
    /// `variant`, if any.
    pub variant: Option<String>,
    /// The full config as parsed by oci-spec.
    pub raw: oci_spec::image::ImageConfiguration,
}

impl ImageConfig {
    /// Parses an image config (OCI or Docker; they share the JSON layout).
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() as u64 > MAX_CONFIG_SIZE {
            return Err(ManifestError::TooLarge {
                size: bytes.len(),
                max: MAX_CONFIG_SIZE as usize,
            });
        }
        let raw: oci_spec::image::ImageConfiguration =
            serde_json::from_slice(bytes).map_err(ManifestError::Config)?;
        // diff_ids are re-parsed with our strict Digest type: oci-spec accepts algorithms we
        // cannot verify.
        #[derive(Deserialize)]
        struct RootFs {
            #[serde(default)]
            diff_ids: Vec<Digest>,
        }
        #[derive(Deserialize)]
        struct Probe {
            rootfs: RootFs,
        }
        let probe: Probe = serde_json::from_slice(bytes).map_err(ManifestError::Config)?;
        let c = raw.config().as_ref();
        let get = |f: fn(&oci_spec::image::Config) -> Option<Vec<String>>| {
            c.and_then(f).unwrap_or_default()
        };
        Ok(Self {
            entrypoint: get(|c| c.entrypoint().clone()),
            cmd: get(|c| c.cmd().clone()),
            env: get(|c| c.env().clone()),
            working_dir: c
                .and_then(|c| c.working_dir().clone())
                .filter(|s| !s.is_empty()),
            user: c.and_then(|c| c.user().clone()).filter(|s| !s.is_empty()),
            diff_ids: probe.rootfs.diff_ids,
            os: raw.os().to_string(),
            architecture: raw.architecture().to_string(),
            variant: raw.variant().clone(),
            raw,
        })
    }

    /// Checks that there is one diff_id per manifest layer.
    pub fn check_layers(&self, manifest: &ImageManifest) -> Result<(), ManifestError> {
        if self.diff_ids.len() != manifest.layers.len() {
            return Err(ManifestError::DiffIdCount {
                diff_ids: self.diff_ids.len(),
                layers: manifest.layers.len(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", hex::encode([n; 32]))
    }

    fn image_json(media_type: Option<&str>, extra: &str) -> String {
        let mt = media_type.map_or(String::new(), |m| format!("\"mediaType\":\"{m}\","));
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"{OCI_CONFIG}","digest":"{}","size":10}},"layers":[{{"mediaType":"{OCI_LAYER_GZIP}","digest":"{}","size":20}}]{extra}}}"#,
            d(1),
            d(2)
        )
    }

    fn index_json(media_type: Option<&str>) -> String {
        let mt = media_type.map_or(String::new(), |m| format!("\"mediaType\":\"{m}\","));
        format!(
            r#"{{"schemaVersion":2,{mt}"manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm","variant":"v6"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm","variant":"v7"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"unknown","architecture":"unknown"}}}}
            ]}}"#,
            d(1),
            d(2),
            d(3),
            d(4),
            d(5)
        )
    }

    #[test]
    fn parse_table() {
        let lim = ManifestLimits::default();
        // (document, content type, Ok(is_index) or Err(substring))
        let cases: Vec<(String, Option<&str>, Result<bool, &str>)> = vec![
            (
                image_json(Some(OCI_MANIFEST), ""),
                Some(OCI_MANIFEST),
                Ok(false),
            ),
            (image_json(None, ""), Some(OCI_MANIFEST), Ok(false)),
            (image_json(None, ""), None, Ok(false)),
            (
                image_json(Some(DOCKER_MANIFEST), ""),
                Some(DOCKER_MANIFEST),
                Ok(false),
            ),
            (
                image_json(Some(DOCKER_MANIFEST), ""),
                Some("application/json; charset=utf-8"),
                Ok(false),
            ),
            (index_json(Some(OCI_INDEX)), Some(OCI_INDEX), Ok(true)),
            (index_json(None), None, Ok(true)),
            (
                index_json(Some(DOCKER_MANIFEST_LIST)),
                Some(DOCKER_MANIFEST_LIST),
                Ok(true),
            ),
            // CVE-2021-41190: mediaType disagrees with Content-Type.
            (
                image_json(Some(OCI_MANIFEST), ""),
                Some(OCI_INDEX),
                Err("disagrees"),
            ),
            (
                index_json(Some(OCI_INDEX)),
                Some(OCI_MANIFEST),
                Err("disagrees"),
            ),
            // Both manifests and layers.
            (image_json(None, r#","manifests":[]"#), None, Err("both")),
            (
                image_json(Some(OCI_MANIFEST), r#","manifests":[]"#),
                Some(OCI_MANIFEST),
                Err("both"),
            ),
            // Declared index, shaped as image.
            (
                image_json(None, ""),
                Some(OCI_INDEX),
                Err("shaped like an image manifest"),
            ),
            (
                index_json(None),
                Some(OCI_MANIFEST),
                Err("shaped like an index"),
            ),
            (
                r#"{"schemaVersion":1,"fsLayers":[]}"#.into(),
                None,
                Err("schema version 1"),
            ),
            (r#"{"fsLayers":[]}"#.into(), None, Err("schema version 1")),
            ("not json".into(), None, Err("not valid JSON")),
            (
                image_json(None, ""),
                Some("application/vnd.foo+json"),
                Err("unsupported"),
            ),
            (
                image_json(Some("application/x-evil"), ""),
                None,
                Err("unsupported"),
            ),
            (
                image_json(None, "").replace(
                    r#""size":20}"#,
                    r#""size":20,"urls":["http://evil.example/x"]}"#,
                ),
                None,
                Err("foreign layer"),
            ),
            (
                image_json(None, "").replace(&d(2), "sha512:abcd"),
                None,
                Err("not valid JSON"),
            ),
        ];
        for (doc, ct, want) in cases {
            let got = parse_manifest(doc.as_bytes(), ct, &lim);
            match (got, want) {
                (Ok(m), Ok(is_index)) => {
                    assert_eq!(matches!(m, Manifest::Index(_)), is_index, "{doc}")
                }
                (Err(e), Err(sub)) => assert!(e.to_string().contains(sub), "{doc}: {e}"),
                (got, want) => panic!("{doc} {ct:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn size_and_layer_caps() {
        let big = vec![b' '; MAX_MANIFEST_SIZE + 1];
        assert!(matches!(
            parse_manifest(&big, None, &ManifestLimits::default()),
            Err(ManifestError::TooLarge { .. })
        ));
        let lim = ManifestLimits { max_layers: 0 };
        assert!(matches!(
            parse_manifest(image_json(None, "").as_bytes(), None, &lim),
            Err(ManifestError::TooManyLayers { count: 1, max: 0 })
        ));
    }

    #[test]
    fn platform_parse_and_select() {
        let Manifest::Index(idx) = parse_manifest(
            index_json(None).as_bytes(),
            None,
            &ManifestLimits::default(),
        )
        .unwrap() else {
            panic!("not an index")
        };
        let cases: &[(&str, Result<u8, &str>)] = &[
            ("linux/amd64", Ok(1)),
            ("linux/x86_64", Ok(1)),
            ("linux/arm64", Ok(4)),
            ("linux/arm64/v8", Ok(4)),
            ("linux/aarch64", Ok(4)),
            ("linux/arm", Ok(3)),
            ("linux/arm/v6", Ok(2)),
            ("linux/arm/v7", Ok(3)),
            (
                "linux/s390x",
                Err("available: linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8"),
            ),
            ("windows/amd64", Err("no image for platform windows/amd64")),
        ];
        for (p, want) in cases {
            let platform = Platform::parse(p).unwrap();
            match (idx.select(&platform), want) {
                (Ok(desc), Ok(n)) => assert_eq!(desc.digest.to_string(), d(*n), "{p}"),
                (Err(e), Err(sub)) => assert!(e.to_string().contains(sub), "{p}: {e}"),
                (got, want) => panic!("{p}: got {got:?}, want {want:?}"),
            }
        }
        for bad in [
            "linux",
            "",
            "linux/",
            "/amd64",
            "linux/amd64/v8/x",
            "linux/am d64",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        assert!(!host.architecture.is_empty());
        #[cfg(target_arch = "x86_64")]
        assert_eq!(host.architecture, "amd64");
        #[cfg(target_arch = "aarch64")]
        assert_eq!(host.architecture, "arm64");
    }

    #[test]
    fn image_config() {
        let json = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"],"Env":["PATH=/bin"],"WorkingDir":"/work","User":"1000:1000"}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            d(9)
        );
        let c = ImageConfig::parse(json.as_bytes()).unwrap();
        assert_eq!(c.entrypoint, ["/bin/sh", "-c"]);
        assert_eq!(c.cmd, ["echo hi"]);
        assert_eq!(c.env, ["PATH=/bin"]);
        assert_eq!(c.working_dir.as_deref(), Some("/work"));
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert_eq!(c.diff_ids.len(), 1);
        assert_eq!(c.architecture, "amd64");
        // Docker configs may have null fields and no config section at all.
        let minimal =
            r#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let c = ImageConfig::parse(minimal.as_bytes()).unwrap();
        assert!(c.cmd.is_empty() && c.working_dir.is_none());
        assert!(ImageConfig::parse(b"{}").is_err());
        let bad = json.replace(&d(9), "sha512:00");
        assert!(ImageConfig::parse(bad.as_bytes()).is_err());
    }
}
