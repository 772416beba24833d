//! Harness for the end-to-end tests: finds the built `ags`, runs it as the unprivileged
//! test user when the suite runs as root (ci/provision.sh creates that user), and builds a
//! busybox rootfs with a static probe program once per test binary.
//!
//! Environment:
//! - `AGS_BIN`: the ags binary (default: `target/debug/ags` of this workspace).
//! - `/run/ags-ci.env` (written by ci/provision.sh): `AGS_TEST_USER`, `AGS_TEST_UID`, ...
//!
//! ```no_run
//! let out = ags_e2e::ags(&["run", "--rootfs", ags_e2e::busybox_rootfs().to_str().unwrap(), "--", "true"]).output().unwrap();
//! assert!(out.status.success());
//! ```

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// The ags binary under test.
pub fn ags_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("AGS_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace().join("target"), PathBuf::from);
    target.join("debug/ags")
}

/// The user ags runs as.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// Login name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Home directory.
    pub home: PathBuf,
    /// XDG_RUNTIME_DIR.
    pub runtime_dir: PathBuf,
    /// Whether the suite runs as root and switches to this user.
    pub switch: bool,
}

/// The test user: from /run/ags-ci.env when running as root, else the current user.
pub fn user() -> &'static TestUser {
    static USER: OnceLock<TestUser> = OnceLock::new();
    USER.get_or_init(|| {
        // SAFETY: geteuid(2) cannot fail.
        let euid = unsafe { libc::geteuid() };
        if euid == 0 {
            let env = ci_env();
            let get = |k: &str| {
                env.get(k).cloned().unwrap_or_else(|| {
                    panic!("{k} missing from /run/ags-ci.env: run ci/provision.sh first")
                })
            };
            TestUser {
                name: get("AGS_TEST_USER"),
                uid: get("AGS_TEST_UID").parse().expect("uid"),
                gid: get("AGS_TEST_GID").parse().expect("gid"),
                home: get("AGS_TEST_HOME").into(),
                runtime_dir: get("AGS_TEST_RUNTIME_DIR").into(),
                switch: true,
            }
        } else {
            // SAFETY: getegid(2) cannot fail.
            let gid = unsafe { libc::getegid() };
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/".into());
            TestUser {
                name: std::env::var("USER").unwrap_or_default(),
                uid: euid,
                gid,
                home,
                runtime_dir: std::env::var_os("XDG_RUNTIME_DIR")
                    .map_or_else(|| format!("/run/user/{euid}").into(), PathBuf::from),
                switch: false,
            }
        }
    })
}

/// Whether the suite runs as root (and can do root-only setup such as moving a process out
/// of the delegated cgroup).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn ci_env() -> HashMap<String, String> {
    let text = std::fs::read_to_string("/run/ags-ci.env").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

/// A command that runs `program args` as the test user with a clean environment.
pub fn as_user(program: &Path, args: &[&str]) -> Command {
    let u = user();
    let mut cmd = if u.switch {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            &u.uid.to_string(),
            "--regid",
            &u.gid.to_string(),
            "--init-groups",
            "--",
        ]);
        c.arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args);
    cmd.env_clear()
        .env("HOME", &u.home)
        .env("XDG_RUNTIME_DIR", &u.runtime_dir)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("LANG", "C.UTF-8");
    if let Some(log) = std::env::var_os("AGS_LOG") {
        cmd.env("AGS_LOG", log);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// `ags ARGS...` as the test user.
pub fn ags(args: &[&str]) -> Command {
    as_user(&ags_bin(), args)
}

/// Run to completion with a timeout; panics on timeout (the sandbox must never hang).
/// stdout and stderr are read while the command runs: a command with more output than a
/// pipe holds (a build's log) would otherwise block on a full pipe.
pub fn output_within(mut cmd: Command, limit: Duration) -> Output {
    use std::io::Read;
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > limit {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    };
    assert!(
        !timed_out,
        "timed out after {limit:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `ags run --rootfs <busybox> EXTRA... -- CMD...` as the test user, not yet started.
pub fn busybox_command(extra: &[&str], cmd: &[&str]) -> Command {
    let rootfs = busybox_rootfs();
    let mut args = vec!["run", "--rootfs", rootfs.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(cmd);
    ags(&args)
}

/// Run `ags run --rootfs <busybox> EXTRA... -- CMD...` and return the output.
pub fn run_in_busybox(extra: &[&str], cmd: &[&str]) -> Output {
    output_within(busybox_command(extra, cmd), Duration::from_secs(60))
}

/// Assert that `ags` succeeded (showing its output when not) and return its stdout.
pub fn ok(out: impl std::borrow::Borrow<Output>) -> String {
    let out = out.borrow();
    assert!(
        out.status.success(),
        "ags failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A temp dir the test user owns.
pub fn user_tempdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("ags-e2e-")
        .tempdir_in(shared_tmp())
        .expect("tempdir");
    chown(d.path());
    d
}

/// chown a path to the test user (when running as root).
pub fn chown(p: &Path) {
    let u = user();
    if u.switch {
        std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid)).expect("chown");
    }
}

fn shared_tmp() -> PathBuf {
    let p = PathBuf::from("/tmp/ags-e2e");
    std::fs::create_dir_all(&p).expect("mkdir /tmp/ags-e2e");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    p
}

/// A busybox rootfs (ci/mk-busybox-rootfs.sh) with `/bin/probe` (tests/support/probe.c
/// built statically), readable by everyone, built once per test binary.
pub fn busybox_rootfs() -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = shared_tmp().join(format!("busybox-{}", std::process::id()));
        let status = Command::new("bash")
            .arg(workspace().join("ci/mk-busybox-rootfs.sh"))
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .expect("mk-busybox-rootfs.sh");
        assert!(status.success(), "mk-busybox-rootfs.sh failed");
        let probe = dir.join("bin/probe");
        let status = Command::new("gcc")
            .args(["-static", "-O1", "-o"])
            .arg(&probe)
            .arg(workspace().join("tests/support/probe.c"))
            .status()
            .expect("gcc");
        assert!(status.success(), "building the probe failed");
        std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        // The rootfs belongs to the test user, as one a user makes for `ags run --rootfs`
        // would: files of an owner outside the sandbox's user namespace cannot be given
        // new mount points, even in the overlay's upper layer.
        let u = user();
        let status = Command::new("chown")
            .args(["-R", &format!("{}:{}", u.uid, u.gid)])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(status.success());
        dir
    })
    .clone()
}

