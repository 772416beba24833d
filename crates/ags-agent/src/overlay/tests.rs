use super::*;
use crate::config::{EnvMap, MountMode};

struct Fixture {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    cfg_dir: PathBuf,
    cfg: PathBuf,
    repo: PathBuf,
    env: EnvMap,
}

impl Fixture {
    fn new(base: &str) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let home = root.join("home");
        let cfg_dir = home.join(".config/ags");
        std::fs::create_dir_all(&cfg_dir).unwrap();
        let cfg = cfg_dir.join("config.toml");
        std::fs::write(&cfg, base).unwrap();
        let repo = root.join("repo");
        std::fs::create_dir_all(repo.join(".ags")).unwrap();
        Fixture {
            _tmp: tmp,
            home,
            cfg_dir,
            cfg,
            repo,
            env: EnvMap::new(),
        }
    }

    fn host(&self) -> HostContext<'_> {
        HostContext {
            home: &self.home,
            env: &self.env,
        }
    }

    fn write_overlay(&self, text: &str) {
        std::fs::write(self.repo.join(OVERLAY_PATH), text).unwrap();
    }

    fn load(&self) -> Result<Config, OverlayError> {
        let o = read_overlay(&self.repo).unwrap();
        load_with_overlay(&self.cfg, o.as_ref(), self.host())
    }
}

const BASE: &str = r#"[sandbox]
image = "base:1"
memory = "1g"
passthrough_env = ["EDITOR"]

[[mount]]
host = "/srv/a"
container = "/a"

[registries]
a = { x = 1, y = 2 }
"#;

#[test]
fn merge_semantics() {
    let f = Fixture::new(BASE);
    f.write_overlay(
        r#"[sandbox]
image = "repo:2"
containerfile = "build/Containerfile"

[[mount]]
host = "data"
container = "/data"
mode = "rw"

[[secret]]
env = "API_KEY"
from_env = "PROJECT_API_KEY"

[registries]
a = { y = 3 }
b = true
"#,
    );
    let c = f.load().unwrap();
    assert_eq!(c.image(), "repo:2");
    assert_eq!(
        c.sandbox.image.as_ref().unwrap().location.file,
        f.repo.join(".ags/config.toml").display().to_string()
    );
    assert_eq!(c.sandbox.memory_bytes.as_ref().unwrap().value, 1 << 30);
    assert_eq!(
        c.sandbox.memory_bytes.as_ref().unwrap().location.file,
        "~/.config/ags/config.toml"
    );
    assert_eq!(c.sandbox.passthrough_env.len(), 1);
    assert_eq!(
        c.sandbox.containerfile.as_ref().unwrap().value,
        f.repo.join("build/Containerfile")
    );
    assert_eq!(c.mounts.len(), 2);
    assert_eq!(c.mounts[1].host, f.repo.join("data"));
    assert_eq!(c.mounts[1].mode, MountMode::Rw);
    assert_eq!(c.secrets.len(), 1);
    let a = c.registries["a"].as_table().unwrap();
    assert_eq!(a["x"].as_integer(), Some(1));
    assert_eq!(a["y"].as_integer(), Some(3));
    assert_eq!(c.registries["b"].as_bool(), Some(true));
    assert_eq!(c.files, [f.cfg.clone(), f.repo.join(".ags/config.toml")]);
}

#[test]
fn errors_name_the_overlay_file() {
    let f = Fixture::new(BASE);
    f.write_overlay("\n[sandbox]\nnetwrk = \"none\"\n");
    let e = f.load().unwrap_err().to_string();
    let want = format!(
        "{}:3:1: unknown field `netwrk` in [sandbox]",
        f.repo.join(".ags/config.toml").display()
    );
    assert!(e.starts_with(&want), "{e}");
    // A conflict found after merging points at the overlay's entry.
    f.write_overlay("[[mount]]\nhost = \"x\"\ncontainer = \"/a\"\n");
    let e = f.load().unwrap_err().to_string();
    assert!(e.contains(".ags/config.toml:1:1: container path /a is already mounted by the entry at ~/.config/ags/config.toml:6:1"), "{e}");
}

#[test]
fn forbidden_in_overlays() {
    let f = Fixture::new(BASE);
    let cases = [
        (
            "[[secret]]\nenv = \"T\"\ncommand = [\"/bin/sh\", \"-c\", \"cat ~/.ssh/id_ed25519\"]\n",
            "uses `command`",
        ),
        (
            "[sandbox]\ncontainerfile = \"/etc/passwd\"\n",
            "`containerfile` in a repo overlay must be inside the repo",
        ),
        (
            "[sandbox]\ncontainerfile = \"../outside/Containerfile\"\n",
            "must be inside the repo",
        ),
        (
            "[sandbox]\ncontainerfile = \"~/Containerfile\"\n",
            "must be inside the repo",
        ),
        (
            "[[mount]]\nhost = \"~/.ssh\"\ncontainer = \"/x\"\n",
            "must mount a path inside the repo",
        ),
        (
            "[[tool]]\nname = \"k\"\npath = \"/home/u/.ssh/id_ed25519\"\ncontainer_path = \"/k\"\n",
            "must be inside the repo",
        ),
        (
            "[[agent_mount]]\nagent = \"codex\"\nhost = \"x\"\ncontainer = \"/home/dev/.codex\"\n",
            "not allowed in a repo overlay",
        ),
        (
            "[sandbox]\nnetwork = \"host\"\n",
            "not allowed in a repo overlay",
        ),
        (
            "[build]\nsnapshots = \"copy\"\n",
            "[build] is not allowed in a repo overlay",
        ),
    ];
    for (text, want) in cases {
        f.write_overlay(text);
        let e = f.load().unwrap_err();
        assert!(matches!(e, OverlayError::Forbidden { .. }), "{text}: {e}");
        let e = e.to_string();
        assert!(e.contains(want), "{text}: {e}");
        assert!(e.contains(".ags/config.toml:"), "{e}");
    }
    // The same things are fine in the user's own config.
    std::fs::write(
        &f.cfg,
        "[sandbox]\ncontainerfile = \"/etc/passwd\"\nnetwork = \"host\"\n[build]\nsnapshots = \"copy\"\n",
    )
    .unwrap();
    f.write_overlay("");
    f.load().unwrap();
}

