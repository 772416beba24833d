//! End-to-end tests of the commands around run mode: `ags config path|show`, `ags install
//! [--link-self]`, `ags create-aliases`, `ags setup` and `ags doctor`'s image and agent
//! checks, plus run mode taking `[registries]` from an approved repo overlay. Each test runs
//! ags as the unprivileged test user in a temp HOME of its own.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ags_e2e::*;
use sha2::{Digest, Sha256};

/// A fake codex that only says it ran.
const FAKE_CODEX: &str = "#!/bin/sh\necho \"fake codex ran: $*\"\n";

/// A plain-HTTP registry with the test image, stopped when dropped. Each test that needs
/// one starts its own: a registry kept in a static would never be stopped, and would keep
/// the descriptors it inherited (such as the lock of `flock ... cargo test`) open.
struct Fixture {
    _reg: Registry,
    /// `127.0.0.1:PORT`.
    registry: String,
    /// `127.0.0.1:PORT/t/cmds:1`: busybox, a fake codex, a bash shim.
    image: String,
}

impl Fixture {
    fn start() -> Self {
        let reg = Registry::start("plain");
        let bb = format!("dir:{}", busybox_rootfs().display());
        let codex = format!("file:/usr/local/bin/codex:755={FAKE_CODEX}");
        let bash = "file:/bin/bash:755=#!/bin/sh\nexec /bin/sh \"$@\"\n";
        push_image(
            env!("CARGO_BIN_EXE_ags-testimage"),
            &reg,
            "t/cmds:1",
            &[&bb, &format!("{codex}+{bash}")],
        );
        let registry = reg.addr.clone();
        let image = format!("{registry}/t/cmds:1");
        Fixture {
            _reg: reg,
            registry,
            image,
        }
    }

    /// The registries section that lets the test user pull from this plain-HTTP registry.
    fn insecure_registry(&self) -> String {
        format!(
            "[registries.hosts.\"{}\"]\ninsecure = true\n",
            self.registry
        )
    }
}

