//! Whiteouts (`.wh.NAME`) and opaque whiteouts (`.wh..wh..opq`), which apply to lower
//! layers only (OCI image-spec, layer.md).

use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs as rfs;

use super::{Unpacker, WHITEOUT_OPAQUE, WHITEOUT_PREFIX, invalid};
use crate::unpack::UnpackError;
use crate::unpack::confine::EntryPath;
use crate::unpack::fsops::{
    self, errno_io, is_dir, open_dir_nofollow, reopen_dir_readable, stat_nofollow,
};

impl Unpacker<'_> {
    /// `.wh.NAME` removes NAME from lower layers; `.wh..wh..opq` empties the directory of
    /// lower-layer content.
    pub(super) fn whiteout(
        &mut self,
        path: &EntryPath,
        name: &[u8],
        raw: &[u8],
    ) -> Result<(), UnpackError> {
        let parent = path.parent();
        if name == WHITEOUT_OPAQUE {
            // The opaque directory exists in this layer, so create it when missing.
            let dir = self
                .open_dir(&parent, true)?
                .ok_or_else(|| invalid(raw, "opaque directory cannot be created"))?;
            self.mark_created(&parent);
            self.clear_opaque(dir.as_fd(), &parent)?;
            self.stats.opaque_dirs += 1;
            return Ok(());
        }
        let victim_name = &name[WHITEOUT_PREFIX.len()..];
        match victim_name {
            b"" => return Err(invalid(raw, "whiteout without a name")),
            b"." | b".." => return Err(invalid(raw, "whiteout of `.` or `..`")),
            _ => {}
        }
        let victim = parent.join(victim_name);
        if self.created.contains(&victim) {
            self.stats.same_layer_whiteouts += 1;
            return Ok(());
        }
        // The parent is resolved in-root: a symlinked parent is followed inside the rootfs
        // only. A missing parent means there is nothing to remove.
        let Some(dir) = self.open_dir(&parent, false)? else {
            return Ok(());
        };
        self.make_writable(dir.as_fd(), &parent);
        if stat_nofollow(dir.as_fd(), victim_name)
            .map_err(|e| self.fs_err("inspect", &victim, e))?
            .is_none()
        {
            return Ok(());
        }
        fsops::remove_all_at(dir.as_fd(), victim_name)
            .map_err(|e| self.fs_err("remove whited-out", &victim, e))?;
        self.forget_deferred(&victim);
        self.stats.whiteouts += 1;
        Ok(())
    }

    /// Removes everything in `dir` that this layer did not create, recursing into
    /// directories this layer created or kept so their lower-layer content goes too.
    pub(super) fn clear_opaque(
        &mut self,
        dir: BorrowedFd<'_>,
        path: &EntryPath,
    ) -> Result<(), UnpackError> {
        self.make_writable(dir, path);
        let mut names = Vec::new();
        {
            let readable = reopen_dir_readable(dir).map_err(|e| self.fs_err("open", path, e))?;
            let mut entries = rfs::Dir::read_from(&readable)
                .map_err(|e| self.fs_err("list", path, errno_io(e)))?;
            while let Some(entry) = entries.read() {
                let entry = entry.map_err(|e| self.fs_err("list", path, errno_io(e)))?;
                let name = entry.file_name().to_bytes();
                if name != b"." && name != b".." {
                    names.push(name.to_vec());
                }
            }
        }
        for name in names {
            let child = path.join(&name);
            if !self.created.contains(&child) {
                fsops::remove_all_at(dir, &name)
                    .map_err(|e| self.fs_err("remove opaque-hidden", &child, e))?;
                self.forget_deferred(&child);
                continue;
            }
            let st = stat_nofollow(dir, &name).map_err(|e| self.fs_err("inspect", &child, e))?;
            if st.as_ref().is_some_and(is_dir) {
                let sub =
                    open_dir_nofollow(dir, &name).map_err(|e| self.fs_err("open", &child, e))?;
                self.clear_opaque(sub.as_fd(), &child)?;
            }
        }
        Ok(())
    }
}
