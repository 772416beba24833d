//! The holder: a small process that owns the sandbox's user (and network) namespace and
//! tears the sandbox down if `ags` dies.
//!
//! Sequence: `ags` forks the holder; the holder unshares a user namespace and reports it;
//! `ags` starts the setuid helpers that write the id maps and, while they run, does other
//! work; meanwhile the holder unshares a network namespace (unless the network is the
//! host's), brings `lo` up (its capabilities over its own namespace do not depend on the
//! maps) and reports ready. Once the maps are written and the holder is ready, `pasta` can
//! attach to it, before any sandboxed code runs, so the network is up when the command
//! starts; `ags` joins the user namespace with setns(2) and calls libcontainer, whose
//! container joins the holder's network namespace by path. `ags` uses that path only
//! after the ready report: before it, `/proc/<holder>/ns/net` is still the host's.
//!
//! The holder then waits on a pipe whose only writer is `ags` and on a pidfd of `ags`.
//! When `ags` exits for any reason, SIGKILL included, one of them becomes readable and the
//! holder kills the container's init (which makes the kernel kill every process of its PID
//! namespace, pid_namespaces(7)) and whatever is left in the run's cgroups, stops pasta,
//! and removes the run's state directories. A clean run has already done all of that, so
//! the holder just exits.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, fork, pipe2};

use crate::idmap::{IdMapError, IdMaps, PendingMaps};