/// A temp HOME owned by the test user, with a git repository `proj`.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        let dir = user_tempdir();
        let git = Command::new("git")
            .args(["init", "-q", "proj"])
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(git.success());
        let h = Self { dir };
        h.chown_all();
        h
    }

    /// A HOME whose config file holds `config`.
    fn with_config(config: &str) -> Self {
        let h = Self::new();
        h.write(".config/ags/config.toml", config);
        h
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn proj(&self) -> PathBuf {
        self.path().join("proj")
    }

    /// Write a file below HOME (parents created), owned by the test user.
    fn write(&self, rel: &str, content: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        self.chown_all();
    }

    fn chown_all(&self) {
        let status = Command::new("chown")
            .args(["-R", &format!("{}:{}", user().uid, user().gid)])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// `ags ARGS` as the test user with this HOME, in `proj`.
    fn ags(&self, args: &[&str]) -> Command {
        let mut cmd = ags(args);
        cmd.env("HOME", self.path()).current_dir(self.proj());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        output_within(self.ags(args), Duration::from_secs(120))
    }

    /// Approve the current content of `proj/.ags/config.toml`, as answering "y" would.
    fn approve_overlay(&self) {
        let repo = self.proj().canonicalize().unwrap();
        let content = std::fs::read(repo.join(".ags/config.toml")).unwrap();
        let mut h = Sha256::new();
        h.update(b"ags-overlay-v1\0");
        h.update(repo.as_os_str().as_encoded_bytes());
        h.update(b"\0");
        h.update(&content);
        let hash: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let store = serde_json::json!({
            "version": 1,
            "trusted": [{ "repo": repo, "sha256": hash }],
        });
        self.write(
            ".config/ags/trusted-overlays.json",
            &serde_json::to_string(&store).unwrap(),
        );
    }
}

// ---------------------------------------------------------------------------------------
// ags config path | show

#[test]
fn config_path_names_the_config_and_the_overlay() {
    let home = Home::new();
    let config = home.path().join(".config/ags/config.toml");
    let out = home.run(&["config", "path"]);
    assert_eq!(ok(&out), format!("config: {}\n", config.display()));
    assert!(
        stderr(&out).contains("does not exist yet"),
        "{}",
        stderr(&out)
    );

    home.write("proj/.ags/config.toml", "[sandbox]\ntmux = true\n");
    let out = home.run(&["config", "path"]);
    let overlay = home.proj().canonicalize().unwrap().join(".ags/config.toml");
    assert_eq!(
        ok(&out),
        format!(
            "config: {}\noverlay: {}\n",
            config.display(),
            overlay.display()
        )
    );
    assert!(stderr(&out).contains("not approved"), "{}", stderr(&out));
    home.approve_overlay();
    let out = home.run(&["config", "path"]);
    assert!(
        stderr(&out).contains("overlay approved"),
        "{}",
        stderr(&out)
    );

    // --config names another file.
    let other = home.path().join("other.toml");
    let out = home.run(&["--config", other.to_str().unwrap(), "config", "path"]);
    assert!(
        ok(&out).starts_with(&format!("config: {}\n", other.display())),
        "{}",
        stdout(&out)
    );
}

#[test]
fn config_show_merges_the_approved_overlay_and_never_shows_secret_values() {
    let home = Home::with_config(
        "[sandbox]\nmemory = \"2g\"\n\n[[secret]]\nenv = \"CANARY_TOKEN\"\nfrom_env = \"CANARY_TOKEN\"\n",
    );
    let show = || {
        let mut cmd = home.ags(&["config", "show"]);
        cmd.env("CANARY_TOKEN", "CANARY-SECRET-VALUE");
        let out = output_within(cmd, Duration::from_secs(30));
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !all.contains("CANARY-SECRET-VALUE"),
            "a secret value was printed: {all}"
        );
        ok(out)
    };
    let text = show();
    assert!(text.contains("# repo overlay: none"), "{text}");
    assert!(text.contains("memory = \"2g\""), "{text}");
    assert!(
        text.contains("[[secret]]\nenv = \"CANARY_TOKEN\"\nfrom_env = \"CANARY_TOKEN\"\n"),
        "{text}"
    );
    // The defaults that apply are shown.
    assert!(text.contains("pids = 4096"), "{text}");

    home.write(
        "proj/.ags/config.toml",
        "[sandbox]\npassthrough_env = [\"PASSME\"]\n",
    );
    let text = show();
    assert!(
        text.contains("(not approved, not applied;"),
        "unapproved overlays are not applied: {text}"
    );
    assert!(!text.contains("PASSME"), "{text}");

    home.approve_overlay();
    let text = show();
    assert!(text.contains("(approved, applied;"), "{text}");
    assert!(text.contains("passthrough_env = [\"PASSME\"]"), "{text}");
    assert!(text.contains("memory = \"2g\""), "{text}");
}

