//! Running a piece of host-side work as root of a sandbox-like user namespace: unpacking
//! image layers so that files get their real owners (mapped into the user's subordinate
//! ids), and removing such trees again, which the user could not do from outside because
//! the directories belong to subordinate ids.
//!
//! [`run_as_root`] runs one closure and waits for it. [`spawn_as_root`] starts a worker
//! that keeps running next to `ags` and takes its orders through a pipe ([`Orders`]), so
//! that, for example, layers can be unpacked while later layers are still downloading.
//! Both workers are fresh single-threaded processes forked from `ags`.
//!
//! A worker lives in its own session and keeps none of `ags`'s descriptors but its two
//! pipes: Ctrl-C in the terminal reaches `ags` only, and when `ags` exits for any reason,
//! SIGKILL included, the worker reads end-of-file from [`Orders`] (or sees
//! [`Orders::parent_gone`]) and can clean up after itself instead of being killed in the
//! middle of a write.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Pid, Uid, fork, pipe2, setresgid, setresuid, setsid};

use crate::holder::{Cleanup, Holder, keep_only};
use crate::idmap::IdMaps;

/// Errors of [`run_as_root`] and [`spawn_as_root`].
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    /// Creating the namespace failed.
    #[error("cannot create a user namespace")]
    Holder(#[source] crate::holder::HolderError),
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
///
/// Unlike a [`spawn_as_root`] worker, the child keeps `ags`'s descriptors and session:
/// `work` may write to files the caller opened (a layer being written, a result file),
/// and the caller waits for it anyway.
pub fn run_as_root<F>(maps: &IdMaps, privileged: bool, work: F) -> Result<(), UsernsError>
where
    F: FnOnce() -> Result<(), String>,
{
    spawn(maps, privileged, false, || Ok(()), |(), _orders| work())?.close()
}

/// The worker's end of the pipe from `ags`: fixed-size orders, and whether `ags` is still
/// there to give them.
#[derive(Debug)]
pub struct Orders(std::fs::File);

impl Orders {
    /// Read one order of exactly `buf.len()` bytes, blocking until it arrives. Fails with
    /// [`io::ErrorKind::UnexpectedEof`] when `ags` closed the pipe: it exited, was killed,
    /// or abandoned the work ([`RootWorker::close`]).
    pub fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.0.read_exact(buf)
    }

    /// Whether `ags` has closed its end of the pipe, without blocking: a long piece of work
    /// checks this now and then to stop early when nobody waits for it any more. Orders
    /// still unread do not matter; a pipe reports POLLHUP once no writer is left (poll(2)).
    pub fn parent_gone(&self) -> bool {
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => fds[0]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
            Err(_) => false,
        }
    }
}

impl From<std::fs::File> for Orders {
    /// Orders read from the read end of any pipe; [`spawn_as_root`] passes its worker one
    /// whose writer is [`RootWorker::send`], tests may run a worker's logic in-process.
    fn from(pipe: std::fs::File) -> Self {
        Self(pipe)
    }
}

/// A worker started by [`spawn_as_root`]. Dropping it closes the pipe and waits for the
/// worker to exit.
#[derive(Debug)]
pub struct RootWorker {
    /// None once reaped.
    pid: Option<Pid>,
    orders: Option<std::fs::File>,
    report: Option<std::fs::File>,
}

impl RootWorker {
    /// The worker's process id.
    pub fn pid(&self) -> Option<i32> {
        self.pid.map(Pid::as_raw)
    }

    /// Send an order. Fails (EPIPE) when the worker has exited already, for example
    /// because its work failed; [`RootWorker::wait`] then tells why.
    pub fn send(&mut self, order: &[u8]) -> io::Result<()> {
        match self.orders.as_mut() {
            Some(f) => f.write_all(order),
            None => Err(io::Error::from(io::ErrorKind::BrokenPipe)),
        }
    }

    /// Wait for the worker to finish its work and exit, and return its result. The pipe
    /// stays open while waiting, so the worker does not take the wait for an abandonment;
    /// it must therefore have been given every order it needs to finish.
    pub fn wait(mut self) -> Result<(), UsernsError> {
        self.reap(false)
    }

    /// Close the pipe (the worker reads end-of-file), then wait for it to exit and return
    /// its result.
    pub fn close(mut self) -> Result<(), UsernsError> {
        self.reap(true)
    }

