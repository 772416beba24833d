//! Turning a [`SandboxPolicy`] into an OCI runtime spec (`config.json`).
//!
//! The spec is assembled as JSON in this one function so that it reads like the document
//! libcontainer receives, then checked by deserializing it into `oci_spec`'s types. The
//! user namespace is not in the spec: ags joins the namespace held by the
//! [holder](crate::holder) before it calls libcontainer (the "runtime started inside a
//! user namespace" mode that podman also uses), which lets one code path serve delegated
//! cgroups, undelegated cgroups and a pre-configured network.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::policy::{Access, Mount, NetworkMode, SandboxPolicy};
use crate::seccomp;

/// What the runner knows that the policy does not.
#[derive(Debug, Clone)]
pub struct SpecContext {
    /// Path of the network namespace to join (`/proc/<holder>/ns/net`); `None` with
    /// [`NetworkMode::Host`].
    pub netns: Option<PathBuf>,
    /// `linux.cgroupsPath`.
    pub cgroups_path: String,
    /// Extra read-only file binds laid into the sandbox (hosts, resolv.conf, passwd, ...),
    /// as (host file, container path).
    pub files: Vec<(PathBuf, PathBuf)>,
    /// `RLIMIT_NPROC` to set when cgroups cannot hold the process count.
    pub nproc_rlimit: Option<u64>,
    /// Resource limits for libcontainer to apply (`linux.resources`), only where the cgroup
    /// manager can do it rootless (systemd on cgroup v2). Otherwise ags writes the limits
    /// itself.
    pub resources: Option<Value>,
}

/// Paths runc masks by default (`/dev/null` over files, an empty read-only tmpfs over
/// directories), plus `/sys/fs/cgroup`: even read-only, a bind of /sys keeps the cgroup
/// submounts writable, and a container could raise its own `pids.max`.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
    "/sys/fs/cgroup",
];

/// Paths runc makes read-only by default.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The character devices a process may expect; rootless, libcontainer bind-mounts the
/// host's nodes because a user namespace cannot create device nodes.
const DEVICES: &[(&str, i64, i64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Build the runtime spec.
pub fn build(policy: &SandboxPolicy, ctx: &SpecContext) -> Value {
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    if let Some(netns) = &ctx.netns {
        namespaces.push(json!({"type": "network", "path": netns}));
    }

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k", "nr_inodes=4096"]}),
        // No gid= option: group 5 (tty) is usually not mapped in a rootless namespace.
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k", "nr_inodes=4096"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
    ];
    mounts.push(if ctx.netns.is_some() {
        // A fresh sysfs is only allowed to the owner of the network namespace; it shows
        // the sandbox's own network devices and none of the host's.
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]})
    } else {
        json!({"destination": "/sys", "type": "bind", "source": "/sys",
               "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    });
    for m in &policy.mounts {
        mounts.push(mount_json(m));
    }
    for (host, ctr) in &ctx.files {
        mounts.push(json!({"destination": ctr, "type": "bind", "source": host,
                           "options": ["bind", "ro", "nosuid", "nodev", "noexec", "private"]}));
    }

    let env: Vec<String> = policy.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let caps: Vec<&str> = policy.capabilities.iter().map(String::as_str).collect();
    let mut rlimits = vec![
        json!({"type": "RLIMIT_NOFILE", "hard": policy.limits.nofile, "soft": policy.limits.nofile}),
    ];
    if let Some(n) = ctx.nproc_rlimit {
        rlimits.push(json!({"type": "RLIMIT_NPROC", "hard": n, "soft": n}));
    }
    let devices: Vec<Value> = DEVICES
        .iter()
        .map(|(p, major, minor)| {
            json!({"path": p, "type": "c", "major": major, "minor": minor, "fileMode": 0o666, "uid": policy.uid, "gid": policy.gid})
        })
        .collect();

    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": ctx.cgroups_path,
        "devices": devices,
        "seccomp": seccomp::profile(),
        "maskedPaths": MASKED_PATHS,
        "readonlyPaths": READONLY_PATHS,
        "rootfsPropagation": "private",
    });
    if let Some(res) = &ctx.resources {
        linux["resources"] = res.clone();
    }

    json!({
        "ociVersion": "1.0.2",
        "root": {"path": policy.rootfs, "readonly": policy.writable.is_none()},
        "hostname": policy.hostname,
        "process": {
            "terminal": policy.tty,
            "user": {"uid": policy.uid, "gid": policy.gid},
            "args": policy.argv,
            "env": env,
            "cwd": policy.cwd,
            // All five sets are listed, and empty unless the builder asks for some: an
            // inheritable or ambient set would survive execve (CVE-2022-29162).
            "capabilities": {"bounding": caps, "effective": caps, "inheritable": [], "permitted": caps, "ambient": []},
            "noNewPrivileges": true,
            "rlimits": rlimits,
        },
        "mounts": mounts,
        "linux": linux,
    })
}

