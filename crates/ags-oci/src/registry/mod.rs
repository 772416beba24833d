//! A blocking OCI distribution client: endpoints, TLS, retries, redirects and auth.
//!
//! Security notes (see shared threat notes, "Registry client"):
//! - redirects are followed by hand so `Authorization` is dropped whenever the origin
//!   changes (blob GETs commonly redirect to a storage host that must not see registry
//!   credentials) and https -> http downgrades are refused. This is the bug class of
//!   CVE-2018-1000007 (curl forwarding auth headers across hosts on redirect);
//! - plain HTTP is used only for registries marked `insecure` or, with
//!   `allow_localhost_http`, loopback hosts;
//! - credentials and tokens live in [`Secret`]s and never appear in errors; URLs in errors
//!   have their query strings removed (presigned storage URLs carry signatures).

mod config;
mod ops;

pub use config::{ClientOptions, HostConfig, RegistryConfig, RetryPolicy, is_loopback};
pub use ops::FetchedManifest;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use reqwest::header::{
    AUTHORIZATION, HeaderMap, HeaderValue, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use crate::auth::{
    AuthError, CredentialProvider, Credentials, Scheme, Secret, parse_www_authenticate,
};
use crate::digest::{Digest, DigestError};
use crate::manifest::ManifestError;
use crate::reference::{DOCKER_HUB, normalize_registry};

/// Errors from talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A transport-level failure (connection refused, TLS, timeout, broken body).
    #[error("request to {registry} failed: {method} {url}")]
    Http {
        /// The registry host.
        registry: String,
        /// The HTTP method.
        method: Method,
        /// The URL without query string.
        url: String,
        /// The cause (with the URL stripped).
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an unexpected status.
    #[error("{registry} answered {status} for {what}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        /// The registry host.
        registry: String,
        /// What was requested.
        what: String,
        /// The HTTP status.
        status: StatusCode,
        /// The registry's error message, sanitized and truncated.
        message: Option<String>,
    },
    /// 404 for a manifest or blob.
    #[error("{what} not found on {registry}")]
    NotFound {
        /// The registry host.
        registry: String,
        /// What was requested.
        what: String,
    },
    /// 401 after the auth flow.
    #[error("{registry} refused access to {what}: {}", if *.had_credentials { "the credentials were rejected" } else { "authentication required (no credentials found; try `ags login`)" })]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// What was requested.
        what: String,
        /// Whether credentials were sent.
        had_credentials: bool,
    },
    /// 403.
    #[error("{registry} denied access to {what}")]
    Denied {
        /// The registry host.
        registry: String,
        /// What was requested.
        what: String,
    },
    /// Credential lookup failed.
    #[error("cannot get credentials for {registry}")]
    Credentials {
        /// The registry host.
        registry: String,
        /// The cause.
        #[source]
        source: AuthError,
    },
    /// The token endpoint misbehaved.
    #[error("cannot get a token for {registry}: {reason}")]
    Token {
        /// The registry host.
        registry: String,
        /// What went wrong.
        reason: String,
    },
    /// A manifest failed validation.
    #[error("invalid manifest for {what} from {registry}")]
    Manifest {
        /// The registry host.
        registry: String,
        /// What was requested.
        what: String,
        /// The cause.
        #[source]
        source: ManifestError,
    },
    /// Content failed digest or size verification.
    #[error("content of {what} from {registry} failed verification")]
    Verify {
        /// The registry host.
        registry: String,
        /// What was requested.
        what: String,
        /// The cause.
        #[source]
        source: DigestError,
    },
    /// A response body exceeded a size cap.
    #[error("{what} from {registry} is larger than {max} bytes")]
    TooLarge {
        /// The registry host.
        registry: String,
        /// What was requested.
        what: String,
        /// The cap.
        max: u64,
    },
    /// A 206 answer whose Content-Range does not start where we asked.
    #[error("{registry} sent Content-Range {got:?} for {digest}, expected start {expected}")]
    BadContentRange {
        /// The registry host.
        registry: String,
        /// The blob.
        digest: Digest,
        /// The header value.
        got: String,
        /// The offset we asked for.
        expected: u64,
    },
    /// A redirect we refuse to follow.
    #[error("refusing redirect from {registry}: {reason}")]
    Redirect {
        /// The registry host.
        registry: String,
        /// Why.
        reason: String,
    },
    /// Local file I/O during a download.
    #[error("i/o error on {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A CA file could not be read or parsed.
    #[error("cannot load CA certificates from {path}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The HTTP client could not be built.
    #[error("cannot build HTTP client for {registry}")]
    Client {
        /// The registry host.
        registry: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// Some other protocol violation.
    #[error("{registry}: {reason}")]
    Protocol {
        /// The registry host.
        registry: String,
        /// What went wrong.
        reason: String,
    },
}

