//! Content digests (`sha256:<64 hex>`) and streaming verification.
//!
//! Only sha256 is accepted: it is what every registry serves, and accepting weaker or unknown
//! algorithms would let a malicious manifest pick one we cannot verify. [`VerifyingWriter`]
//! and [`VerifyingReader`] check the digest *and* the byte count while data streams through,
//! so a registry that sends more bytes than the descriptor promised is cut off early instead
//! of filling the disk.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// Errors from parsing or verifying digests.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    /// The digest string is malformed.
    #[error("invalid digest {input:?}: {reason}")]
    Invalid {
        /// The offending input (truncated).
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Content did not hash to the expected digest.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Mismatch {
        /// The digest the descriptor promised.
        expected: Digest,
        /// The digest of the content received.
        actual: Digest,
    },
    /// Content was larger or smaller than the descriptor promised.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The digest of the content being checked.
        digest: Digest,
        /// The size the descriptor promised.
        expected: u64,
        /// The number of bytes seen (at least this many when too large).
        actual: u64,
    },
}

/// A validated `sha256:<64 lowercase hex>` content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parses `sha256:<hex>`; other algorithms are refused.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let invalid = |reason| DigestError::Invalid {
            input: s.chars().take(100).collect(),
            reason,
        };
        let (algo, hex) = s
            .split_once(':')
            .ok_or_else(|| invalid("missing algorithm prefix"))?;
        if algo != "sha256" {
            return Err(invalid("only sha256 digests are supported"));
        }
        Self::from_hex(hex).map_err(|_| invalid("expected 64 lowercase hex characters"))
    }

    /// Builds a digest from the 64 lowercase hex characters of a sha256 sum.
    pub fn from_hex(hex: &str) -> Result<Self, DigestError> {
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::Invalid {
                input: hex.chars().take(100).collect(),
                reason: "expected 64 lowercase hex characters",
            });
        }
        Ok(Self {
            hex: hex.to_string(),
        })
    }

    /// The sha256 digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(data))
    }

    fn from_hasher(hasher: Sha256) -> Self {
        Self {
            hex: hex::encode(hasher.finalize()),
        }
    }

    /// The algorithm name (always `sha256`).
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }

    /// The 64 hex characters, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Checks that `data` has exactly this digest.
    pub fn verify(&self, data: &[u8]) -> Result<(), DigestError> {
        let actual = Self::of(data);
        if &actual != self {
            return Err(DigestError::Mismatch {
                expected: self.clone(),
                actual,
            });
        }
        Ok(())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest(sha256:{})", self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Incremental sha256 + byte counter checked against an expected digest and size.
#[derive(Clone)]
pub struct Verifier {
    expected: Digest,
    size: u64,
    seen: u64,
    hasher: Sha256,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("expected", &self.expected)
            .field("size", &self.size)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Starts verifying content expected to be `size` bytes with digest `expected`.
    pub fn new(expected: Digest, size: u64) -> Self {
        Self {
            expected,
            size,
            seen: 0,
            hasher: Sha256::new(),
        }
    }

    /// Feeds bytes; fails as soon as more than the expected size has been seen.
    pub fn update(&mut self, data: &[u8]) -> Result<(), DigestError> {
        let seen = self.seen.saturating_add(data.len() as u64);
        if seen > self.size {
            return Err(DigestError::SizeMismatch {
                digest: self.expected.clone(),
                expected: self.size,
                actual: seen,
            });
        }
        self.seen = seen;
        self.hasher.update(data);
        Ok(())
    }

    /// Bytes fed so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The expected size.
    pub fn expected_size(&self) -> u64 {
        self.size
    }

    /// The expected digest.
    pub fn expected(&self) -> &Digest {
        &self.expected
    }

    /// Discards everything fed so far (used when a resumed download restarts from zero).
    pub fn reset(&mut self) {
        self.seen = 0;
        self.hasher = Sha256::new();
    }

    /// Checks the size and digest of everything fed.
    pub fn finish(self) -> Result<(), DigestError> {
        if self.seen != self.size {
            return Err(DigestError::SizeMismatch {
                digest: self.expected,
                expected: self.size,
                actual: self.seen,
            });
        }
        let actual = Digest::from_hasher(self.hasher);
        if actual != self.expected {
            return Err(DigestError::Mismatch {
                expected: self.expected,
                actual,
            });
        }
        Ok(())
    }
}

fn to_io(e: DigestError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// A writer that hashes and counts what passes through and refuses to write past the
/// expected size. Call [`VerifyingWriter::finish`] to check the result.
#[derive(Debug)]
pub struct VerifyingWriter<W> {
    inner: W,
    verifier: Verifier,
}

impl<W: Write> VerifyingWriter<W> {
    /// Wraps `inner`, expecting `size` bytes hashing to `expected`.
    pub fn new(inner: W, expected: Digest, size: u64) -> Self {
        Self::with_verifier(inner, Verifier::new(expected, size))
    }

    /// Wraps `inner` with a verifier that may already have seen a prefix of the content.
    pub fn with_verifier(inner: W, verifier: Verifier) -> Self {
        Self { inner, verifier }
    }

    /// Bytes written so far (including any prefix the verifier had seen).
    pub fn written(&self) -> u64 {
        self.verifier.seen()
    }

    /// The inner writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The verifier state.
    pub fn verifier_mut(&mut self) -> &mut Verifier {
        &mut self.verifier
    }

    /// Flushes, verifies digest and size, and returns the inner writer.
    pub fn finish(mut self) -> Result<W, DigestError> {
        // A flush failure surfaces on the caller's next operation on the writer; the
        // verification result is what matters here.
        let _ = self.inner.flush();
        self.verifier.finish()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for VerifyingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Check the size before writing so oversized content never reaches the disk.
        if self.verifier.seen().saturating_add(buf.len() as u64) > self.verifier.expected_size() {
            return Err(to_io(DigestError::SizeMismatch {
                digest: self.verifier.expected().clone(),
                expected: self.verifier.expected_size(),
                actual: self.verifier.seen().saturating_add(buf.len() as u64),
            }));
        }
        let n = self.inner.write(buf)?;
        self.verifier.update(&buf[..n]).map_err(to_io)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what it yields and reports an `InvalidData` error at end of stream
/// when the digest or size is wrong, or as soon as the stream runs past the expected size.
#[derive(Debug)]
pub struct VerifyingReader<R> {
    inner: R,
    verifier: Option<Verifier>,
}

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`, expecting `size` bytes hashing to `expected`.
    pub fn new(inner: R, expected: Digest, size: u64) -> Self {
        Self {
            inner,
            verifier: Some(Verifier::new(expected, size)),
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            if let Some(v) = self.verifier.take() {
                v.finish().map_err(to_io)?;
            }
            return Ok(0);
        }
        match self.verifier.as_mut() {
            Some(v) => v.update(&buf[..n]).map_err(to_io)?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "data after end of verified stream",
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parse_table() {
        let cases: &[(&str, bool)] = &[
            (EMPTY, true),
            (
                "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                false,
            ),
            ("sha256:e3b0", false),
            (
                "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                false,
            ),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                false,
            ),
            ("sha256:", false),
            ("", false),
            (
                "sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                false,
            ),
            (
                "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
                false,
            ),
        ];
        for (input, ok) in cases {
            assert_eq!(Digest::parse(input).is_ok(), *ok, "{input}");
        }
        assert_eq!(Digest::of(b"").to_string(), EMPTY);
    }

    #[test]
    fn serde_roundtrip() {
        let d = Digest::of(b"x");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"md5:abc\"").is_err());
    }

    #[test]
    fn writer_verifies_digest_and_size() {
        let data = b"hello world";
        let d = Digest::of(data);
        let mut w = VerifyingWriter::new(Vec::new(), d.clone(), data.len() as u64);
        w.write_all(data).unwrap();
        assert_eq!(w.finish().unwrap(), data);

        // Too many bytes: refused before reaching the inner writer.
        let mut w = VerifyingWriter::new(Vec::new(), d.clone(), 5);
        assert!(w.write_all(data).is_err());
        assert!(w.get_mut().is_empty());

        // Too few bytes.
        let mut w = VerifyingWriter::new(Vec::new(), d.clone(), 20);
        w.write_all(data).unwrap();
        assert!(matches!(w.finish(), Err(DigestError::SizeMismatch { .. })));

        // Wrong content.
        let mut w = VerifyingWriter::new(Vec::new(), d, data.len() as u64);
        w.write_all(b"hello WORLD").unwrap();
        assert!(matches!(w.finish(), Err(DigestError::Mismatch { .. })));
    }

    #[test]
    fn reader_verifies_at_eof() {
        let data = b"some layer bytes";
        let d = Digest::of(data);
        let mut out = Vec::new();
        VerifyingReader::new(&data[..], d.clone(), data.len() as u64)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        let err = VerifyingReader::new(&b"other layer bytes"[..], d.clone(), 17)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let err = VerifyingReader::new(&data[..], d, 3)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn verifier_reset_restarts() {
        let data = b"abc";
        let mut v = Verifier::new(Digest::of(data), 3);
        v.update(b"zz").unwrap();
        v.reset();
        v.update(data).unwrap();
        v.finish().unwrap();
    }
}
