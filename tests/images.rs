//! End-to-end tests of `ags pull`, `ags run IMAGE`, `ags images`, `ags rmi`, `ags gc`,
//! `ags login`/`logout`, against Debian's docker-registry on 127.0.0.1, with images built
//! and pushed by `ags-testimage` (no container engine involved). ags runs as the
//! unprivileged test user.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ags_e2e::*;

fn push(reg: &Registry, repo_tag: &str, args: &[&str]) -> String {
    push_image(env!("CARGO_BIN_EXE_ags-testimage"), reg, repo_tag, args)
}

/// A private store + config for one test, owned by the test user.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new(reg: &Registry, extra_toml: &str) -> Self {
        Self::for_addr(&reg.addr, reg.ca.as_deref(), extra_toml)
    }

    fn for_addr(addr: &str, ca: Option<&std::path::Path>, extra_toml: &str) -> Self {
        let dir = user_tempdir();
        let mut cfg = format!("[registries.hosts.\"{addr}\"]\n");
        match ca {
            Some(ca) => cfg.push_str(&format!("ca_files = [\"{}\"]\n", ca.display())),
            None => cfg.push_str("insecure = true\n"),
        }
        cfg.push_str(extra_toml);
        std::fs::write(dir.path().join("config.toml"), cfg).unwrap();
        chown(&dir.path().join("config.toml"));
        Self { dir }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let store = self.store();
        let config = self.dir.path().join("config.toml");
        let mut all = vec![
            "--store",
            store.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        ags(&all)
    }

    fn run(&self, args: &[&str]) -> Output {
        output_within(self.cmd(args), Duration::from_secs(120))
    }
}

