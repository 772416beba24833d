//! Entry metadata: mode, owner, mtime and the xattr allowlist, read from the tar header
//! and its PAX records, and applied through file descriptors.

use std::io::Read;
use std::os::fd::BorrowedFd;

use rustix::fs::{self as rfs, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

use super::{Unpacker, invalid};
use crate::unpack::UnpackError;
use crate::unpack::confine::{EntryPath, escape};
use crate::unpack::fsops::errno_io;

/// Largest xattr value Linux accepts (`XATTR_SIZE_MAX`).
const XATTR_SIZE_MAX: usize = 65536;

/// Metadata of one entry, read from the tar header and its PAX records.
pub(super) struct Meta {
    pub(super) mode: u32,
    pub(super) owner: Option<(Uid, Gid)>,
    pub(super) mtime: Timespec,
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Unpacker<'_> {
    /// Reads the mode, owner, mtime and allowed xattrs of an entry.
    pub(super) fn meta<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
    ) -> Result<Meta, UnpackError> {
        let header = entry.header();
        let mode = header.mode().map_err(|_| invalid(raw, "unreadable mode"))? & 0o7777;
        let owner = if self.opts.preserve_ownership {
            let uid = header.uid().map_err(|_| invalid(raw, "unreadable uid"))?;
            let gid = header.gid().map_err(|_| invalid(raw, "unreadable gid"))?;
            // u32::MAX is chown's "leave unchanged" and no valid id.
            let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
                return Err(invalid(raw, "uid or gid out of range"));
            };
            if uid == u32::MAX || gid == u32::MAX {
                return Err(invalid(raw, "uid or gid out of range"));
            }
            Some((Uid::from_raw(uid), Gid::from_raw(gid)))
        } else {
            None
        };
        let header_mtime = header.mtime().unwrap_or(0);
        let mut mtime = Timespec {
            tv_sec: i64::try_from(header_mtime).unwrap_or(i64::MAX),
            tv_nsec: 0,
        };
        let mut xattrs = Vec::new();
        let mut dropped = Vec::new();
        if let Some(pax) = entry
            .pax_extensions()
            .map_err(|source| UnpackError::Read { source })?
        {
            for ext in pax {
                let ext = ext.map_err(|_| invalid(raw, "malformed pax extended header"))?;
                let key = ext.key_bytes();
                if key == b"mtime" {
                    if let Some(t) = parse_pax_time(ext.value_bytes()) {
                        mtime = t;
                    }
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    let value = ext.value_bytes();
                    if xattr_allowed(name) && value.len() <= XATTR_SIZE_MAX {
                        xattrs.push((name.to_vec(), value.to_vec()));
                    } else {
                        dropped.push(escape(name));
                    }
                } else if let Some(name) = key.strip_prefix(b"LIBARCHIVE.xattr.") {
                    dropped.push(escape(name));
                }
            }
        }
        for name in dropped {
            self.stats.xattrs_dropped += 1;
            self.note(format!("dropped xattr {name} of {}", escape(raw)));
        }
        Ok(Meta {
            mode,
            owner,
            mtime,
            xattrs,
        })
    }

    /// Owner, xattrs, mode, mtime — in that order: chown clears setuid bits, and user xattrs
    /// need write permission that the final mode may not grant.
    pub(super) fn apply_file_meta(
        &mut self,
        fd: BorrowedFd<'_>,
        path: &EntryPath,
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        if let Some((uid, gid)) = meta.owner {
            let res = rfs::fchown(fd, Some(uid), Some(gid));
            self.owner_result(res, path)?;
        }
        self.set_xattrs(fd, path, &meta.xattrs)?;
        rfs::fchmod(fd, Mode::from_raw_mode(meta.mode))
            .map_err(|e| self.fs_err("set mode of", path, errno_io(e)))?;
        let times = Timestamps {
            last_access: meta.mtime,
            last_modification: meta.mtime,
        };
        rfs::futimens(fd, &times).map_err(|e| self.fs_err("set mtime of", path, errno_io(e)))?;
        Ok(())
    }

    pub(super) fn set_xattrs(
        &mut self,
        fd: BorrowedFd<'_>,
        path: &EntryPath,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), UnpackError> {
        for (name, value) in xattrs {
            match rfs::fsetxattr(fd, name.as_slice(), value, XattrFlags::empty()) {
                Ok(()) => {}
                // The filesystem under the store has no user xattrs: drop, but say so.
                Err(Errno::OPNOTSUPP) => {
                    self.stats.xattrs_dropped += 1;
                    self.note(format!(
                        "dropped xattr {} of {path}: not supported by the filesystem",
                        escape(name)
                    ));
                }
                Err(e) => return Err(self.fs_err("set xattr on", path, errno_io(e))),
            }
        }
        Ok(())
    }

    /// chown outcome policy (module docs): EINVAL = unmapped id, counted; anything else fails.
    pub(super) fn owner_result(
        &mut self,
        res: rustix::io::Result<()>,
        path: &EntryPath,
    ) -> Result<(), UnpackError> {
        match res {
            Ok(()) => Ok(()),
            Err(Errno::INVAL) => {
                self.stats.unmapped_owners += 1;
                self.note(format!("kept caller ownership of {path}: id not mapped"));
                Ok(())
            }
            Err(e) => Err(self.fs_err("change owner of", path, errno_io(e))),
        }
    }
}

/// Only `user.*` xattrs are applied (see the module docs for what is dropped and why).
fn xattr_allowed(name: &[u8]) -> bool {
    name.len() > b"user.".len()
        && name.len() <= 255
        && name.starts_with(b"user.")
        && !name.contains(&0)
}

/// Parses a pax time (`seconds[.fraction]`, possibly negative).
fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(value).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
    }
    Some(if neg && nanos > 0 {
        Timespec {
            tv_sec: -secs - 1,
            tv_nsec: 1_000_000_000 - nanos,
        }
    } else if neg {
        Timespec {
            tv_sec: -secs,
            tv_nsec: 0,
        }
    } else {
        Timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = parse_pax_time(b"-1.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 750_000_000));
        let t = parse_pax_time(b"42").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (42, 0));
        for bad in [&b""[..], b".5", b"1.x", b"abc", b"99999999999999999999999"] {
            assert!(parse_pax_time(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn xattr_allowlist() {
        assert!(xattr_allowed(b"user.mime_type"));
        for bad in [
            &b"user."[..],
            b"security.capability",
            b"security.selinux",
            b"trusted.overlay.opaque",
            b"trusted.overlay.redirect",
            b"system.posix_acl_access",
            b"User.x",
        ] {
            assert!(!xattr_allowed(bad), "{}", escape(bad));
        }
    }
}