/// Errors starting or using the holder.
#[derive(Debug, thiserror::Error)]
pub enum HolderError {
    /// A system call failed.
    #[error("{what}")]
    Sys {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// The holder process reported a failure or died.
    #[error("the namespace holder failed: {0}")]
    Child(String),
    /// Writing the id maps failed.
    #[error("cannot map user ids into the sandbox")]
    IdMap(#[source] IdMapError),
    /// Talking to the holder failed.
    #[error("lost contact with the namespace holder")]
    Pipe(#[source] std::io::Error),
}

/// What the holder cleans up if `ags` disappears.
#[derive(Debug, Clone, Default)]
pub struct Cleanup {
    /// Directories to remove recursively (run dir, libcontainer state dir).
    pub dirs: Vec<PathBuf>,
    /// Cgroup directories to remove once empty.
    pub cgroups: Vec<PathBuf>,
    /// File holding pasta's pid, if pasta runs.
    pub pasta_pid_file: Option<PathBuf>,
    /// File libcontainer writes the container's init pid to as soon as the init exists,
    /// long before `ags` can report it: how the holder finds an init that `ags` did not
    /// live to report (see [`watch`]).
    pub init_pid_file: Option<PathBuf>,
}

/// A running holder.
#[derive(Debug)]
pub struct Holder {
    pid: Pid,
    ctl: Option<std::fs::File>,
    side: Option<std::fs::File>,
}

/// Work the holder does for `ags` once its namespaces are ready, in parallel with `ags`'s
/// own work (the holder is otherwise idle until the run ends): its result, or an error
/// message, is read back with [`Holder::side_result`]. It runs in the forked holder, outside
/// the sandbox's namespaces and with no capability over anything but them.
pub type SideJob = Box<dyn FnOnce() -> Result<Vec<u8>, String>>;

/// What the holder does in the background for `ags` while `ags` prepares the run.
#[derive(Default)]
pub struct Background {
    /// A job whose result `ags` reads with [`Holder::side_result`].
    pub job: Option<SideJob>,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("job", &self.job.is_some())
            .finish()
    }
}

/// A holder whose user namespace exists but whose id maps may still be being written and
/// whose network namespace may not be ready yet (see [`Holder::start`]).
#[derive(Debug)]
pub struct Starting {
    holder: Holder,
    from: std::fs::File,
    maps: PendingMaps,
}

impl Starting {
    /// The holder's pid.
    pub fn pid(&self) -> i32 {
        self.holder.pid()
    }

    /// Wait until the maps are written and the holder's namespaces are ready.
    pub fn finish(mut self) -> Result<Holder, HolderError> {
        self.maps.wait().map_err(HolderError::IdMap)?;
        self.holder.expect(&mut self.from, b'r')?;
        Ok(self.holder)
    }
}

impl Holder {
    /// Fork the holder, create its namespaces and map ids. Must be called while the process
    /// is single-threaded.
    pub fn spawn(
        maps: &IdMaps,
        privileged: bool,
        own_netns: bool,
        cleanup: Cleanup,
    ) -> Result<Self, HolderError> {
        Self::start(maps, privileged, own_netns, cleanup, Background::default())?.finish()
    }

    /// Fork the holder and start mapping ids as soon as its user namespace exists; return
    /// without waiting for the setuid helpers or the network namespace, so the caller can
    /// do other work meanwhile and then call [`Starting::finish`]. Must be called while the
    /// process is single-threaded.
    pub fn start(
        maps: &IdMaps,
        privileged: bool,
        own_netns: bool,
        cleanup: Cleanup,
        background: Background,
    ) -> Result<Starting, HolderError> {
        let Background { job: side_job } = background;
        let sys = |what| move |source| HolderError::Sys { what, source };
        // O_CLOEXEC matters: a program ags starts later (pasta daemonizes and stays) must not
        // inherit the control pipe, or the holder would never see end-of-file when ags dies.
        let (to_child_r, to_child_w) =
            pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("cannot create a pipe"))?;
        let (from_child_r, from_child_w) =
            pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("cannot create a pipe"))?;
        let parent = std::process::id() as i32;
        let side_pipe = match side_job {
            Some(_) => {
                Some(pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("cannot create a pipe"))?)
            }
            None => None,
        };
        // SAFETY: the caller guarantees a single-threaded process, so the child may run
        // arbitrary code after fork(2).
        match unsafe { fork() }.map_err(sys("cannot fork the namespace holder"))? {
            ForkResult::Child => {
                drop(to_child_w);
                drop(from_child_r);
                let side = side_pipe.zip(side_job).map(|((r, w), job)| {
                    drop(r);
                    (w, job)
                });
                let code = holder_main(to_child_r, from_child_w, side, own_netns, parent, &cleanup);
                // SAFETY: _exit(2) skips atexit handlers and destructors that belong to the
                // parent's state; it cannot fail.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                drop(to_child_r);
                drop(from_child_w);
                let mut holder = Holder {
                    pid: child,
                    ctl: Some(std::fs::File::from(to_child_w)),
                    side: side_pipe.map(|(r, _w)| std::fs::File::from(r)),
                };
                let mut from = std::fs::File::from(from_child_r);
                holder.expect(&mut from, b'u')?;
                let maps = maps
                    .start(child.as_raw(), privileged)
                    .map_err(HolderError::IdMap)?;
                Ok(Starting { holder, from, maps })
            }
        }
    }

    /// Read one report from the holder: `want`, or `e` and a message up to end-of-file.
    /// One byte at a time: the next report may already be in the pipe.
    fn expect(&mut self, from: &mut std::fs::File, want: u8) -> Result<(), HolderError> {
        let mut tag = [0u8; 1];
        let n = from.read(&mut tag).map_err(HolderError::Pipe)?;
        match n {
            0 => {
                let _ = waitpid(self.pid, None);
                Err(HolderError::Child("it exited early".into()))
            }
            _ if tag[0] == want => Ok(()),
            _ => {
                let mut msg = Vec::new();
                let _ = from.take(4096).read_to_end(&mut msg);
                let _ = waitpid(self.pid, None);
                Err(HolderError::Child(
                    String::from_utf8_lossy(&msg).into_owned(),
                ))
            }
        }
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), HolderError> {
        self.ctl
            .as_mut()
            .ok_or(HolderError::Child("already finished".into()))?
            .write_all(msg)
            .map_err(HolderError::Pipe)
    }

    /// Wait for the result of the side job given to [`Holder::start`].
    pub fn side_result(&mut self) -> Result<Vec<u8>, HolderError> {
        let mut side = self
            .side
            .take()
            .ok_or(HolderError::Child("no side job was given".into()))?;
        let mut out = Vec::new();
        side.read_to_end(&mut out).map_err(HolderError::Pipe)?;
        match out.split_first() {
            Some((b'o', result)) => Ok(result.to_vec()),
            Some((b'e', msg)) => Err(HolderError::Child(
                String::from_utf8_lossy(msg).into_owned(),
            )),
            _ => Err(HolderError::Child(
                "it exited before finishing its side job".into(),
            )),
        }
    }

    /// The holder's pid (what pasta attaches to).
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Path of the network namespace the sandbox joins.
    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid))
    }

    /// Tell the holder which process to kill if `ags` dies.
    pub fn watch(&mut self, init_pid: i32) -> Result<(), HolderError> {
        let mut msg = vec![b'p'];
        msg.extend_from_slice(&init_pid.to_le_bytes());
        self.send(&msg)
    }

    /// Join the holder's user namespace (setns(2)); the calling process must be
    /// single-threaded. Afterwards it has a full capability set over that namespace only.
    pub fn join_userns(&self) -> Result<(), HolderError> {
        let path = format!("/proc/{}/ns/user", self.pid);
        let f = fs::File::open(&path).map_err(HolderError::Pipe)?;
        setns(f, CloneFlags::CLONE_NEWUSER).map_err(|source| HolderError::Sys {
            what: "cannot join the sandbox's user namespace",
            source,
        })
    }

    /// The sandbox has exited and been reaped: hand the rest of the teardown (pasta,
    /// cgroups, state directories) to the holder and return at once. The holder lives in
    /// the host's mount namespace, where the overlay mount point of the run directory is
    /// a plain empty directory, so it can remove the run directory without unmounting
    /// anything; and ags's exit status reaches its caller without waiting for it.
    pub fn detach_cleanup(mut self) {
        let _ = self.send(b"c");
        self.ctl = None;
    }

    /// The run is over and cleaned up: let the holder exit and reap it.
    pub fn finish(mut self) {
        let _ = self.send(b"q");
        self.ctl = None;
        let _ = waitpid(self.pid, None);
    }
}

