//! The deterministic tar writer: hand-filled GNU headers (names written exactly as given,
//! GNU `././@LongLink` records for long names and link targets), sorted directory walks
//! with hard links kept, and the layer items turned into entries.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::layer::{BuildContext, Item, RandomReader};
use crate::{Error, Result, fail};

#[derive(Clone, Copy)]
enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Fifo,
    Char,
    Block,
}

/// Writes tar entries with hand-filled GNU headers, so that names are written exactly as
/// given (with --raw-names: absolute paths and `..` too, for hostile-image tests) and long
/// names use GNU `././@LongLink` records.
pub(crate) struct TarWriter<W> {
    pub(crate) out: W,
    pub(crate) mtime: u64,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) raw_names: bool,
}

impl<W: Write> TarWriter<W> {
    /// The in-archive name for a user-given path: without leading `/` and `./` unless
    /// raw names were asked for; directories get a trailing `/`.
    fn name(&self, path: &str, dir: bool) -> Vec<u8> {
        let mut p = path.to_string();
        if !self.raw_names {
            loop {
                let t = p.trim_start_matches('/');
                let t = t.strip_prefix("./").unwrap_or(t);
                if t.len() == p.len() {
                    break;
                }
                p = t.to_string();
            }
            if dir && !p.is_empty() && !p.ends_with('/') {
                p.push('/');
            }
        }
        p.into_bytes()
    }

    pub(crate) fn item(&mut self, item: &Item, index: usize, ctx: &BuildContext) -> Result<()> {
        match item {
            Item::Dir { host, dest } => {
                let meta = std::fs::metadata(host).map_err(|e| Error::path(host, e))?;
                if !meta.is_dir() {
                    return Err(fail(format!("{} is not a directory", host.display())));
                }
                let mut links = HashMap::new();
                let prefix = self.name(dest, true);
                if !prefix.is_empty() {
                    self.entry(
                        &prefix,
                        Kind::Dir,
                        meta.mode() & 0o7777,
                        0,
                        None,
                        (0, 0),
                        &mut io::empty(),
                    )?;
                }
                self.walk(host, &prefix, &mut links)
            }
            Item::Random { size, name } => {
                let name = name.clone().unwrap_or_else(|| format!("random{index}"));
                self.entry(
                    b"data/",
                    Kind::Dir,
                    0o755,
                    0,
                    None,
                    (0, 0),
                    &mut io::empty(),
                )?;
                let full = self.name(&format!("data/{name}"), false);
                let mut data = RandomReader::new(&ctx.seed, &name, *size);
                self.entry(&full, Kind::File, 0o644, *size, None, (0, 0), &mut data)
            }
            Item::File {
                path,
                mode,
                content,
            } => {
                let n = self.name(path, false);
                self.entry(
                    &n,
                    Kind::File,
                    *mode,
                    content.len() as u64,
                    None,
                    (0, 0),
                    &mut content.as_slice(),
                )
            }
            Item::Mkdir { path, mode } => {
                let n = self.name(path, true);
                self.entry(&n, Kind::Dir, *mode, 0, None, (0, 0), &mut io::empty())
            }
            Item::Symlink { path, target } | Item::Hardlink { path, target } => {
                let hard = matches!(item, Item::Hardlink { .. });
                let n = self.name(path, false);
                // Hard link targets are archive names; symlink targets are kept verbatim.
                let t = if hard {
                    self.name(target, false)
                } else {
                    target.as_bytes().to_vec()
                };
                let kind = if hard { Kind::Hardlink } else { Kind::Symlink };
                self.entry(&n, kind, 0o777, 0, Some(&t), (0, 0), &mut io::empty())
            }
            Item::Whiteout { path } => {
                let (dir, base) = match path.trim_end_matches('/').rsplit_once('/') {
                    Some((d, b)) => (format!("{d}/"), b.to_string()),
                    None => (String::new(), path.clone()),
                };
                let n = self.name(&format!("{dir}.wh.{base}"), false);
                self.entry(&n, Kind::File, 0o644, 0, None, (0, 0), &mut io::empty())
            }
            Item::Opaque { dir } => {
                let d = dir.trim_end_matches('/');
                let p = if d.is_empty() {
                    ".wh..wh..opq".to_string()
                } else {
                    format!("{d}/.wh..wh..opq")
                };
                let n = self.name(&p, false);
                self.entry(&n, Kind::File, 0o644, 0, None, (0, 0), &mut io::empty())
            }
            Item::Fifo { path } => {
                let n = self.name(path, false);
                self.entry(&n, Kind::Fifo, 0o644, 0, None, (0, 0), &mut io::empty())
            }
            Item::Device {
                path,
                block,
                major,
                minor,
            } => {
                let n = self.name(path, false);
                let kind = if *block { Kind::Block } else { Kind::Char };
                self.entry(&n, kind, 0o666, 0, None, (*major, *minor), &mut io::empty())
            }
        }
    }

