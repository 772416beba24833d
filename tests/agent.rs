//! End-to-end tests of run mode (`ags --agent NAME [--lockdown]`), as the unprivileged test
//! user, in a temp HOME with canary secrets and a fake `codex` (a script in a busybox image
//! pushed to a real registry on 127.0.0.1).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ags_e2e::*;

/// What the fake agent reports: its arguments, identity, environment, the agent home, and
/// which writes succeed.
const FAKE_CODEX: &str = r#"#!/bin/sh
echo "args: $*"
echo "user: $(id -u) home: $HOME pwd: $(pwd)"
env | grep -E '^(AGS_|TERM=|LANG=|CANARY_TOKEN|PASSME)' | sort
echo "codex-home: $(ls -A "$HOME/.codex" 2>&1 | sort | tr '\n' ' ')"
ls "$HOME/.ssh" "$HOME/.aws" >/dev/null 2>&1 && echo SECRETS-VISIBLE
cat /mnt/canary/id_ed25519 2>/dev/null
echo hook > .git/hooks/pre-commit 2>/dev/null && echo HOOK-WRITTEN
echo x >> .git/config 2>/dev/null && echo GITCONFIG-WRITTEN
echo work > ./from-agent && echo WORKSPACE-WRITTEN
echo new > "$HOME/.codex/new-file" && echo HOME-WRITTEN
echo out > /tmp/../opt-x 2>/dev/null; touch /etc/x 2>/dev/null || echo ROOT-READONLY
case "$*" in *--sleep*) sleep 8123459;; esac
exit 0
"#;

/// The tests of this file run one at a time: they start lockdown agents, whose staged homes
/// and cleanup of stale stagings share one directory per user.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

struct Fixture {
    _reg: Registry,
    image: String,
}

/// A registry with the fake agent image. Each test starts its own: a registry kept in a
/// static would never be stopped and would outlive the test binary.
fn fixture() -> Fixture {
    {
        let reg = Registry::start("plain");
        let bb = format!("dir:{}", busybox_rootfs().display());
        let codex = format!("file:/usr/local/bin/codex:755={FAKE_CODEX}");
        // The shell agent runs bash; busybox has none, so a shim stands in.
        let bash = "file:/bin/bash:755=#!/bin/sh\nexec /bin/sh \"$@\"\n";
        let layer = format!("{codex}+{bash}");
        push_image(
            env!("CARGO_BIN_EXE_ags-testimage"),
            &reg,
            "t/agent:1",
            &[&bb, &layer],
        );
        let image = format!("{}/t/agent:1", reg.addr);
        Fixture { _reg: reg, image }
    }
}

/// A temp HOME for the test user: canary secrets, a codex home with login, settings,
/// history and sessions, a config pointing at the fake image, and a git repository.
struct Home {
    dir: tempfile::TempDir,
    // Dropped last: stops the registry.
    _fixture: Fixture,
}

impl Home {
    fn new(extra_config: &str) -> Self {
        Self::with_sandbox("", extra_config)
    }

