use super::*;
use crate::config::{HostContext, parse_config};
use crate::profile::AgentKind;
use crate::workspace::find_workspace;
use std::os::unix::fs::PermissionsExt as _;

struct Fx {
    _t: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    proj: PathBuf,
    extra: PathBuf,
    env: EnvMap,
}

fn fx() -> Fx {
    let t = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(t.path()).unwrap();
    let home = root.join("home");
    let proj = home.join("src/proj");
    let extra = root.join("extra");
    for d in [&home, &proj, &extra, &root.join("run")] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::set_permissions(root.join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(&proj)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", &home)
        .status()
        .unwrap();
    assert!(out.success());
    std::fs::create_dir_all(proj.join("sub")).unwrap();
    std::fs::create_dir_all(home.join(".codex")).unwrap();
    std::fs::write(home.join(".codex/auth.json"), "{}").unwrap();
    std::fs::write(home.join(".codex/history.jsonl"), "CANARY").unwrap();
    std::fs::create_dir_all(home.join("notes")).unwrap();
    std::fs::write(root.join("jq"), "#!/bin/true\n").unwrap();
    let mut env = EnvMap::new();
    env.insert("TERM".into(), "xterm-kitty".into());
    env.insert("LANG".into(), "de_DE.UTF-8".into());
    env.insert("EDITOR".into(), "vim".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), "CANARY".into());
    env.insert("SSH_AUTH_SOCK".into(), "/run/user/1/ssh".into());
    Fx {
        _t: t,
        root,
        home,
        proj,
        extra,
        env,
    }
}

impl Fx {
    fn config(&self) -> Config {
        let text = format!(
            r#"[sandbox]
image = "img:1"
memory = "4g"
passthrough_env = ["EDITOR", "NOT_SET"]

[[agent_mount]]
agent = "codex"
host = "~/.codex"
container = "/home/dev/.codex"

[[agent_mount]]
agent = "claude"
host = "~/.claude"
container = "/home/dev/.claude"

[[mount]]
host = "~/notes"
container = "/home/dev/notes"

[[mount]]
host = "~/missing"
container = "/opt/missing"
optional = true

[[tool]]
name = "jq"
path = "{}/jq"
container_path = "/usr/local/bin/jq"

[[secret]]
env = "GH_TOKEN"
from_env = "EDITOR"
"#,
            self.root.display()
        );
        parse_config(
            &self.home.join(".config/ags/config.toml"),
            &text,
            HostContext {
                home: &self.home,
                env: &self.env,
            },
        )
        .unwrap()
    }
}

fn inputs<'a>(
    f: &'a Fx,
    ws: &'a Workspace,
    cfg: &'a Config,
    lockdown: bool,
    staged: Option<&'a StagedHome>,
    extra: &'a [PathBuf],
    secrets: &'a [(String, SecretValue)],
) -> PlanInputs<'a> {
    PlanInputs {
        profile: AgentKind::Codex.profile(),
        lockdown,
        workspace: ws,
        extra_dirs: extra,
        config: cfg,
        host_env: &f.env,
        host_home: &f.home,
        defaults: false,
        tmux: false,
        agent_args: &[],
        network: None,
        limits: LimitOverrides::default(),
        staged_home: staged,
        secrets,
    }
}

fn mount(
    host: &Path,
    container: &str,
    mode: MountMode,
    kind: MountKind,
    origin: MountOrigin,
) -> PlanMount {
    PlanMount {
        host: host.to_path_buf(),
        container: PathBuf::from(container),
        mode,
        kind,
        origin,
    }
}

fn same(host: &Path, origin: MountOrigin) -> PlanMount {
    mount(
        host,
        host.to_str().unwrap(),
        MountMode::Rw,
        MountKind::Dir,
        origin,
    )
}

