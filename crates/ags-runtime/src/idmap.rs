//! User and group id mappings for the sandbox's user namespace.
//!
//! The invoking user becomes the container user (uid/gid 1000 "dev" by default), so files
//! it writes into a bind-mounted workspace belong to the user on the host. When the user
//! has subordinate ranges in `/etc/subuid` and `/etc/subgid` (subuid(5)), every other
//! container id maps into them, written by the setuid helpers newuidmap(1)/newgidmap(1);
//! without ranges the namespace maps that one id only.

use std::fs;
use std::path::{Path, PathBuf};

/// Errors reading the subordinate id files or writing a mapping.
#[derive(Debug, thiserror::Error)]
pub enum IdMapError {
    /// Reading `/etc/subuid` or `/etc/subgid` failed for a reason other than absence.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// newuidmap/newgidmap failed.
    #[error("{helper} failed for pid {pid}: {stderr}")]
    Helper {
        /// Which helper.
        helper: &'static str,
        /// Target process.
        pid: i32,
        /// What it printed.
        stderr: String,
    },
    /// Starting the helper failed.
    #[error("cannot run {helper}")]
    Spawn {
        /// Which helper.
        helper: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing `/proc/<pid>/{uid_map,gid_map,setgroups}` failed.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// One line of a uid_map/gid_map: `count` ids from `container` map to `host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id inside the namespace.
    pub container: u32,
    /// First id outside.
    pub host: u32,
    /// Number of ids.
    pub count: u32,
}

/// A subordinate id range of the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubRange {
    /// First subordinate id.
    pub start: u32,
    /// Number of ids.
    pub count: u32,
}

/// Find the user's first range in a subuid(5)/subgid(5) file. Lines name the user by login
/// name or numeric id.
pub fn parse_subid(text: &str, name: Option<&str>, id: u32) -> Option<SubRange> {
    let id_str = id.to_string();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut it = l.trim().split(':');
            let who = it.next()?;
            let start = it.next()?.trim().parse().ok()?;
            let count: u32 = it.next()?.trim().parse().ok()?;
            (count > 0 && (Some(who) == name || who == id_str)).then_some(SubRange { start, count })
        })
        .next()
}