/// Bring the loopback interface up with SIOCSIFFLAGS (netdevice(7)): a new network
/// namespace starts with `lo` down.
fn loopback_up() -> Result<(), nix::Error> {
    // SAFETY: plain socket(2)/ioctl(2)/close(2) calls on a descriptor we own, with an
    // ifreq that is zero-initialised and holds a NUL-terminated name.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(nix::Error::last());
        }
        let sock = OwnedFd::from_raw_fd(fd);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(nix::Error::last());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(nix::Error::last());
        }
    }
    Ok(())
}

/// Keep only the holder's own pipes: stdio goes to /dev/null and every other descriptor
/// inherited from ags is closed. Otherwise the holder would keep ags's locks (a killed run's
/// staged home could not be cleaned while it runs) and ags's stdout (a reader of
/// `ags run ... |` would wait for the holder). Also used by [`crate::userns`]'s workers.
pub(crate) fn keep_only(keep: &[RawFd]) {
    if let Ok(null) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2(2) onto the standard descriptors of this single-threaded child.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let open: Vec<RawFd> = fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: closing descriptors this child inherited and will not use; the
            // read_dir handle above is already closed.
            unsafe { libc::close(fd) };
        }
    }
}

fn holder_main(
    ctl: OwnedFd,
    report: OwnedFd,
    side: Option<(OwnedFd, SideJob)>,
    own_netns: bool,
    parent: i32,
    cleanup: &Cleanup,
) -> i32 {
    let keep: Vec<RawFd> = [ctl.as_raw_fd(), report.as_raw_fd()]
        .into_iter()
        .chain(side.as_ref().map(|(fd, _)| fd.as_raw_fd()))
        .collect();
    let mut report = std::fs::File::from(report);
    let mut ctl = std::fs::File::from(ctl);
    let fail = |report: &mut std::fs::File, msg: String| {
        let _ = report.write_all(format!("e{msg}").as_bytes());
        1
    };
    // The user namespace first: ags waits for it to start the id map helpers.
    if let Err(e) = unshare(CloneFlags::CLONE_NEWUSER) {
        return fail(&mut report, format!("unshare(CLONE_NEWUSER) failed: {e}"));
    }
    if report.write_all(b"u").is_err() {
        return 1;
    }
    keep_only(&keep);
    // A handle on ags that becomes readable when ags exits (after keep_only, which would
    // close it). Opened after fork, so ags may already be gone: then the holder has been
    // reparented, and watch cleans up at once.
    let ags = Pidfd::open(parent);
    let ags_gone = nix::unistd::getppid().as_raw() != parent;
    // Leave the terminal's process group alone: Ctrl-C in the terminal must reach ags,
    // which decides what to forward, not kill the holder behind its back.
    let _ = nix::unistd::setsid();
    // The network namespace is created while the helpers run: the holder has every
    // capability over the user namespace it just made, maps or not (user_namespaces(7),
    // "Capabilities"), and the new network namespace belongs to that user namespace.
    if own_netns {
        if let Err(e) = unshare(CloneFlags::CLONE_NEWNET) {
            return fail(&mut report, format!("unshare(CLONE_NEWNET) failed: {e}"));
        }
        if let Err(e) = loopback_up() {
            return fail(&mut report, format!("cannot bring up lo: {e}"));
        }
    }
    if report.write_all(b"r").is_err() {
        return 1;
    }
    drop(report);
    if let Some((fd, job)) = side {
        let out = match job() {
            Ok(mut bytes) => {
                bytes.insert(0, b'o');
                bytes
            }
            Err(msg) => format!("e{msg}").into_bytes(),
        };
        // ags reads this to end-of-file only when it needs it; if ags is gone, the write
        // fails with EPIPE (SIGPIPE is ignored, as in every Rust program) and the watch
        // below cleans up.
        let _ = std::fs::File::from(fd).write_all(&out);
    }
    watch(&mut ctl, ags.as_ref(), ags_gone, cleanup)
}

