//! Image references: `debian`, `user/img:tag`, `127.0.0.1:5000/foo@sha256:...`.
//!
//! The grammar follows the distribution project's `reference` package (the one Docker and
//! Podman use): the first path component is a registry when it contains `.` or `:`, is
//! `localhost`, or has upper-case letters; otherwise the registry is `docker.io`, and
//! single-component names there live under `library/`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

/// The default registry for short names.
pub const DOCKER_HUB: &str = "docker.io";
/// The tag used when a reference names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
/// Longest accepted registry + repository name (distribution's `NameTotalLengthMax`).
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// An image reference that failed to parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    input: String,
    reason: String,
}

impl ReferenceError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        Self {
            input: input.chars().take(300).collect(),
            reason: reason.into(),
        }
    }
}

/// A fully-qualified image reference.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference, filling in `docker.io`, `library/` and `:latest` as Docker does.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let err = |reason: &str| ReferenceError::new(input, reason);
        if input.is_empty() {
            return Err(err("empty reference"));
        }
        if input.trim() != input || input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("contains whitespace or control characters"));
        }
        if input.len() > NAME_TOTAL_LENGTH_MAX + TAG_MAX + 80 {
            return Err(err("too long"));
        }

        let (rest, digest) = match input.rsplit_once('@') {
            Some((rest, d)) => (
                rest,
                Some(Digest::parse(d).map_err(|e| ReferenceError::new(input, e.to_string()))?),
            ),
            None => (input, None),
        };
        // A tag is a ':' after the last '/', so `host:5000/img` is not mistaken for a tag.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|r| err(&r))?;
        }
        if name.is_empty() {
            return Err(err("missing repository name"));
        }

        let (registry, repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                validate_domain(first).map_err(|r| err(&r))?;
                (first.to_string(), remainder.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = normalize_registry(&registry);
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_repository(&repository).map_err(|r| err(&r))?;
        if registry.len() + 1 + repository.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(err(&format!(
                "name is longer than {NAME_TOTAL_LENGTH_MAX} characters"
            )));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Builds a reference from parts (validated like [`Reference::parse`]).
    pub fn from_parts(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<&Digest>,
    ) -> Result<Self, ReferenceError> {
        let mut s = format!("{registry}/{repository}");
        if let Some(t) = tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        Self::parse(&s)
    }

    /// The registry host (and port), e.g. `docker.io` or `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path, e.g. `library/debian`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (`latest` when the input named neither tag nor digest).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The pinned digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to put after `/manifests/` in the registry API: the digest if pinned, else the tag.
    pub fn api_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// A copy with the digest replaced (keeps the tag).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// A copy without the digest (keeps the tag, or `latest` when there was none).
    pub fn without_digest(&self) -> Self {
        Self {
            digest: None,
            tag: Some(self.tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_string())),
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Maps Docker Hub's aliases to `docker.io`; other names are returned unchanged.
pub fn normalize_registry(registry: &str) -> String {
    match registry {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        other => other.to_string(),
    }
}

fn validate_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err("empty tag".into());
    }
    if tag.len() > TAG_MAX {
        return Err(format!("tag is longer than {TAG_MAX} characters"));
    }
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(format!(
            "invalid tag {tag:?} (allowed: letters, digits, '_', '.', '-'; not starting with '.' or '-')"
        ));
    }
    Ok(())
}