fn env_pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn normal_plan_snapshot() {
    let f = fx();
    let cfg = f.config();
    let ws = find_workspace(&f.proj.join("sub")).unwrap();
    let secrets = vec![("GH_TOKEN".to_owned(), SecretValue::new("tok".into()))];
    let extra = vec![f.extra.clone(), f.extra.join("."), f.proj.clone()];
    let plan = build_plan(&inputs(&f, &ws, &cfg, false, None, &extra, &secrets)).unwrap();

    assert_eq!(plan.image, "img:1");
    assert_eq!(plan.argv, ["codex"]);
    assert_eq!(plan.workdir, f.proj.join("sub"));
    assert!(!plan.lockdown);
    assert_eq!(plan.network, Network::Egress);
    assert_eq!(
        plan.limits,
        Limits {
            memory_bytes: Some(4 << 30),
            pids: DEFAULT_PIDS,
            cpus: None
        }
    );
    assert_eq!(plan.hostname, "ags-codex");
    let loc = |i: usize| cfg.agent_mounts[i].location.clone();
    assert_eq!(
        plan.mounts,
        [
            same(&f.proj, MountOrigin::Workspace),
            same(&f.extra, MountOrigin::AddDir),
            mount(
                &f.home.join(".codex"),
                "/home/dev/.codex",
                MountMode::Rw,
                MountKind::Dir,
                MountOrigin::AgentMount(loc(0))
            ),
            mount(
                &f.home.join("notes"),
                "/home/dev/notes",
                MountMode::Ro,
                MountKind::Dir,
                MountOrigin::ConfigMount(cfg.mounts[0].location.clone())
            ),
            mount(
                &f.root.join("jq"),
                "/usr/local/bin/jq",
                MountMode::Ro,
                MountKind::File,
                MountOrigin::Tool(cfg.tools[0].location.clone())
            ),
        ]
    );
    assert!(plan.readonly_paths_in_workspace.is_empty());
    assert_eq!(
        plan.env,
        env_pairs(&[
            ("HOME", "/home/dev"),
            ("TERM", "xterm-kitty"),
            ("LANG", "de_DE.UTF-8"),
            ("EDITOR", "vim"),
            ("AGS_SANDBOX", "1"),
            ("AGS_AGENT", "codex"),
        ])
    );
    assert_eq!(plan.secret_env.len(), 1);
    assert!(
        !format!("{plan:?}").contains("tok\""),
        "secret in Debug output"
    );
}

#[test]
fn lockdown_plan_snapshot() {
    let f = fx();
    let cfg = f.config();
    let ws = find_workspace(&f.proj).unwrap();
    ws.prepare_lockdown().unwrap();
    let staged =
        StagedHome::create(&f.root.join("run"), AgentKind::Codex.profile(), &f.home).unwrap();
    let secrets = vec![("GH_TOKEN".to_owned(), SecretValue::new("tok".into()))];
    let extra = vec![f.extra.clone()];
    let mut inp = inputs(&f, &ws, &cfg, true, Some(&staged), &extra, &secrets);
    inp.defaults = true;
    inp.tmux = true;
    let args = vec!["--model".to_owned(), "o3".to_owned()];
    inp.agent_args = &args;
    let plan = build_plan(&inp).unwrap();

    assert!(plan.lockdown);
    assert_eq!(
        plan.argv,
        ["tmux", "new-session", "-s", "ags", "codex", "--model", "o3"]
    );
    assert_eq!(
        plan.mounts,
        [
            same(&f.proj, MountOrigin::Workspace),
            same(&f.proj.join(".git"), MountOrigin::GitPin),
            same(&f.extra, MountOrigin::AddDir),
            mount(
                &staged.path().join("home/.codex"),
                "/home/dev/.codex",
                MountMode::Rw,
                MountKind::Dir,
                MountOrigin::StagedHome
            ),
        ]
    );
    assert_eq!(
        plan.readonly_paths_in_workspace,
        [
            ProtectedPath {
                path: f.proj.join(".git/hooks"),
                kind: MountKind::Dir
            },
            ProtectedPath {
                path: f.proj.join(".git/config"),
                kind: MountKind::File
            },
        ]
    );
    assert_eq!(
        plan.env,
        env_pairs(&[
            ("HOME", "/home/dev"),
            ("TERM", "xterm-kitty"),
            ("LANG", "de_DE.UTF-8"),
            ("AGS_SANDBOX", "1"),
            ("AGS_AGENT", "codex"),
            ("AGS_LOCKDOWN", "1"),
        ])
    );
    assert!(plan.secret_env.is_empty());
    let dump = format!("{plan:?}");
    assert!(!dump.contains("CANARY") && !dump.contains("ssh"), "{dump}");
}

#[test]
fn defaults_and_limits() {
    let f = fx();
    let cfg = f.config();
    let ws = find_workspace(&f.proj).unwrap();
    let mut inp = inputs(&f, &ws, &cfg, false, None, &[], &[]);
    inp.profile = AgentKind::Claude.profile();
    inp.defaults = true;
    inp.limits = LimitOverrides {
        memory_bytes: Some(1 << 30),
        pids: Some(100),
        cpus: Some(1.5),
    };
    inp.network = Some(Network::None);
    std::fs::create_dir_all(f.home.join(".claude")).unwrap();
    let plan = build_plan(&inp).unwrap();
    assert_eq!(
        plan.argv,
        [
            "claude",
            "--strict-mcp-config",
            "--dangerously-skip-permissions"
        ]
    );
    assert_eq!(
        plan.limits,
        Limits {
            memory_bytes: Some(1 << 30),
            pids: 100,
            cpus: Some(1.5)
        }
    );
    assert_eq!(plan.network, Network::None);
    // Only claude's agent mounts are used.
    let agent_mounts: Vec<_> = plan
        .mounts
        .iter()
        .filter(|m| matches!(m.origin, MountOrigin::AgentMount(_)))
        .collect();
    assert_eq!(agent_mounts.len(), 1);
    assert_eq!(agent_mounts[0].container, Path::new("/home/dev/.claude"));
}

