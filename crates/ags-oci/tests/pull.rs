//! Pull and push against a real `docker-registry` on 127.0.0.1.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ags_oci::Digest;
use ags_oci::auth::{Anonymous, Credentials, StaticCredentials};
use ags_oci::manifest::{DOCKER_MANIFEST, OCI_INDEX, Platform};
use ags_oci::reference::Reference;
use ags_oci::registry::{HostConfig, RegistryConfig};
use ags_oci::store::{PullOptions, PullProgress, Store};
use common::*;

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(String, Digest, u64)>>,
}

impl PullProgress for Recorder {
    fn layer_started(&self, d: &Digest, total: u64) {
        self.events
            .lock()
            .unwrap()
            .push(("start".into(), d.clone(), total));
    }
    fn layer_progress(&self, d: &Digest, n: u64) {
        self.events
            .lock()
            .unwrap()
            .push(("progress".into(), d.clone(), n));
    }
    fn layer_done(&self, d: &Digest) {
        self.events
            .lock()
            .unwrap()
            .push(("done".into(), d.clone(), 0));
    }
}

fn opts(arch: &str) -> PullOptions {
    PullOptions {
        platform: Platform::linux(arch, None),
        ..PullOptions::default()
    }
}

fn two_layer_image(arch: &str) -> TestImage {
    build_image(
        arch,
        &[
            &[
                ("etc/os-release", b"ID=test\n"),
                ("bin/hello", b"#!/bin/sh\necho hi\n"),
            ],
            &[("work/arch", arch.as_bytes())],
        ],
        false,
    )
}

#[test]
fn push_and_pull_plain_http() {
    let reg = Registry::start(AuthMode::None, None);
    let c = client(localhost_http(), Arc::new(Anonymous));
    let img = two_layer_image("amd64");
    push_image(&c, &reg.host, "test/app", "v1", &img);

    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let r = Reference::parse(&format!("{}/test/app:v1", reg.host)).unwrap();
    let rec = Arc::new(Recorder::default());
    let o = PullOptions {
        progress: rec.clone(),
        ..opts("amd64")
    };
    let pulled = store.pull(&c, &r, &o).unwrap();
    assert_eq!(pulled.manifest_digest, img.manifest_digest);
    assert_eq!(pulled.index_digest, None);

    let layers = store.layers(&pulled).unwrap();
    assert_eq!(layers.len(), 2);
    for (info, data) in layers.iter().zip(&img.layers) {
        assert_eq!(&std::fs::read(&info.path).unwrap(), data);
        assert_eq!(info.media_type, ags_oci::manifest::OCI_LAYER_GZIP);
    }
    let cfg = store.image_config(&pulled).unwrap();
    assert_eq!(cfg.cmd, ["/bin/sh"]);
    assert_eq!(cfg.working_dir.as_deref(), Some("/work"));
    assert_eq!(cfg.user.as_deref(), Some("1000"));
    assert_eq!(
        cfg.diff_ids,
        layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()
    );

    let events = rec.events.lock().unwrap();
    assert_eq!(events.iter().filter(|e| e.0 == "done").count(), 2);
    drop(events);

    let images = store.images().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].reference, r.to_string());
    // Nothing left in tmp/ after a successful pull.
    assert_eq!(
        std::fs::read_dir(store_dir.path().join("tmp"))
            .unwrap()
            .count(),
        0
    );

    // Offline lookup and pull by digest (verified) give the same image.
    let again = store.get(&r, None).unwrap();
    assert_eq!(again.manifest, pulled.manifest);
    let by_digest = r.with_digest(img.manifest_digest.clone());
    let pulled2 = store.pull(&c, &by_digest, &opts("amd64")).unwrap();
    assert_eq!(pulled2.manifest_digest, img.manifest_digest);

    // Remove + gc frees the blobs.
    assert_eq!(store.remove(&r).unwrap(), 1);
    assert_eq!(store.remove(&by_digest).unwrap(), 1);
    let report = store.gc().unwrap();
    assert_eq!(report.removed.len(), 4, "{report:?}");
    assert!(store.images().unwrap().is_empty());

    // A missing tag is a clear error and records nothing.
    let missing = Reference::parse(&format!("{}/test/app:nope", reg.host)).unwrap();
    let err = store.pull(&c, &missing, &opts("amd64")).unwrap_err();
    let chain = error_chain(&err);
    assert!(chain.contains("not found"), "{chain}");
    assert!(chain.contains(&reg.host), "{chain}");

    // Without allow_localhost_http the client insists on HTTPS.
    let strict = client(RegistryConfig::default(), Arc::new(Anonymous));
    assert!(store.pull(&strict, &r, &opts("amd64")).is_err());
}

