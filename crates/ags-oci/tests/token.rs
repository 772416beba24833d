//! The bearer token flow against a real `docker-registry` configured with `auth.token`,
//! backed by a tiny token server on 127.0.0.1 that signs RS256 JWTs with the `openssl` CLI.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ags_oci::auth::{Credentials, StaticCredentials};
use ags_oci::manifest::Platform;
use ags_oci::reference::Reference;
use ags_oci::store::{PullOptions, Store};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;

#[derive(Debug, Clone)]
struct TokenRequest {
    scope: String,
    basic_auth: Option<String>,
}

struct TokenServer {
    port: u16,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
}

fn sign(key: &Path, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

fn jwt(key: &Path, cert_der: &[u8], scope: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // scope = repository:<name>:<actions>
    let mut access = Vec::new();
    let parts: Vec<&str> = scope.splitn(3, ':').collect();
    if parts.len() == 3 {
        access.push(serde_json::json!({
            "type": parts[0], "name": parts[1],
            "actions": parts[2].split(',').collect::<Vec<_>>(),
        }));
    }
    let header =
        serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [STANDARD.encode(cert_der)]});
    let claims = serde_json::json!({
        "iss": "test-issuer", "sub": "alice", "aud": "test-registry",
        "exp": now + 300, "nbf": now - 10, "iat": now - 10,
        "jti": format!("{now}-{}", scope.len()), "access": access,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = sign(key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?');
                out.push(h);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TokenServer {
    fn start(key: PathBuf, cert_der: Vec<u8>) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    continue;
                }
                let mut basic = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            basic = Some(v.trim().to_string());
                        }
                    }
                }
                let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
                let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
                let scope = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("scope="))
                    .map(percent_decode)
                    .unwrap_or_default();
                log.lock().unwrap().push(TokenRequest {
                    scope: scope.clone(),
                    basic_auth: basic,
                });
                let body =
                    serde_json::json!({"token": jwt(&key, &cert_der, &scope), "expires_in": 300})
                        .to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenServer { port, requests }
    }
}

#[test]
fn bearer_token_flow_with_real_registry() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signer.key");
    let cert = dir.path().join("signer.pem");
    let der = dir.path().join("signer.der");
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=token-signer",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(ok.status.success());
    let ok = Command::new("openssl")
        .args(["x509", "-outform", "DER"])
        .arg("-in")
        .arg(&cert)
        .arg("-out")
        .arg(&der)
        .output()
        .unwrap();
    assert!(ok.status.success());
    let server = TokenServer::start(key, std::fs::read(&der).unwrap());
    let reg = Registry::start(
        AuthMode::Token {
            realm: format!("http://127.0.0.1:{}/token", server.port),
            cert: cert.clone(),
        },
        None,
    );

    let mut m = BTreeMap::new();
    m.insert(reg.host.clone(), Credentials::new("alice", "pw-for-token"));
    let c = client(localhost_http(), Arc::new(StaticCredentials(m)));
    let img = build_image(
        "amd64",
        &[&[("a", b"token test")], &[("b", b"second layer")]],
        false,
    );
    push_image(&c, &reg.host, "token/app", "v1", &img);

    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let r = Reference::parse(&format!("{}/token/app:v1", reg.host)).unwrap();
    let opts = PullOptions {
        platform: Platform::linux("amd64", None),
        ..PullOptions::default()
    };
    let p = store.pull(&c, &r, &opts).unwrap();
    assert_eq!(p.manifest_digest, img.manifest_digest);

    c.check_login(&reg.host).unwrap();
    let reqs = server.requests.lock().unwrap().clone();
    assert!(reqs.iter().any(|r| r.scope.is_empty()), "{reqs:?}");
    let reqs: Vec<_> = reqs.into_iter().filter(|r| !r.scope.is_empty()).collect();
    let push = reqs
        .iter()
        .filter(|r| r.scope == "repository:token/app:pull,push")
        .count();
    let pull = reqs
        .iter()
        .filter(|r| r.scope == "repository:token/app:pull")
        .count();
    // Tokens are cached per scope: one fetch for all push requests, one for the whole pull.
    assert_eq!(push, 1, "{reqs:?}");
    assert_eq!(pull, 1, "{reqs:?}");
    let expected = format!("Basic {}", STANDARD.encode("alice:pw-for-token"));
    assert!(
        reqs.iter()
            .all(|r| r.basic_auth.as_deref() == Some(expected.as_str())),
        "{reqs:?}"
    );
}
