//! The seccomp profile every sandbox runs under.
//!
//! It starts from the syscalls that Docker's and podman's default profiles refuse to
//! unprivileged containers and adds the denials our threat list names
//! (`../shared/notes/threats.md`). The default action is to allow: the profile is a deny
//! list, so a syscall the kernel adds later is allowed until it is listed here. Every rule
//! answers `EPERM`, except `clone3`, which answers `ENOSYS` so that the C library falls back
//! to `clone`, whose namespace flags a filter can inspect (seccomp cannot read the
//! `clone_args` struct that `clone3` takes).
//!
//! seccomp needs `no_new_privs` (seccomp(2)); the spec always sets both.

use serde_json::{Value, json};

/// Syscalls refused outright, grouped by why.
pub const DENIED: &[(&str, &[&str])] = &[
    (
        "kernel keyrings are not namespaced by youki (CVE-2016-0728 class)",
        &["keyctl", "add_key", "request_key"],
    ),
    (
        "kernel attack surface with a history of exploits",
        &[
            "userfaultfd",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "bpf",
            "perf_event_open",
        ],
    ),
    (
        "loading code into the kernel",
        &[
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "create_module",
            "query_module",
            "get_kernel_syms",
        ],
    ),
    (
        "changing the mount table or namespaces would undo the sandbox",
        &[
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "setns",
            "unshare",
            "open_tree",
            "move_mount",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "mount_setattr",
            "chroot",
        ],
    ),
    (
        "reading or writing other processes' memory (ptrace(2), process_vm_readv(2))",
        &[
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "pidfd_getfd",
            "kcmp",
        ],
    ),
    (
        "host-wide state: clocks, swap, accounting, quotas, reboot",
        &[
            "acct",
            "clock_adjtime",
            "clock_settime",
            "settimeofday",
            "stime",
            "swapon",
            "swapoff",
            "reboot",
            "syslog",
            "quotactl",
            "quotactl_fd",
            "lookup_dcookie",
            "nfsservctl",
        ],
    ),
    (
        "obsolete or raw-hardware calls Docker also refuses",
        &[
            "sysfs",
            "_sysctl",
            "uselib",
            "ustat",
            "vm86",
            "vm86old",
            "iopl",
            "ioperm",
            "name_to_handle_at",
            "open_by_handle_at",
        ],
    ),
];

/// `clone(2)` flags that create namespaces. A new user namespace would give the process a
/// full capability set over fresh namespaces, the start of many kernel exploits.
const CLONE_NS_FLAGS: &[(&str, u64)] = &[
    ("CLONE_NEWUSER", 0x1000_0000),
    ("CLONE_NEWNS", 0x0002_0000),
    ("CLONE_NEWCGROUP", 0x0200_0000),
    ("CLONE_NEWUTS", 0x0400_0000),
    ("CLONE_NEWIPC", 0x0800_0000),
    ("CLONE_NEWPID", 0x2000_0000),
    ("CLONE_NEWNET", 0x4000_0000),
    ("CLONE_NEWTIME", 0x0000_0080),
];

/// Terminal ioctls that inject input into, or control, another terminal. TIOCSTI pushes
/// characters into the input queue of the terminal (a classic sandbox escape through the
/// host's shell); TIOCLINUX can do the same on virtual consoles.
const TTY_IOCTLS: &[(&str, u64)] = &[("TIOCSTI", 0x5412), ("TIOCLINUX", 0x541C)];

const EPERM: u32 = libc::EPERM as u32;
const ENOSYS: u32 = libc::ENOSYS as u32;

