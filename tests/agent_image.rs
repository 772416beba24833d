//! The shipped agent image, built for real: a Debian trixie base bootstrapped from
//! Debian's archive (ci/mk-debian-base.sh, debootstrap) is pushed to a local registry that
//! serves as the docker.io mirror for the Containerfile's FROM; `ags update` builds
//! containerfiles/agent.Containerfile with packages from deb.debian.org and the agent CLIs
//! from registry.npmjs.org, fetched through the build sandbox's network. The first command
//! is `ags --agent codex --lockdown -- --version`, which builds the missing default image
//! and runs the real codex CLI from it; then `ags update` and `ags update-agents`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use ags_e2e::*;

/// The bootstrapped base: `$AGS_DEBIAN_BASE` (ci/test.sh makes it), else made here (root).
fn debian_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("AGS_DEBIAN_BASE") {
        return PathBuf::from(dir);
    }
    assert!(
        is_root(),
        "set AGS_DEBIAN_BASE to the output of ci/mk-debian-base.sh, or run the suite as root"
    );
    let out = Command::new("bash")
        .arg(workspace().join("ci/mk-debian-base.sh"))
        .arg("/tmp/ags-e2e/debian-base")
        .output()
        .unwrap();
    assert!(out.status.success(), "mk-debian-base: {}", stderr(&out));
    PathBuf::from(stdout(&out).trim())
}

fn ags_in(dir: &std::path::Path, args: &[&str]) -> Command {
    let store = dir.join("store");
    let config = dir.join("config.toml");
    let mut all = vec![
        "--store",
        store.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let mut cmd = ags(&all);
    cmd.current_dir(dir.join("repo"));
    cmd.env("HOME", dir.join("home"));
    cmd
}

fn steps_run(out: &Output) -> usize {
    let err = stderr(out);
    let line = err
        .lines()
        .find(|l| l.starts_with("built "))
        .unwrap_or_else(|| panic!("no summary line: {err}"));
    let nums: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    nums[nums.len() - 2]
}

#[test]
fn the_shipped_agent_image_builds_and_runs_codex() {
    let base = debian_base();
    let reg = Registry::start("plain");
    let out = Command::new(env!("CARGO_BIN_EXE_ags-testimage"))
        .args([
            "push-tar",
            "--registry",
            &reg.addr,
            "--insecure",
            "--repo",
            "library/debian",
            "--tag",
            "trixie-slim",
            "--config-cmd",
            "bash",
        ])
        .arg(base.join("layer.tar.gz"))
        .output()
        .unwrap();
    assert!(out.status.success(), "push-tar: {}", stderr(&out));

    let dir = user_tempdir();
    for d in ["repo", "home"] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
        chown(&dir.path().join(d));
    }
    let cfg = format!(
        "[registries.hosts.\"docker.io\"]\nmirrors = [\"{0}\"]\n[registries.hosts.\"{0}\"]\ninsecure = true\n",
        reg.addr
    );
    std::fs::write(dir.path().join("config.toml"), cfg).unwrap();
    chown(&dir.path().join("config.toml"));
    let limit = Duration::from_secs(30 * 60);

    // The first command on a machine without the image: the lockdown run builds the
    // default image (progress on stderr), then runs the real codex CLI in it.
    let first = output_within(
        ags_in(
            dir.path(),
            &["--agent", "codex", "--lockdown", "--", "--version"],
        ),
        limit,
    );
    assert!(
        first.status.success(),
        "first lockdown run: {}",
        stderr(&first)
    );
    assert!(stdout(&first).contains("codex"), "{}", stdout(&first));
    assert!(stderr(&first).contains("STEP 1/"), "{}", stderr(&first));

    let version = ok(output_within(
        ags_in(
            dir.path(),
            &[
                "run",
                "localhost/ags/agent:latest",
                "--",
                "codex",
                "--version",
            ],
        ),
        Duration::from_secs(120),
    ));
    assert!(version.contains("codex"), "{version}");
    let who = ok(output_within(
        ags_in(
            dir.path(),
            &[
                "run",
                "localhost/ags/agent:latest",
                "--",
                "sh",
                "-c",
                "id -un; for c in git rg fd jq tmux python3 node npm codex claude gemini opencode pi; do command -v $c; done | wc -l",
            ],
        ),
        Duration::from_secs(120),
    ));
    assert_eq!(
        who.split_whitespace().collect::<Vec<_>>(),
        ["dev", "13"],
        "{who}"
    );

    // Again in lockdown, now with the image present.
    let lockdown = ok(output_within(
        ags_in(
            dir.path(),
            &["--agent", "codex", "--lockdown", "--", "--version"],
        ),
        Duration::from_secs(120),
    ));
    assert!(lockdown.contains("codex"), "{lockdown}");

    // A no-op update does no work; update-agents reruns only the agent step.
    let again = output_within(ags_in(dir.path(), &["update"]), limit);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(steps_run(&again), 0, "{}", stderr(&again));
    let agents = output_within(ags_in(dir.path(), &["update-agents"]), limit);
    assert!(agents.status.success(), "{}", stderr(&agents));
    assert_eq!(steps_run(&agents), 1, "{}", stderr(&agents));
}