/// Read the range for a user from a subordinate id file; a missing file means no range.
pub fn read_subid(
    path: &Path,
    name: Option<&str>,
    id: u32,
) -> Result<Option<SubRange>, IdMapError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(parse_subid(&text, name, id)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IdMapError::Read {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Compute the mapping that puts host id `host_id` at container id `target` and fills
/// the rest of the container id space from the subordinate range, keeping ids in order:
/// container ids below `target` take the first subordinate ids, those above take the ones
/// after. Without a range, only `target` is mapped.
pub fn mapping(target: u32, host_id: u32, sub: Option<SubRange>) -> Vec<IdRange> {
    let mut out = Vec::new();
    let Some(sub) = sub else {
        return vec![IdRange {
            container: target,
            host: host_id,
            count: 1,
        }];
    };
    let below = target.min(sub.count);
    if below > 0 {
        out.push(IdRange {
            container: target - below,
            host: sub.start,
            count: below,
        });
    }
    out.push(IdRange {
        container: target,
        host: host_id,
        count: 1,
    });
    let above = sub.count - below;
    if above > 0 {
        out.push(IdRange {
            container: target + 1,
            host: sub.start + below,
            count: above,
        });
    }
    out
}

/// The full set of mappings for a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    /// uid_map lines.
    pub uids: Vec<IdRange>,
    /// gid_map lines.
    pub gids: Vec<IdRange>,
}

impl IdMaps {
    /// Whether the maps cover more than the invoking user (needs the setuid helpers when
    /// not root).
    pub fn is_multi(&self) -> bool {
        self.uids.len() > 1 || self.gids.len() > 1
    }

    /// Write the maps for process `pid`, which has just created its user namespace.
    ///
    /// Root writes the files directly. An unprivileged user with ranges goes through
    /// newuidmap/newgidmap, which check the ranges against /etc/subuid and /etc/subgid.
    /// An unprivileged user without ranges may map only its own ids, and must first deny
    /// setgroups(2) in the namespace (user_namespaces(7), "The /proc/pid/setgroups file")
    /// so that nobody inside can drop a supplementary group that guards a file.
    pub fn apply(&self, pid: i32, privileged: bool) -> Result<(), IdMapError> {
        self.start(pid, privileged)?.wait()
    }

    /// Like [`Self::apply`], but returns as soon as the setuid helpers are started (they
    /// take a couple of milliseconds, mostly loading their libraries), so that the caller
    /// can do other work meanwhile; [`PendingMaps::wait`] waits for them. The maps that
    /// need no helper are written before this returns.
    pub fn start(&self, pid: i32, privileged: bool) -> Result<PendingMaps, IdMapError> {
        if self.is_multi() && !privileged {
            // The two helpers are independent: run them side by side.
            let uid = spawn_helper("newuidmap", pid, &self.uids)?;
            let gid = match spawn_helper("newgidmap", pid, &self.gids) {
                Ok(gid) => gid,
                Err(e) => {
                    let _ = finish_helper("newuidmap", pid, uid);
                    return Err(e);
                }
            };
            return Ok(PendingMaps {
                pid,
                helpers: vec![("newuidmap", uid), ("newgidmap", gid)],
            });
        }
        if !privileged {
            write_proc(pid, "setgroups", "deny")?;
        }
        write_proc(pid, "uid_map", &render(&self.uids))?;
        write_proc(pid, "gid_map", &render(&self.gids))?;
        Ok(PendingMaps {
            pid,
            helpers: Vec::new(),
        })
    }
}

/// Maps being written by newuidmap/newgidmap (see [`IdMaps::start`]).
#[derive(Debug)]
pub struct PendingMaps {
    pid: i32,
    helpers: Vec<(&'static str, std::process::Child)>,
}

impl PendingMaps {
    /// Wait for the helpers; an error names the first that failed.
    pub fn wait(self) -> Result<(), IdMapError> {
        let mut result = Ok(());
        for (helper, child) in self.helpers {
            let r = finish_helper(helper, self.pid, child);
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

fn render(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.container, r.host, r.count))
        .collect()
}

fn write_proc(pid: i32, file: &str, content: &str) -> Result<(), IdMapError> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    fs::write(&path, content).map_err(|e| IdMapError::Write { path, source: e })
}

fn spawn_helper(
    helper: &'static str,
    pid: i32,
    ranges: &[IdRange],
) -> Result<std::process::Child, IdMapError> {
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for r in ranges {
        cmd.args([
            r.container.to_string(),
            r.host.to_string(),
            r.count.to_string(),
        ]);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| IdMapError::Spawn { helper, source: e })
}

fn finish_helper(
    helper: &'static str,
    pid: i32,
    child: std::process::Child,
) -> Result<(), IdMapError> {
    let out = child
        .wait_with_output()
        .map_err(|e| IdMapError::Spawn { helper, source: e })?;
    if !out.status.success() {
        return Err(IdMapError::Helper {
            helper,
            pid,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_by_name_or_id_and_skips_junk() {
        let text = "# comment\nalice:100000:65536\nbob:x:1\n1001:200000:1000\ncarol:300000:0\n";
        assert_eq!(
            parse_subid(text, Some("alice"), 1000),
            Some(SubRange {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(
            parse_subid(text, Some("dave"), 1001),
            Some(SubRange {
                start: 200000,
                count: 1000
            })
        );
        assert_eq!(parse_subid(text, Some("bob"), 5), None);
        assert_eq!(
            parse_subid(text, Some("carol"), 6),
            None,
            "empty ranges are ignored"
        );
    }

    #[test]
    fn mapping_puts_user_at_target_and_fills_around_it() {
        let m = mapping(
            1000,
            1234,
            Some(SubRange {
                start: 100000,
                count: 65536,
            }),
        );
        assert_eq!(
            m,
            vec![
                IdRange {
                    container: 0,
                    host: 100000,
                    count: 1000
                },
                IdRange {
                    container: 1000,
                    host: 1234,
                    count: 1
                },
                IdRange {
                    container: 1001,
                    host: 101000,
                    count: 64536
                },
            ]
        );
        let root = mapping(
            0,
            1234,
            Some(SubRange {
                start: 100000,
                count: 65536,
            }),
        );
        assert_eq!(
            root[0],
            IdRange {
                container: 0,
                host: 1234,
                count: 1
            }
        );
        assert_eq!(
            root[1],
            IdRange {
                container: 1,
                host: 100000,
                count: 65536
            }
        );
        let small = mapping(
            1000,
            1234,
            Some(SubRange {
                start: 100000,
                count: 10,
            }),
        );
        assert_eq!(
            small[0],
            IdRange {
                container: 990,
                host: 100000,
                count: 10
            }
        );
        assert_eq!(small.len(), 2);
        assert_eq!(
            mapping(1000, 1234, None),
            vec![IdRange {
                container: 1000,
                host: 1234,
                count: 1
            }]
        );
    }

    #[test]
    fn rendering_matches_proc_format() {
        let m = mapping(1000, 1234, None);
        assert_eq!(render(&m), "1000 1234 1\n");
    }
}
