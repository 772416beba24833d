//! Step cache keys.
//!
//! A step's key is the SHA-256 (lowercase hex) of a versioned, length-prefixed encoding of:
//! 1. the parent key (the previous step's key, or the base image's digest for the first
//!    step of a stage);
//! 2. the instruction text after expansion (for `RUN`, the command as it will run);
//! 3. the build args the step used, sorted by name (a `BTreeMap`), each as name and value;
//!    proxy args ([`crate::stages::PREDEFINED_ARGS`]) must not be passed, as Docker keeps
//!    them out of the cache;
//! 4. for `COPY`/`ADD`, the digest of the copied content, if any.
//!
//! Every field is written as a tag byte, its length as a little-endian `u64`, and its bytes,
//! so no two different inputs encode the same (no ambiguity from separators inside
//! values). Changing the encoding must change [`CACHE_KEY_VERSION`], which is hashed
//! first, so old cache entries simply stop matching.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Hashed first; bump when the encoding changes.
pub const CACHE_KEY_VERSION: &str = "ags-build-cache-key-v1";

/// Inputs of [`cache_key`].
#[derive(Debug, Clone, Copy)]
pub struct CacheKeyInput<'a> {
    /// The previous step's key or the base image digest.
    pub parent: &'a str,
    /// The instruction after expansion.
    pub instruction: &'a str,
    /// The build args the step used, with their values.
    pub build_args: &'a BTreeMap<String, String>,
    /// Digest of the `COPY`/`ADD` inputs.
    pub content_digest: Option<&'a str>,
}

/// Computes a step's cache key; see the module docs for the encoding.
///
/// ```
/// use std::collections::BTreeMap;
/// use ags_build::cache_key::{cache_key, CacheKeyInput};
/// let args = BTreeMap::from([("V".to_string(), "1".to_string())]);
/// let key = cache_key(&CacheKeyInput {
///     parent: "sha256:abc",
///     instruction: "RUN make V=1",
///     build_args: &args,
///     content_digest: None,
/// });
/// assert_eq!(key.len(), 64);
/// ```
pub fn cache_key(input: &CacheKeyInput<'_>) -> String {
    let mut h = Sha256::new();
    field(&mut h, b'v', CACHE_KEY_VERSION.as_bytes());
    field(&mut h, b'p', input.parent.as_bytes());
    field(&mut h, b'i', input.instruction.as_bytes());
    field(&mut h, b'n', &(input.build_args.len() as u64).to_le_bytes());
    for (name, value) in input.build_args {
        field(&mut h, b'k', name.as_bytes());
        field(&mut h, b'=', value.as_bytes());
    }
    match input.content_digest {
        Some(d) => field(&mut h, b'c', d.as_bytes()),
        None => field(&mut h, b'-', b""),
    }
    hex::encode(h.finalize())
}

fn field(h: &mut Sha256, tag: u8, bytes: &[u8]) {
    h.update([tag]);
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(parent: &str, ins: &str, args: &[(&str, &str)], digest: Option<&str>) -> String {
        let args: BTreeMap<String, String> = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        cache_key(&CacheKeyInput {
            parent,
            instruction: ins,
            build_args: &args,
            content_digest: digest,
        })
    }

    #[test]
    fn deterministic_and_pinned() {
        let a = key("p", "RUN x", &[("A", "1"), ("B", "2")], None);
        assert_eq!(a, key("p", "RUN x", &[("B", "2"), ("A", "1")], None));
        assert_eq!(a.len(), 64);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        // Pinned (computed independently with Python hashlib) so an accidental encoding change (which would invalidate every cache)
        // shows up as a failing test.
        assert_eq!(
            key("", "", &[], None),
            "ceaca82987496767e8aa328573f8bdc2941b95b1c9452e7192727f98a33e6103"
        );
    }

    #[test]
    fn every_input_matters() {
        let base = key("p", "RUN x", &[("A", "1")], Some("sha256:d"));
        assert_ne!(base, key("q", "RUN x", &[("A", "1")], Some("sha256:d")));
        assert_ne!(base, key("p", "RUN y", &[("A", "1")], Some("sha256:d")));
        assert_ne!(base, key("p", "RUN x", &[("A", "2")], Some("sha256:d")));
        assert_ne!(base, key("p", "RUN x", &[("B", "1")], Some("sha256:d")));
        assert_ne!(base, key("p", "RUN x", &[], Some("sha256:d")));
        assert_ne!(base, key("p", "RUN x", &[("A", "1")], Some("sha256:e")));
        assert_ne!(base, key("p", "RUN x", &[("A", "1")], None));
        assert_ne!(key("p", "", &[], Some("")), key("p", "", &[], None));
    }

    #[test]
    fn no_ambiguity_between_fields() {
        assert_ne!(key("ab", "c", &[], None), key("a", "bc", &[], None));
        assert_ne!(
            key("p", "i", &[("A", "1B=2")], None),
            key("p", "i", &[("A", "1"), ("B", "2")], None)
        );
        assert_ne!(
            key("p", "i", &[("AB", "")], None),
            key("p", "i", &[("A", "B")], None)
        );
    }
}
