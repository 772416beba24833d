//! Streaming a `RUN` step's output with a step prefix while keeping its last lines.
//!
//! The sandbox inherits ags's standard descriptors, so for the duration of a step they are
//! pointed at a pipe. The reader is a forked process, not a thread: starting a sandbox
//! joins a user namespace, which setns(2) refuses to a multi-threaded process. It copies
//! each line to the real stderr with the prefix and keeps the raw output in a log file the
//! builder reads when the step fails.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, dup, dup2, fork, pipe2};

/// Standard descriptors redirected into a prefixing reader until dropped.
pub struct Prefixed {
    saved: Vec<(RawFd, OwnedFd)>,
    reader: Option<Pid>,
}

impl Prefixed {
    /// Points fds 1 and 2 at a pipe read by a child that writes `prefix` + line to the
    /// current stderr and the raw bytes to `log`; fd 0 becomes /dev/null.
    pub fn start(prefix: &str, log: &Path) -> std::io::Result<Self> {
        let log_file = File::create(log)?;
        let (r, w) = pipe2(OFlag::O_CLOEXEC)?;
        let err = dup(2)?;
        // SAFETY: `err` is a fresh descriptor we own.
        let err = unsafe { OwnedFd::from_raw_fd(err) };
        // SAFETY: the child only reads a pipe and writes two files, then _exit(2)s.
        match unsafe { fork() }? {
            ForkResult::Child => {
                drop(w);
                let mut out = File::from(err);
                let mut log_file = log_file;
                let mut reader = BufReader::new(File::from(r));
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let _ = log_file.write_all(&line);
                            let mut o = Vec::with_capacity(prefix.len() + line.len() + 1);
                            o.extend_from_slice(prefix.as_bytes());
                            o.extend_from_slice(&line);
                            if !o.ends_with(b"\n") {
                                o.push(b'\n');
                            }
                            let _ = out.write_all(&o);
                        }
                    }
                }
                // SAFETY: _exit(2) skips the parent's destructors and atexit handlers.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Parent { child } => {
                drop(r);
                drop(log_file);
                let mut saved = Vec::new();
                let null = File::open("/dev/null")?;
                for (fd, src) in [
                    (0, null.as_raw_fd()),
                    (1, w.as_raw_fd()),
                    (2, w.as_raw_fd()),
                ] {
                    // SAFETY: dup returns a new descriptor we then own.
                    let copy = unsafe { OwnedFd::from_raw_fd(dup(fd)?) };
                    nix::fcntl::fcntl(
                        copy.as_raw_fd(),
                        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
                    )?;
                    dup2(src, fd)?;
                    saved.push((fd, copy));
                }
                drop(err);
                Ok(Prefixed {
                    saved,
                    reader: Some(child),
                })
            }
        }
    }

    /// Restores the descriptors and waits until the reader has written everything.
    pub fn finish(mut self) {
        self.restore();
    }

    fn restore(&mut self) {
        for (fd, copy) in self.saved.drain(..) {
            let _ = dup2(copy.as_raw_fd(), fd);
        }
        if let Some(pid) = self.reader.take() {
            let _ = waitpid(pid, None);
        }
    }
}

impl Drop for Prefixed {
    fn drop(&mut self) {
        self.restore();
    }
}

/// The last `n` lines of a log file.
pub fn tail(log: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect()
}
