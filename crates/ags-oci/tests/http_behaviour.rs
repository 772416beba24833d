//! Client behaviours a well-behaved `docker-registry` never triggers (cross-host redirects,
//! 429 with Retry-After, servers that ignore Range or lie in Content-Range, bodies cut off
//! mid-stream, confused manifests), exercised over real HTTP against small scripted servers
//! on 127.0.0.1.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ags_oci::Digest;
use ags_oci::auth::{Anonymous, Credentials, StaticCredentials};
use ags_oci::manifest::{OCI_INDEX, OCI_MANIFEST};
use ags_oci::reference::Reference;
use ags_oci::registry::RegistryError;
use ags_oci::store::{PullOptions, Store};
use common::*;

#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send only this many body bytes (after announcing the full length), then close.
    cut_at: Option<usize>,
}

fn resp(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    Resp {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.to_vec(),
        cut_at: None,
    }
}

type Handler = Arc<dyn Fn(&Req, usize) -> Resp + Send + Sync>;

struct Server {
    host: String,
    log: Arc<Mutex<Vec<Req>>>,
}

impl Server {
    fn start(handler: impl Fn(&Req, usize) -> Resp + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let log: Arc<Mutex<Vec<Req>>> = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let l2 = log.clone();
        std::thread::spawn(move || {
            let counter = Arc::new(AtomicUsize::new(0));
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let handler = handler.clone();
                let log = l2.clone();
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut first = String::new();
                    if reader.read_line(&mut first).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut headers = Vec::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            headers.push((k.trim().to_string(), v.trim().to_string()));
                        }
                    }
                    let mut parts = first.split_whitespace();
                    let req = Req {
                        method: parts.next().unwrap_or("").to_string(),
                        path: parts.next().unwrap_or("").to_string(),
                        headers,
                    };
                    if let Some(len) = req
                        .header("content-length")
                        .and_then(|v| v.parse::<usize>().ok())
                    {
                        let mut body = vec![0; len];
                        let _ = reader.read_exact(&mut body);
                    }
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    log.lock().unwrap().push(req.clone());
                    let r = handler(&req, n);
                    let mut head = format!(
                        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        r.status,
                        r.body.len()
                    );
                    for (k, v) in &r.headers {
                        head += &format!("{k}: {v}\r\n");
                    }
                    head += "\r\n";
                    let _ = stream.write_all(head.as_bytes());
                    let body = &r.body[..r.cut_at.unwrap_or(r.body.len()).min(r.body.len())];
                    let _ = stream.write_all(body);
                    let _ = stream.flush();
                });
            }
        });
        Server { host, log }
    }

    fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
}

fn blob(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn range_start(req: &Req) -> Option<usize> {
    req.header("range")?
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()
}

#[test]
fn redirect_to_other_host_drops_authorization() {
    let data = blob(1000);
    let d = Digest::of(&data);
    let storage = {
        let data = data.clone();
        Server::start(move |_req, _| resp(200, &[], &data))
    };
    let storage_host = storage.host.clone();
    let registry = Server::start(move |req, _| {
        if req.header("authorization").is_none() {
            return resp(401, &[("WWW-Authenticate", "Basic realm=\"test\"")], b"");
        }
        if req.path.starts_with("/v2/r/blobs/") {
            // Same-origin hop first, then off to the storage host.
            return resp(307, &[("Location", "/internal/blob")], b"");
        }
        let loc = format!("http://{storage_host}/bucket/blob?X-Signature=abc");
        resp(307, &[("Location", &loc)], b"")
    });
    let mut creds = BTreeMap::new();
    creds.insert(registry.host.clone(), Credentials::new("u", "secret-pw"));
    let c = client(localhost_http(), Arc::new(StaticCredentials(creds)));
    let got = c
        .get_blob_bytes(&registry.host, "r", &d, data.len() as u64, 1 << 20)
        .unwrap();
    assert_eq!(got, data);
    let reg_reqs = registry.requests();
    assert!(
        reg_reqs
            .iter()
            .any(|r| r.path == "/internal/blob" && r.header("authorization").is_some()),
        "{reg_reqs:?}"
    );
    let st = storage.requests();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].header("authorization"), None, "{st:?}");
    assert_eq!(st[0].method, "GET");
    assert_eq!(st[0].path, "/bucket/blob?X-Signature=abc");
}