fn mount_json(m: &Mount) -> Value {
    match m {
        Mount::Bind {
            source,
            target,
            access,
        } => {
            let mode = match access {
                Access::ReadOnly => "ro",
                Access::ReadWrite => "rw",
            };
            // rbind keeps submounts of the source visible; nosuid/nodev make a setuid
            // binary or device node on the host path useless inside; private stops mount
            // events from propagating in either direction.
            json!({"destination": target, "type": "bind", "source": source,
                   "options": ["rbind", mode, "nosuid", "nodev", "rprivate"]})
        }
        Mount::Tmpfs {
            target,
            size,
            nr_inodes,
            mode,
            exec,
        } => {
            let mut options = vec![
                "nosuid".to_owned(),
                "nodev".to_owned(),
                format!("size={size}"),
                format!("nr_inodes={nr_inodes}"),
                format!("mode={mode:o}"),
            ];
            if !exec {
                options.push("noexec".to_owned());
            }
            json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": options})
        }
    }
}

/// Deserialize into `oci_spec`'s types to catch a malformed document before libcontainer
/// sees it.
pub fn validate(spec: &Value) -> Result<oci_spec::runtime::Spec, serde_json::Error> {
    serde_json::from_value(spec.clone())
}

/// Where the network is or is not, for error messages and tests.
pub fn has_own_netns(network: NetworkMode) -> bool {
    network != NetworkMode::Host
}