/// One place to talk to: an upstream registry or one of its mirrors.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    /// The name used for credentials, config and errors (`docker.io`, `127.0.0.1:5000`).
    pub host: String,
    /// `http` or `https` plus the API host: `https://registry-1.docker.io`.
    pub base: String,
}

struct Token {
    value: Secret,
    expires: Instant,
}

/// A blocking registry client. Cheap to share between threads (`&RegistryClient` is `Sync`).
pub struct RegistryClient {
    config: RegistryConfig,
    creds: Arc<dyn CredentialProvider>,
    options: ClientOptions,
    clients: Mutex<HashMap<String, Client>>,
    tokens: Mutex<HashMap<(String, String), Token>>,
    basic_hosts: Mutex<HashSet<String>>,
    cred_cache: Mutex<HashMap<String, Option<Credentials>>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("config", &self.config)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these caches cannot leave it logically inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A URL for errors: scheme, host and path only.
fn display_url(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or(url).to_string()
}

/// Extracts `errors[0].code: message` from a registry error body, sanitized.
fn error_message(resp: Response) -> Option<String> {
    #[derive(Deserialize)]
    struct Body {
        errors: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let mut buf = Vec::new();
    use std::io::Read as _;
    let _ = resp.take(64 * 1024).read_to_end(&mut buf);
    let body: Body = serde_json::from_slice(&buf).ok()?;
    let item = body.errors.first()?;
    let text = format!("{} {}", item.code, item.message);
    let clean: String = text
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    (!clean.is_empty()).then_some(clean)
}

/// What a request is for, for error messages and the token scope.
pub(crate) struct Target<'a> {
    pub repo: &'a str,
    pub push: bool,
    pub what: String,
}

impl RegistryClient {
    /// Creates a client. CA files are read lazily, when a host is first contacted.
    pub fn new(
        config: RegistryConfig,
        creds: Arc<dyn CredentialProvider>,
        options: ClientOptions,
    ) -> Self {
        Self {
            config,
            creds,
            options,
            clients: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            basic_hosts: Mutex::new(HashSet::new()),
            cred_cache: Mutex::new(HashMap::new()),
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    pub(crate) fn endpoint(&self, host: &str) -> Endpoint {
        let host = normalize_registry(host);
        let api = if host == DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            host.as_str()
        };
        let scheme = if self.config.is_plain_http(&host) {
            "http"
        } else {
            "https"
        };
        Endpoint {
            base: format!("{scheme}://{api}"),
            host,
        }
    }

    /// Mirrors first, then the registry itself.
    pub(crate) fn pull_endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let registry = normalize_registry(registry);
        let mut out: Vec<Endpoint> = self
            .config
            .host(&registry)
            .map(|h| h.mirrors.iter().map(|m| self.endpoint(m)).collect())
            .unwrap_or_default();
        out.push(self.endpoint(&registry));
        out
    }

