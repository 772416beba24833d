//! Feeds arbitrary bytes to `unpack_layer` as a layer blob and checks the one invariant that
//! must hold for every input: nothing outside the rootfs changes, and the rootfs can always be
//! removed again. Errors are expected and fine; panics, hangs and escapes are bugs.
//!
//! The first input byte picks the media type, so the gzip and zstd paths are reached too
//! (seed the corpus with real layers, compressed and not).

#![no_main]

use std::fs;
use std::path::Path;

use ags_oci::unpack::{Budgets, UnpackOptions, remove_tree, unpack_layer};
use libfuzzer_sys::fuzz_target;

const MEDIA_TYPES: [&str; 3] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
];

/// Small budgets keep every run fast and bounded in memory.
fn opts() -> UnpackOptions {
    UnpackOptions {
        budgets: Budgets {
            max_entries: 10_000,
            max_total_bytes: 16 << 20,
            max_header_bytes: 64 << 10,
            max_path_len: 4096,
        },
        rootless: true,
        preserve_ownership: false,
    }
}

fn outside_state(dir: &Path) -> Vec<(String, Vec<u8>, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "rootfs") {
            continue;
        }
        let meta = fs::symlink_metadata(&path).unwrap();
        let content = if meta.is_file() {
            fs::read(&path).unwrap()
        } else {
            Vec::new()
        };
        out.push((path.display().to_string(), content, meta.mode()));
    }
    out.sort();
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, blob)) = data.split_first() else {
        return;
    };
    let media_type = MEDIA_TYPES[usize::from(selector) % MEDIA_TYPES.len()];
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    fs::create_dir(&rootfs).unwrap();
    fs::create_dir(tmp.path().join("canary")).unwrap();
    fs::write(tmp.path().join("canary/file"), b"canary").unwrap();
    fs::write(tmp.path().join("sibling"), b"sibling").unwrap();
    let before = outside_state(tmp.path());

    let _ = unpack_layer(&rootfs, blob, media_type, None, &opts());

    assert_eq!(
        before,
        outside_state(tmp.path()),
        "write outside the rootfs"
    );
    assert_eq!(fs::read(tmp.path().join("canary/file")).unwrap(), b"canary");
    remove_tree(&rootfs).unwrap();
});
