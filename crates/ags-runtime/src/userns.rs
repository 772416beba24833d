//! Running a piece of host-side work as root of a sandbox-like user namespace: unpacking
//! image layers so that files get their real owners (mapped into the user's subordinate
//! ids), and removing such trees again, which the user could not do from outside because
//! the directories belong to subordinate ids.

use std::io::{Read, Write};

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Uid, fork, pipe2, setresgid, setresuid};

use crate::holder::{Cleanup, Holder, HolderError};
use crate::idmap::IdMaps;

/// Errors of [`run_as_root`].
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    /// Creating the namespace failed.
    #[error("cannot create a user namespace")]
    Holder(#[source] HolderError),
    /// A system call failed.
    #[error("{what}")]
    Sys {
        /// The step.
        what: &'static str,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// The work itself failed, with its message.
    #[error("{0}")]
    Work(String),
}

/// Run `work` in a child process that has joined a new user namespace with `maps` and
/// switched to the namespace's root (uid 0, when mapped) with a full capability set over
/// that namespace only. The child is a fresh single-threaded process, so this is safe to
/// call from a multi-threaded program. `work`'s error message is passed back.
pub fn run_as_root<F>(maps: &IdMaps, privileged: bool, work: F) -> Result<(), UsernsError>
where
    F: FnOnce() -> Result<(), String>,
{
    let (r, w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|source| UsernsError::Sys {
        what: "cannot create a pipe",
        source,
    })?;
    // SAFETY: the child runs only our code, and glibc's malloc is fork-safe, so using the
    // allocator after fork in a process that had other threads is sound.
    match unsafe { fork() }.map_err(|source| UsernsError::Sys {
        what: "cannot fork",
        source,
    })? {
        ForkResult::Child => {
            drop(r);
            let mut report = std::fs::File::from(w);
            let result = (|| -> Result<(), String> {
                let holder = Holder::spawn(maps, privileged, false, Cleanup::default())
                    .map_err(|e| error_chain(&e))?;
                holder.join_userns().map_err(|e| error_chain(&e))?;
                if maps.uids.iter().any(|m| m.container == 0)
                    && maps.gids.iter().any(|m| m.container == 0)
                {
                    setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
                        .map_err(|e| format!("setresgid: {e}"))?;
                    setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
                        .map_err(|e| format!("setresuid: {e}"))?;
                }
                let r = work();
                holder.finish();
                r
            })();
            let code = match result {
                Ok(()) => 0,
                Err(msg) => {
                    let _ = report.write_all(msg.as_bytes());
                    1
                }
            };
            drop(report);
            // SAFETY: _exit(2) skips the parent's atexit handlers and destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            let mut msg = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut msg);
            loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, 0)) => return Ok(()),
                    Ok(WaitStatus::Exited(_, _)) => return Err(UsernsError::Work(msg)),
                    Ok(WaitStatus::Signaled(_, s, _)) => {
                        return Err(UsernsError::Work(format!("worker killed by {s}")));
                    }
                    Ok(_) | Err(nix::Error::EINTR) => continue,
                    Err(source) => {
                        return Err(UsernsError::Sys {
                            what: "cannot wait for the worker",
                            source,
                        });
                    }
                }
            }
        }
    }
}

/// Render an error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
