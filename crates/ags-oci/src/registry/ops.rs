//! Registry operations: manifests, blobs (with resume), and minimal push.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::blocking::Response;
use reqwest::header::{
    ACCEPT, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, RANGE,
};
use reqwest::{Method, StatusCode};

use super::{Endpoint, RegistryClient, RegistryError, Target, display_url, error_message};
use crate::digest::{Digest, Verifier};
use crate::manifest::{MANIFEST_ACCEPT, MAX_MANIFEST_SIZE};
use crate::reference::Reference;

/// A manifest document as fetched, not yet parsed.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    /// The raw bytes (at most 4 MiB).
    pub bytes: Vec<u8>,
    /// The `Content-Type` the registry sent.
    pub content_type: Option<String>,
    /// The sha256 of `bytes` (verified against the reference's digest when it had one).
    pub digest: Digest,
    /// The host that served it (a mirror or the registry).
    pub served_by: String,
}

const CHUNK: usize = 64 * 1024;

/// Bytes of a blob download between two requests to start writing it to disk.
const WRITEBACK_EVERY: u64 = 4 << 20;

/// Start writing a download's dirty pages to disk without waiting for them
/// (sync_file_range(2), `SYNC_FILE_RANGE_WRITE`). The store fsyncs every blob before
/// committing it; with the writeback started along the way, that fsync finds little left
/// to write, and a layer reaches the unpacker that much sooner. Only a hint: errors are
/// ignored, and the fsync still reports any.
fn start_writeback(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range(2) on a descriptor `file` owns; offset 0 and length 0 mean
    // the whole file; it reads and writes no memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl RegistryClient {
    fn status_error(ep: &Endpoint, what: &str, resp: Response) -> RegistryError {
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return RegistryError::NotFound {
                registry: ep.host.clone(),
                what: what.to_string(),
            };
        }
        RegistryError::Status {
            registry: ep.host.clone(),
            what: what.to_string(),
            status,
            message: error_message(resp),
        }
    }

    /// Tries `f` on each pull endpoint (mirrors first); returns the first success, or the
    /// upstream registry's error.
    fn on_pull_endpoints<T>(
        &self,
        registry: &str,
        mut f: impl FnMut(&Endpoint) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let eps = self.pull_endpoints(registry);
        let mut last = None;
        for ep in &eps {
            match f(ep) {
                Ok(v) => return Ok(v),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::Protocol {
            registry: registry.to_string(),
            reason: "no endpoints".into(),
        }))
    }

    /// Fetches the manifest or index `reference` names (by digest if it has one, else by tag).
    /// Content fetched by digest is verified; content fetched by tag is checked against the
    /// registry's `Docker-Content-Digest` header when present.
    pub fn get_manifest(&self, reference: &Reference) -> Result<FetchedManifest, RegistryError> {
        self.get_manifest_at(
            reference.registry(),
            reference.repository(),
            &reference.api_reference(),
            reference.digest(),
        )
    }

    /// Fetches `registry/repo`'s manifest with the given digest, verifying it.
    pub fn get_manifest_by_digest(
        &self,
        registry: &str,
        repo: &str,
        digest: &Digest,
    ) -> Result<FetchedManifest, RegistryError> {
        self.get_manifest_at(registry, repo, &digest.to_string(), Some(digest))
    }

    fn get_manifest_at(
        &self,
        registry: &str,
        repo: &str,
        api_ref: &str,
        expected: Option<&Digest>,
    ) -> Result<FetchedManifest, RegistryError> {
        let what = format!("manifest {repo}:{api_ref}");
        self.on_pull_endpoints(registry, |ep| {
            let target = Target {
                repo,
                push: false,
                what: what.clone(),
            };
            let url = format!("{}/v2/{repo}/manifests/{api_ref}", ep.base);
            let mut h = HeaderMap::new();
            h.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
            let resp = self.request(ep, &target, Method::GET, &url, &h, None)?;
            if resp.status() != StatusCode::OK {
                return Err(Self::status_error(ep, &what, resp));
            }
            let content_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let header_digest = resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| Digest::parse(v.trim()).ok());
            if resp
                .content_length()
                .is_some_and(|l| l > MAX_MANIFEST_SIZE as u64)
            {
                return Err(RegistryError::TooLarge {
                    registry: ep.host.clone(),
                    what: what.clone(),
                    max: MAX_MANIFEST_SIZE as u64,
                });
            }
            let bytes = read_capped(ep, &what, resp, MAX_MANIFEST_SIZE as u64)?;
            let digest = Digest::of(&bytes);
            for want in expected.into_iter().chain(header_digest.as_ref()) {
                if &digest != want {
                    return Err(RegistryError::Verify {
                        registry: ep.host.clone(),
                        what: what.clone(),
                        source: crate::digest::DigestError::Mismatch {
                            expected: want.clone(),
                            actual: digest,
                        },
                    });
                }
            }
            Ok(FetchedManifest {
                bytes,
                content_type,
                digest,
                served_by: ep.host.clone(),
            })
        })
    }

    /// Fetches a small blob (an image config) into memory, verifying digest and size.
    pub fn get_blob_bytes(
        &self,
        registry: &str,
        repo: &str,
        digest: &Digest,
        size: u64,
        max: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let what = format!("blob {digest}");
        if size > max {
            return Err(RegistryError::TooLarge {
                registry: registry.to_string(),
                what,
                max,
            });
        }
        self.on_pull_endpoints(registry, |ep| {
            let resp = self.blob_get(ep, repo, digest, 0)?;
            if resp.status() != StatusCode::OK {
                return Err(Self::status_error(ep, &what, resp));
            }
            let bytes = read_capped(ep, &what, resp, size)?;
            let mut v = Verifier::new(digest.clone(), size);
            v.update(&bytes)
                .and_then(|()| v.finish())
                .map_err(|source| RegistryError::Verify {
                    registry: ep.host.clone(),
                    what: what.clone(),
                    source,
                })?;
            Ok(bytes)
        })
    }

    fn blob_get(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &Digest,
        from: u64,
    ) -> Result<Response, RegistryError> {
        let target = Target {
            repo,
            push: false,
            what: format!("blob {digest}"),
        };
        let url = format!("{}/v2/{repo}/blobs/{digest}", ep.base);
        let mut h = HeaderMap::new();
        if from > 0 {
            let v = HeaderValue::from_str(&format!("bytes={from}-")).map_err(|_| {
                RegistryError::Protocol {
                    registry: ep.host.clone(),
                    reason: "bad range".into(),
                }
            })?;
            h.insert(RANGE, v);
        }
        self.request(ep, &target, Method::GET, &url, &h, None)
    }

    /// Downloads a blob into `file` (a partial download kept between runs), resuming from
    /// the file's current length with `Range` and verifying the whole content.
    ///
    /// The existing content is re-hashed first; a 206 must start exactly where we asked
    /// (`Content-Range`), a 200 restarts from zero. Interrupted bodies are resumed up to the
    /// retry policy's attempt count. On a digest or size mismatch the file is truncated so
    /// the next attempt starts clean. `progress` receives the bytes present so far;
    /// `cancel` aborts between chunks.
    #[allow(clippy::too_many_arguments)]
    pub fn download_blob(
        &self,
        registry: &str,
        repo: &str,
        digest: &Digest,
        size: u64,
        file: &mut File,
        file_path: &Path,
        progress: &mut dyn FnMut(u64),
        cancel: &AtomicBool,
    ) -> Result<(), RegistryError> {
        self.on_pull_endpoints(registry, |ep| {
            self.download_from(ep, repo, digest, size, file, file_path, progress, cancel)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn download_from(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &Digest,
        size: u64,
        file: &mut File,
        path: &Path,
        progress: &mut dyn FnMut(u64),
        cancel: &AtomicBool,
    ) -> Result<(), RegistryError> {
        let what = format!("blob {digest}");
        let mut verifier = Verifier::new(digest.clone(), size);
        // Re-hash what an earlier, interrupted run left behind.
        let mut len = file.metadata().map_err(io_err(path))?.len();
        if len > size {
            file.set_len(0).map_err(io_err(path))?;
            len = 0;
        }
        file.seek(SeekFrom::Start(0)).map_err(io_err(path))?;
        let mut buf = vec![0u8; CHUNK];
        let mut reader = (&mut *file).take(len);
        loop {
            let n = reader.read(&mut buf).map_err(io_err(path))?;
            if n == 0 {
                break;
            }
            // Cannot exceed size: len <= size.
            let _ = verifier.update(&buf[..n]);
        }
        if verifier.seen() != len {
            // The file shrank under us; start over.
            file.set_len(0).map_err(io_err(path))?;
            verifier.reset();
        }
        progress(verifier.seen());

        let max_attempts = self.options.retry.max_attempts.max(1);
        let mut attempt = 0;
        while verifier.seen() < size {
            attempt += 1;
            let from = verifier.seen();
            let resp = self.blob_get(ep, repo, digest, from)?;
            match resp.status() {
                StatusCode::PARTIAL_CONTENT if from > 0 => {
                    let cr = resp
                        .headers()
                        .get(CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    if content_range_start(&cr) != Some(from) {
                        return Err(RegistryError::BadContentRange {
                            registry: ep.host.clone(),
                            digest: digest.clone(),
                            got: cr.chars().take(100).collect(),
                            expected: from,
                        });
                    }
                }
                StatusCode::OK => {
                    if from > 0 {
                        // The server ignored the Range: start hashing from zero again.
                        file.set_len(0).map_err(io_err(path))?;
                        verifier.reset();
                        progress(0);
                    }
                }
                _ => return Err(Self::status_error(ep, &what, resp)),
            }
            file.seek(SeekFrom::Start(verifier.seen()))
                .map_err(io_err(path))?;
            let mut resp = resp;
            let stream_result: Result<(), RegistryError> = loop {
                if cancel.load(Ordering::Relaxed) {
                    return Err(RegistryError::Protocol {
                        registry: ep.host.clone(),
                        reason: format!("download of {digest} cancelled"),
                    });
                }
                let n = match resp.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        break Err(RegistryError::Protocol {
                            registry: ep.host.clone(),
                            reason: format!("download of {digest} interrupted: {e}"),
                        });
                    }
                };
                if let Err(source) = verifier.update(&buf[..n]) {
                    // More bytes than promised: discard everything.
                    file.set_len(0).map_err(io_err(path))?;
                    return Err(RegistryError::Verify {
                        registry: ep.host.clone(),
                        what,
                        source,
                    });
                }
                file.write_all(&buf[..n]).map_err(io_err(path))?;
                let seen = verifier.seen();
                if seen / WRITEBACK_EVERY != (seen - n as u64) / WRITEBACK_EVERY {
                    start_writeback(file);
                }
                progress(seen);
            };
            match stream_result {
                Ok(()) if verifier.seen() < size && attempt < max_attempts => continue,
                Ok(()) => break,
                Err(_) if attempt < max_attempts => continue,
                Err(e) => return Err(e),
            }
        }
        file.flush().map_err(io_err(path))?;
        if let Err(source) = verifier.finish() {
            file.set_len(0).map_err(io_err(path))?;
            return Err(RegistryError::Verify {
                registry: ep.host.clone(),
                what,
                source,
            });
        }
        Ok(())
    }

    /// Checks that the registry accepts the configured credentials (`GET /v2/` with the
    /// auth flow), as `ags login` does before saving them.
    pub fn check_login(&self, registry: &str) -> Result<(), RegistryError> {
        let ep = self.endpoint(registry);
        let target = Target {
            repo: "",
            push: false,
            what: "/v2/".into(),
        };
        let url = format!("{}/v2/", ep.base);
        let resp = self.request(&ep, &target, Method::GET, &url, &HeaderMap::new(), None)?;
        if !resp.status().is_success() {
            return Err(Self::status_error(&ep, "/v2/", resp));
        }
        Ok(())
    }

    /// Whether `registry/repo` has the blob (HEAD).
    pub fn blob_exists(
        &self,
        registry: &str,
        repo: &str,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let ep = self.endpoint(registry);
        let target = Target {
            repo,
            push: true,
            what: format!("blob {digest}"),
        };
        let url = format!("{}/v2/{repo}/blobs/{digest}", ep.base);
        let resp = self.request(&ep, &target, Method::HEAD, &url, &HeaderMap::new(), None)?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(Self::status_error(&ep, &target.what, resp)),
        }
    }

    /// Uploads a blob (POST then monolithic PUT), skipping it if already present.
    pub fn push_blob(
        &self,
        registry: &str,
        repo: &str,
        data: &[u8],
    ) -> Result<Digest, RegistryError> {
        let digest = Digest::of(data);
        if self.blob_exists(registry, repo, &digest)? {
            return Ok(digest);
        }
        let ep = self.endpoint(registry);
        let target = Target {
            repo,
            push: true,
            what: format!("upload of blob {digest} to {repo}"),
        };
        let url = format!("{}/v2/{repo}/blobs/uploads/", ep.base);
        let resp = self.request(
            &ep,
            &target,
            Method::POST,
            &url,
            &HeaderMap::new(),
            Some(&[]),
        )?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(Self::status_error(&ep, &target.what, resp));
        }
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Protocol {
                registry: ep.host.clone(),
                reason: "upload answer has no Location".into(),
            })?;
        let base = reqwest::Url::parse(&url).map_err(|_| RegistryError::Protocol {
            registry: ep.host.clone(),
            reason: "bad URL".into(),
        })?;
        let mut put = base.join(loc).map_err(|_| RegistryError::Protocol {
            registry: ep.host.clone(),
            reason: "invalid upload Location".into(),
        })?;
        put.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let resp = self.request(&ep, &target, Method::PUT, put.as_str(), &h, Some(data))?;
        if resp.status() != StatusCode::CREATED {
            return Err(Self::status_error(&ep, &target.what, resp));
        }
        Ok(digest)
    }

    /// Uploads a manifest under `tag_or_digest`; returns its digest.
    pub fn push_manifest(
        &self,
        registry: &str,
        repo: &str,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let ep = self.endpoint(registry);
        let target = Target {
            repo,
            push: true,
            what: format!("manifest {repo}:{tag_or_digest}"),
        };
        let url = format!("{}/v2/{repo}/manifests/{tag_or_digest}", ep.base);
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| RegistryError::Protocol {
                registry: ep.host.clone(),
                reason: format!("invalid media type {media_type:?}"),
            })?,
        );
        let resp = self.request(&ep, &target, Method::PUT, &url, &h, Some(bytes))?;
        if resp.status() != StatusCode::CREATED {
            return Err(Self::status_error(&ep, &target.what, resp));
        }
        Ok(Digest::of(bytes))
    }
}