/// `ags login ADDR -u agsuser --password-stdin` with `password` on stdin.
fn login(env: &Env, addr: &str, password: &str) -> Output {
    let mut cmd = env.cmd(&["login", addr, "-u", "agsuser", "--password-stdin"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn busybox_layer() -> String {
    format!("dir:{}", busybox_rootfs().display())
}

#[test]
fn pull_run_list_and_remove_a_layered_image() {
    let reg = Registry::start("plain");
    let bb = busybox_layer();
    let digest = push(
        &reg,
        "t/layers:1",
        &[
            "--config-cmd",
            r#"["sh","-c","cat /etc/motd; echo; ls /gone 2>&1; ls /opq; stat -c %i /h/a /h/b; readlink /h/s; id -u; pwd"]"#,
            "--config-user",
            "1000",
            "--config-workdir",
            "/h",
            &bb,
            "file:/etc/motd=first+file:/gone/x=1+file:/opq/lower=1+mkdir:/h",
            "--compression",
            "zstd",
            "file:/etc/motd=second+whiteout:/gone+opaque:/opq+file:/opq/upper=2+file:/h/a=same+hardlink:h/b=h/a+symlink:/h/s=/etc/motd",
        ],
    );
    let env = Env::new(&reg, "");
    let image = format!("{}/t/layers:1", reg.addr);
    let pulled = ok(env.run(&["pull", &image]));
    assert_eq!(pulled.trim(), digest);
    let out = ok(env.run(&["run", &image]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "second", "{out}");
    assert!(lines[1].contains("No such file"), "whiteout: {out}");
    assert_eq!(lines[2], "upper", "opaque dir: {out}");
    let inodes: Vec<&str> = lines[3..5].to_vec();
    assert_eq!(inodes[0], inodes[1], "hard link: {out}");
    assert_eq!(lines[5], "/etc/motd");
    assert_eq!(lines[6], "1000");
    assert_eq!(lines[7], "/h");
    // Image files keep their owners: root inside the sandbox.
    let owners = ok(env.run(&[
        "run",
        &image,
        "--",
        "stat",
        "-c",
        "%u:%g",
        "/bin/busybox",
        "/etc/motd",
    ]));
    assert_eq!(
        owners.split_whitespace().collect::<Vec<_>>(),
        ["0:0", "0:0"]
    );
    let list = ok(env.run(&["images"]));
    assert!(list.contains(&image), "{list}");
    ok(env.run(&["rmi", &image]));
    assert!(!ok(env.run(&["images"])).contains(&image));
    let trees = std::fs::read_dir(env.store().join("rootfs"))
        .unwrap()
        .count();
    assert_eq!(trees, 0, "rmi leaves no root filesystem behind");
    let blobs = std::fs::read_dir(env.store().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0, "rmi leaves no blob behind");
}

#[test]
fn run_pulls_a_missing_image_first() {
    let reg = Registry::start("plain");
    let bb = busybox_layer();
    push(
        &reg,
        "t/auto:1",
        &["--config-cmd", r#"["echo","auto-pulled"]"#, &bb],
    );
    let env = Env::new(&reg, "");
    let out = env.run(&["run", &format!("{}/t/auto:1", reg.addr)]);
    assert_eq!(ok(out).trim(), "auto-pulled");
}

#[test]
fn basic_auth_login_and_logout() {
    let reg = Registry::start("htpasswd");
    let bb = busybox_layer();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ags-testimage"));
    cmd.args([
        "push",
        "--registry",
        &reg.addr,
        "--insecure",
        "--repo",
        "t/auth",
        "--tag",
        "1",
    ]);
    cmd.args(["--user", "agsuser", "--password", "agspass", &bb]);
    assert!(cmd.status().unwrap().success());
    let env = Env::new(&reg, "");
    let image = format!("{}/t/auth:1", reg.addr);
    let out = env.run(&["pull", &image]);
    assert!(!out.status.success());
    assert!(!stderr(&out).contains("agspass"));
    // A wrong password is refused and nothing is stored.
    let out = login(&env, &reg.addr, "wrong");
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("wrong"), "secrets never printed");
    let out = login(&env, &reg.addr, "agspass");
    assert!(out.status.success(), "{}", stderr(&out));
    let auth = user().runtime_dir.join("containers/auth.json");
    let text = std::fs::read_to_string(&auth).unwrap();
    assert!(text.contains(&reg.addr));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&auth).unwrap().permissions().mode() & 0o077,
        0,
        "auth file is private"
    );
    ok(env.run(&["pull", &image]));
    ok(env.run(&["logout", &reg.addr]));
    assert!(!std::fs::read_to_string(&auth).unwrap().contains(&reg.addr));
}

#[test]
fn tls_with_a_per_registry_ca() {
    let reg = Registry::start("tls");
    assert!(reg.ca.is_some());
    let bb = busybox_layer();
    push(
        &reg,
        "t/tls:1",
        &["--config-cmd", r#"["echo","over-tls"]"#, &bb],
    );
    let env = Env::new(&reg, "");
    assert_eq!(
        ok(env.run(&["run", &format!("{}/t/tls:1", reg.addr)])).trim(),
        "over-tls"
    );
    // Without the CA the certificate is not trusted.
    let dir = user_tempdir();
    let store = dir.path().join("s");
    let out = output_within(
        ags(&[
            "--store",
            store.to_str().unwrap(),
            "pull",
            &format!("{}/t/tls:1", reg.addr),
        ]),
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
}

#[test]
fn platform_is_picked_from_an_index() {
    let reg = Registry::start("plain");
    let bb = busybox_layer();
    push(
        &reg,
        "t/multi:1",
        &["--platforms", "linux/amd64,linux/arm64", &bb],
    );
    let env = Env::new(&reg, "");
    let image = format!("{}/t/multi:1", reg.addr);
    ok(env.run(&["pull", "--platform", "linux/arm64", &image]));
    let list = ok(env.run(&["images"]));
    assert!(list.contains("linux/arm64"), "{list}");
    let out = env.run(&["pull", "--platform", "linux/s390x", &image]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("s390x"), "{}", stderr(&out));
}

#[test]
fn kill_9_in_the_middle_of_a_pull_then_pull_again() {
    let reg = Registry::start("plain");
    let bb = busybox_layer();
    let digest = push(&reg, "t/big:1", &[&bb, "random:150M:a", "random:150M:b"]);
    let env = Env::new(&reg, "");
    let image = format!("{}/t/big:1", reg.addr);
    let mut cmd = env.cmd(&["pull", &image]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    // Wait until a partial download exists, then kill.
    let tmp = env.store().join("tmp");
    let started = Instant::now();
    let partial_seen = wait_for(Duration::from_secs(60), || {
        std::fs::read_dir(&tmp)
            .map(|d| {
                d.flatten()
                    .any(|e| e.metadata().map(|m| m.len() > 1 << 20).unwrap_or(false))
            })
            .unwrap_or(false)
    });
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    assert!(
        partial_seen,
        "no partial download appeared within {:?}",
        started.elapsed()
    );
    assert!(
        !ok(env.run(&["images"])).contains(&image),
        "a killed pull records nothing"
    );
    let out = ok(env.run(&["pull", &image]));
    assert_eq!(out.trim(), digest, "the resumed pull yields the same image");
    assert!(
        ok(env.run(&["run", &image, "--", "sh", "-c", "wc -c < /data/a"])).trim()
            == (150u64 << 20).to_string()
    );
}

#[test]
fn concurrent_pulls_of_the_same_image() {
    let reg = Registry::start("plain");
    let bb = busybox_layer();
    let digest = push(&reg, "t/conc:1", &[&bb, "random:20M:a", "random:20M:b"]);
    let env = Env::new(&reg, "");
    let image = format!("{}/t/conc:1", reg.addr);
    let children: Vec<_> = (0..3)
        .map(|_| {
            let mut c = env.cmd(&["pull", &image]);
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_eq!(ok(out).trim(), digest);
    }
    let trees: Vec<_> = std::fs::read_dir(env.store().join("rootfs"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(trees.len(), 1, "one shared tree, no leftovers: {trees:?}");
    assert_eq!(
        ok(env.run(&["run", &image, "--", "sh", "-c", "wc -c < /data/b"])).trim(),
        (20u64 << 20).to_string()
    );
}

#[test]
fn a_malicious_layer_fails_and_changes_nothing_outside() {
    let reg = Registry::start("plain");
    let canary = user_tempdir();
    std::fs::write(canary.path().join("keep"), "canary").unwrap();
    let bb = busybox_layer();
    let escape = format!(
        "file:../../../../../../..{}/evil=x",
        canary.path().display()
    );
    let abs = format!("symlink:/lnk={}+file:/lnk/evil2=x", canary.path().display());
    push(&reg, "t/evil:1", &[&bb, "--raw-names", &escape]);
    push(&reg, "t/evil:2", &[&bb, &abs]);
    let env = Env::new(&reg, "");
    let out = env.run(&["pull", &format!("{}/t/evil:1", reg.addr)]);
    assert!(!out.status.success(), "a `..` entry must fail the unpack");
    assert!(stderr(&out).contains(".."), "{}", stderr(&out));
    // An absolute symlink is followed only inside the rootfs.
    let _ = env.run(&["pull", &format!("{}/t/evil:2", reg.addr)]);
    let names: Vec<String> = std::fs::read_dir(canary.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["keep"]);
    assert_eq!(
        std::fs::read_to_string(canary.path().join("keep")).unwrap(),
        "canary"
    );
    // Failed unpacks leave no temporary tree.
    let leftovers: Vec<_> = std::fs::read_dir(env.store().join("rootfs"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
                .collect()
        })
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn bad_references_are_usage_errors() {
    let dir = user_tempdir();
    let store = dir.path().join("s");
    for bad in ["Debian", "a:b:c:d", "x@sha256:123", "debian:bad tag"] {
        let out = output_within(
            ags(&["--store", store.to_str().unwrap(), "pull", bad]),
            Duration::from_secs(20),
        );
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("REFERENCE"),
            "{bad}: {}",
            stderr(&out)
        );
    }
}

/// A TCP proxy in front of the registry that cuts the first large response after `cut`
/// bytes, and records whether any request asked for a byte range.
struct CuttingProxy {
    addr: String,
    cuts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ranges: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CuttingProxy {
    fn start(upstream: String, cut: usize) -> Self {
        use std::io::Read;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cuts = Arc::new(AtomicUsize::new(0));
        let ranges = Arc::new(AtomicUsize::new(0));
        let (c2, r2) = (cuts.clone(), ranges.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                    continue;
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let r3 = r2.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        if String::from_utf8_lossy(&buf[..n])
                            .to_ascii_lowercase()
                            .contains("range: bytes=")
                        {
                            r3.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                let c3 = c2.clone();
                std::thread::spawn(move || {
                    let (mut s_read, mut c_write) = (server, client);
                    let mut buf = [0u8; 16384];
                    let mut sent = 0usize;
                    while let Ok(n) = s_read.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if sent + n > cut && c3.load(Ordering::SeqCst) == 0 {
                            // Cut this connection in the middle of the body, once.
                            c3.fetch_add(1, Ordering::SeqCst);
                            let _ = c_write.write_all(&buf[..cut - sent]);
                            let _ = c_write.shutdown(std::net::Shutdown::Both);
                            let _ = s_read.shutdown(std::net::Shutdown::Both);
                            return;
                        }
                        if c_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        sent += n;
                    }
                    let _ = c_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Self { addr, cuts, ranges }
    }
}

#[test]
fn a_download_cut_midway_resumes_with_a_range_request() {
    use std::sync::atomic::Ordering;
    let reg = Registry::start("plain");
    let bb = busybox_layer();
    let digest = push(&reg, "t/cut:1", &[&bb, "random:40M:a"]);
    let proxy = CuttingProxy::start(reg.addr.clone(), 12 << 20);
    let env = Env::for_addr(&proxy.addr, None, "");
    let image = format!("{}/t/cut:1", proxy.addr);
    let out = ok(env.run(&["pull", &image]));
    assert_eq!(out.trim(), digest);
    assert_eq!(
        proxy.cuts.load(Ordering::SeqCst),
        1,
        "the proxy cut one download"
    );
    assert!(
        proxy.ranges.load(Ordering::SeqCst) >= 1,
        "the retry asked for the rest with Range"
    );
    assert_eq!(
        ok(env.run(&["run", &image, "--", "sh", "-c", "wc -c < /data/a"])).trim(),
        (40u64 << 20).to_string()
    );
}

#[test]
fn unpack_budgets_come_from_the_config() {
    let reg = Registry::start("plain");
    let bb = busybox_layer();
    push(&reg, "t/budget:1", &[&bb]);
    let image = format!("{}/t/budget:1", reg.addr);
    // The busybox layer has close to 300 entries.
    let env = Env::new(&reg, "\n[images]\nmax_entries = 50\n");
    let out = env.run(&["pull", &image]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("50"),
        "the error names the budget: {}",
        stderr(&out)
    );
    let trees = std::fs::read_dir(env.store().join("rootfs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(trees, 0, "nothing half-unpacked is left");
    // Raising it lets the same image through.
    let env = Env::new(
        &reg,
        "\n[images]\nmax_entries = 5000\nmax_layer_size = \"1g\"\n",
    );
    ok(env.run(&["pull", &image]));
    // Unknown keys are errors naming the section and file.
    let env = Env::new(&reg, "\n[images]\nmax_entrys = 5\n");
    let out = env.run(&["pull", &image]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("[images]") && stderr(&out).contains("config.toml"),
        "{}",
        stderr(&out)
    );
}

/// The entries of `<store>/rootfs`: finished trees and temporary ones (`.tmp-*`).
fn trees(env: &Env) -> (Vec<String>, Vec<String>) {
    let mut names: Vec<String> = std::fs::read_dir(env.store().join("rootfs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.into_iter().partition(|n| !n.starts_with('.'))
}

/// Everything about a tree that an image determines: every entry's type, mode, owner,
/// link count, size and link target, and every file's sha256.
fn tree_listing(dir: &std::path::Path) -> String {
    let out = Command::new("sh")
        .args([
            "-c",
            "cd \"$1\" && { find . ! -type d -printf '%P %y %m %U:%G %n %s %l\\n';
             find . -type d -printf '%P/ %m %U:%G\\n';
             find . -type f -print0 | xargs -0 -r sha256sum; } | LC_ALL=C sort",
            "sh",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn a_pull_leaves_the_root_filesystem_ready_for_run() {
    let reg = Registry::start("plain");
    let bb = busybox_layer();
    push(
        &reg,
        "t/ready:1",
        &[
            "--config-cmd",
            r#"["cat","/marker"]"#,
            &bb,
            "file:/etc/motd=hi",
        ],
    );
    let env = Env::new(&reg, "");
    let image = format!("{}/t/ready:1", reg.addr);
    ok(env.run(&["pull", &image]));
    let (done, tmp) = trees(&env);
    assert_eq!(done.len(), 1, "the pull unpacked the image: {done:?}");
    assert!(tmp.is_empty(), "no temporary tree is left: {tmp:?}");
    let tree = env.store().join("rootfs").join(&done[0]);
    assert_eq!(
        std::fs::read_to_string(tree.join("etc/motd")).unwrap(),
        "hi"
    );
    // A file only this tree has: `ags run` shows it only if it runs the tree the pull
    // left instead of unpacking the image again.
    let marker = tree.join("marker");
    std::fs::write(&marker, "from the pull\n").unwrap();
    chown(&marker);
    assert_eq!(ok(env.run(&["run", &image])), "from the pull\n");
    assert_eq!(trees(&env), (done, Vec::new()));
}

#[test]
fn kill_9_in_the_middle_of_an_unpack_then_pull_again() {
    let reg = Registry::start("plain");
    let bb = busybox_layer();
    let digest = push(
        &reg,
        "t/unpack:1",
        &[
            &bb,
            "random:64M:a",
            "random:64M:b+symlink:/data/c=b+hardlink:data/d=data/b",
        ],
    );
    let env = Env::new(&reg, "");
    let image = format!("{}/t/unpack:1", reg.addr);
    let mut cmd = env.cmd(&["pull", &image]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    // Wait until the second layer is being unpacked (the busybox layer is done and the
    // temporary tree has /data), then kill.
    let rootfs = env.store().join("rootfs");
    let unpacking = wait_for(Duration::from_secs(60), || {
        trees(&env)
            .1
            .iter()
            .any(|t| rootfs.join(t).join("data").exists())
    });
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let status = child.wait().unwrap();
    assert!(unpacking, "no unpack started within a minute");
    assert!(!status.success(), "ags was killed before it finished");
    assert!(
        trees(&env).0.is_empty(),
        "a killed unpack leaves nothing under the final name"
    );
    // The worker sees ags gone and removes its temporary tree.
    assert!(
        wait_for(Duration::from_secs(30), || trees(&env).1.is_empty()),
        "temporary trees left behind: {:?}",
        trees(&env).1
    );
    assert!(
        trees(&env).0.is_empty(),
        "the abandoned unpack was not finished and renamed into place either"
    );
    assert_eq!(ok(env.run(&["pull", &image])).trim(), digest);
    let (done, tmp) = trees(&env);
    assert_eq!((done.len(), tmp.len()), (1, 0), "{done:?} {tmp:?}");
    // The same image pulled into a fresh store gives the same tree.
    let fresh = Env::new(&reg, "");
    ok(fresh.run(&["pull", &image]));
    let (fresh_done, _) = trees(&fresh);
    assert_eq!(fresh_done, done, "both trees are named after the config");
    let listing = tree_listing(&rootfs.join(&done[0]));
    assert!(listing.contains("data/c l 777"), "{listing}");
    assert_eq!(
        listing,
        tree_listing(&fresh.store().join("rootfs").join(&fresh_done[0]))
    );
}

#[test]
fn a_layer_whose_diff_id_does_not_match_fails_and_leaves_no_tree() {
    let reg = Registry::start("plain");
    let bb = busybox_layer();
    push(
        &reg,
        "t/diffid:1",
        &[&bb, "--wrong-diff-id", "file:/etc/motd=tampered"],
    );
    let env = Env::new(&reg, "");
    let image = format!("{}/t/diffid:1", reg.addr);
    let out = env.run(&["pull", &image]);
    assert!(!out.status.success(), "the pull must fail");
    assert!(
        stderr(&out).contains("diff_id mismatch"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        trees(&env),
        (Vec::new(), Vec::new()),
        "no tree, not even a temporary one"
    );
    // The blobs are verified and stay; unpacking them again for a run fails the same way.
    let out = env.run(&["run", &image, "--", "true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("diff_id mismatch"),
        "{}",
        stderr(&out)
    );
    assert_eq!(trees(&env), (Vec::new(), Vec::new()));
}