#[test]
fn refusals() {
    let f = fx();
    let cfg = f.config();
    let ws = find_workspace(&f.proj).unwrap();

    let mut inp = inputs(&f, &ws, &cfg, true, None, &[], &[]);
    inp.network = Some(Network::Host);
    assert!(matches!(
        build_plan(&inp),
        Err(PlanError::HostNetworkInLockdown)
    ));
    let inp = inputs(&f, &ws, &cfg, true, None, &[], &[]);
    assert!(matches!(
        build_plan(&inp),
        Err(PlanError::MissingStagedHome { .. })
    ));

    std::fs::create_dir_all(f.home.join(".ssh")).unwrap();
    std::fs::create_dir_all(f.home.join(".config/ags")).unwrap();
    for bad in [
        f.home.clone(),
        f.home.join(".ssh"),
        f.home.join(".config"),
        PathBuf::from("/"),
    ] {
        let extra = vec![bad.clone()];
        let inp = inputs(&f, &ws, &cfg, false, None, &extra, &[]);
        let e = build_plan(&inp).unwrap_err();
        assert!(matches!(e, PlanError::Sensitive { .. }), "{bad:?}: {e}");
    }
    let home_ws = find_workspace(&f.home).unwrap();
    let e = build_plan(&inputs(&f, &home_ws, &cfg, false, None, &[], &[])).unwrap_err();
    assert!(e.to_string().contains("contains the home directory"), "{e}");

    let file = vec![f.root.join("jq")];
    let e = build_plan(&inputs(&f, &ws, &cfg, false, None, &file, &[])).unwrap_err();
    assert!(matches!(e, PlanError::NotADirectory { .. }), "{e}");
    let gone = vec![f.root.join("nope")];
    let e = build_plan(&inputs(&f, &ws, &cfg, false, None, &gone, &[])).unwrap_err();
    assert!(e.to_string().starts_with("--add-dir "), "{e}");
}

#[test]
fn lockdown_needs_protected_paths_to_exist() {
    let f = fx();
    let cfg = f.config();
    std::fs::remove_dir_all(f.proj.join(".git/hooks")).ok();
    let ws = find_workspace(&f.proj).unwrap();
    let staged =
        StagedHome::create(&f.root.join("run"), AgentKind::Codex.profile(), &f.home).unwrap();
    let e = build_plan(&inputs(&f, &ws, &cfg, true, Some(&staged), &[], &[])).unwrap_err();
    assert!(matches!(e, PlanError::MissingProtectedPath { .. }), "{e}");
    ws.prepare_lockdown().unwrap();
    build_plan(&inputs(&f, &ws, &cfg, true, Some(&staged), &[], &[])).unwrap();
}

#[test]
fn config_source_errors_name_location() {
    let f = fx();
    let env = f.env.clone();
    let host = HostContext {
        home: &f.home,
        env: &env,
    };
    let ws = find_workspace(&f.proj).unwrap();
    let cfg = parse_config(
        &f.home.join("c.toml"),
        "[[mount]]\nhost = \"~/gone\"\ncontainer = \"/g\"\n",
        host,
    )
    .unwrap();
    let e = build_plan(&inputs(&f, &ws, &cfg, false, None, &[], &[]))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("~/c.toml:1:1: ") && e.contains("gone does not exist"),
        "{e}"
    );
    let cfg = parse_config(
        &f.home.join("c.toml"),
        "[[mount]]\nhost = \"~/notes\"\ncontainer = \"/g\"\nkind = \"file\"\n",
        host,
    )
    .unwrap();
    let e = build_plan(&inputs(&f, &ws, &cfg, false, None, &[], &[]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not a file"), "{e}");
    let target = format!(
        "[[mount]]\nhost = \"~/notes\"\ncontainer = \"{}\"\n",
        f.proj.display()
    );
    let cfg = parse_config(&f.home.join("c.toml"), &target, host).unwrap();
    let e = build_plan(&inputs(&f, &ws, &cfg, false, None, &[], &[]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("two mounts target") && e.contains("the workspace"),
        "{e}"
    );
}