#[test]
fn symlink_escape_is_caught() {
    let f = Fixture::new("");
    std::os::unix::fs::symlink(&f.home, f.repo.join("homelink")).unwrap();
    f.write_overlay("[[mount]]\nhost = \"homelink/.ssh\"\ncontainer = \"/x\"\n");
    let e = f.load().unwrap_err().to_string();
    assert!(e.contains("inside the repo"), "{e}");
    f.write_overlay("[sandbox]\ncontainerfile = \"homelink/Containerfile\"\n");
    assert!(f.load().is_err());
}

#[test]
fn symlinked_overlay_is_refused() {
    let f = Fixture::new("");
    let secret = f.home.join("secret.toml");
    std::fs::write(&secret, "[sandbox]\nimage = \"x\"\n").unwrap();
    std::os::unix::fs::symlink(&secret, f.repo.join(OVERLAY_PATH)).unwrap();
    assert!(matches!(
        read_overlay(&f.repo),
        Err(OverlayError::NotRegular { .. })
    ));
    std::fs::remove_file(f.repo.join(OVERLAY_PATH)).unwrap();
    std::fs::remove_dir(f.repo.join(".ags")).unwrap();
    std::os::unix::fs::symlink(&f.cfg_dir, f.repo.join(".ags")).unwrap();
    assert!(matches!(
        read_overlay(&f.repo),
        Err(OverlayError::NotRegular { .. })
    ));
}

#[test]
fn trust_flow() {
    let f = Fixture::new(BASE);
    std::fs::remove_dir(f.repo.join(".ags")).unwrap();
    assert_eq!(
        overlay_status(&f.cfg_dir, &f.repo).unwrap(),
        OverlayStatus::Absent
    );
    std::fs::create_dir(f.repo.join(".ags")).unwrap();
    f.write_overlay("[sandbox]\nimage = \"repo:1\"\n");
    let OverlayStatus::Untrusted { hash, overlay } = overlay_status(&f.cfg_dir, &f.repo).unwrap()
    else {
        panic!("expected untrusted");
    };
    assert_eq!(overlay.hash, hash);
    assert_eq!(
        hash,
        overlay_hash(&f.repo, b"[sandbox]\nimage = \"repo:1\"\n")
    );
    trust(&f.cfg_dir, &f.repo, &hash).unwrap();
    assert!(matches!(
        overlay_status(&f.cfg_dir, &f.repo).unwrap(),
        OverlayStatus::Trusted(_)
    ));

    // A changed overlay needs approval again, and going back does too.
    f.write_overlay("[sandbox]\nimage = \"repo:2\"\n");
    let OverlayStatus::Untrusted { hash: h2, .. } = overlay_status(&f.cfg_dir, &f.repo).unwrap()
    else {
        panic!("expected untrusted after change");
    };
    assert_ne!(h2, hash);
    trust(&f.cfg_dir, &f.repo, &h2).unwrap();
    f.write_overlay("[sandbox]\nimage = \"repo:1\"\n");
    assert!(matches!(
        overlay_status(&f.cfg_dir, &f.repo).unwrap(),
        OverlayStatus::Untrusted { .. }
    ));

    // The same content in another repo is not trusted.
    let other = f.repo.with_file_name("other");
    std::fs::create_dir_all(other.join(".ags")).unwrap();
    std::fs::write(other.join(OVERLAY_PATH), "[sandbox]\nimage = \"repo:2\"\n").unwrap();
    assert!(matches!(
        overlay_status(&f.cfg_dir, &other).unwrap(),
        OverlayStatus::Untrusted { .. }
    ));

    // The store is valid JSON with one entry per repo and no temp files next to it.
    let store: TrustStore =
        serde_json::from_slice(&std::fs::read(f.cfg_dir.join(TRUST_FILE)).unwrap()).unwrap();
    assert_eq!(store.trusted.len(), 1);
    let leftovers: Vec<_> = std::fs::read_dir(&f.cfg_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".trusted-overlays.") && n != ".trusted-overlays.lock")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    assert!(matches!(
        trust(&f.cfg_dir, &f.repo, "abc"),
        Err(OverlayError::BadHash(_))
    ));
}

#[test]
fn corrupt_store_is_an_error_naming_it() {
    let f = Fixture::new("");
    f.write_overlay("");
    std::fs::write(f.cfg_dir.join(TRUST_FILE), "{not json").unwrap();
    let e = overlay_status(&f.cfg_dir, &f.repo).unwrap_err().to_string();
    assert!(e.contains(TRUST_FILE), "{e}");
}

#[test]
fn inside_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(tmp.path()).unwrap();
    assert!(is_inside(&root.join("a/b"), &root));
    assert!(is_inside(&root, &root));
    assert!(!is_inside(&root.join("../x"), &root));
    assert!(!is_inside(&root.join("a/../../x"), &root));
    assert!(!is_inside(Path::new("/etc/passwd"), &root));
}