    fn with_sandbox(sandbox_extra: &str, extra_config: &str) -> Self {
        let f = fixture();
        let dir = user_tempdir();
        let h = dir.path();
        let files = [
            (".ssh/id_ed25519", "CANARY-SSH-KEY"),
            (".aws/credentials", "CANARY-AWS"),
            (".codex/auth.json", "{\"token\":\"codex-login\"}"),
            (".codex/config.toml", "model = \"x\""),
            (".codex/history.jsonl", "CANARY-HISTORY"),
            (".codex/sessions/s1.jsonl", "CANARY-SESSION"),
        ];
        for (p, content) in files {
            let path = h.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
        }
        let registry = f.image.split('/').next().unwrap();
        let config = format!(
            "[sandbox]\nimage = \"{}\"\n{sandbox_extra}\n[registries.hosts.\"{registry}\"]\ninsecure = true\n{extra_config}",
            f.image
        );
        std::fs::create_dir_all(h.join(".config/ags")).unwrap();
        std::fs::write(h.join(".config/ags/config.toml"), config).unwrap();
        std::fs::create_dir_all(h.join("proj")).unwrap();
        let git = Command::new("git")
            .args(["init", "-q", "proj"])
            .current_dir(h)
            .status()
            .unwrap();
        assert!(git.success());
        let chown = Command::new("chown")
            .args(["-R", &format!("{}:{}", user().uid, user().gid)])
            .arg(h)
            .status()
            .unwrap();
        assert!(chown.success());
        Self { dir, _fixture: f }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn ags(&self, args: &[&str]) -> Command {
        let mut cmd = ags(args);
        cmd.env("HOME", self.path())
            .env("TERM", "xterm-test")
            .env("CANARY_TOKEN", "CANARY-ENV-TOKEN")
            .env("PASSME", "passed")
            .current_dir(self.path().join("proj"));
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        output_within(self.ags(args), Duration::from_secs(120))
    }
}

#[test]
fn lockdown_stages_login_only_and_protects_the_host() {
    let _serial = serial();
    let home = Home::with_sandbox("passthrough_env = [\"PASSME\"]\n", "");
    let mut cmd = home.ags(&["--agent", "codex", "--lockdown", "--", "--foo", "bar"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let text = ok(child.wait_with_output().unwrap());
    let proj = home.path().join("proj");
    assert!(text.contains("args: --foo bar"), "{text}");
    assert!(
        text.contains(&format!(
            "user: 1000 home: /home/dev pwd: {}",
            proj.display()
        )),
        "{text}"
    );
    assert!(text.contains("AGS_LOCKDOWN=1"), "{text}");
    assert!(text.contains("AGS_SANDBOX=1"), "{text}");
    assert!(text.contains("TERM=xterm-test"), "{text}");
    assert!(!text.contains("CANARY"), "a canary leaked: {text}");
    assert!(
        !text.contains("PASSME"),
        "no passthrough env in lockdown: {text}"
    );
    // Login and settings are staged; history and sessions are not.
    assert!(text.contains("codex-home: auth.json config.toml"), "{text}");
    assert!(!text.contains("SECRETS-VISIBLE"), "{text}");
    assert!(
        !text.contains("HOOK-WRITTEN"),
        ".git/hooks must be read-only: {text}"
    );
    assert!(
        !text.contains("GITCONFIG-WRITTEN"),
        ".git/config must be read-only: {text}"
    );
    assert!(text.contains("WORKSPACE-WRITTEN"), "{text}");
    assert!(text.contains("ROOT-READONLY"), "{text}");
    assert!(proj.join("from-agent").exists());
    assert!(!proj.join(".git/hooks/pre-commit").exists());
    // Nothing written to the agent home survives, and the host's home is untouched.
    assert!(text.contains("HOME-WRITTEN"), "{text}");
    assert!(!home.path().join(".codex/new-file").exists());
    // Stagings are named after the ags process; other tests run lockdown agents too.
    let staging = user().runtime_dir.join("ags/staging");
    let prefix = format!("lockdown-{pid}-");
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "staged homes left behind: {left:?}");
}

#[test]
fn repo_overlay_needs_approval_and_never_applies_in_lockdown() {
    let _serial = serial();
    let home = Home::new("");
    let overlay = home.path().join("proj/.ags");
    std::fs::create_dir_all(&overlay).unwrap();
    std::fs::write(
        overlay.join("config.toml"),
        "[sandbox]\npassthrough_env = [\"PASSME\"]\n",
    )
    .unwrap();
    let chown = Command::new("chown")
        .args(["-R", &format!("{}:{}", user().uid, user().gid)])
        .arg(&overlay)
        .status()
        .unwrap();
    assert!(chown.success());
    // No terminal to ask on: the overlay is not approved, so it is ignored with a warning.
    let out = home.run(&["--agent", "codex"]);
    assert!(stderr(&out).contains("not approved"), "{}", stderr(&out));
    assert!(!ok(out).contains("PASSME"));
    // In lockdown it is not even read.
    let out = home.run(&["--agent", "codex", "--lockdown"]);
    assert!(!stderr(&out).contains("not approved"), "{}", stderr(&out));
    assert!(!ok(out).contains("PASSME"));
}

#[test]
fn normal_mode_sees_configured_mounts_and_secrets() {
    let _serial = serial();
    let extra = tempfile::Builder::new()
        .prefix("ags-mnt-")
        .tempdir_in(shared_dir())
        .unwrap();
    std::fs::write(extra.path().join("id_ed25519"), "MOUNTED-ON-PURPOSE").unwrap();
    std::fs::set_permissions(extra.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        extra.path().join("id_ed25519"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let config = format!(
        "\n[[mount]]\nhost = \"{}\"\ncontainer = \"/mnt/canary\"\nmode = \"ro\"\n\n[[secret]]\nenv = \"CANARY_TOKEN\"\nfrom_env = \"CANARY_TOKEN\"\n",
        extra.path().display()
    );
    let home = Home::new(&config);
    let text = ok(home.run(&["--agent", "codex"]));
    assert!(
        text.contains("MOUNTED-ON-PURPOSE"),
        "configured mount missing: {text}"
    );
    assert!(
        text.contains("CANARY_TOKEN=CANARY-ENV-TOKEN"),
        "configured secret missing: {text}"
    );
    assert!(!text.contains("AGS_LOCKDOWN"), "{text}");
    // The same config in lockdown: no mounts, no secrets.
    let text = ok(home.run(&["--agent", "codex", "--lockdown"]));
    assert!(!text.contains("MOUNTED-ON-PURPOSE"), "{text}");
    assert!(!text.contains("CANARY"), "{text}");
}

#[test]
fn add_dir_is_mounted_at_the_same_path_and_writes_outside_fail() {
    let _serial = serial();
    let home = Home::new("");
    let extra = user_tempdir();
    let script = format!(
        // Outside the mounted directories, the path (under /tmp here) only exists in the
        // sandbox's own tmpfs: the host must not see the write.
        "echo hi > {0}/from-sandbox && echo ADDDIR-WRITTEN; echo x > {1}/outside 2>/dev/null; true",
        extra.path().display(),
        home.path().display()
    );
    let out = home.run(&[
        "--agent",
        "shell",
        "--lockdown",
        "-d",
        extra.path().to_str().unwrap(),
        "--",
        "-c",
        &script,
    ]);
    let text = ok(out);
    assert!(text.contains("ADDDIR-WRITTEN"), "{text}");
    assert_eq!(
        std::fs::read_to_string(extra.path().join("from-sandbox")).unwrap(),
        "hi\n"
    );
    assert!(!home.path().join("outside").exists());
}

#[test]
fn sigkilled_lockdown_run_leaves_nothing_after_the_next_start() {
    let _serial = serial();
    let home = Home::new("");
    let mut cmd = home.ags(&["--agent", "codex", "--lockdown", "--", "--sleep"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || !host_processes("sleep 8123459")
            .is_empty()),
        "the agent did not start"
    );
    // Stagings are named after the ags process; other tests run lockdown agents too.
    let staging = user().runtime_dir.join("ags/staging");
    let prefix = format!("lockdown-{}-", child.id());
    let count = || {
        std::fs::read_dir(&staging)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .count()
            })
            .unwrap_or(0)
    };
    assert!(count() >= 1, "no staged home while the agent runs");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    // No process of the sandbox survives ags.
    assert!(
        wait_for(Duration::from_secs(5), || host_processes("sleep 8123459")
            .is_empty()),
        "{:?}",
        host_processes("sleep 8123459")
    );
    // The staged home of the killed run is removed at the next start.
    ok(home.run(&["--agent", "codex", "--lockdown"]));
    assert_eq!(count(), 0);
}

#[test]
fn run_mode_errors_name_the_flag() {
    let _serial = serial();
    let home = Home::new("");
    let out = home.run(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--agent"));
    let out = home.run(&["--agent", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--agent"));
    let bad = Home::new("[sandbox]\nimagee = \"x\"\n");
    let out = bad.run(&["--agent", "codex"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("config.toml:"),
        "errors name the file and line: {}",
        stderr(&out)
    );
}
