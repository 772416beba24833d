//! Feeds arbitrary bytes to `ImageConfig::parse` as an image config blob from a registry.
//! Errors are expected; panics are bugs. For accepted configs it checks the extracted fields
//! against the full oci-spec document and that `check_layers` agrees with the diff_id count.

#![no_main]

use ags_oci::Digest;
use ags_oci::manifest::{
    Descriptor, ImageConfig, ImageManifest, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST,
};
use libfuzzer_sys::fuzz_target;

fn manifest_with_layers(n: usize) -> ImageManifest {
    ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        config: Descriptor::for_data(OCI_CONFIG, b"{}"),
        layers: (0..n)
            .map(|i| Descriptor::for_data(OCI_LAYER_GZIP, &i.to_le_bytes()))
            .collect(),
        annotations: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(config) = ImageConfig::parse(data) else {
        return;
    };
    assert_eq!(config.os, config.raw.os().to_string());
    assert_eq!(config.architecture, config.raw.architecture().to_string());
    assert_ne!(config.working_dir.as_deref(), Some(""));
    assert_ne!(config.user.as_deref(), Some(""));
    for d in &config.diff_ids {
        assert_eq!(&Digest::parse(&d.to_string()).unwrap(), d);
    }
    let n = config.diff_ids.len();
    if n <= 1024 {
        assert!(config.check_layers(&manifest_with_layers(n)).is_ok());
        assert!(config.check_layers(&manifest_with_layers(n + 1)).is_err());
    }
});