/// The `config.json` path inside a bundle.
pub fn config_path(bundle: &Path) -> PathBuf {
    bundle.join("config.json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Limits;

    fn ctx() -> SpecContext {
        SpecContext {
            netns: Some("/proc/42/ns/net".into()),
            cgroups_path: "/ags-delegate/ags-x".into(),
            files: vec![("/run/x/hosts".into(), "/etc/hosts".into())],
            nproc_rlimit: None,
            resources: None,
        }
    }

    fn policy() -> SandboxPolicy {
        SandboxPolicy::new(
            "/rootfs".into(),
            vec!["/bin/true".into()],
            Limits::defaults(Some(4 << 30)),
        )
        .unwrap()
    }

    #[test]
    fn spec_is_valid_oci() {
        let spec = build(&policy(), &ctx());
        let parsed = validate(&spec).expect("valid spec");
        assert_eq!(parsed.version(), "1.0.2");
    }

    #[test]
    fn all_capability_sets_are_empty_and_nnp_is_set() {
        let spec = build(&policy(), &ctx());
        let caps = &spec["process"]["capabilities"];
        for set in [
            "bounding",
            "effective",
            "inheritable",
            "permitted",
            "ambient",
        ] {
            assert_eq!(caps[set], json!([]), "{set}");
        }
        assert_eq!(spec["process"]["noNewPrivileges"], true);
        assert!(
            spec["linux"]["seccomp"]["syscalls"]
                .as_array()
                .unwrap()
                .len()
                > 5
        );
    }

    #[test]
    fn root_is_readonly_and_user_namespace_is_not_in_the_spec() {
        let spec = build(&policy(), &ctx());
        assert_eq!(spec["root"]["readonly"], true);
        let ns: Vec<&str> = spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount", "cgroup", "network"]);
        assert_eq!(spec["linux"]["namespaces"][5]["path"], "/proc/42/ns/net");
        assert!(
            spec["linux"].get("resources").is_none(),
            "resources must be absent rootless on v1"
        );
    }

    #[test]
    fn only_a_build_step_gets_a_writable_root_and_both_kinds_get_the_same_sandbox() {
        use crate::policy::WritableRoot;
        let mut overlay = policy();
        overlay.writable = Some(WritableRoot::Overlay {
            upper: "/s/upper".into(),
            work: "/s/work".into(),
        });
        let mut in_place = policy();
        in_place.rootfs = "/s/tree".into();
        in_place.writable = Some(WritableRoot::InPlace);
        let (a, mut b) = (build(&overlay, &ctx()), build(&in_place, &ctx()));
        for spec in [&a, &b] {
            assert_eq!(spec["root"]["readonly"], false);
        }
        assert_eq!(b["root"]["path"], "/s/tree");
        // Apart from the root's path, the two specs are the same document.
        b["root"]["path"] = a["root"]["path"].clone();
        assert_eq!(a, b);
    }

    #[test]
    fn mount_list_snapshot() {
        let spec = build(&policy(), &ctx());
        let got: Vec<String> = spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                format!(
                    "{} {} {}",
                    m["destination"].as_str().unwrap(),
                    m["type"].as_str().unwrap(),
                    m["options"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|o| o.as_str().unwrap())
                        .collect::<Vec<_>>()
                        .join(",")
                )
            })
            .collect();
        let want = [
            "/proc proc nosuid,noexec,nodev",
            "/dev tmpfs nosuid,strictatime,mode=755,size=65536k,nr_inodes=4096",
            "/dev/pts devpts nosuid,noexec,newinstance,ptmxmode=0666,mode=0620",
            "/dev/shm tmpfs nosuid,noexec,nodev,mode=1777,size=65536k,nr_inodes=4096",
            "/dev/mqueue mqueue nosuid,noexec,nodev",
            "/sys sysfs nosuid,noexec,nodev,ro",
            "/tmp tmpfs nosuid,nodev,size=1073741824,nr_inodes=65536,mode=1777",
            "/var/tmp tmpfs nosuid,nodev,size=268435456,nr_inodes=65536,mode=1777,noexec",
            "/run tmpfs nosuid,nodev,size=67108864,nr_inodes=65536,mode=755,noexec",
            "/home/dev tmpfs nosuid,nodev,size=1073741824,nr_inodes=65536,mode=700",
            "/etc/hosts bind bind,ro,nosuid,nodev,noexec,private",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn host_network_binds_sys_readonly_and_masks_cgroup() {
        let mut c = ctx();
        c.netns = None;
        let spec = build(&policy(), &c);
        let sys = spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/sys")
            .unwrap();
        assert_eq!(sys["type"], "bind");
        assert!(sys["options"].as_array().unwrap().contains(&json!("ro")));
        assert!(MASKED_PATHS.contains(&"/sys/fs/cgroup"));
        assert_eq!(spec["linux"]["namespaces"].as_array().unwrap().len(), 5);
    }

    #[test]
    fn nproc_rlimit_only_when_degraded() {
        let spec = build(&policy(), &ctx());
        assert_eq!(spec["process"]["rlimits"].as_array().unwrap().len(), 1);
        let mut c = ctx();
        c.nproc_rlimit = Some(100);
        let spec = build(&policy(), &c);
        assert_eq!(spec["process"]["rlimits"][1]["type"], "RLIMIT_NPROC");
    }
}
