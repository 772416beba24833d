//! Feeds arbitrary bytes to `parse_manifest` as a manifest or index fetched from a registry,
//! then checks what the parser promises (see `ags_oci::manifest`'s module docs) for every
//! document it accepts:
//! - nothing over `MAX_MANIFEST_SIZE` is accepted;
//! - the layer and index entry caps hold, and no descriptor carries `urls`;
//! - a stated Content-Type of one kind never yields the other kind (CVE-2021-41190);
//! - what was accepted serializes and re-parses to the same manifest;
//! - platform selection on an accepted index never panics and only returns matching entries.
//!
//! The first input byte is a selector, the rest the document: the low 3 bits pick the HTTP
//! Content-Type, bits 3-4 the layer cap, and bit 7 pads the document to one byte over the
//! size limit (which must then be refused as too large).

#![no_main]

use ags_oci::manifest::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Descriptor, MAX_INDEX_ENTRIES, MAX_MANIFEST_SIZE,
    Manifest, ManifestError, ManifestLimits, OCI_INDEX, OCI_MANIFEST, Platform, parse_manifest,
};
use libfuzzer_sys::fuzz_target;

/// `(Content-Type, Some(true) if it states an index, Some(false) an image, None neither)`.
const CONTENT_TYPES: [(Option<&str>, Option<bool>); 8] = [
    (None, None),
    (Some(OCI_MANIFEST), Some(false)),
    (Some(OCI_INDEX), Some(true)),
    (Some(DOCKER_MANIFEST), Some(false)),
    (Some(DOCKER_MANIFEST_LIST), Some(true)),
    (Some("application/json; charset=utf-8"), None),
    (
        Some("Application/VND.OCI.Image.Index.v1+JSON ; charset=utf-8"),
        Some(true),
    ),
    (Some("text/html"), None),
];

const MAX_LAYERS: [usize; 4] = [0, 1, 3, 128];

fn no_urls(d: &Descriptor) -> bool {
    d.urls.as_ref().is_none_or(Vec::is_empty)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, doc)) = data.split_first() else {
        return;
    };
    let (content_type, states_index) = CONTENT_TYPES[usize::from(selector & 7)];
    let limits = ManifestLimits {
        max_layers: MAX_LAYERS[usize::from((selector >> 3) & 3)],
    };

    if selector & 0x80 != 0 {
        // Trailing whitespace keeps a valid document valid JSON, so only the cap refuses it.
        let mut big = doc.to_vec();
        big.resize(MAX_MANIFEST_SIZE + 1, b' ');
        let res = parse_manifest(&big, content_type, &limits);
        assert!(
            matches!(res, Err(ManifestError::TooLarge { .. })),
            "accepted a document over the size limit: {res:?}"
        );
        return;
    }

    let Ok(manifest) = parse_manifest(doc, content_type, &limits) else {
        return;
    };
    assert!(doc.len() <= MAX_MANIFEST_SIZE);
    match &manifest {
        Manifest::Image(m) => {
            assert_ne!(
                states_index,
                Some(true),
                "index Content-Type parsed as an image"
            );
            assert_eq!(m.schema_version, 2);
            assert!(m.layers.len() <= limits.max_layers, "layer cap exceeded");
            assert!(
                no_urls(&m.config) && m.layers.iter().all(no_urls),
                "foreign layer accepted"
            );
        }
        Manifest::Index(i) => {
            assert_ne!(
                states_index,
                Some(false),
                "image Content-Type parsed as an index"
            );
            assert_eq!(i.schema_version, 2);
            assert!(
                i.manifests.len() <= MAX_INDEX_ENTRIES,
                "index entry cap exceeded"
            );
            assert!(i.manifests.iter().all(no_urls), "foreign manifest accepted");
            let mut wanted = vec![
                Platform::host(),
                Platform::linux("arm64", Some("v8")),
                Platform::linux("arm", Some("v6")),
                Platform::linux("386", None),
            ];
            wanted.extend(i.manifests.iter().filter_map(|d| d.platform.clone()));
            for w in &wanted {
                if let Ok(d) = i.select(w) {
                    assert!(i.manifests.iter().any(|m| std::ptr::eq(m, d)));
                    assert!(d.platform.as_ref().is_some_and(|p| w.matches(p)));
                }
            }
        }
    }

    // Round trip: the accepted document, written back out, reads back the same.
    let json = match &manifest {
        Manifest::Image(m) => serde_json::to_vec(m),
        Manifest::Index(i) => serde_json::to_vec(i),
    }
    .expect("serializing a parsed manifest");
    let again = parse_manifest(&json, content_type, &limits)
        .unwrap_or_else(|e| panic!("re-parsing {}: {e}", String::from_utf8_lossy(&json)));
    assert_eq!(manifest, again);
});
