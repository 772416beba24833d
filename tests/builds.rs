//! End-to-end tests of `ags build`: Containerfiles built on a busybox base image from the
//! local registry (Debian's docker-registry on 127.0.0.1), as the unprivileged test user,
//! with every RUN step in the ags sandbox. The results are run with `ags run`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ags_e2e::*;

/// A private store, config and build context for one test.
struct Env {
    dir: tempfile::TempDir,
    /// The busybox base image's reference.
    base: String,
    // Dropped last: stops the registry.
    _reg: Registry,
}

impl Env {
    /// A registry of its own (a registry in a static would outlive the test binary) with
    /// the busybox base pushed to it.
    fn new() -> Self {
        let reg = Registry::start("plain");
        push_image(
            env!("CARGO_BIN_EXE_ags-testimage"),
            &reg,
            "t/busybox:1",
            &[
                "--config-cmd",
                "/bin/sh",
                &format!("dir:{}", busybox_rootfs().display()),
            ],
        );
        let base = format!("{}/t/busybox:1", reg.addr);
        let dir = user_tempdir();
        let cfg = format!("[registries.hosts.\"{}\"]\ninsecure = true\n", reg.addr);
        std::fs::write(dir.path().join("config.toml"), cfg).unwrap();
        chown(&dir.path().join("config.toml"));
        let env = Self {
            dir,
            base,
            _reg: reg,
        };
        env.write("ctx/.keep", "");
        env
    }

