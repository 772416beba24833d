//! Test helpers: a real `docker-registry` on 127.0.0.1, test images built from tar.gz
//! layers, and certificate generation with the `openssl` CLI.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ags_oci::Digest;
use ags_oci::auth::CredentialProvider;
use ags_oci::manifest::{
    DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, Descriptor, OCI_CONFIG, OCI_LAYER_GZIP,
    OCI_MANIFEST,
};
use ags_oci::registry::{ClientOptions, RegistryClient, RegistryConfig, RetryPolicy};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How the registry authenticates.
pub enum AuthMode {
    None,
    Htpasswd { user: String, pass: String },
    Token { realm: String, cert: PathBuf },
}

pub struct Registry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub host: String,
    child: Child,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and a server certificate for 127.0.0.1 signed by it.
pub fn make_tls(dir: &Path) -> Tls {
    let p = |n: &str| dir.join(n);
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=ags test CA",
        ])
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem"))
        .args([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr")));
    std::fs::write(p("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n").unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-set_serial", "1"])
        .arg("-in")
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("ext.cnf"))
        .arg("-out")
        .arg(p("server.pem")));
    Tls {
        ca: p("ca.pem"),
        cert: p("server.pem"),
        key: p("server.key"),
    }
}

impl Registry {
    pub fn start(auth: AuthMode, tls: Option<&Tls>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nvalidation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some(t) = tls {
            cfg += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                t.cert.display(),
                t.key.display()
            );
        }
        match &auth {
            AuthMode::None => {}
            AuthMode::Htpasswd { user, pass } => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, pass])
                    .output()
                    .unwrap();
                assert!(out.status.success());
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, &out.stdout).unwrap();
                cfg += &format!(
                    "auth:\n  htpasswd:\n    realm: ags-test\n    path: {}\n",
                    path.display()
                );
            }
            AuthMode::Token { realm, cert } => {
                cfg += &format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
                    cert.display()
                );
            }
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry must be installed (Debian package docker-registry)");
        let host = format!("127.0.0.1:{port}");
        let mut reg = Registry {
            dir,
            port,
            host,
            child,
        };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.path().join("registry.log"))
                    .unwrap_or_default();
                panic!("registry exited with {st}: {log}");
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                // Any HTTP answer to /v2/ (200, 401, or a TLS alert) means it is listening.
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
                let mut buf = [0u8; 16];
                if s.read(&mut buf).is_ok_and(|n| n > 0) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "registry did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The registry's on-disk copy of a blob (to corrupt it in tests).
    pub fn blob_data_path(&self, d: &Digest) -> PathBuf {
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&d.hex()[..2])
            .join(d.hex())
            .join("data")
    }
}

/// Fast retries so failure tests do not sleep for long.
pub fn fast_options() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(200),
        },
        use_env_proxy: false,
        ..ClientOptions::default()
    }
}

pub fn client(config: RegistryConfig, creds: Arc<dyn CredentialProvider>) -> RegistryClient {
    RegistryClient::new(config, creds, fast_options())
}

pub fn localhost_http() -> RegistryConfig {
    RegistryConfig {
        allow_localhost_http: true,
        ..Default::default()
    }
}

/// A gzip'd tar layer with the given files; returns (compressed, diff_id).
pub fn layer(files: &[(&str, &[u8])]) -> (Vec<u8>, Digest) {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, *data).unwrap();
    }
    let raw = tar.into_inner().unwrap();
    let diff_id = Digest::of(&raw);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    (gz.finish().unwrap(), diff_id)
}

pub struct TestImage {
    pub layers: Vec<Vec<u8>>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    pub media_type: &'static str,
}

/// Builds an image for `arch` whose layers hold the given files.
pub fn build_image(arch: &str, layer_files: &[&[(&str, &[u8])]], docker: bool) -> TestImage {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for files in layer_files {
        let (gz, diff) = layer(files);
        layers.push(gz);
        diff_ids.push(diff.to_string());
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin"], "WorkingDir": "/work", "User": "1000"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let (mt, cmt, lmt) = if docker {
        (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_GZIP)
    } else {
        (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP)
    };
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mt,
        "config": Descriptor::for_data(cmt, &config),
        "layers": layers.iter().map(|l| Descriptor::for_data(lmt, l)).collect::<Vec<_>>(),
    }))
    .unwrap();
    TestImage {
        manifest_digest: Digest::of(&manifest),
        layers,
        config,
        manifest,
        media_type: mt,
    }
}

/// Pushes blobs and the manifest under `tag`.
pub fn push_image(c: &RegistryClient, host: &str, repo: &str, tag: &str, img: &TestImage) {
    for l in &img.layers {
        c.push_blob(host, repo, l).unwrap();
    }
    c.push_blob(host, repo, &img.config).unwrap();
    let d = c
        .push_manifest(host, repo, tag, img.media_type, &img.manifest)
        .unwrap();
    assert_eq!(d, img.manifest_digest);
}