#[test]
fn config_show_without_a_config_file_shows_the_defaults_and_writes_nothing() {
    let home = Home::new();
    let text = ok(home.run(&["config", "show"]));
    assert!(text.contains("(does not exist yet"), "{text}");
    assert!(
        text.contains("image = \"localhost/ags/agent:latest\""),
        "{text}"
    );
    assert!(
        text.contains("[[agent_mount]]\nagent = \"codex\""),
        "{text}"
    );
    assert!(!home.path().join(".config").exists(), "show wrote files");
    // A config with errors: the error names the file and line.
    let bad = Home::with_config("[sandbox]\nimagee = \"x\"\n");
    let out = bad.run(&["config", "show"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("config.toml:2:"), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------
// ags install [--link-self]

#[test]
fn install_copies_atomically_and_links_self() {
    let home = Home::new();
    let bin_dir = home.path().join(".local/bin");
    let target = bin_dir.join("ags");

    let out = home.run(&["install"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("installed"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("warning: {} is not on PATH", bin_dir.display())),
        "{}",
        stderr(&out)
    );
    let meta = std::fs::symlink_metadata(&target).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o755);
    assert_eq!(meta.len(), std::fs::metadata(ags_bin()).unwrap().len());
    let version = ok(as_user(&target, &["--version"]).output().unwrap());
    assert!(version.starts_with("ags "), "{version}");

    // Again: nothing to do, the same file stays.
    let out = home.run(&["install"]);
    assert!(stderr(&out).contains("is up to date"), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&target).unwrap().ino(), meta.ino());

    // The installed copy cannot link to itself.
    let mut cmd = as_user(&target, &["install", "--link-self"]);
    cmd.env("HOME", home.path());
    let out = output_within(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("itself"), "{}", stderr(&out));
    assert!(std::fs::symlink_metadata(&target).unwrap().is_file());

    // --link-self, with ~/.local/bin on PATH: no warning.
    let path = format!("{}:/usr/bin:/bin", bin_dir.display());
    let mut cmd = home.ags(&["install", "--link-self"]);
    cmd.env("PATH", &path);
    let out = output_within(cmd, Duration::from_secs(30));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("not on PATH"), "{}", stderr(&out));
    let exe = ags_bin().canonicalize().unwrap();
    assert_eq!(std::fs::read_link(&target).unwrap(), exe);
    let mut cmd = home.ags(&["install", "--link-self"]);
    cmd.env("PATH", &path);
    let out = output_within(cmd, Duration::from_secs(30));
    assert!(stderr(&out).contains("already links"), "{}", stderr(&out));
    // Nothing else was left in ~/.local/bin.
    assert_eq!(std::fs::read_dir(&bin_dir).unwrap().count(), 1);
}

// ---------------------------------------------------------------------------------------
// ags create-aliases

#[test]
fn create_aliases_prints_working_aliases_for_each_agent() {
    let home = Home::new();
    let text = ok(home.run(&["create-aliases", "--shell", "bash"]));
    for agent in ["codex", "claude", "gemini", "opencode", "pi"] {
        assert!(
            text.contains(&format!("alias {agent}='ags --agent {agent} --'\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "alias {agent}-lockdown='ags --agent {agent} --lockdown --'\n"
            )),
            "{text}"
        );
    }
    assert!(
        text.contains("alias ags-shell='ags --agent shell --'\n"),
        "{text}"
    );
    // bash accepts them as they are.
    let script = format!("shopt -s expand_aliases\n{text}\ntype codex-lockdown");
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(
        stdout(&out).contains("codex-lockdown is aliased to `ags --agent codex --lockdown --'"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // Nothing but the aliases on stdout, so that eval "$(...)" works; the shell comes
    // from $SHELL when not given.
    let mut cmd = home.ags(&["create-aliases"]);
    cmd.env("SHELL", "/usr/bin/fish");
    let fish = ok(output_within(cmd, Duration::from_secs(30)));
    assert!(
        fish.contains("function codex --description 'codex in the ags sandbox'\n    ags --agent codex -- $argv\nend\n"),
        "{fish}"
    );
}

// ---------------------------------------------------------------------------------------
// ags setup

#[test]
fn setup_creates_keys_once_and_prints_the_public_keys() {
    let home = Home::new();
    let dir = home.path().join(".config/ags/ssh");
    let out = home.run(&["setup"]);
    let text = ok(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("ssh-ed25519 ") && lines[0].contains("ags-agent-auth"));
    assert!(lines[1].starts_with("ssh-ed25519 ") && lines[1].contains("ags-agent-signing"));
    assert!(
        stderr(&out).contains("authentication key: created"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("GitHub"), "{}", stderr(&out));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for key in ["ags-agent-auth", "ags-agent-signing"] {
        assert_eq!(mode(&dir.join(key)), 0o600, "{key}");
        let meta = std::fs::metadata(dir.join(key)).unwrap();
        assert_eq!(meta.uid(), user().uid, "{key} belongs to the user");
    }
    let private = std::fs::read(dir.join("ags-agent-auth")).unwrap();

    // Idempotent: the same keys, untouched.
    let out = home.run(&["setup"]);
    assert_eq!(ok(&out), text);
    assert!(stderr(&out).contains("kept existing"), "{}", stderr(&out));
    assert_eq!(std::fs::read(dir.join("ags-agent-auth")).unwrap(), private);

    // Without ssh-keygen: a clear error with a hint, and no files. PATH holds only what
    // switching to the test user needs.
    let bare = Home::new();
    let bin = bare.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink("/usr/bin/setpriv", bin.join("setpriv")).unwrap();
    let mut cmd = bare.ags(&["setup"]);
    cmd.env("PATH", &bin);
    let out = output_within(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("ssh-keygen is not installed"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("hint: install OpenSSH"),
        "{}",
        stderr(&out)
    );
    let ssh_dir = bare.path().join(".config/ags/ssh");
    let left = std::fs::read_dir(&ssh_dir).map_or(0, |d| d.count());
    assert_eq!(left, 0, "files left in {}", ssh_dir.display());
}

// ---------------------------------------------------------------------------------------
// ags doctor

fn doctor(home: &Home) -> (Option<i32>, String) {
    let out = home.run(&["doctor"]);
    (out.status.code(), stdout(&out))
}

#[test]
fn doctor_warns_about_a_missing_image_without_failing() {
    let home = Home::new();
    let (code, text) = doctor(&home);
    assert!(
        text.contains("[warn] image: localhost/ags/agent:latest is not in the store"),
        "{text}"
    );
    assert!(text.contains("fix: run `ags update` to build it"), "{text}");
    assert!(
        text.contains("[warn] agent CLIs: not checked: the image is not in the store"),
        "{text}"
    );
    assert!(text.contains("[warn] ssh keys:"), "{text}");
    assert!(text.contains("fix: run `ags setup`"), "{text}");
    // The required host checks pass on the test hosts; a missing image is only a warning.
    assert_eq!(code, Some(0), "{text}");
    // Doctor writes nothing: no config, no store.
    assert!(!home.path().join(".config").exists());
    assert!(!home.path().join(".local").exists());

    // A config with errors fails the check, naming the file and line.
    let bad = Home::with_config("[sandbox]\nnetwork = \"everywhere\"\n");
    let (code, text) = doctor(&bad);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("[FAIL] config:"), "{text}");
    assert!(text.contains("config.toml:2:"), "{text}");
}

#[test]
fn doctor_finds_the_agent_clis_in_the_image() {
    let f = Fixture::start();
    let home = Home::with_config(&format!(
        "[sandbox]\nimage = \"{}\"\n\n{}",
        f.image,
        f.insecure_registry()
    ));
    let (_, text) = doctor(&home);
    assert!(
        text.contains(&format!("[warn] image: {} is not in the store", f.image)),
        "{text}"
    );
    assert!(
        text.contains(&format!("fix: run `ags pull {}`", f.image)),
        "{text}"
    );
    ok(home.run(&["pull", &f.image]));
    let (code, text) = doctor(&home);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("[ok  ] image: {} (sha256:", f.image)),
        "{text}"
    );
    assert!(
        text.contains("[ok  ] agent codex: /usr/local/bin/codex"),
        "{text}"
    );
    // The shim's path depends on the busybox tree's layout (/usr/sbin may link to /bin).
    assert!(text.contains("[ok  ] agent shell: /"), "{text}");
    assert!(
        text.contains("[warn] agent claude: claude is not in"),
        "{text}"
    );
    assert!(
        text.contains(&format!("fix: install claude in {}", f.image)),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// Run mode: one config reading, the overlay's [registries] used for the pull

#[test]
fn run_mode_pulls_with_the_registries_of_the_approved_overlay() {
    let f = Fixture::start();
    // The user's own config knows nothing of the plain-HTTP test registry: only the
    // overlay says it is insecure (and names the image).
    let home = Home::new();
    home.write(
        "proj/.ags/config.toml",
        &format!(
            "[sandbox]\nimage = \"{}\"\n\n{}",
            f.image,
            f.insecure_registry()
        ),
    );
    // Not approved yet: the overlay is ignored, so the default image is missing.
    let out = home.run(&["--agent", "codex", "--", "hello"]);
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("not approved"), "{}", stderr(&out));

    home.approve_overlay();
    let out = home.run(&["--agent", "codex", "--", "hello"]);
    assert!(
        ok(&out).contains("fake codex ran: hello"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains(&format!("pulling {}", f.image)),
        "{}",
        stderr(&out)
    );

    // In lockdown the overlay is not read: the configured default image is used.
    let out = home.run(&["--agent", "codex", "--lockdown", "--", "hello"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("error: ") && stderr(&out).contains("localhost/ags/agent:latest"),
        "{}",
        stderr(&out)
    );
}
