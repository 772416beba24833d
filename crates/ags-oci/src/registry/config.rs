//! Registry settings (`[registries]` in the config file), retry policy and client options.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::reference::normalize_registry;

/// Registry settings, embeddable in the ags config file as `[registries]`.
///
/// ```toml
/// [registries]
/// allow_localhost_http = true
/// [registries.hosts."docker.io"]
/// mirrors = ["127.0.0.1:5000"]
/// [registries.hosts."registry.example:5000"]
/// ca_files = ["/etc/ags/example-ca.pem"]
/// [registries.hosts."127.0.0.1:5000"]
/// insecure = true
/// ```
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Use plain HTTP for loopback hosts (`localhost`, `127.0.0.0/8`, `[::1]`).
    #[serde(default)]
    pub allow_localhost_http: bool,
    /// Per-host settings, keyed by `host[:port]` as written in image references.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostConfig>,
}

/// Settings for one registry host.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Mirrors (`host[:port]`) tried in order before this registry, for pulls only.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Talk plain HTTP to this host (never set this for a host off this machine).
    #[serde(default)]
    pub insecure: bool,
    /// Extra PEM CA files trusted for this host, on top of the system roots.
    #[serde(default)]
    pub ca_files: Vec<PathBuf>,
}

impl RegistryConfig {
    pub(crate) fn host(&self, host: &str) -> Option<&HostConfig> {
        self.hosts.get(host).or_else(|| {
            self.hosts
                .iter()
                .find(|(k, _)| normalize_registry(k) == host)
                .map(|(_, v)| v)
        })
    }

    /// Whether `host` is spoken to over plain HTTP.
    pub fn is_plain_http(&self, host: &str) -> bool {
        self.host(host).is_some_and(|h| h.insecure)
            || (self.allow_localhost_http && is_loopback(host))
    }
}

/// Whether a `host[:port]` names this machine.
pub fn is_loopback(host: &str) -> bool {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    h == "localhost" || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Retry behaviour for 429 / 5xx / connection errors.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Total attempts (1 = no retry).
    pub max_attempts: u32,
    /// First backoff delay; doubles each attempt.
    pub base_delay: Duration,
    /// Cap for one delay, including one asked for by `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// Client-wide options.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Retry policy.
    pub retry: RetryPolicy,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Honour `HTTPS_PROXY` / `NO_PROXY` (reqwest's default).
    pub use_env_proxy: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(30),
            user_agent: concat!("ags/", env!("CARGO_PKG_VERSION")).to_string(),
            use_env_proxy: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_table() {
        for (h, want) in [
            ("localhost", true),
            ("localhost:5000", true),
            ("127.0.0.1:5000", true),
            ("127.1.2.3", true),
            ("[::1]:5000", true),
            ("[::1]", true),
            ("10.0.0.1:5000", false),
            ("example.com", false),
            ("localhost.example.com", false),
        ] {
            assert_eq!(is_loopback(h), want, "{h}");
        }
    }
}