fn validate_domain(domain: &str) -> Result<(), String> {
    let bad = || format!("invalid registry host {domain:?}");
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // Bracketed IPv6 literal, e.g. [::1]:5000.
        let (addr, after) = rest.split_once(']').ok_or_else(bad)?;
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(bad());
        }
        match after {
            "" => return Ok(()),
            _ => (None, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match domain.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid port in registry host {domain:?}"));
        }
    }
    if let Some(host) = host {
        let ok = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

fn validate_repository(repo: &str) -> Result<(), String> {
    for component in repo.split('/') {
        if component.is_empty() {
            return Err("empty path component in repository name".into());
        }
        if component.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "repository name must be lowercase (got {component:?})"
            ));
        }
        if !valid_path_component(component) {
            return Err(format!(
                "invalid repository path component {component:?} (allowed: a-z, 0-9, separated by '.', '_', '__' or '-')"
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    let run = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && alnum(b[*i]) {
            *i += 1;
        }
        *i > start
    };
    if !run(&mut i) {
        return false;
    }
    while i < b.len() {
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if !run(&mut i) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// input, registry, repository, tag, has digest, canonical form
    type Case = (
        String,
        &'static str,
        &'static str,
        Option<&'static str>,
        bool,
        String,
    );

    #[test]
    fn valid_table() {
        let d = format!("sha256:{H}");
        let cases: Vec<Case> = vec![
            (
                "debian".into(),
                "docker.io",
                "library/debian",
                Some("latest"),
                false,
                "docker.io/library/debian:latest".into(),
            ),
            (
                "debian:12".into(),
                "docker.io",
                "library/debian",
                Some("12"),
                false,
                "docker.io/library/debian:12".into(),
            ),
            (
                "user/img".into(),
                "docker.io",
                "user/img",
                Some("latest"),
                false,
                "docker.io/user/img:latest".into(),
            ),
            (
                "docker.io/library/debian".into(),
                "docker.io",
                "library/debian",
                Some("latest"),
                false,
                "docker.io/library/debian:latest".into(),
            ),
            (
                "index.docker.io/debian".into(),
                "docker.io",
                "library/debian",
                Some("latest"),
                false,
                "docker.io/library/debian:latest".into(),
            ),
            (
                "ghcr.io/a/b/c:v1.2_x-y".into(),
                "ghcr.io",
                "a/b/c",
                Some("v1.2_x-y"),
                false,
                "ghcr.io/a/b/c:v1.2_x-y".into(),
            ),
            (
                "127.0.0.1:5000/foo:tag".into(),
                "127.0.0.1:5000",
                "foo",
                Some("tag"),
                false,
                "127.0.0.1:5000/foo:tag".into(),
            ),
            (
                "127.0.0.1:5000/foo".into(),
                "127.0.0.1:5000",
                "foo",
                Some("latest"),
                false,
                "127.0.0.1:5000/foo:latest".into(),
            ),
            (
                "localhost/foo".into(),
                "localhost",
                "foo",
                Some("latest"),
                false,
                "localhost/foo:latest".into(),
            ),
            (
                "localhost:5000/a/b".into(),
                "localhost:5000",
                "a/b",
                Some("latest"),
                false,
                "localhost:5000/a/b:latest".into(),
            ),
            (
                "[::1]:5000/foo".into(),
                "[::1]:5000",
                "foo",
                Some("latest"),
                false,
                "[::1]:5000/foo:latest".into(),
            ),
            (
                format!("debian@{d}"),
                "docker.io",
                "library/debian",
                None,
                true,
                format!("docker.io/library/debian@{d}"),
            ),
            (
                format!("debian:12@{d}"),
                "docker.io",
                "library/debian",
                Some("12"),
                true,
                format!("docker.io/library/debian:12@{d}"),
            ),
            (
                format!("127.0.0.1:5000/foo@{d}"),
                "127.0.0.1:5000",
                "foo",
                None,
                true,
                format!("127.0.0.1:5000/foo@{d}"),
            ),
            (
                "x/a__b.c-d--e_y:1".into(),
                "docker.io",
                "x/a__b.c-d--e_y",
                Some("1"),
                false,
                "docker.io/x/a__b.c-d--e_y:1".into(),
            ),
        ];
        for (input, reg, repo, tag, has_digest, display) in cases {
            let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.registry(), reg, "{input}");
            assert_eq!(r.repository(), repo, "{input}");
            assert_eq!(r.tag(), tag, "{input}");
            assert_eq!(r.digest().is_some(), has_digest, "{input}");
            assert_eq!(r.to_string(), display, "{input}");
            // Display output parses back to the same reference.
            assert_eq!(Reference::parse(&display).unwrap(), r, "{input}");
        }
    }

    #[test]
    fn invalid_table() {
        let long = "a".repeat(256);
        let long_tag = format!("foo:{}", "t".repeat(129));
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "empty reference"),
            ("Debian".into(), "lowercase"),
            ("user/Img".into(), "lowercase"),
            ("debian:".into(), "empty tag"),
            ("debian:-x".into(), "invalid tag"),
            ("debian:a/b".into(), "invalid port"),
            ("debian@sha256:abc".into(), "invalid digest"),
            ("debian@md5:abc".into(), "only sha256"),
            ("foo//bar".into(), "empty path component"),
            ("/foo".into(), "empty path component"),
            ("foo/".into(), "empty path component"),
            ("foo bar".into(), "whitespace"),
            (" debian".into(), "whitespace"),
            ("-foo".into(), "invalid repository path component"),
            ("foo-".into(), "invalid repository path component"),
            ("foo..bar".into(), "invalid repository path component"),
            ("foo___bar".into(), "invalid repository path component"),
            ("host:port/foo".into(), "invalid port"),
            ("host:99999999/foo".into(), "invalid port"),
            ("bad_host.com/foo".into(), "invalid registry host"),
            ("-bad.com/foo".into(), "invalid registry host"),
            (long, "longer than 255"),
            (long_tag, "longer than 128"),
            (":tag".into(), "missing repository name"),
            ("@sha256:".into(), "invalid digest"),
        ];
        for (input, want) in cases {
            let err = Reference::parse(&input)
                .map(|r| panic!("{input:?} parsed as {r}"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("invalid image reference"), "{input}: {err}");
            assert!(err.contains(want), "{input:?}: {err} (wanted {want:?})");
        }
    }

    #[test]
    fn api_reference_prefers_digest() {
        let r = Reference::parse(&format!("x:1@sha256:{H}")).unwrap();
        assert_eq!(r.api_reference(), format!("sha256:{H}"));
        assert_eq!(Reference::parse("x:1").unwrap().api_reference(), "1");
        assert_eq!(r.without_digest().to_string(), "docker.io/library/x:1");
        assert_eq!(r.name(), "docker.io/library/x");
    }
}