    fn http_client(&self, host: &str) -> Result<Client, RegistryError> {
        if let Some(c) = lock(&self.clients).get(host) {
            return Ok(c.clone());
        }
        let mut b = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(None)
            .connect_timeout(self.options.connect_timeout)
            .user_agent(self.options.user_agent.clone());
        if !self.options.use_env_proxy {
            b = b.no_proxy();
        }
        if let Some(hc) = self.config.host(host) {
            for path in &hc.ca_files {
                let pem = std::fs::read(path).map_err(|e| RegistryError::CaFile {
                    path: path.clone(),
                    source: Box::new(e),
                })?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    RegistryError::CaFile {
                        path: path.clone(),
                        source: Box::new(e.without_url()),
                    }
                })?;
                if certs.is_empty() {
                    return Err(RegistryError::CaFile {
                        path: path.clone(),
                        source: "no PEM certificates in file".into(),
                    });
                }
                for c in certs {
                    b = b.add_root_certificate(c);
                }
            }
        }
        let client = b.build().map_err(|source| RegistryError::Client {
            registry: host.to_string(),
            source,
        })?;
        lock(&self.clients).insert(host.to_string(), client.clone());
        Ok(client)
    }

    fn credentials(&self, host: &str) -> Result<Option<Credentials>, RegistryError> {
        if let Some(c) = lock(&self.cred_cache).get(host) {
            return Ok(c.clone());
        }
        let c = self
            .creds
            .credentials(host)
            .map_err(|source| RegistryError::Credentials {
                registry: host.to_string(),
                source,
            })?;
        lock(&self.cred_cache).insert(host.to_string(), c.clone());
        Ok(c)
    }

    fn scope(t: &Target<'_>) -> String {
        if t.repo.is_empty() {
            // Registry-wide requests (`GET /v2/` for login) ask for no repository scope.
            return String::new();
        }
        format!(
            "repository:{}:{}",
            t.repo,
            if t.push { "pull,push" } else { "pull" }
        )
    }

    fn cached_auth(&self, ep: &Endpoint, scope: &str) -> Result<Option<Secret>, RegistryError> {
        let key = (ep.host.clone(), scope.to_string());
        if let Some(t) = lock(&self.tokens).get(&key) {
            if Instant::now() < t.expires {
                return Ok(Some(Secret::new(format!("Bearer {}", t.value.expose()))));
            }
        }
        if lock(&self.basic_hosts).contains(&ep.host) {
            return Ok(self.credentials(&ep.host)?.map(|c| c.basic_header()));
        }
        Ok(None)
    }

    /// Sends a request with auth (token flow on 401, once), retries and safe redirects.
    pub(crate) fn request(
        &self,
        ep: &Endpoint,
        target: &Target<'_>,
        method: Method,
        url: &str,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<Response, RegistryError> {
        let scope = Self::scope(target);
        let auth = self.cached_auth(ep, &scope)?;
        let resp = self.send_retrying(ep, &method, url, headers, body, auth.as_ref())?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return self.check_denied(ep, target, resp);
        }
        // 401: run the challenge, then retry exactly once.
        let challenges: Vec<_> = resp
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_www_authenticate)
            .collect();
        drop(resp);
        let creds = self.credentials(&ep.host)?;
        let unauthorized = |had| RegistryError::Unauthorized {
            registry: ep.host.clone(),
            what: target.what.clone(),
            had_credentials: had,
        };
        let auth = if let Some(c) = challenges.iter().find(|c| c.scheme == Scheme::Bearer) {
            let token = self.fetch_token(ep, c, &scope, creds.as_ref())?;
            Secret::new(format!("Bearer {}", token.expose()))
        } else if challenges.iter().any(|c| c.scheme == Scheme::Basic) {
            let Some(c) = creds.as_ref() else {
                return Err(unauthorized(false));
            };
            lock(&self.basic_hosts).insert(ep.host.clone());
            c.basic_header()
        } else {
            return Err(RegistryError::Protocol {
                registry: ep.host.clone(),
                reason: format!(
                    "401 for {} without a usable WWW-Authenticate challenge",
                    target.what
                ),
            });
        };
        let resp = self.send_retrying(ep, &method, url, headers, body, Some(&auth))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(unauthorized(creds.is_some()));
        }
        self.check_denied(ep, target, resp)
    }

    fn check_denied(
        &self,
        ep: &Endpoint,
        target: &Target<'_>,
        resp: Response,
    ) -> Result<Response, RegistryError> {
        if resp.status() == StatusCode::FORBIDDEN {
            return Err(RegistryError::Denied {
                registry: ep.host.clone(),
                what: target.what.clone(),
            });
        }
        Ok(resp)
    }

    /// The bearer token flow: GET realm?service=..&scope=.., with basic credentials if any.
    fn fetch_token(
        &self,
        ep: &Endpoint,
        challenge: &crate::auth::Challenge,
        scope: &str,
        creds: Option<&Credentials>,
    ) -> Result<Secret, RegistryError> {
        let terr = |reason: String| RegistryError::Token {
            registry: ep.host.clone(),
            reason,
        };
        let realm = challenge
            .param("realm")
            .ok_or_else(|| terr("challenge has no realm".into()))?;
        let mut url = Url::parse(realm)
            .map_err(|_| terr(format!("realm {:?} is not a URL", display_url(realm))))?;
        match url.scheme() {
            "https" => {}
            // Sending credentials to a plain-HTTP realm is only acceptable when the
            // registry itself is plain HTTP by configuration.
            "http" if ep.base.starts_with("http://") => {}
            other => {
                return Err(terr(format!(
                    "refusing {other} token realm {}",
                    display_url(realm)
                )));
            }
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = challenge.param("service") {
                q.append_pair("service", s);
            }
            if !scope.is_empty() {
                q.append_pair("scope", scope);
            }
        }
        let auth = creds.map(Credentials::basic_header);
        let resp = self.send_retrying(
            ep,
            &Method::GET,
            url.as_str(),
            &HeaderMap::new(),
            None,
            auth.as_ref(),
        )?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                registry: ep.host.clone(),
                what: format!("token for {scope}"),
                had_credentials: creds.is_some(),
            });
        }
        if !status.is_success() {
            return Err(terr(format!(
                "token endpoint {} answered {status}",
                display_url(realm)
            )));
        }
        #[derive(Deserialize)]
        struct TokenReply {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let mut buf = Vec::new();
        use std::io::Read as _;
        resp.take(1 << 20)
            .read_to_end(&mut buf)
            .map_err(|e| terr(format!("reading token reply: {e}")))?;
        let reply: TokenReply = serde_json::from_slice(&buf)
            .map_err(|_| terr("token reply is not the expected JSON".into()))?;
        let value = reply
            .token
            .or(reply.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| terr("token reply has no token".into()))?;
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(terr("token contains invalid characters".into()));
        }
        // The distribution spec defaults to 60 s; refresh a little early (up to 5 s) to
        // avoid using a token that expires in flight.
        let lifetime = Duration::from_secs(reply.expires_in.unwrap_or(60).clamp(1, 24 * 3600));
        let margin = (lifetime / 4).min(Duration::from_secs(5));
        let expires = Instant::now() + lifetime - margin;
        let secret = Secret::new(value);
        lock(&self.tokens).insert(
            (ep.host.clone(), scope.to_string()),
            Token {
                value: secret.clone(),
                expires,
            },
        );
        Ok(secret)
    }

    fn backoff(&self, attempt: u32, resp: Option<&Response>) -> Duration {
        let r = &self.options.retry;
        let from_header = resp
            .and_then(|r| r.headers().get(RETRY_AFTER))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let exp = r.base_delay.saturating_mul(1u32 << attempt.min(16));
        from_header.unwrap_or(exp).min(r.max_delay)
    }

    /// Sends with bounded retries on connection errors, 429 and 5xx.
    fn send_retrying(
        &self,
        ep: &Endpoint,
        method: &Method,
        url: &str,
        headers: &HeaderMap,
        body: Option<&[u8]>,
        auth: Option<&Secret>,
    ) -> Result<Response, RegistryError> {
        let max = self.options.retry.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send_following_redirects(ep, method, url, headers, body, auth) {
                Ok(resp) => {
                    let s = resp.status();
                    let retryable = s == StatusCode::TOO_MANY_REQUESTS
                        || matches!(s.as_u16(), 500 | 502 | 503 | 504);
                    if !retryable || attempt >= max {
                        return Ok(resp);
                    }
                    let delay = self.backoff(attempt - 1, Some(&resp));
                    drop(resp);
                    std::thread::sleep(delay);
                }
                Err(RegistryError::Http { source, .. })
                    if attempt < max
                        && (source.is_connect() || source.is_timeout() || source.is_request()) =>
                {
                    std::thread::sleep(self.backoff(attempt - 1, None));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn send_following_redirects(
        &self,
        ep: &Endpoint,
        method: &Method,
        url: &str,
        headers: &HeaderMap,
        body: Option<&[u8]>,
        auth: Option<&Secret>,
    ) -> Result<Response, RegistryError> {
        let client = self.http_client(&ep.host)?;
        let start = Url::parse(url).map_err(|_| RegistryError::Protocol {
            registry: ep.host.clone(),
            reason: format!("invalid URL {}", display_url(url)),
        })?;
        let mut current = start.clone();
        let mut method = method.clone();
        let mut body = body;
        for _hop in 0..10 {
            let mut req = client
                .request(method.clone(), current.clone())
                .headers(headers.clone());
            // Credentials only go to the origin they were meant for.
            if same_origin(&start, &current) {
                if let Some(a) = auth {
                    let mut v =
                        HeaderValue::from_str(a.expose()).map_err(|_| RegistryError::Protocol {
                            registry: ep.host.clone(),
                            reason: "credentials contain characters not allowed in a header".into(),
                        })?;
                    v.set_sensitive(true);
                    req = req.header(AUTHORIZATION, v);
                }
            }
            if let Some(b) = body {
                req = req.body(b.to_vec());
            }
            let resp = req.send().map_err(|e| RegistryError::Http {
                registry: ep.host.clone(),
                method: method.clone(),
                url: display_url(current.as_str()),
                source: e.without_url(),
            })?;
            let status = resp.status();
            if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
                return Ok(resp);
            }
            let loc = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| RegistryError::Redirect {
                    registry: ep.host.clone(),
                    reason: format!("{status} without a Location header"),
                })?;
            let next = current.join(loc).map_err(|_| RegistryError::Redirect {
                registry: ep.host.clone(),
                reason: "invalid Location header".into(),
            })?;
            match (current.scheme(), next.scheme()) {
                ("https", "https") | ("http", "http") | ("http", "https") => {}
                (from, to) => {
                    return Err(RegistryError::Redirect {
                        registry: ep.host.clone(),
                        reason: format!(
                            "{from} to {to} redirect to {}",
                            display_url(next.as_str())
                        ),
                    });
                }
            }
            if status == StatusCode::SEE_OTHER {
                method = Method::GET;
                body = None;
            }
            current = next;
        }
        Err(RegistryError::Redirect {
            registry: ep.host.clone(),
            reason: "too many redirects".into(),
        })
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_deserializes_and_picks_endpoints() {
        let json = r#"{"allow_localhost_http":true,"hosts":{"docker.io":{"mirrors":["127.0.0.1:5000","mirror.example"]},"mirror.example":{"ca_files":["/x.pem"]},"insecure.example:80":{"insecure":true}}}"#;
        let cfg: RegistryConfig = serde_json::from_str(json).unwrap();
        assert!(serde_json::from_str::<RegistryConfig>(r#"{"bogus":1}"#).is_err());
        let c = RegistryClient::new(
            cfg,
            Arc::new(crate::auth::Anonymous),
            ClientOptions::default(),
        );
        let eps: Vec<String> = c
            .pull_endpoints("index.docker.io")
            .into_iter()
            .map(|e| e.base)
            .collect();
        assert_eq!(
            eps,
            [
                "http://127.0.0.1:5000",
                "https://mirror.example",
                "https://registry-1.docker.io"
            ]
        );
        assert_eq!(
            c.endpoint("insecure.example:80").base,
            "http://insecure.example:80"
        );
        assert_eq!(c.endpoint("quay.io").base, "https://quay.io");
        let strict = RegistryClient::new(
            RegistryConfig::default(),
            Arc::new(crate::auth::Anonymous),
            ClientOptions::default(),
        );
        assert_eq!(
            strict.endpoint("127.0.0.1:5000").base,
            "https://127.0.0.1:5000"
        );
    }

    #[test]
    fn origin_comparison() {
        let a = Url::parse("https://r.example/v2/x").unwrap();
        assert!(same_origin(
            &a,
            &Url::parse("https://r.example:443/other").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &Url::parse("https://storage.example/blob").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &Url::parse("http://r.example/v2/x").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &Url::parse("https://r.example:8443/v2/x").unwrap()
        ));
        assert_eq!(
            display_url("https://s.example/b?X-Amz-Signature=abc"),
            "https://s.example/b"
        );
    }

    #[test]
    fn backoff_honours_retry_after_cap() {
        let c = RegistryClient::new(
            RegistryConfig::default(),
            Arc::new(crate::auth::Anonymous),
            ClientOptions::default(),
        );
        assert_eq!(c.backoff(0, None), Duration::from_millis(500));
        assert_eq!(c.backoff(2, None), Duration::from_secs(2));
        assert_eq!(c.backoff(10, None), Duration::from_secs(30));
    }
}