/// Wait for `ags` to report the init, to say the run is over, or to die, then clean up.
///
/// `ags` dying is seen two ways: end-of-file on the control pipe, and `ags`'s pidfd
/// becoming readable. The second is needed because the container's init is forked from
/// `ags` and keeps a copy of the pipe's write end until it executes the command: if `ags`
/// is killed after libcontainer created the init but before it started it, the pipe never
/// reaches end-of-file and the init waits for a start signal forever. For the same window
/// the init's pid is taken from the pid file libcontainer writes as soon as the init
/// exists, when `ags` did not report it.
fn watch(ctl: &mut std::fs::File, ags: Option<&Pidfd>, ags_gone: bool, cleanup: &Cleanup) -> i32 {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut init: Option<Pidfd> = None;
    let mut goodbye = false;
    // Without a pidfd of ags (Linux < 5.3) only the pipe tells; if ags was gone before the
    // holder could open one, there is nothing to wait for.
    if !ags_gone {
        loop {
            if let Some(ags) = ags {
                let mut fds = [
                    PollFd::new(ctl.as_fd(), PollFlags::POLLIN),
                    PollFd::new(ags.0.as_fd(), PollFlags::POLLIN),
                ];
                match poll(&mut fds, PollTimeout::NONE) {
                    Err(nix::Error::EINTR) => continue,
                    Err(_) => break,
                    Ok(_) => {}
                }
                let ready = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
                if !ready(0) {
                    if ready(1) {
                        break;
                    }
                    continue;
                }
            }
            let mut tag = [0u8; 1];
            match ctl.read(&mut tag) {
                Ok(1) if tag[0] == b'p' => {
                    let mut pid = [0u8; 4];
                    if ctl.read_exact(&mut pid).is_ok() {
                        init = Pidfd::open(i32::from_le_bytes(pid));
                    }
                }
                Ok(1) if tag[0] == b'q' => return 0,
                // Clean up as if ags had died; ags has already reaped init.
                Ok(1) if tag[0] == b'c' => {
                    goodbye = true;
                    break;
                }
                Ok(1) => {}
                // End of file or error: ags is gone without saying goodbye.
                _ => break,
            }
        }
    }
    // Only when ags died: after a goodbye the init is reaped and its pid may be reused.
    let init = init.or_else(|| {
        cleanup
            .init_pid_file
            .as_deref()
            .filter(|_| !goodbye)
            .and_then(pid_namespace_init_from_file)
    });
    if let Some(init) = &init {
        init.kill();
    }
    if let Some(pid) = cleanup
        .pasta_pid_file
        .as_ref()
        .and_then(|f| fs::read_to_string(f).ok())
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    remove_cgroups(&cleanup.cgroups);
    for d in &cleanup.dirs {
        let _ = fs::remove_dir_all(d);
    }
    if !goodbye {
        // libcontainer's intermediate process, orphaned mid-start, may still create the
        // sandbox's cgroups before it notices that ags is gone and exits.
        std::thread::sleep(Duration::from_millis(200));
        remove_cgroups(&cleanup.cgroups);
    }
    0
}