#[test]
fn bearer_token_cached_and_refreshed_after_expiry() {
    let data = blob(10);
    let d = Digest::of(&data);
    let tokens = Arc::new(AtomicUsize::new(0));
    let server = {
        let data = data.clone();
        let tokens = tokens.clone();
        Server::start(move |req, _| {
            if req.path.starts_with("/token?") {
                assert!(
                    req.path.contains("scope=repository%3Ar%3Apull"),
                    "{}",
                    req.path
                );
                assert!(req.path.contains("service=fake"), "{}", req.path);
                let k = tokens.fetch_add(1, Ordering::SeqCst);
                let body = format!(r#"{{"token":"tok-{k}","expires_in":1}}"#);
                return resp(
                    200,
                    &[("Content-Type", "application/json")],
                    body.as_bytes(),
                );
            }
            if req
                .header("authorization")
                .is_some_and(|a| a.starts_with("Bearer tok-"))
            {
                return resp(200, &[], &data);
            }
            let host = req.header("host").unwrap_or("");
            let ch = format!(
                r#"Bearer realm="http://{host}/token",service="fake",scope="repository:r:pull""#
            );
            resp(401, &[("WWW-Authenticate", &ch)], b"")
        })
    };
    let c = client(localhost_http(), Arc::new(Anonymous));
    c.get_blob_bytes(&server.host, "r", &d, 10, 100).unwrap();
    c.get_blob_bytes(&server.host, "r", &d, 10, 100).unwrap();
    assert_eq!(tokens.load(Ordering::SeqCst), 1, "token reused while valid");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    c.get_blob_bytes(&server.host, "r", &d, 10, 100).unwrap();
    assert_eq!(
        tokens.load(Ordering::SeqCst),
        2,
        "token refreshed after expiry"
    );
    // Anonymous token requests carry no Authorization.
    assert!(
        server
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/token"))
            .all(|r| r.header("authorization").is_none())
    );
}

#[test]
fn rate_limit_retried_and_bounded() {
    let data = blob(100);
    let d = Digest::of(&data);
    let server = {
        let data = data.clone();
        Server::start(move |_req, n| {
            if n == 0 {
                resp(429, &[("Retry-After", "1")], b"")
            } else {
                resp(200, &[], &data)
            }
        })
    };
    let c = client(localhost_http(), Arc::new(Anonymous));
    assert_eq!(
        c.get_blob_bytes(&server.host, "r", &d, 100, 1 << 20)
            .unwrap(),
        data
    );
    assert_eq!(server.requests().len(), 2);

    let always_503 = Server::start(|_req, _| {
        resp(
            503,
            &[],
            br#"{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}"#,
        )
    });
    let err = c
        .get_blob_bytes(&always_503.host, "r", &d, 100, 1 << 20)
        .unwrap_err();
    assert!(
        err.to_string().contains("503") && err.to_string().contains("try later"),
        "{err}"
    );
    // Bounded: max_attempts (2) requests, no more.
    assert_eq!(always_503.requests().len(), 2);
}

fn download(
    c: &ags_oci::registry::RegistryClient,
    host: &str,
    data: &[u8],
    prefix: &[u8],
) -> (Result<(), RegistryError>, Vec<u8>, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("partial");
    std::fs::write(&path, prefix).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut progress = Vec::new();
    let cancel = AtomicBool::new(false);
    let r = c.download_blob(
        host,
        "r",
        &Digest::of(data),
        data.len() as u64,
        &mut f,
        &path,
        &mut |n| progress.push(n),
        &cancel,
    );
    (r, std::fs::read(&path).unwrap(), progress)
}

#[test]
fn resume_edge_cases() {
    let data = blob(300_000);
    let c = client(localhost_http(), Arc::new(Anonymous));

    // A server that ignores Range: the 200 restarts hashing from zero.
    let ignores = {
        let data = data.clone();
        Server::start(move |_req, _| resp(200, &[], &data))
    };
    let (r, file, progress) = download(&c, &ignores.host, &data, &data[..1000]);
    r.unwrap();
    assert_eq!(file, data);
    assert_eq!(progress[0], 1000);
    assert!(progress.contains(&0), "{progress:?}");
    assert_eq!(ignores.requests()[0].header("range"), Some("bytes=1000-"));

    // A server whose Content-Range starts elsewhere is refused.
    let liar = {
        let data = data.clone();
        Server::start(move |_req, _| {
            let cr = format!("bytes 0-{}/{}", data.len() - 1, data.len());
            resp(206, &[("Content-Range", &cr)], &data)
        })
    };
    let (r, _, _) = download(&c, &liar.host, &data, &data[..1000]);
    let err = r.unwrap_err();
    assert!(
        matches!(err, RegistryError::BadContentRange { expected: 1000, .. }),
        "{err}"
    );

    // A body cut off mid-stream is resumed with Range from where it stopped.
    let flaky = {
        let data = data.clone();
        Server::start(move |req, _| match range_start(req) {
            None => Resp {
                cut_at: Some(100_000),
                ..resp(200, &[], &data)
            },
            Some(s) => {
                let cr = format!("bytes {s}-{}/{}", data.len() - 1, data.len());
                resp(206, &[("Content-Range", &cr)], &data[s..])
            }
        })
    };
    let (r, file, _) = download(&c, &flaky.host, &data, b"");
    r.unwrap();
    assert_eq!(file, data);
    let reqs = flaky.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[1].header("range"), Some("bytes=100000-"));

    // More bytes than the descriptor says: cut off, partial discarded.
    let oversize = {
        let mut big = data.clone();
        big.extend_from_slice(b"extra");
        Server::start(move |_req, _| resp(200, &[], &big))
    };
    let (r, file, _) = download(&c, &oversize.host, &data, b"");
    assert!(r.unwrap_err().to_string().contains("failed verification"));
    assert!(file.is_empty());
}

#[test]
fn confused_and_oversized_manifests_refused() {
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[]}}"#,
        Digest::of(b"{}")
    );
    let server = {
        let manifest = manifest.clone();
        Server::start(move |req, _| {
            if req.path.ends_with("/confused") {
                resp(200, &[("Content-Type", OCI_INDEX)], manifest.as_bytes())
            } else if req.path.ends_with("/huge") {
                resp(200, &[("Content-Type", OCI_MANIFEST)], &vec![b' '; 5 << 20])
            } else {
                resp(404, &[], b"")
            }
        })
    };
    let c = client(localhost_http(), Arc::new(Anonymous));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let pull = |tag: &str| {
        let r = Reference::parse(&format!("{}/x:{tag}", server.host)).unwrap();
        let e = store.pull(&c, &r, &PullOptions::default()).unwrap_err();
        let mut s = e.to_string();
        let mut cur = std::error::Error::source(&e);
        while let Some(c) = cur {
            s += &format!(": {c}");
            cur = c.source();
        }
        s
    };
    let e = pull("confused");
    assert!(e.contains("CVE-2021-41190"), "{e}");
    let e = pull("huge");
    assert!(e.contains("larger than 4194304 bytes"), "{e}");
    let e = pull("missing");
    assert!(e.contains("not found"), "{e}");
    assert!(store.images().unwrap().is_empty());
}