/// Processes on the host whose command line contains `needle`.
pub fn host_processes(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if let Ok(raw) = std::fs::read(e.path().join("cmdline")) {
            let argv0 = raw.split(|b| *b == 0).next().unwrap_or_default();
            let base =
                String::from_utf8_lossy(argv0.rsplit(|b| *b == b'/').next().unwrap_or_default())
                    .into_owned();
            // ags (and its holder, a fork of it) and setpriv carry the sandbox's command
            // line in their own arguments; only the sandbox's processes count.
            if base == "ags" || base == "setpriv" || base == "timeout" {
                continue;
            }
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmd.contains(needle) {
                out.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

/// Wait until `f` holds, up to `limit`.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// A registry started with ci/registry.sh, stopped on drop.
#[derive(Debug)]
pub struct Registry {
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The test CA (tls modes), readable by the test user.
    pub ca: Option<PathBuf>,
}

impl Registry {
    /// Start a registry in `mode` (plain, tls, htpasswd, tls-htpasswd).
    pub fn start(mode: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ags-reg-")
            .tempdir()
            .unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let out = Command::new("bash")
            .arg(workspace().join("ci/registry.sh"))
            .args(["start", mode, &port.to_string()])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "registry: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(dir.path().join("registry.env")).unwrap();
        let ca = env
            .lines()
            .find_map(|l| l.strip_prefix("REGISTRY_CA="))
            .map(|v| v.trim_matches('"').to_owned())
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        if let Some(ca) = &ca {
            // The test user reads the CA through the config file.
            let copy = shared_dir().join(format!("ca-{port}.pem"));
            std::fs::copy(ca, &copy).unwrap();
            chown(&copy);
            return Self {
                dir,
                addr: format!("127.0.0.1:{port}"),
                ca: Some(copy),
            };
        }
        Self {
            dir,
            addr: format!("127.0.0.1:{port}"),
            ca,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(workspace().join("ci/registry.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

/// A directory every test user can read.
pub fn shared_dir() -> PathBuf {
    shared_tmp()
}

/// Push an image with `ags-testimage` (pass `env!("CARGO_BIN_EXE_ags-testimage")`);
/// returns the digest it printed.
pub fn push_image(testimage: &str, reg: &Registry, repo_tag: &str, args: &[&str]) -> String {
    let (repo, tag) = repo_tag.split_once(':').expect("repo:tag");
    let mut cmd = Command::new(testimage);
    cmd.args([
        "push",
        "--registry",
        &reg.addr,
        "--repo",
        repo,
        "--tag",
        tag,
    ]);
    match &reg.ca {
        Some(ca) => {
            cmd.arg("--ca").arg(ca);
        }
        None => {
            cmd.arg("--insecure");
        }
    }
    cmd.args(args);
    let out = cmd.output().expect("ags-testimage");
    assert!(
        out.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