#[test]
fn insecure_host_and_mirror() {
    let upstream = Registry::start(AuthMode::None, None);
    let mirror = Registry::start(AuthMode::None, None);
    let mut hosts = BTreeMap::new();
    hosts.insert(
        upstream.host.clone(),
        HostConfig {
            insecure: true,
            ..Default::default()
        },
    );
    hosts.insert(
        mirror.host.clone(),
        HostConfig {
            insecure: true,
            ..Default::default()
        },
    );
    let cfg = RegistryConfig {
        allow_localhost_http: false,
        hosts: hosts.clone(),
    };
    let c = client(cfg, Arc::new(Anonymous));
    let img_up = two_layer_image("amd64");
    let img_mirror = build_image("amd64", &[&[("from", b"mirror")]], true);
    push_image(&c, &upstream.host, "lib/x", "1", &img_up);
    push_image(&c, &mirror.host, "lib/x", "1", &img_mirror);
    push_image(&c, &upstream.host, "lib/x", "only-upstream", &img_up);

    hosts.get_mut(&upstream.host).unwrap().mirrors = vec![mirror.host.clone()];
    let c = client(
        RegistryConfig {
            allow_localhost_http: false,
            hosts,
        },
        Arc::new(Anonymous),
    );
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    // The mirror is tried first...
    let r = Reference::parse(&format!("{}/lib/x:1", upstream.host)).unwrap();
    let p = store.pull(&c, &r, &opts("amd64")).unwrap();
    assert_eq!(p.manifest_digest, img_mirror.manifest_digest);
    // ...and the upstream is used when the mirror lacks the tag.
    let r = Reference::parse(&format!("{}/lib/x:only-upstream", upstream.host)).unwrap();
    let p = store.pull(&c, &r, &opts("amd64")).unwrap();
    assert_eq!(p.manifest_digest, img_up.manifest_digest);
    let _ = DOCKER_MANIFEST;
}

#[test]
fn basic_auth_with_htpasswd() {
    let reg = Registry::start(
        AuthMode::Htpasswd {
            user: "alice".into(),
            pass: "s3cret-pw".into(),
        },
        None,
    );
    let mut m = BTreeMap::new();
    m.insert(reg.host.clone(), Credentials::new("alice", "s3cret-pw"));
    let good = client(localhost_http(), Arc::new(StaticCredentials(m)));
    let img = two_layer_image("amd64");
    push_image(&good, &reg.host, "private/app", "v1", &img);

    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let r = Reference::parse(&format!("{}/private/app:v1", reg.host)).unwrap();
    store.pull(&good, &r, &opts("amd64")).unwrap();

    good.check_login(&reg.host).unwrap();
    let anon = client(localhost_http(), Arc::new(Anonymous));
    assert!(anon.check_login(&reg.host).is_err());
    let err = error_chain(
        &store
            .pull(
                &anon,
                &r.with_digest(img.manifest_digest.clone()),
                &opts("amd64"),
            )
            .unwrap_err(),
    );
    assert!(err.contains("authentication required"), "{err}");

    let mut m = BTreeMap::new();
    m.insert(reg.host.clone(), Credentials::new("alice", "wrong-pw"));
    let bad = client(localhost_http(), Arc::new(StaticCredentials(m)));
    let err = error_chain(&bad.check_login(&reg.host).unwrap_err());
    assert!(err.contains("credentials were rejected"), "{err}");
    let err = error_chain(&store.pull(&bad, &r, &opts("amd64")).unwrap_err());
    assert!(err.contains("credentials were rejected"), "{err}");
    assert!(
        !err.contains("wrong-pw") && !err.contains("s3cret"),
        "{err}"
    );
}

#[test]
fn tls_with_test_ca() {
    let certs = tempfile::tempdir().unwrap();
    let tls = make_tls(certs.path());
    let reg = Registry::start(AuthMode::None, Some(&tls));
    let mut hosts = BTreeMap::new();
    hosts.insert(
        reg.host.clone(),
        HostConfig {
            ca_files: vec![tls.ca.clone()],
            ..Default::default()
        },
    );
    let c = client(
        RegistryConfig {
            allow_localhost_http: false,
            hosts,
        },
        Arc::new(Anonymous),
    );
    let img = two_layer_image("amd64");
    push_image(&c, &reg.host, "tls/app", "v1", &img);
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let r = Reference::parse(&format!("{}/tls/app:v1", reg.host)).unwrap();
    store.pull(&c, &r, &opts("amd64")).unwrap();

    // Without the CA the certificate is not trusted.
    let untrusting = client(RegistryConfig::default(), Arc::new(Anonymous));
    let err = error_chain(&store.pull(&untrusting, &r, &opts("amd64")).unwrap_err());
    assert!(
        err.contains("request to") && err.contains(&reg.host),
        "{err}"
    );

    // A CA path that does not exist is named in the error.
    let mut hosts = BTreeMap::new();
    hosts.insert(
        reg.host.clone(),
        HostConfig {
            ca_files: vec!["/nonexistent/ca.pem".into()],
            ..Default::default()
        },
    );
    let broken = client(
        RegistryConfig {
            allow_localhost_http: false,
            hosts,
        },
        Arc::new(Anonymous),
    );
    let err = error_chain(&store.pull(&broken, &r, &opts("amd64")).unwrap_err());
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}

