//! The byte stream under the tar parser: media type vs magic bytes, decompression, the
//! diff_id hash and the byte budgets.
//!
//! The layer's media type and its first bytes must agree: a blob that claims to be a plain
//! tar but starts with a gzip magic (or the other way round) is refused instead of guessed
//! at, so two tools never disagree about what a layer contains. The [`Meter`] sits between the
//! decompressor and the tar parser: it hashes every uncompressed byte (the diff_id is the
//! sha256 of the uncompressed tar stream), caps the total number of uncompressed bytes
//! (decompression bombs) and caps how many bytes the parser may consume between two entries
//! (huge PAX / GNU long-name headers, which the tar crate buffers in memory).

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use sha2::{Digest, Sha256};

/// Compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed tar",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// The compression a layer media type promises, `None` for media types that are not layers.
///
/// Covers the OCI image-spec layer types (including the deprecated non-distributable ones)
/// and the Docker schema 2 types.
pub(crate) fn compression_for_media_type(media_type: &str) -> Option<Compression> {
    // Parameters such as `; charset=` are not part of the type.
    let mt = media_type.split(';').next().unwrap_or("").trim();
    match mt {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

/// What the first bytes of a blob look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Magic {
    Gzip,
    Zstd,
    /// Compressed with something we do not unpack (xz, bzip2).
    Other(&'static str),
    /// Anything else, which is what a plain tar looks like.
    Plain,
}

impl Magic {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Magic::Gzip => "gzip",
            Magic::Zstd => "zstd",
            Magic::Other(name) => name,
            Magic::Plain => "uncompressed data",
        }
    }

    fn of(head: &[u8]) -> Magic {
        if head.starts_with(&[0x1f, 0x8b]) {
            Magic::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Magic::Zstd
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Magic::Other("xz")
        } else if head.starts_with(b"BZh") {
            Magic::Other("bzip2")
        } else {
            Magic::Plain
        }
    }

    /// Whether the magic is what `compression` promises.
    pub(crate) fn agrees_with(self, compression: Compression) -> bool {
        matches!(
            (self, compression),
            (Magic::Gzip, Compression::Gzip)
                | (Magic::Zstd, Compression::Zstd)
                | (Magic::Plain, Compression::None)
        )
    }
}

/// Reads up to 6 bytes to classify the blob and returns a reader that replays them.
pub(crate) fn sniff<R: Read>(mut reader: R) -> io::Result<(Magic, impl Read)> {
    let mut head = [0u8; 6];
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let magic = Magic::of(&head[..filled]);
    Ok((
        magic,
        io::Cursor::new(head[..filled].to_vec()).chain(reader),
    ))
}

/// Wraps `reader` in the decompressor for `compression`.
pub(crate) fn decompress<'r, R: Read + 'r>(
    reader: R,
    compression: Compression,
) -> io::Result<Box<dyn Read + 'r>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        // Multi-member gzip streams are legal and Go's reader (containerd, docker) accepts
        // them, so accept them too; the diff_id covers all members.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        // The zstd decoder keeps libzstd's default window limit (2^27 bytes), so a frame
        // cannot make us allocate an arbitrary window.
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
    })
}

/// Which budget a stream exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exceeded {
    TotalBytes,
    HeaderBytes,
}

/// Counters shared between the [`Meter`] (owned by the tar parser) and the unpacker.
#[derive(Debug, Default)]
pub(crate) struct MeterState {
    total: Cell<u64>,
    total_limit: Cell<u64>,
    /// Bytes read since the unpacker asked the parser for the next entry.
    header_bytes: Cell<u64>,
    /// `Some(limit)` while the parser is between entries.
    header_limit: Cell<Option<u64>>,
    exceeded: Cell<Option<Exceeded>>,
}

impl MeterState {
    pub(crate) fn new(total_limit: u64) -> Rc<Self> {
        let state = MeterState::default();
        state.total_limit.set(total_limit);
        Rc::new(state)
    }

    /// Starts counting parser bytes (headers, extension records, padding) against `limit`.
    pub(crate) fn begin_headers(&self, limit: u64) {
        self.header_bytes.set(0);
        self.header_limit.set(Some(limit));
    }

    /// Stops counting parser bytes: the parser has returned an entry.
    pub(crate) fn end_headers(&self) {
        self.header_limit.set(None);
    }

    pub(crate) fn total(&self) -> u64 {
        self.total.get()
    }