/// Remove a sandbox's cgroup directories, killing what is still in them (rmdir(2) on a
/// cgroup with members fails with EBUSY). Deepest first.
///
/// Every process of a sandbox with cgroups of its own is in them, so killing the members
/// (again at each retry, in case one forked meanwhile) also catches what nobody could
/// report: a container init created just before `ags` was killed, waiting for a start
/// that will never come.
pub fn remove_cgroups(dirs: &[PathBuf]) {
    let deadline = Instant::now() + Duration::from_secs(2);
    for d in dirs {
        while d.exists() {
            match fs::remove_dir(d) {
                Ok(()) => break,
                Err(_) if Instant::now() < deadline => {
                    kill_members(d);
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(_) => break,
            }
        }
    }
}

/// SIGKILL every process in the cgroup `dir`.
///
/// A pid read from `cgroup.procs` may be reused by an unrelated process before the pidfd
/// is opened, so the pid is looked up in `cgroup.procs` again after opening it: a pid
/// names one living process at a time, so if it is still listed, the pidfd holds that
/// member (or a process that has exited, which the signal no longer reaches).
pub(crate) fn kill_members(dir: &std::path::Path) {
    let procs = dir.join("cgroup.procs");
    let members = || -> Vec<i32> {
        fs::read_to_string(&procs)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    // Never the caller: ags may still be in a sandbox's cgroup when its run fails.
    let me = std::process::id() as i32;
    let opened: Vec<(i32, Pidfd)> = members()
        .into_iter()
        .filter(|pid| *pid != me)
        .filter_map(|pid| Some((pid, Pidfd::open(pid)?)))
        .collect();
    if opened.is_empty() {
        return;
    }
    let still = members();
    for (pid, fd) in &opened {
        if still.contains(pid) {
            fd.kill();
        }
    }
}

/// A pidfd for the process whose pid `file` holds, if that process is the first process
/// of a pid namespace (its last NSpid is 1, proc(5)), as the container's init is: checked
/// after opening the pidfd, so a pid reused by an unrelated process is not killed.
fn pid_namespace_init_from_file(file: &std::path::Path) -> Option<Pidfd> {
    let pid: i32 = fs::read_to_string(file).ok()?.trim().parse().ok()?;
    let fd = Pidfd::open(pid)?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let nspid: Vec<&str> = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .collect();
    (nspid.len() >= 2 && nspid.last() == Some(&"1")).then_some(fd)
}

/// A pidfd (pidfd_open(2)): a handle on a process that cannot be confused with a later
/// process reusing the pid.
#[derive(Debug)]
pub struct Pidfd(OwnedFd);

impl Pidfd {
    /// Open a pidfd for `pid`, if it still exists.
    pub fn open(pid: i32) -> Option<Self> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return None;
        }
        // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
        Some(Self(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
    }

    /// Send SIGKILL through the pidfd.
    pub fn kill(&self) {
        // SAFETY: pidfd_send_signal with a valid pidfd, a signal number and no siginfo.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
}