/// The profile in OCI runtime-spec form (`linux.seccomp`).
pub fn profile() -> Value {
    let mut syscalls = Vec::new();
    let names: Vec<&str> = DENIED.iter().flat_map(|(_, n)| n.iter().copied()).collect();
    syscalls.push(json!({"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM}));
    syscalls.push(json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}));
    for (_, flag) in CLONE_NS_FLAGS {
        // Mask and datum are both the flag, so the rule reads "flag is set" whichever of
        // `value`/`valueTwo` an implementation takes as the mask.
        syscalls.push(json!({
            "names": ["clone"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": EPERM,
            "args": [{"index": clone_flags_index(), "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
        }));
    }
    for (_, cmd) in TTY_IOCTLS {
        // The kernel reads the ioctl request as 32 bits, so a filter comparing all 64 bits
        // is bypassed by setting the upper half (CVE-2019-10063): compare under a 32-bit
        // mask. libcontainer passes `valueTwo` to libseccomp as the mask and `value` as the
        // datum (runc reads them the other way round). Do not add the other order "to be
        // safe": libseccomp also masks the datum, so a rule with mask 0x5412 and datum
        // 0xffffffff would match every request sharing those bits, TIOCGWINSZ included.
        syscalls.push(json!({
            "names": ["ioctl"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": EPERM,
            "args": [{"index": 1, "value": cmd, "valueTwo": 0xFFFF_FFFFu64, "op": "SCMP_CMP_MASKED_EQ"}],
        }));
    }
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": architectures(),
        "syscalls": syscalls,
    })
}

/// On s390x the flags are the second argument of clone; everywhere else the first.
fn clone_flags_index() -> u32 {
    if cfg!(target_arch = "s390x") { 1 } else { 0 }
}

/// The native architecture plus its compat ABIs, so a 32-bit binary cannot slip past the
/// filter through the other syscall table.
fn architectures() -> Vec<&'static str> {
    if cfg!(target_arch = "x86_64") {
        vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    } else if cfg!(target_arch = "aarch64") {
        vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    } else {
        vec![]
    }
}

/// The sentinel directory fd libpathrs passes to `open_tree(2)` when it clones `/proc` for
/// a private procfs handle (an absolute path makes the fd irrelevant).
const PATHRS_SENTINEL_FD: u64 = (-9i32) as u32 as u64;

/// Make libpathrs inside libcontainer use its plain `/proc` fallback in this process and its
/// children, instead of cloning the procfs mount with `open_tree(OPEN_TREE_CLONE)`.
///
/// Why: libcontainer's cgroup code asks pathrs for a fresh procfs handle dozens of times per
/// container (per controller, at create and delete). Once ags owns its mount namespace
/// (it does, for the overlay root) each of those clones succeeds, and releasing each cloned
/// mount waits for an RCU grace period: together tens of milliseconds per start. The
/// fallback opens the host's `/proc`, which in ags's private namespace is the real procfs
/// (pathrs checks its magic number either way).
///
/// The filter matches only `open_tree` with pathrs' sentinel fd; libcontainer's own bind
/// mounts (`open_tree(AT_FDCWD or a real fd, ...)`) are untouched. The container inherits
/// this filter under its own, which already refuses `open_tree`. Loading it needs
/// CAP_SYS_ADMIN in the current user namespace (seccomp(2)); ags has that after joining
/// the sandbox's namespace, so no_new_privs is not set on ags itself.
pub fn steer_pathrs_away_from_procfs_clones() -> Result<(), libseccomp::error::SeccompError> {
    use libseccomp::{
        ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterAttr, ScmpFilterContext, ScmpSyscall,
    };
    let mut f = ScmpFilterContext::new(ScmpAction::Allow)?;
    f.set_filter_attr(ScmpFilterAttr::CtlNnp, 0)?;
    f.add_rule_conditional(
        ScmpAction::Errno(libc::EPERM),
        ScmpSyscall::from_name("open_tree")?,
        &[ScmpArgCompare::new(
            0,
            ScmpCompareOp::MaskedEqual(0xFFFF_FFFF),
            PATHRS_SENTINEL_FD,
        )],
    )?;
    f.load()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_parses_as_oci_and_denies_the_threat_list() {
        let p = profile();
        let parsed: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(p.clone()).unwrap();
        let denied: Vec<String> = parsed
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|s| s.args().is_none())
            .flat_map(|s| s.names().clone())
            .collect();
        for name in [
            "keyctl",
            "add_key",
            "request_key",
            "userfaultfd",
            "io_uring_setup",
            "bpf",
            "perf_event_open",
            "kexec_load",
            "init_module",
            "finit_module",
            "mount",
            "pivot_root",
            "setns",
            "unshare",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "clone3",
        ] {
            assert!(denied.iter().any(|d| d == name), "{name} not denied");
        }
    }

    #[test]
    fn tiocsti_rule_masks_to_32_bits() {
        let p = profile();
        let rules = p["syscalls"].as_array().unwrap();
        let ioctl: Vec<_> = rules.iter().filter(|r| r["names"][0] == "ioctl").collect();
        assert!(
            ioctl
                .iter()
                .any(|r| r["args"][0]["value"] == 0x5412
                    && r["args"][0]["valueTwo"] == 0xFFFF_FFFFu64)
        );
        // Every ioctl rule masks with all 32 bits; a narrower mask would catch other requests.
        assert!(
            ioctl
                .iter()
                .all(|r| r["args"][0]["valueTwo"] == 0xFFFF_FFFFu64)
        );
    }

    #[test]
    fn clone_new_user_is_refused() {
        let p = profile();
        let rules = p["syscalls"].as_array().unwrap();
        assert!(
            rules
                .iter()
                .any(|r| r["names"][0] == "clone" && r["args"][0]["value"] == 0x1000_0000)
        );
    }
}