fn read_capped(
    ep: &Endpoint,
    what: &str,
    resp: Response,
    max: u64,
) -> Result<Vec<u8>, RegistryError> {
    let url = display_url(resp.url().as_str());
    let mut out = Vec::new();
    resp.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| RegistryError::Protocol {
            registry: ep.host.clone(),
            reason: format!("reading {what} from {url}: {e}"),
        })?;
    if out.len() as u64 > max {
        return Err(RegistryError::TooLarge {
            registry: ep.host.clone(),
            what: what.to_string(),
            max,
        });
    }
    Ok(out)
}

/// The start offset of `Content-Range: bytes START-END/TOTAL`.
fn content_range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, _total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    (end >= start).then_some(start)
}

#[cfg(test)]
mod tests {
    use super::content_range_start;

    #[test]
    fn content_range_table() {
        for (v, want) in [
            ("bytes 100-199/200", Some(100)),
            ("bytes 0-0/1", Some(0)),
            ("bytes 100-199/*", Some(100)),
            ("bytes  5-9/10", Some(5)),
            ("bytes */200", None),
            ("bytes 10-5/200", None),
            ("items 1-2/3", None),
            ("", None),
            ("bytes 1-2", None),
            ("bytes -1-2/3", None),
        ] {
            assert_eq!(content_range_start(v), want, "{v:?}");
        }
    }
}