    /// Adds `dir`'s children (sorted by name, depth first) under the archive prefix.
    fn walk(
        &mut self,
        dir: &Path,
        prefix: &[u8],
        links: &mut HashMap<(u64, u64), Vec<u8>>,
    ) -> Result<()> {
        let mut children: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| Error::path(dir, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| Error::path(dir, e))?;
        children.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for child in children {
            let path = dir.join(&child);
            let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::path(&path, e))?;
            let mut name = prefix.to_vec();
            name.extend_from_slice(child.as_bytes());
            let mode = meta.mode() & 0o7777;
            let ft = meta.file_type();
            let none = (0, 0);
            if ft.is_dir() {
                name.push(b'/');
                self.entry(&name, Kind::Dir, mode, 0, None, none, &mut io::empty())?;
                self.walk(&path, &name, links)?;
                continue;
            }
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                    let first = first.clone();
                    self.entry(
                        &name,
                        Kind::Hardlink,
                        mode,
                        0,
                        Some(&first),
                        none,
                        &mut io::empty(),
                    )?;
                    continue;
                }
                links.insert((meta.dev(), meta.ino()), name.clone());
            }
            if ft.is_file() {
                let mut f = File::open(&path).map_err(|e| Error::path(&path, e))?;
                self.entry(&name, Kind::File, mode, meta.len(), None, none, &mut f)
                    .map_err(|e| e.context(&path))?;
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| Error::path(&path, e))?;
                self.entry(
                    &name,
                    Kind::Symlink,
                    0o777,
                    0,
                    Some(target.as_os_str().as_bytes()),
                    none,
                    &mut io::empty(),
                )?;
            } else if ft.is_fifo() {
                self.entry(&name, Kind::Fifo, mode, 0, None, none, &mut io::empty())?;
            } else if ft.is_char_device() || ft.is_block_device() {
                let rdev = meta.rdev();
                let dev = (libc::major(rdev), libc::minor(rdev));
                let kind = if ft.is_char_device() {
                    Kind::Char
                } else {
                    Kind::Block
                };
                self.entry(&name, kind, mode, 0, None, dev, &mut io::empty())?;
            } else {
                eprintln!("ags-testimage: warning: skipping socket {}", path.display());
            }
        }
        Ok(())
    }

    /// Writes one entry: GNU long-name/long-link records when needed, the header, `size`
    /// bytes of `data` (exactly: a file that changes size while read is an error) and the
    /// padding to the next 512-byte block.
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        name: &[u8],
        kind: Kind,
        mode: u32,
        size: u64,
        link: Option<&[u8]>,
        dev: (u32, u32),
        data: &mut dyn Read,
    ) -> Result<()> {
        let werr = |e| Error::io("layer", e);
        if name.len() > 100 {
            self.long_record(b'L', name)?;
        }
        if let Some(l) = link.filter(|l| l.len() > 100) {
            self.long_record(b'K', l)?;
        }
        let mut h = tar::Header::new_gnu();
        let gnu = h.as_gnu_mut().expect("a GNU header");
        let n = name.len().min(100);
        gnu.name[..n].copy_from_slice(&name[..n]);
        if let Some(l) = link {
            let n = l.len().min(100);
            gnu.linkname[..n].copy_from_slice(&l[..n]);
        }
        h.set_entry_type(match kind {
            Kind::File => tar::EntryType::Regular,
            Kind::Dir => tar::EntryType::Directory,
            Kind::Symlink => tar::EntryType::Symlink,
            Kind::Hardlink => tar::EntryType::Link,
            Kind::Fifo => tar::EntryType::Fifo,
            Kind::Char => tar::EntryType::Char,
            Kind::Block => tar::EntryType::Block,
        });
        h.set_mode(mode);
        h.set_uid(self.uid);
        h.set_gid(self.gid);
        h.set_mtime(self.mtime);
        h.set_size(size);
        if matches!(kind, Kind::Char | Kind::Block) {
            h.set_device_major(dev.0).map_err(werr)?;
            h.set_device_minor(dev.1).map_err(werr)?;
        }
        h.set_cksum();
        self.out.write_all(h.as_bytes()).map_err(werr)?;
        let copied = io::copy(&mut data.take(size), &mut self.out).map_err(werr)?;
        if copied != size {
            return Err(fail(format!(
                "file shrank while archiving ({copied} of {size} bytes)"
            )));
        }
        self.pad(size)
    }

    fn long_record(&mut self, flag: u8, value: &[u8]) -> Result<()> {
        let werr = |e| Error::io("layer", e);
        let mut h = tar::Header::new_gnu();
        let gnu = h.as_gnu_mut().expect("a GNU header");
        gnu.name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(tar::EntryType::new(flag));
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        let size = value.len() as u64 + 1;
        h.set_size(size);
        h.set_cksum();
        self.out.write_all(h.as_bytes()).map_err(werr)?;
        self.out.write_all(value).map_err(werr)?;
        self.out.write_all(&[0]).map_err(werr)?;
        self.pad(size)
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.out
                .write_all(&[0u8; 512][..512 - rem])
                .map_err(|e| Error::io("layer", e))?;
        }
        Ok(())
    }
}
