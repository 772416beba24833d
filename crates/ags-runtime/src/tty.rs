//! Terminal handling: the console socket that receives the sandbox's pty master, raw mode
//! on the host terminal with guaranteed restoration, and window-size propagation.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use nix::sys::termios::{self, SetArg, Termios};

/// Errors around the terminal.
#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    /// The console socket could not be created.
    #[error("cannot create console socket {path}")]
    Socket {
        /// Its path.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Receiving the pty master failed.
    #[error("did not receive the sandbox terminal")]
    Receive(#[source] std::io::Error),
    /// Reading or changing terminal attributes failed.
    #[error("cannot change terminal attributes")]
    Termios(#[source] nix::Error),
}

/// Listen on `path` for libcontainer's console socket connection.
pub fn console_listener(path: &Path) -> Result<UnixListener, TtyError> {
    UnixListener::bind(path).map_err(|e| TtyError::Socket {
        path: path.to_path_buf(),
        source: e,
    })
}

/// Accept the connection and receive the pty master fd sent with SCM_RIGHTS.
pub fn receive_master(listener: &UnixListener) -> Result<OwnedFd, TtyError> {
    let (stream, _) = listener.accept().map_err(TtyError::Receive)?;
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| TtyError::Receive(e.into()))?;
    for c in msg.cmsgs().map_err(|e| TtyError::Receive(e.into()))? {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(fd) = fds.first()
        {
            // SAFETY: the kernel installed this descriptor in our table for us (SCM_RIGHTS).
            return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
        }
    }
    Err(TtyError::Receive(std::io::Error::other(
        "no descriptor in the message",
    )))
}

/// Puts the host terminal in raw mode and restores it when dropped, on every exit path
/// that unwinds or returns. (A SIGKILL leaves it raw; nothing can help that.)
#[derive(Debug)]
pub struct RawMode {
    fd: RawFd,
    saved: Termios,
}

impl RawMode {
    /// Enter raw mode on `fd`.
    pub fn enter(fd: BorrowedFd<'_>) -> Result<Self, TtyError> {
        let saved = termios::tcgetattr(fd).map_err(TtyError::Termios)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).map_err(TtyError::Termios)?;
        Ok(Self {
            fd: fd.as_raw_fd(),
            saved,
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the descriptor is one of our standard streams, open for our lifetime.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(fd, SetArg::TCSAFLUSH, &self.saved);
    }
}

/// Copy the window size of `from` (the host terminal) to `to` (the sandbox's pty), which
/// sends SIGWINCH to the sandbox's foreground process group (tty_ioctl(4)).
pub fn copy_winsize(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    let mut ws: libc::winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read/write a winsize struct we own.
    unsafe {
        if libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Whether `fd` is a terminal.
pub fn is_tty(fd: impl AsFd) -> bool {
    nix::unistd::isatty(fd.as_fd().as_raw_fd()).unwrap_or(false)
}