#[test]
fn multi_platform_index() {
    let reg = Registry::start(AuthMode::None, None);
    let c = client(localhost_http(), Arc::new(Anonymous));
    let amd = two_layer_image("amd64");
    let arm = two_layer_image("arm64");
    push_image(
        &c,
        &reg.host,
        "multi/app",
        &amd.manifest_digest.to_string(),
        &amd,
    );
    push_image(
        &c,
        &reg.host,
        "multi/app",
        &arm.manifest_digest.to_string(),
        &arm,
    );
    let entry = |img: &TestImage, arch: &str| {
        let mut d = ags_oci::manifest::Descriptor::for_data(img.media_type, &img.manifest);
        d.platform = Some(Platform::linux(
            arch,
            if arch == "arm64" { Some("v8") } else { None },
        ));
        d
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [entry(&amd, "amd64"), entry(&arm, "arm64")],
    }))
    .unwrap();
    let index_digest = c
        .push_manifest(&reg.host, "multi/app", "latest", OCI_INDEX, &index)
        .unwrap();

    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let r = Reference::parse(&format!("{}/multi/app", reg.host)).unwrap();
    for (arch, img) in [("arm64", &arm), ("amd64", &amd)] {
        let p = store.pull(&c, &r, &opts(arch)).unwrap();
        assert_eq!(p.manifest_digest, img.manifest_digest, "{arch}");
        assert_eq!(p.index_digest.as_ref(), Some(&index_digest));
        assert_eq!(store.image_config(&p).unwrap().architecture, arch);
        let layers = store.layers(&p).unwrap();
        assert_eq!(std::fs::read(&layers[1].path).unwrap(), img.layers[1]);
    }
    // Both platforms are recorded for the same tag.
    assert_eq!(store.images().unwrap().len(), 2);
    let arm_only = store
        .get(&r, Some(&Platform::linux("arm64", None)))
        .unwrap();
    assert_eq!(arm_only.manifest_digest, arm.manifest_digest);

    let err = error_chain(&store.pull(&c, &r, &opts("s390x")).unwrap_err());
    assert!(
        err.contains("no image for platform linux/s390x") && err.contains("linux/arm64/v8"),
        "{err}"
    );

    // A single-platform image for the wrong architecture is refused.
    let single =
        Reference::parse(&format!("{}/multi/app@{}", reg.host, arm.manifest_digest)).unwrap();
    let err = error_chain(&store.pull(&c, &single, &opts("amd64")).unwrap_err());
    assert!(err.contains("is for linux/arm64"), "{err}");
}

#[test]
fn resume_from_partial_download() {
    let reg = Registry::start(AuthMode::None, None);
    let c = client(localhost_http(), Arc::new(Anonymous));
    // A layer big enough to be streamed in several chunks; incompressible content.
    let mut big = vec![0u8; 600_000];
    let mut x: u32 = 12345;
    for b in big.iter_mut() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    let img = build_image("amd64", &[&[("big.bin", &big)]], false);
    push_image(&c, &reg.host, "resume/app", "v1", &img);
    let layer = &img.layers[0];
    let ld = Digest::of(layer);
    let half = layer.len() / 2;

    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let partial = store_dir
        .path()
        .join("tmp")
        .join(format!("partial-{}", ld.hex()));
    std::fs::write(&partial, &layer[..half]).unwrap();

    let rec = Arc::new(Recorder::default());
    let r = Reference::parse(&format!("{}/resume/app:v1", reg.host)).unwrap();
    let p = store
        .pull(
            &c,
            &r,
            &PullOptions {
                progress: rec.clone(),
                ..opts("amd64")
            },
        )
        .unwrap();
    let layers = store.layers(&p).unwrap();
    assert_eq!(&std::fs::read(&layers[0].path).unwrap(), layer);
    assert!(!partial.exists());
    // The first progress report is the re-hashed prefix, and it never went back to zero:
    // the client sent Range and the registry answered 206 from that offset.
    let events = rec.events.lock().unwrap();
    let progress: Vec<u64> = events
        .iter()
        .filter(|e| e.0 == "progress" && e.1 == ld)
        .map(|e| e.2)
        .collect();
    assert_eq!(progress.first(), Some(&(half as u64)), "{progress:?}");
    assert!(progress.iter().all(|&n| n >= half as u64), "{progress:?}");
    assert_eq!(progress.last(), Some(&(layer.len() as u64)));
    drop(events);

    // A corrupt partial prefix is detected at the end, discarded, and the retry succeeds.
    store.remove(&r).unwrap();
    store.gc().unwrap();
    let mut bad = layer[..half].to_vec();
    bad[10] ^= 0xff;
    std::fs::write(&partial, &bad).unwrap();
    let err = error_chain(&store.pull(&c, &r, &opts("amd64")).unwrap_err());
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(store.images().unwrap().is_empty());
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 0);
    store.pull(&c, &r, &opts("amd64")).unwrap();
}

