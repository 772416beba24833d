use super::*;

fn env() -> EnvMap {
    let mut e = EnvMap::new();
    e.insert("PROJ".into(), "/srv/proj".into());
    e.insert("TOKEN".into(), "s3cret".into());
    e
}

fn host(env: &EnvMap) -> HostContext<'_> {
    HostContext {
        home: Path::new("/home/u"),
        env,
    }
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    let e = env();
    parse_config(Path::new("/home/u/.config/ags/config.toml"), text, host(&e))
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn default_config_parses() {
    let c = parse(DEFAULT_CONFIG).unwrap();
    assert_eq!(c.image(), DEFAULT_IMAGE);
    assert_eq!(c.agent_mounts.len(), 7);
    assert_eq!(c.agent_mounts[0].host, Path::new("/home/u/.codex"));
    assert_eq!(c.agent_mounts[2].kind, MountKind::File);
    assert!(c.mounts.is_empty() && c.secrets.is_empty());
}

#[test]
fn full_config() {
    let c = parse(
        r#"
[sandbox]
image = "example/img:1"
containerfile = "Containerfile"
network = "none"
memory = "2g"
pids = 512
cpus = 2
passthrough_env = ["EDITOR"]
tmux = true

[[mount]]
host = "$PROJ/data"
container = "/data/"
mode = "rw"
create = true

[[tool]]
name = "jq"
path = "/usr/bin/jq"
container_path = "/usr/local/bin/jq"
optional = true

[[secret]]
env = "GH_TOKEN"
from_env = "TOKEN"
secret_store = { service = "gh" }
command = ["/usr/bin/pass", "gh"]
timeout_secs = 9

[registries]
mirrors = { "docker.io" = "127.0.0.1:5000" }
"#,
    )
    .unwrap();
    let s = &c.sandbox;
    assert_eq!(s.image.as_ref().unwrap().value, "example/img:1");
    assert_eq!(s.image.as_ref().unwrap().location.line, 3);
    assert_eq!(
        s.containerfile.as_ref().unwrap().value,
        Path::new("/home/u/.config/ags/Containerfile")
    );
    assert_eq!(s.network.as_ref().unwrap().value, Network::None);
    assert_eq!(s.memory_bytes.as_ref().unwrap().value, 2 << 30);
    assert_eq!(s.pids.as_ref().unwrap().value, 512);
    assert_eq!(s.cpus.as_ref().unwrap().value, 2.0);
    assert_eq!(s.passthrough_env[0].value, "EDITOR");
    assert!(s.tmux.as_ref().unwrap().value);
    let m = &c.mounts[0];
    assert_eq!(m.host, Path::new("/srv/proj/data"));
    assert_eq!(m.container, Path::new("/data"));
    assert_eq!(
        (m.mode, m.kind, m.create, m.optional),
        (MountMode::Rw, MountKind::Dir, true, false)
    );
    assert_eq!(m.location.line, 12);
    assert_eq!(c.tools[0].container_path, Path::new("/usr/local/bin/jq"));
    let sec = &c.secrets[0];
    assert_eq!(sec.timeout, Duration::from_secs(9));
    assert_eq!(sec.command.as_deref().unwrap()[0], "/usr/bin/pass");
    assert!(c.registries.contains_key("mirrors"));
}

#[test]
fn unknown_field_names_file_line_and_table() {
    let e = err("\n[sandbox]\nimagee = \"x\"\n");
    assert!(
        e.starts_with(
            "~/.config/ags/config.toml:3:1: unknown field `imagee` in [sandbox], expected one of"
        ),
        "{e}"
    );
    let e = err("[[mount]]\nhost = \"/a\"\ncontainer = \"/b\"\nreadonly = true\n");
    assert!(
        e.starts_with("~/.config/ags/config.toml:4:1: unknown field `readonly` in [[mount]]"),
        "{e}"
    );
    let e = err("[sandbox]\n[sandbx]\n");
    assert!(
        e.contains(":2:") && e.contains("unknown field `sandbx`"),
        "{e}"
    );
}

#[test]
fn type_and_enum_errors_name_line() {
    let e = err("[sandbox]\nnetwork = \"bridge\"\n");
    assert!(
        e.starts_with("~/.config/ags/config.toml:2:11: unknown variant `bridge`"),
        "{e}"
    );
    let e = err("[sandbox]\n\npids = \"many\"\n");
    assert!(e.starts_with("~/.config/ags/config.toml:3:"), "{e}");
    let e = err("[sandbox\n");
    assert!(e.starts_with("~/.config/ags/config.toml:1:"), "{e}");
}

