//! Shared helpers for the unpack tests: a raw tar writer that can express any hostile
//! name the `tar` crate's Builder refuses, and a test environment with a canary directory
//! outside the rootfs whose whole tree is snapshotted before and after.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ags_oci::unpack::{UnpackError, UnpackOptions, UnpackStats, unpack_layer};
use sha2::{Digest, Sha256};

pub const PLAIN: &str = "application/vnd.oci.image.layer.v1.tar";
pub const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// Type flags.
pub const REG: u8 = b'0';
pub const LNK: u8 = b'1';
pub const SYM: u8 = b'2';
pub const CHR: u8 = b'3';
pub const BLK: u8 = b'4';
pub const DIR: u8 = b'5';
pub const FIFO: u8 = b'6';

/// A tar stream written header by header, with no validation at all.
#[derive(Default)]
pub struct Layer {
    buf: Vec<u8>,
}

/// One raw entry.
pub struct Raw<'a> {
    pub name: &'a [u8],
    pub kind: u8,
    pub data: &'a [u8],
    pub link: &'a [u8],
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

impl<'a> Raw<'a> {
    pub fn new(name: &'a [u8], kind: u8) -> Self {
        Raw {
            name,
            kind,
            data: b"",
            link: b"",
            mode: if kind == DIR { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
        }
    }
}

impl Layer {
    pub fn new() -> Self {
        Layer::default()
    }

    /// Appends a header block (and data) exactly as given; long names and link targets are
    /// written as GNU `L` / `K` records first.
    pub fn raw(mut self, e: Raw<'_>) -> Self {
        if e.name.len() > 100 {
            self = self.gnu_long(b'L', e.name);
        }
        if e.link.len() > 100 {
            self = self.gnu_long(b'K', e.link);
        }
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().unwrap();
            let n = e.name.len().min(100);
            gnu.name[..n].copy_from_slice(&e.name[..n]);
            let l = e.link.len().min(100);
            gnu.linkname[..l].copy_from_slice(&e.link[..l]);
        }
        // The raw type byte, so that legacy values such as NUL survive.
        h.as_old_mut().linkflag[0] = e.kind;
        h.set_size(e.data.len() as u64);
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        h.set_cksum();
        self.block(h.as_bytes(), e.data)
    }

    /// A header whose size field says `size` but that is followed by `data` (any length).
    pub fn header_with_size(mut self, name: &[u8], kind: u8, size: u64, data: &[u8]) -> Self {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        self.buf.extend_from_slice(h.as_bytes());
        self.buf.extend_from_slice(data);
        self
    }

    fn gnu_long(self, kind: u8, value: &[u8]) -> Self {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(tar::EntryType::new(kind));
        let mut data = value.to_vec();
        data.push(0);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        self.block(h.as_bytes(), &data)
    }

    /// A PAX `x` header with the given records, describing the next entry.
    pub fn pax(self, records: &[(&str, &[u8])]) -> Self {
        let mut data = Vec::new();
        for (key, value) in records {
            // "<len> <key>=<value>\n" where len counts itself.
            let body = key.len() + value.len() + 3;
            let mut len = body + 1;
            while body + len.to_string().len() != len {
                len = body + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        let mut h = tar::Header::new_ustar();
        h.as_ustar_mut().unwrap().name[..9].copy_from_slice(b"PaxHeader");
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        self.block(h.as_bytes(), &data)
    }

    /// Appends raw bytes (already block-aligned or deliberately not).
    pub fn bytes_raw(mut self, data: &[u8]) -> Self {
        self.buf.extend_from_slice(data);
        self
    }

    fn block(mut self, header: &[u8], data: &[u8]) -> Self {
        self.buf.extend_from_slice(header);
        self.buf.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    pub fn file(self, name: &str, data: &[u8]) -> Self {
        self.file_mode(name, data, 0o644)
    }

    pub fn file_mode(self, name: &str, data: &[u8], mode: u32) -> Self {
        self.raw(Raw {
            data,
            mode,
            ..Raw::new(name.as_bytes(), REG)
        })
    }

    pub fn dir(self, name: &str) -> Self {
        self.dir_mode(name, 0o755)
    }

    pub fn dir_mode(self, name: &str, mode: u32) -> Self {
        self.raw(Raw {
            mode,
            ..Raw::new(name.as_bytes(), DIR)
        })
    }

    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.raw(Raw {
            link: target.as_bytes(),
            mode: 0o777,
            ..Raw::new(name.as_bytes(), SYM)
        })
    }

    pub fn hardlink(self, name: &str, target: &str) -> Self {
        self.raw(Raw {
            link: target.as_bytes(),
            ..Raw::new(name.as_bytes(), LNK)
        })
    }

    pub fn hardlink_mode(self, name: &str, target: &str, mode: u32) -> Self {
        self.raw(Raw {
            link: target.as_bytes(),
            mode,
            ..Raw::new(name.as_bytes(), LNK)
        })
    }

    pub fn entry(self, name: &str, kind: u8) -> Self {
        self.raw(Raw::new(name.as_bytes(), kind))
    }

    /// The finished stream: two zero blocks after the last entry.
    pub fn tar(mut self) -> Vec<u8> {
        self.buf.extend(std::iter::repeat_n(0u8, 1024));
        self.buf
    }

    /// The stream without end-of-archive blocks.
    pub fn unterminated(self) -> Vec<u8> {
        self.buf
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).unwrap()
}

pub fn diff_id(tar: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(tar)))
}