#[test]
fn wrong_digest_content_rejected() {
    let reg = Registry::start(AuthMode::None, None);
    let c = client(localhost_http(), Arc::new(Anonymous));
    let img = two_layer_image("amd64");
    push_image(&c, &reg.host, "evil/app", "v1", &img);

    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let r = Reference::parse(&format!("{}/evil/app:v1", reg.host)).unwrap();
    store.pull(&c, &r, &opts("amd64")).unwrap();
    let before = store.images().unwrap();

    // Corrupt a layer on the registry's disk, same size, then pull into a fresh store.
    let ld = Digest::of(&img.layers[1]);
    let path = reg.blob_data_path(&ld);
    let mut data = std::fs::read(&path).unwrap();
    let n = data.len();
    data[n / 2] ^= 0x55;
    std::fs::write(&path, &data).unwrap();
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = Store::open(fresh_dir.path()).unwrap();
    let err = error_chain(&fresh.pull(&c, &r, &opts("amd64")).unwrap_err());
    assert!(
        err.contains("digest mismatch") && err.contains(&ld.to_string()),
        "{err}"
    );
    assert!(fresh.images().unwrap().is_empty());
    assert!(!fresh.blob_path(&ld).exists());

    // A failing re-pull leaves the existing record untouched.
    let mut broken = std::fs::read(reg.blob_data_path(&img.manifest_digest)).unwrap();
    broken.push(b' ');
    std::fs::write(reg.blob_data_path(&img.manifest_digest), &broken).unwrap();
    let by_digest = r.with_digest(img.manifest_digest.clone());
    let err = error_chain(&store.pull(&c, &by_digest, &opts("amd64")).unwrap_err());
    assert!(
        err.contains("digest mismatch") || err.contains("failed verification"),
        "{err}"
    );
    assert_eq!(store.images().unwrap(), before);
}

#[test]
fn foreign_urls_rejected() {
    let reg = Registry::start(AuthMode::None, None);
    let c = client(localhost_http(), Arc::new(Anonymous));
    let img = build_image("amd64", &[&[("a", b"a")]], true);
    for l in &img.layers {
        c.push_blob(&reg.host, "foreign/app", l).unwrap();
    }
    c.push_blob(&reg.host, "foreign/app", &img.config).unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    let foreign = serde_json::json!({
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "digest": Digest::of(b"windows base layer").to_string(),
        "size": 18,
        "urls": ["https://127.0.0.1:1/never-fetched"],
    });
    m["layers"].as_array_mut().unwrap().insert(0, foreign);
    let bytes = serde_json::to_vec(&m).unwrap();
    c.push_manifest(&reg.host, "foreign/app", "v1", DOCKER_MANIFEST, &bytes)
        .unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let r = Reference::parse(&format!("{}/foreign/app:v1", reg.host)).unwrap();
    let err = error_chain(&store.pull(&c, &r, &opts("amd64")).unwrap_err());
    assert!(err.contains("foreign layer"), "{err}");
}

pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[test]
fn concurrent_pulls_share_the_store_and_gc_keeps_referenced_blobs() {
    let reg = Registry::start(AuthMode::None, None);
    let c = Arc::new(client(localhost_http(), Arc::new(Anonymous)));
    let img = two_layer_image("amd64");
    push_image(&c, &reg.host, "conc/app", "v1", &img);
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let r = Reference::parse(&format!("{}/conc/app:v1", reg.host)).unwrap();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (store, c, r) = (store.clone(), c.clone(), r.clone());
            std::thread::spawn(move || {
                store
                    .pull(&c, &r, &opts("amd64"))
                    .map(|p| p.manifest_digest)
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), img.manifest_digest);
    }
    assert_eq!(store.images().unwrap().len(), 1);
    let report = store.gc().unwrap();
    assert!(report.removed.is_empty(), "{report:?}");
    let p = store.get(&r, None).unwrap();
    for (l, data) in store.layers(&p).unwrap().iter().zip(&img.layers) {
        assert_eq!(&std::fs::read(&l.path).unwrap(), data);
    }
}