    /// Like [`Env::new`], with copy snapshots forced in the config (this machine can
    /// mount overlayfs in a user namespace, so `auto` would pick overlay).
    fn copy() -> Self {
        let env = Self::new();
        let cfg = env.dir.path().join("config.toml");
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        text.push_str("\n[build]\nsnapshots = \"copy\"\n");
        std::fs::write(&cfg, text).unwrap();
        env
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The snapshot directories of the store.
    fn snapshots(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.store().join("build/snap"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    fn ctx(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    /// Writes a file under the test dir (parents created), owned by the test user.
    fn write(&self, rel: &str, content: &str) {
        let p = self.dir.path().join(rel);
        let mut created = Vec::new();
        let mut cur = p.parent().unwrap().to_path_buf();
        while !cur.exists() {
            created.push(cur.clone());
            cur = cur.parent().unwrap().to_path_buf();
        }
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        for d in created {
            chown(&d);
        }
        std::fs::write(&p, content).unwrap();
        chown(&p);
    }

    /// The Containerfile with `BASE` replaced by the busybox image.
    fn containerfile(&self, text: &str) {
        self.write("ctx/Containerfile", &text.replace("BASE", &self.base));
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let store = self.dir.path().join("store");
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
        output_within(self.cmd(args), Duration::from_secs(300))
    }

    fn build(&self, tag: &str, extra: &[&str]) -> Output {
        let ctx = self.ctx();
        let mut args = vec!["build", "-t", tag];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        self.run(&args)
    }
}

fn steps_run(out: &Output) -> (usize, usize) {
    let err = stderr(out);
    let line = err
        .lines()
        .find(|l| l.starts_with("built "))
        .unwrap_or_else(|| panic!("no summary line: {err}"));
    let nums: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    // "built REF in 1.2s (N steps run, M cached)": the last two numbers.
    (nums[nums.len() - 2], nums[nums.len() - 1])
}

#[test]
fn every_instruction_builds_and_the_image_runs() {
    let env = Env::new();
    every_instruction(&env);
    // Overlay snapshots (this machine can mount overlayfs in a user namespace).
    let snaps = env.snapshots();
    assert!(!snaps.is_empty());
    assert!(snaps.iter().all(|s| s.join("upper").is_dir()), "{snaps:?}");
}

/// What the image of [`every_instruction`] shows: the script's output lines.
const EVERY_INSTRUCTION_SCRIPT: &str = "cd /app && cat hello.txt tree/a.rs tree/sub/b.rs \
    conf/g1.conf conf/g2.conf /opt/pkg/file uid heredoc fromcache inline.txt \
    /home/worker/data/who; stat -c '%u:%g %a' private /home/worker/data; ls /etc/gone 2>&1; \
    ls /bin/true 2>&1; id -u; pwd";

/// Builds a Containerfile with every instruction as localhost/demo:1 and checks the
/// image; returns the output of [`EVERY_INSTRUCTION_SCRIPT`] in it.
fn every_instruction(env: &Env) -> String {
    env.write("ctx/hello.txt", "hello from the context\n");
    env.write("ctx/dir/a.rs", "a\n");
    env.write("ctx/dir/sub/b.rs", "b\n");
    env.write("ctx/g1.conf", "1\n");
    env.write("ctx/g2.conf", "2\n");
    // A tar archive ADD extracts.
    let tar_src = env.dir.path().join("tarsrc");
    std::fs::create_dir_all(tar_src.join("pkg")).unwrap();
    std::fs::write(tar_src.join("pkg/file"), "from the archive\n").unwrap();
    let st = Command::new("tar")
        .args(["-czf"])
        .arg(env.ctx().join("pkg.tar.gz"))
        .arg("-C")
        .arg(&tar_src)
        .arg("pkg")
        .status()
        .unwrap();
    assert!(st.success());
    chown(&env.ctx().join("pkg.tar.gz"));
    env.containerfile(
        r#"# syntax=docker/dockerfile:1
ARG IMG=BASE
FROM ${IMG}
ARG WHO=builder
ENV APP=/app \
    GREETING="hi there"
LABEL org.example.name="demo" version=1
WORKDIR $APP
COPY hello.txt ./
COPY dir /app/tree/
COPY g*.conf /app/conf/
COPY --chown=1000:1000 --chmod=600 hello.txt /app/private
ADD pkg.tar.gz /opt/
RUN echo "${GREETING:-none} ${WHO:+set}" > /app/run.txt && mkdir -p /etc/gone && rm -rf /etc/gone
RUN ["/bin/sh", "-c", "id -u > /app/uid"]
RUN <<EOF
echo heredoc > /app/heredoc
echo "$APP" >> /app/heredoc
EOF
RUN --mount=type=cache,target=/cache echo cached-data > /cache/x && cp /cache/x /app/fromcache
RUN --mount=type=tmpfs,target=/scratch touch /scratch/y && test ! -e /app/y
COPY <<EOF /app/inline.txt
inline file
EOF
RUN rm /bin/true
RUN echo 'worker:x:1234:1234::/home/worker:/bin/sh' >> /etc/passwd && mkdir -p /home/worker/data && chown -R 1234:1234 /home/worker
USER worker
RUN id -u > /home/worker/data/who
SHELL ["/bin/sh", "-ec"]
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/run.txt"]
"#,
    );
    let out = env.build("localhost/demo:1", &["--build-arg", "WHO=me"]);
    let err = stderr(&out);
    assert!(out.status.success(), "build failed: {err}");
    assert!(err.contains("STEP 1/"), "{err}");
    assert_eq!(stdout(&out).trim(), "localhost/demo:1");

    // The entrypoint and command.
    assert_eq!(
        ok(env.run(&["run", "localhost/demo:1"])).trim(),
        "hi there set"
    );
    let got = ok(env.run(&["run", "localhost/demo:1", "--", EVERY_INSTRUCTION_SCRIPT]));
    let expect = [
        "hello from the context",
        "a",
        "b",
        "1",
        "2",
        "from the archive",
        "0",
        "heredoc",
        "/app",
        "cached-data",
        "inline file",
        "1234",
        "1000:1000 600",
        "1234:1234 755",
    ];
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(&lines[..expect.len()], &expect, "{got}");
    assert!(lines[expect.len()].contains("No such file"), "{got}");
    assert!(
        lines[expect.len() + 1].contains("No such file"),
        "whiteout: {got}"
    );
    assert_eq!(lines[expect.len() + 2], "1234", "USER: {got}");
    assert_eq!(lines[expect.len() + 3], "/app", "WORKDIR: {got}");
    got
}

#[test]
fn rebuilds_come_from_the_cache_and_an_edit_reruns_only_what_follows() {
    rebuilds(&Env::new());
}

fn rebuilds(env: &Env) {
    env.write("ctx/input.txt", "v1\n");
    let cf = |last: &str| {
        format!(
            "FROM BASE\nRUN echo one > /one\nCOPY input.txt /input.txt\nRUN cat /input.txt > /copy\nRUN echo {last} > /last\n"
        )
    };
    env.containerfile(&cf("a"));
    let first = env.build("localhost/cache:1", &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(steps_run(&first), (4, 0), "{}", stderr(&first));

    let listed = ok(env.run(&["images"]));
    let again = env.build("localhost/cache:1", &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(steps_run(&again), (0, 4), "a no-op rebuild does no work");
    assert_eq!(
        ok(env.run(&["images"])),
        listed,
        "a cached rebuild gives the identical image"
    );

    env.containerfile(&cf("b"));
    let edited = env.build("localhost/cache:1", &[]);
    assert_eq!(steps_run(&edited), (1, 3), "{}", stderr(&edited));
    assert_eq!(
        ok(env.run(&["run", "localhost/cache:1", "--", "cat", "/last"])).trim(),
        "b"
    );

    // Changing a COPY input reruns the COPY and what follows.
    env.write("ctx/input.txt", "v2\n");
    let changed = env.build("localhost/cache:1", &[]);
    assert_eq!(steps_run(&changed), (3, 1), "{}", stderr(&changed));
    assert_eq!(
        ok(env.run(&["run", "localhost/cache:1", "--", "cat", "/copy"])).trim(),
        "v2"
    );
    // --no-cache runs everything.
    let nocache = env.build("localhost/cache:1", &["--no-cache"]);
    assert_eq!(steps_run(&nocache), (4, 0));
}

#[test]
fn multi_stage_builds_skip_unneeded_stages() {
    multi_stage(&Env::new());
}

fn multi_stage(env: &Env) {
    env.containerfile(
        "FROM BASE AS unused\nRUN exit 42\n\
         FROM BASE AS build\nRUN echo built > /artifact && mkdir -p /out/d && echo deep > /out/d/f\n\
         FROM BASE\nCOPY --from=build /artifact /srv/artifact\nCOPY --from=build /out/ /srv/out/\n\
         RUN cat /srv/artifact /srv/out/d/f\n",
    );
    let out = env.build("localhost/multi:1", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        !err.contains("exit 42"),
        "the unused stage must not run: {err}"
    );
    assert_eq!(
        ok(env.run(&[
            "run",
            "localhost/multi:1",
            "--",
            "cat",
            "/srv/artifact",
            "/srv/out/d/f"
        ])),
        "built\ndeep\n"
    );
    // --target builds a stage (and here fails, showing that it ran).
    let t = env.build("localhost/multi:unused", &["--target", "unused"]);
    assert!(!t.status.success());
    assert!(
        stderr(&t).contains("exited with status 42"),
        "{}",
        stderr(&t)
    );
}

#[test]
fn ignore_files_keep_context_files_out() {
    let env = Env::new();
    env.write("ctx/keep.txt", "keep\n");
    env.write("ctx/secret.env", "TOKEN=canary\n");
    env.write("ctx/logs/a.log", "log\n");
    env.write("ctx/.dockerignore", "*.env\nlogs\n");
    env.containerfile("FROM BASE\nCOPY . /ctx/\n");
    let out = env.build("localhost/ign:1", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ls = ok(env.run(&["run", "localhost/ign:1", "--", "ls", "-a", "/ctx"]));
    assert!(ls.contains("keep.txt"), "{ls}");
    assert!(!ls.contains("secret.env"), "{ls}");
    assert!(!ls.contains("logs"), "{ls}");
    // Naming an ignored file is an error.
    env.containerfile("FROM BASE\nCOPY secret.env /x\n");
    let out = env.build("localhost/ign:2", &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("excluded by the ignore file"),
        "{}",
        stderr(&out)
    );
}

/// Every bad input fails with FILE:LINE, a non-zero exit, and tags nothing.
#[test]
fn bad_input_names_the_line_and_tags_nothing() {
    let env = Env::new();
    let outside = env.dir.path().join("outside-secret");
    std::fs::write(&outside, "canary").unwrap();
    chown(&outside);
    std::os::unix::fs::symlink(&outside, env.ctx().join("link")).unwrap();
    let cases: &[(&str, &str)] = &[
        ("FROM BASE\nFROBNICATE x\n", "Containerfile:2:1"),
        (
            "FROM BASE\nRUN <<EOF\necho never closed\n",
            "Containerfile:2",
        ),
        (
            "FROM BASE\nCOPY missing.txt /x\n",
            "Containerfile:2:1: COPY source \"missing.txt\" does not exist",
        ),
        (
            "FROM BASE\nCOPY ../outside-secret /x\n",
            "outside the build context",
        ),
        ("FROM BASE\nCOPY link /x\n", "outside the build context"),
        (
            "FROM BASE\nRUN --mount=type=secret,id=x,target=/s true\n",
            "not supported",
        ),
        (
            "FROM BASE\nRUN echo line-one; echo line-two; exit 3\n",
            "exited with status 3",
        ),
    ];
    for (text, want) in cases {
        env.containerfile(text);
        let out = env.build("localhost/bad:1", &[]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{text:?} succeeded: {err}");
        assert!(err.contains(want), "{text:?}: want {want:?} in: {err}");
        assert!(!err.contains("canary"));
    }
    // The failing RUN shows its last output lines.
    let err = stderr(&env.build("localhost/bad:1", &[]));
    assert!(err.contains("line-two"), "{err}");
    let images = ok(env.run(&["images"]));
    assert!(!images.contains("localhost/bad"), "{images}");
}

#[test]
fn a_failed_rebuild_keeps_the_previous_image() {
    failed_rebuild(&Env::new());
}

fn failed_rebuild(env: &Env) {
    env.containerfile("FROM BASE\nRUN echo v1 > /v\n");
    let out = env.build("localhost/keep:1", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let snaps = env.snapshots();
    env.containerfile("FROM BASE\nRUN echo v2 > /v && false\n");
    assert!(!env.build("localhost/keep:1", &[]).status.success());
    assert_eq!(env.snapshots(), snaps, "the failed step left no snapshot");
    assert_eq!(
        ok(env.run(&["run", "localhost/keep:1", "--", "cat", "/v"])).trim(),
        "v1"
    );
}

#[test]
fn gc_reclaims_build_cache_no_image_uses() {
    let env = Env::new();
    env.containerfile("FROM BASE\nRUN echo v1 > /v\n");
    assert!(env.build("localhost/gc:1", &[]).status.success());
    let snaps = |p: &Path| std::fs::read_dir(p.join("store/build/snap")).map_or(0, |d| d.count());
    assert_eq!(snaps(env.dir.path()), 1);
    assert!(
        env.snapshots()[0].join("upper").is_dir(),
        "auto picks overlay here"
    );
    ok(env.run(&["rmi", "localhost/gc:1"]));
    ok(env.run(&["gc"]));
    assert_eq!(
        snaps(env.dir.path()),
        0,
        "gc removes snapshots of removed images"
    );
}

/// Serves `body` at `/<name>` (404 elsewhere) on 127.0.0.1 until the test ends: the
/// file server `ADD URL` fetches from.
fn serve_file(name: &'static str, body: &'static [u8]) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut request_line = String::new();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // The rest of the request head.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let found = request_line.starts_with(&format!("GET /{name} "));
            let (status, body): (&str, &[u8]) = if found {
                ("200 OK", body)
            } else {
                ("404 Not Found", b"not found\n")
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(body);
        }
    });
    format!("http://{addr}")
}

#[test]
fn add_fetches_a_url_and_verifies_its_checksum() {
    use sha2::Digest as _;
    const BODY: &[u8] = b"#!/bin/sh\necho fetched tool\n";
    let url = serve_file("tool.sh", BODY);
    let good = format!("sha256:{}", hex_of(&sha2::Sha256::digest(BODY)));
    let bad = format!("sha256:{}", hex_of(&sha2::Sha256::digest(b"other")));
    let env = Env::new();

    env.containerfile(&format!(
        "FROM BASE\nADD --checksum={good} {url}/tool.sh /opt/\nADD {url}/tool.sh /opt/nosum.sh\n"
    ));
    let out = env.build("localhost/add:1", &[]);
    assert!(out.status.success(), "build failed: {}", stderr(&out));
    let got = ok(env.run(&[
        "run",
        "localhost/add:1",
        "--",
        "sh",
        "-c",
        "sh /opt/tool.sh; stat -c '%a %u' /opt/tool.sh; cmp /opt/tool.sh /opt/nosum.sh && echo same",
    ]));
    // Docker's rule: a downloaded file gets mode 600 and belongs to root.
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        ["fetched tool", "600 0", "same"],
        "{got}"
    );

    // A wrong checksum fails the step, names the line and tags nothing.
    env.containerfile(&format!(
        "FROM BASE\nADD --checksum={bad} {url}/tool.sh /opt/\n"
    ));
    let out = env.build("localhost/add-bad:1", &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("Containerfile:2:1"), "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");
    // A missing file names the URL.
    env.containerfile(&format!("FROM BASE\nADD {url}/missing.sh /opt/\n"));
    let out = env.build("localhost/add-bad:1", &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("missing.sh") && err.contains("404"), "{err}");
    let images = ok(env.run(&["images"]));
    assert!(!images.contains("localhost/add-bad"), "{images}");
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The entry names of every layer the builds wrote (tar+zstd blobs named in the cache).
fn built_layer_entries(env: &Env) -> Vec<String> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(env.store().join("build/cache"))
        .unwrap()
        .flatten()
    {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
        let Some(digest) = v["layer"]["digests"]["digest"].as_str() else {
            continue;
        };
        let hex = digest.strip_prefix("sha256:").unwrap();
        let blob = std::fs::File::open(env.store().join("blobs/sha256").join(hex)).unwrap();
        let mut tar = tar::Archive::new(zstd::Decoder::new(blob).unwrap());
        for entry in tar.entries().unwrap() {
            let entry = entry.unwrap();
            names.push(entry.path().unwrap().to_string_lossy().into_owned());
        }
    }
    names
}

/// The image's layers alone (unpacked, not the build's snapshots) give the same root.
fn same_from_layers(env: &Env, image: &str, script: &str, want: &str) {
    let trees = || std::fs::read_dir(env.store().join("rootfs")).map_or(0, |d| d.count());
    let before = trees();
    let layouts = env.store().join("build/images");
    for e in std::fs::read_dir(&layouts).unwrap().flatten() {
        std::fs::remove_file(e.path()).unwrap();
    }
    let got = ok(env.run(&["run", image, "--", script]));
    assert_eq!(got, want, "run from the unpacked layers");
    assert_eq!(trees(), before + 1, "the image was unpacked");
}

#[test]
fn copy_snapshots_build_every_instruction() {
    let env = Env::copy();
    let got = every_instruction(&env);
    // Full trees, no overlay upper directories.
    let snaps = env.snapshots();
    assert!(!snaps.is_empty());
    for s in &snaps {
        assert!(s.join("tree/bin/sh").exists(), "{s:?}");
        assert!(!s.join("upper").exists(), "{s:?}");
    }
    // `RUN rm /bin/true` left a whiteout in its layer.
    let entries = built_layer_entries(&env);
    assert!(
        entries.iter().any(|n| n == "bin/.wh.true"),
        "no whiteout: {entries:?}"
    );
    // Only what a step changed is in its layer: the base's /bin/sh is in none.
    assert!(!entries.iter().any(|n| n == "bin/sh"), "{entries:?}");
    same_from_layers(&env, "localhost/demo:1", EVERY_INSTRUCTION_SCRIPT, &got);
}

#[test]
fn copy_snapshots_cache_rebuilds_multi_stage_and_keep_a_failed_rebuilds_image() {
    let env = Env::copy();
    rebuilds(&env);
    multi_stage(&env);
    failed_rebuild(&env);
}

#[test]
fn copy_snapshots_are_reclaimed_by_gc() {
    let env = Env::copy();
    env.containerfile(
        "FROM BASE\nWORKDIR /etc\nRUN echo one > /one\nRUN echo two > /two && rm /one\nRUN echo three > /three\n",
    );
    let first = env.build("localhost/gc:1", &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(steps_run(&first), (4, 0));
    // A WORKDIR that exists changes nothing: no copy was made for it.
    assert_eq!(env.snapshots().len(), 3);
    let script = "cat /two /three; ls /one 2>&1; true";
    let want = ok(env.run(&["run", "localhost/gc:1", "--", "sh", "-c", script]));
    assert!(
        want.starts_with("two\nthree\n") && want.contains("No such file"),
        "{want}"
    );

    // The image runs from its last tree only: gc keeps that one.
    ok(env.run(&["gc"]));
    let left = env.snapshots();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].join("tree/three").is_file());
    assert_eq!(
        ok(env.run(&["run", "localhost/gc:1", "--", "sh", "-c", script])),
        want
    );
    // Nothing changed: every step is still cached.
    let again = env.build("localhost/gc:1", &[]);
    assert_eq!(steps_run(&again), (0, 4), "{}", stderr(&again));
    // An edit of the last step needs the tree gc removed: it is rebuilt from the layers.
    env.containerfile(
        "FROM BASE\nWORKDIR /etc\nRUN echo one > /one\nRUN echo two > /two && rm /one\nRUN echo 3 > /three\n",
    );
    let edited = env.build("localhost/gc:2", &[]);
    assert!(edited.status.success(), "{}", stderr(&edited));
    assert_eq!(steps_run(&edited), (1, 3), "{}", stderr(&edited));
    assert_eq!(
        ok(env.run(&["run", "localhost/gc:2", "--", "sh", "-c", script])),
        want.replace("three", "3")
    );

    // Without images, gc removes every tree (they belong to subordinate ids).
    ok(env.run(&["rmi", "localhost/gc:1"]));
    ok(env.run(&["rmi", "localhost/gc:2"]));
    ok(env.run(&["gc"]));
    assert_eq!(env.snapshots(), Vec::<PathBuf>::new());
}

#[test]
fn overlay_and_copy_snapshots_never_share_the_cache() {
    let env = Env::new();
    env.write("ctx/input.txt", "in\n");
    env.containerfile("FROM BASE\nCOPY input.txt /input.txt\nRUN cat /input.txt > /copy\n");
    let build = |mode: &str| {
        let ctx = env.ctx();
        let mut cmd = env.cmd(&["build", "-t", "localhost/mix:1", ctx.to_str().unwrap()]);
        cmd.env("AGS_BUILD_SNAPSHOTS", mode);
        output_within(cmd, Duration::from_secs(300))
    };
    let overlay = build("overlay");
    assert_eq!(steps_run(&overlay), (2, 0), "{}", stderr(&overlay));
    // The same steps as copy snapshots run again, on trees of their own.
    let copy = build("copy");
    assert_eq!(steps_run(&copy), (2, 0), "{}", stderr(&copy));
    assert_eq!(
        ok(env.run(&["run", "localhost/mix:1", "--", "cat", "/copy"])),
        "in\n"
    );
    let snaps = env.snapshots();
    assert_eq!(snaps.iter().filter(|s| s.join("upper").is_dir()).count(), 2);
    assert_eq!(snaps.iter().filter(|s| s.join("tree").is_dir()).count(), 2);
    // Each kind finds its own entries.
    assert_eq!(steps_run(&build("overlay")), (0, 2));
    assert_eq!(steps_run(&build("copy")), (0, 2));
    assert_eq!(
        ok(env.run(&["run", "localhost/mix:1", "--", "cat", "/copy"])),
        "in\n"
    );
    // A bad value names the variable.
    let bad = build("vfs");
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("AGS_BUILD_SNAPSHOTS"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn copy_snapshots_with_a_relative_store() {
    let env = Env::copy();
    env.containerfile("FROM BASE\nRUN echo hi > /hi\n");
    let config = env.dir.path().join("config.toml");
    let relative = |args: &[&str]| {
        let mut all = vec!["--store", "store", "--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut cmd = ags(&all);
        cmd.current_dir(env.dir.path());
        output_within(cmd, Duration::from_secs(300))
    };
    ok(relative(&["build", "-t", "localhost/rel:1", "ctx"]));
    // The snapshot paths recorded for the image do not depend on the current directory.
    let mut cmd = env.cmd(&["run", "localhost/rel:1", "--", "cat", "/hi"]);
    cmd.current_dir("/");
    assert_eq!(ok(output_within(cmd, Duration::from_secs(60))), "hi\n");
}