#[test]
fn build_snapshots() {
    assert_eq!(parse("").unwrap().build.snapshots, None);
    let c = parse("[build]\nsnapshots = \"copy\"\n").unwrap();
    let s = c.build.snapshots.unwrap();
    assert_eq!(s.value, Snapshots::Copy);
    assert_eq!((s.location.line, s.location.col), (2, 13));
    let e = err("[build]\nsnapshots = \"vfs\"\n");
    assert!(
        e.starts_with("~/.config/ags/config.toml:2:13: unknown variant `vfs`"),
        "{e}"
    );
    let e = err("[build]\nsnapshot = \"copy\"\n");
    assert!(
        e.starts_with("~/.config/ags/config.toml:2:1: unknown field `snapshot` in [build]"),
        "{e}"
    );
}

#[test]
fn missing_field_names_table() {
    let e = err("[[mount]]\nhost = \"/a\"\n");
    assert!(e.contains("missing field `container`"), "{e}");
    assert!(e.starts_with("~/.config/ags/config.toml:1:"), "{e}");
}

#[test]
fn validation_errors_name_line() {
    let e = err("[sandbox]\nmemory = \"lots\"\n");
    assert!(
        e.starts_with("~/.config/ags/config.toml:2:10: `memory`"),
        "{e}"
    );
    let e = err("[[mount]]\nhost = \"/a\"\ncontainer = \"rel\"\n");
    assert!(
        e.starts_with(
            "~/.config/ags/config.toml:3:13: `container`: container path must be absolute"
        ),
        "{e}"
    );
    let e = err("[[mount]]\nhost = \"/a\"\ncontainer = \"/a/../proc\"\n");
    assert!(e.contains("normalized"), "{e}");
    let e = err("[[mount]]\nhost = \"/a\"\ncontainer = \"/proc/x\"\n");
    assert!(e.contains("inside /proc"), "{e}");
    let e = err("[[agent_mount]]\nagent = \"clod\"\nhost = \"/a\"\ncontainer = \"/b\"\n");
    assert!(
        e.starts_with("~/.config/ags/config.toml:2:9: unknown agent `clod`"),
        "{e}"
    );
    let e = err("[[secret]]\nenv = \"X\"\n");
    assert!(
        e.starts_with("~/.config/ags/config.toml:1:1: [[secret]] `X` needs at least one"),
        "{e}"
    );
    let e = err("[[secret]]\nenv = \"X\"\ncommand = [\"pass\", \"x\"]\n");
    assert!(
        e.contains(":3:") && e.contains("absolute program path"),
        "{e}"
    );
    let e = err("[[secret]]\nenv = \"HOME\"\nfrom_env = \"X\"\n");
    assert!(e.contains("set by ags"), "{e}");
    let e = err("[[secret]]\nenv = \"A-B\"\nfrom_env = \"X\"\n");
    assert!(e.contains("not a variable name"), "{e}");
    let e = err("[sandbox]\npassthrough_env = [\"OK\", \"AGS_LOCKDOWN\"]\n");
    assert!(e.starts_with("~/.config/ags/config.toml:2:26:"), "{e}");
    let e = err("[[mount]]\nhost = \"$NOPE/x\"\ncontainer = \"/b\"\n");
    assert!(e.contains(":2:8: `host`: undefined variable `NOPE`"), "{e}");
}

#[test]
fn duplicates_point_at_later_entry() {
    let e = err(
        "[[mount]]\nhost = \"/a\"\ncontainer = \"/b\"\n\n[[mount]]\nhost = \"/c\"\ncontainer = \"/b\"\n",
    );
    assert!(e.starts_with("~/.config/ags/config.toml:5:1: container path /b is already mounted by the entry at ~/.config/ags/config.toml:1:1"), "{e}");
    let e = err(
        "[[secret]]\nenv = \"A\"\nfrom_env = \"X\"\n[[secret]]\nenv = \"A\"\nfrom_env = \"Y\"\n",
    );
    assert!(
        e.contains(":4:1: [[secret]] `A` is already defined at"),
        "{e}"
    );
    // The same target for two different agents is fine.
    parse("[[agent_mount]]\nagent = \"pi\"\nhost = \"/a\"\ncontainer = \"/b\"\n[[agent_mount]]\nagent = \"codex\"\nhost = \"/c\"\ncontainer = \"/b\"\n").unwrap();
}