    pub(crate) fn exceeded(&self) -> Option<Exceeded> {
        self.exceeded.get()
    }
}

/// Hashes and counts the uncompressed stream; fails reads once a budget is exceeded.
pub(crate) struct Meter<R> {
    inner: R,
    hasher: Sha256,
    state: Rc<MeterState>,
}

impl<R> Meter<R> {
    pub(crate) fn new(inner: R, state: Rc<MeterState>) -> Self {
        Meter {
            inner,
            hasher: Sha256::new(),
            state,
        }
    }

    /// The `sha256:<hex>` digest of everything read so far.
    pub(crate) fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for Meter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let state = &self.state;
        if let Some(which) = state.exceeded.get() {
            return Err(budget_error(which));
        }
        // Never hand out more than the remaining budget allows, plus one byte so that a
        // stream of exactly the budget passes and one byte more is detected.
        let mut allowed = state.total_limit.get().saturating_sub(state.total.get()) + 1;
        if let Some(limit) = state.header_limit.get() {
            allowed = allowed.min(limit.saturating_sub(state.header_bytes.get()) + 1);
        }
        let len = buf
            .len()
            .min(usize::try_from(allowed).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..len])?;
        self.hasher.update(&buf[..n]);
        let n64 = n as u64;
        state.total.set(state.total.get() + n64);
        if state.total.get() > state.total_limit.get() {
            state.exceeded.set(Some(Exceeded::TotalBytes));
            return Err(budget_error(Exceeded::TotalBytes));
        }
        if let Some(limit) = state.header_limit.get() {
            state.header_bytes.set(state.header_bytes.get() + n64);
            if state.header_bytes.get() > limit {
                state.exceeded.set(Some(Exceeded::HeaderBytes));
                return Err(budget_error(Exceeded::HeaderBytes));
            }
        }
        Ok(n)
    }
}

fn budget_error(which: Exceeded) -> io::Error {
    io::Error::other(format!("layer budget exceeded: {which:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        use Compression::*;
        let cases = [
            ("application/vnd.oci.image.layer.v1.tar", Some(None)),
            ("application/vnd.oci.image.layer.v1.tar+gzip", Some(Gzip)),
            ("application/vnd.oci.image.layer.v1.tar+zstd", Some(Zstd)),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Some(Gzip),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip; x=y",
                Some(Gzip),
            ),
            ("application/vnd.oci.image.manifest.v1+json", Option::None),
            ("application/vnd.oci.image.index.v1+json", Option::None),
            ("", Option::None),
        ];
        for (mt, want) in cases {
            assert_eq!(compression_for_media_type(mt), want, "{mt}");
        }
    }

    #[test]
    fn magic_detection_replays_bytes() {
        let (magic, mut r) = sniff(&[0x1f, 0x8b, 8, 0, 1, 2, 3][..]).unwrap();
        assert_eq!(magic, Magic::Gzip);
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all, [0x1f, 0x8b, 8, 0, 1, 2, 3]);
        assert_eq!(sniff(&b"\x28\xb5\x2f\xfd"[..]).unwrap().0, Magic::Zstd);
        assert_eq!(sniff(&b"\xfd7zXZ\0"[..]).unwrap().0, Magic::Other("xz"));
        assert_eq!(sniff(&b"etc/"[..]).unwrap().0, Magic::Plain);
        assert_eq!(sniff(&b""[..]).unwrap().0, Magic::Plain);
        assert!(!Magic::Gzip.agrees_with(Compression::None));
        assert!(!Magic::Plain.agrees_with(Compression::Zstd));
    }

    #[test]
    fn meter_caps_total_and_header_bytes() {
        let state = MeterState::new(10);
        let mut m = Meter::new(&[7u8; 10][..], state.clone());
        let mut out = Vec::new();
        m.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 10);

        let state = MeterState::new(10);
        let mut m = Meter::new(&[7u8; 11][..], state.clone());
        assert!(m.read_to_end(&mut Vec::new()).is_err());
        assert_eq!(state.exceeded(), Some(Exceeded::TotalBytes));

        let state = MeterState::new(100);
        let mut m = Meter::new(&[7u8; 50][..], state.clone());
        state.begin_headers(20);
        assert!(m.read_to_end(&mut Vec::new()).is_err());
        assert_eq!(state.exceeded(), Some(Exceeded::HeaderBytes));
    }
}