    fn reap(&mut self, close_first: bool) -> Result<(), UsernsError> {
        let Some(child) = self.pid.take() else {
            return Ok(());
        };
        if close_first {
            self.orders = None;
        }
        // The report pipe reaches end-of-file when the worker exits: nobody else holds its
        // write end (the worker's own children drop it, see keep_only).
        let mut msg = String::new();
        if let Some(mut r) = self.report.take() {
            let _ = r.read_to_string(&mut msg);
        }
        let result = loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 0)) => break Ok(()),
                Ok(WaitStatus::Exited(_, _)) => break Err(UsernsError::Work(msg)),
                Ok(WaitStatus::Signaled(_, s, _)) => {
                    break Err(UsernsError::Work(format!("worker killed by {s}")));
                }
                Ok(_) | Err(nix::Error::EINTR) => continue,
                Err(source) => {
                    break Err(UsernsError::Sys {
                        what: "cannot wait for the worker",
                        source,
                    });
                }
            }
        };
        self.orders = None;
        result
    }
}

impl Drop for RootWorker {
    fn drop(&mut self) {
        let _ = self.reap(true);
    }
}

/// Start a worker: a child process that first runs `setup` as the invoking user, then
/// joins a new user namespace with `maps` as its root (like [`run_as_root`]) and runs
/// `work` with `setup`'s result and the [`Orders`] that [`RootWorker::send`] writes.
/// `work`'s error message (or `setup`'s) is passed back by [`RootWorker::wait`] or
/// [`RootWorker::close`]. Returns as soon as the child is forked; the namespace is set up
/// in the child, concurrently with whatever the caller does next.
///
/// The child keeps only its two pipes (stdio goes to /dev/null, so a reader of `ags`'s
/// output never waits for it) and starts a new session (setsid(2)), so that Ctrl-C in the
/// terminal stops `ags` but leaves the worker to notice the closed pipe and clean up.
pub fn spawn_as_root<T, S, F>(
    maps: &IdMaps,
    privileged: bool,
    setup: S,
    work: F,
) -> Result<RootWorker, UsernsError>
where
    S: FnOnce() -> Result<T, String>,
    F: FnOnce(T, Orders) -> Result<(), String>,
{
    spawn(maps, privileged, true, setup, work)
}

/// [`spawn_as_root`]; `detach`: keep only the two pipes and start a new session.
fn spawn<T, S, F>(
    maps: &IdMaps,
    privileged: bool,
    detach: bool,
    setup: S,
    work: F,
) -> Result<RootWorker, UsernsError>
where
    S: FnOnce() -> Result<T, String>,
    F: FnOnce(T, Orders) -> Result<(), String>,
{
    let sys = |what| move |source| UsernsError::Sys { what, source };
    // O_CLOEXEC: programs started later (newuidmap, credential helpers) must not hold
    // either end, or the end-of-file that ends a wait or signals an abandonment would
    // never come.
    let (report_r, report_w) =
        pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("cannot create a pipe"))?;
    let (orders_r, orders_w) =
        pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("cannot create a pipe"))?;
    // SAFETY: the child runs only our code, and glibc's malloc is fork-safe, so using the
    // allocator after fork in a process that had other threads is sound.
    match unsafe { fork() }.map_err(sys("cannot fork"))? {
        ForkResult::Child => {
            drop(report_r);
            drop(orders_w);
            if detach {
                keep_only(&[orders_r.as_raw_fd(), report_w.as_raw_fd()]);
                let _ = setsid();
            }
            let mut report = std::fs::File::from(report_w);
            let orders = Orders::from(std::fs::File::from(orders_r));
            let result = (|| -> Result<(), String> {
                let state = setup()?;
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
                let r = work(state, orders);
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
            drop(report_w);
            drop(orders_r);
            Ok(RootWorker {
                pid: Some(child),
                orders: Some(std::fs::File::from(orders_w)),
                report: Some(std::fs::File::from(report_r)),
            })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_see_the_parent_close_the_pipe() {
        let (r, w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let mut orders = Orders::from(std::fs::File::from(r));
        let mut w = std::fs::File::from(w);
        assert!(!orders.parent_gone());
        w.write_all(&[1, 2, 3, 4]).unwrap();
        assert!(!orders.parent_gone(), "pending data is not a hang-up");
        drop(w);
        assert!(
            orders.parent_gone(),
            "unread data does not hide the hang-up"
        );
        let mut buf = [0u8; 4];
        orders.read_exact(&mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3, 4]);
        let err = orders.read_exact(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