#[test]
fn expansion() {
    let e = env();
    let h = host(&e);
    assert_eq!(expand_path("~", h).unwrap(), Path::new("/home/u"));
    assert_eq!(expand_path("~/x", h).unwrap(), Path::new("/home/u/x"));
    assert_eq!(expand_path("$PROJ/a", h).unwrap(), Path::new("/srv/proj/a"));
    assert_eq!(expand_path("${PROJ}x", h).unwrap(), Path::new("/srv/projx"));
    assert_eq!(expand_path("$HOME/y", h).unwrap(), Path::new("/home/u/y"));
    assert_eq!(expand_path("/a/$$b", h).unwrap(), Path::new("/a/$b"));
    assert_eq!(expand_path("/a/$-b", h).unwrap(), Path::new("/a/$-b"));
    assert!(expand_path("~root/x", h).unwrap_err().contains("~user"));
    assert!(expand_path("${PROJ", h).unwrap_err().contains("malformed"));
    assert!(
        expand_path("$UNSET", h)
            .unwrap_err()
            .contains("undefined variable `UNSET`")
    );
}

#[test]
fn sizes() {
    assert_eq!(parse_size("512m"), Some(512 << 20));
    assert_eq!(parse_size("8G"), Some(8 << 30));
    assert_eq!(parse_size("8GiB"), Some(8 << 30));
    assert_eq!(parse_size("1gb"), Some(1 << 30));
    assert_eq!(parse_size("1073741824"), Some(1 << 30));
    assert_eq!(parse_size("1k"), None);
    assert_eq!(parse_size("-1g"), None);
    assert_eq!(parse_size("g"), None);
    assert_eq!(parse_size("99999999999t"), None);
}

#[test]
fn ensure_default_config_writes_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cfg/ags/config.toml");
    assert!(ensure_default_config(&path).unwrap());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), DEFAULT_CONFIG);
    std::fs::write(&path, "# mine\n").unwrap();
    assert!(!ensure_default_config(&path).unwrap());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");
    // No temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("config.toml")]);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn load_config_errors_name_path() {
    let dir = tempfile::tempdir().unwrap();
    let e = env();
    let missing = dir.path().join("nope.toml");
    let err = load_config(&missing, host(&e)).unwrap_err();
    assert!(err.to_string().contains("nope.toml"), "{err}");
    let big = dir.path().join("big.toml");
    std::fs::write(&big, vec![b'#'; (MAX_CONFIG_SIZE + 1) as usize]).unwrap();
    assert!(matches!(
        load_config(&big, host(&e)),
        Err(ConfigError::TooLarge { .. })
    ));
}

#[test]
fn create_missing_sources_creates_only_what_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let text = format!(
        "[[mount]]\nhost = \"{d}/made\"\ncontainer = \"/m\"\ncreate = true\n\
         [[mount]]\nhost = \"{d}/f/file\"\ncontainer = \"/f\"\nkind = \"file\"\ncreate = true\n\
         [[mount]]\nhost = \"{d}/not\"\ncontainer = \"/n\"\noptional = true\n\
         [[agent_mount]]\nagent = \"codex\"\nhost = \"{d}/codex\"\ncontainer = \"/home/dev/.codex\"\n\
         [[agent_mount]]\nagent = \"claude\"\nhost = \"{d}/claude\"\ncontainer = \"/home/dev/.claude\"\n"
    );
    let c = parse(&text).unwrap();
    let made = c.create_missing_sources(AgentKind::Codex).unwrap();
    assert_eq!(made.len(), 3);
    assert!(dir.path().join("made").is_dir());
    assert!(dir.path().join("f/file").is_file());
    assert!(dir.path().join("codex").is_dir());
    assert!(!dir.path().join("not").exists());
    assert!(!dir.path().join("claude").exists());
    assert!(
        c.create_missing_sources(AgentKind::Codex)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn container_paths() {
    assert!(check_container_path("/home/dev/x").is_ok());
    assert_eq!(check_container_path("/a/b/").unwrap(), Path::new("/a/b"));
    for bad in [
        "", "a", "/", "//", "/a//b", "/a/./b", "/a/..", "/dev", "/sys/fs", "/proc",
    ] {
        assert!(check_container_path(bad).is_err(), "{bad}");
    }
}