/// One inode in a snapshot: type, mode, owner, size, mtime, content hash or link target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    pub mtime: (i64, i64),
    pub content: String,
}

/// Every path under `root` (not following symlinks), with its metadata and content hash.
pub fn snapshot(root: &Path, skip: Option<&Path>) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    walk(root, skip, &mut out);
    out
}

fn walk(path: &Path, skip: Option<&Path>, out: &mut BTreeMap<PathBuf, Node>) {
    let meta = fs::symlink_metadata(path).unwrap();
    let ft = meta.file_type();
    let (kind, content) = if ft.is_symlink() {
        (
            "symlink",
            fs::read_link(path).unwrap().display().to_string(),
        )
    } else if ft.is_dir() {
        ("dir", String::new())
    } else if ft.is_file() {
        ("file", hex::encode(Sha256::digest(fs::read(path).unwrap())))
    } else {
        ("other", String::new())
    };
    out.insert(
        path.to_owned(),
        Node {
            kind,
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            nlink: meta.nlink(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            content,
        },
    );
    if ft.is_dir() && Some(path) != skip {
        let mut names: Vec<_> = fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for child in names {
            walk(&child, skip, out);
        }
    }
}

/// A temp dir with `rootfs/` to unpack into and `canary/` (plus a few neighbours) outside it.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub rootfs: PathBuf,
    pub canary: PathBuf,
    before: BTreeMap<PathBuf, Node>,
}

impl Env {
    pub fn new() -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("ags-unpack-test")
            .tempdir()
            .unwrap();
        let rootfs = tmp.path().join("rootfs");
        let canary = tmp.path().join("canary");
        fs::create_dir(&rootfs).unwrap();
        fs::create_dir_all(canary.join("sub/deeper")).unwrap();
        fs::write(canary.join("file"), b"canary file\n").unwrap();
        fs::write(canary.join("sub/secret"), b"canary secret\n").unwrap();
        fs::write(canary.join("sub/deeper/x"), b"x").unwrap();
        fs::set_permissions(canary.join("sub/secret"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(canary.join("sub"), fs::Permissions::from_mode(0o750)).unwrap();
        std::os::unix::fs::symlink("file", canary.join("link")).unwrap();
        fs::write(tmp.path().join("neighbour"), b"next to the rootfs\n").unwrap();
        let before = snapshot(tmp.path(), Some(&rootfs));
        Env {
            tmp,
            rootfs,
            canary,
            before,
        }
    }

    /// The canary's absolute host path, for hostile absolute symlink targets.
    pub fn canary_abs(&self) -> String {
        self.canary.display().to_string()
    }

    /// The canary path relative to the filesystem root (`tmp/ags-unpack-test…/canary`).
    pub fn canary_rel(&self) -> String {
        self.canary_abs().trim_start_matches('/').to_owned()
    }

    pub fn opts(&self) -> UnpackOptions {
        UnpackOptions::default()
    }

    pub fn apply(&self, tar: &[u8]) -> Result<UnpackStats, UnpackError> {
        self.apply_with(tar, PLAIN, Some(&diff_id(tar)), &self.opts())
    }

    pub fn apply_with(
        &self,
        blob: &[u8],
        media_type: &str,
        diff: Option<&str>,
        opts: &UnpackOptions,
    ) -> Result<UnpackStats, UnpackError> {
        unpack_layer(&self.rootfs, blob, media_type, diff, opts)
    }

    /// Applies layers in order, stopping at the first error, then checks the canary.
    pub fn hostile(&self, layers: &[Vec<u8>]) -> Result<(), UnpackError> {
        let mut result = Ok(());
        for layer in layers {
            if let Err(e) = self.apply(layer) {
                result = Err(e);
                break;
            }
        }
        self.assert_outside_unchanged();
        result
    }

    /// Everything outside the rootfs is byte-for-byte and mode-for-mode what it was,
    /// including the temp dir's own mtime (a new sibling of the rootfs would bump it).
    pub fn assert_outside_unchanged(&self) {
        let after = snapshot(self.tmp.path(), Some(&self.rootfs));
        let before_root = self.before.get(&self.rootfs).map(|n| n.kind);
        assert_eq!(
            before_root,
            after.get(&self.rootfs).map(|n| n.kind),
            "rootfs changed type"
        );
        self.compare_outside(&after, false);
    }

    /// After the rootfs itself was removed: everything else is unchanged (the temp dir's
    /// mtime legitimately changed).
    pub fn assert_outside_unchanged_after_removal(&self) {
        assert!(!exists_nofollow(&self.rootfs), "rootfs still exists");
        let after = snapshot(self.tmp.path(), Some(&self.rootfs));
        self.compare_outside(&after, true);
    }

    fn compare_outside(&self, after: &BTreeMap<PathBuf, Node>, skip_tmp: bool) {
        let strip = |m: &BTreeMap<PathBuf, Node>| {
            m.iter()
                .filter(|(p, _)| *p != &self.rootfs && !(skip_tmp && *p == self.tmp.path()))
                .map(|(p, n)| (p.clone(), n.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        let (b, a) = (strip(&self.before), strip(after));
        assert_eq!(b, a, "something outside the rootfs changed");
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.rootfs.join(rel)
    }

    /// Where an absolute canary symlink target lands when resolved inside the rootfs.
    pub fn contained_canary(&self) -> PathBuf {
        self.rootfs.join(self.canary_rel())
    }
}

pub fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

pub fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

pub fn exists_nofollow(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}
