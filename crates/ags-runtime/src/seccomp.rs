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

use std::os::fd::FromRawFd as _;

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

/// Errors compiling or loading the sandbox's filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile is not a valid OCI `linux.seccomp` document (a bug in ags).
    #[error("the seccomp profile is not valid")]
    Profile(#[source] serde_json::Error),
    /// The profile uses a feature [`compile`] does not translate (a bug in ags).
    #[error("the seccomp profile uses {0}, which ags does not compile")]
    Unsupported(String),
    /// libseccomp refused a step.
    #[error("libseccomp failed to {what}")]
    Lib {
        /// The step.
        what: &'static str,
        /// The cause.
        #[source]
        source: libseccomp::error::SeccompError,
    },
    /// Reading the exported program back failed.
    #[error("cannot export the compiled seccomp filter")]
    Export(#[source] std::io::Error),
    /// The exported program is not a whole number of BPF instructions.
    #[error("the compiled seccomp filter is malformed ({0} bytes)")]
    Malformed(usize),
    /// no_new_privs is not set, so loading would need privileges the sandbox must not have.
    #[error("no_new_privs is not set: refusing to load the seccomp filter")]
    NoNewPrivs,
    /// seccomp(2) refused the program.
    #[error("cannot load the seccomp filter")]
    Load(#[source] nix::Error),
}

/// Compile `profile` (an OCI `linux.seccomp` document, as [`profile`] makes) to the
/// classic BPF program that seccomp(2) loads.
///
/// Why ags compiles it rather than libcontainer: libcontainer builds the filter with
/// libseccomp inside the container's init process, on the critical path of every start
/// (about 0.6 ms here, mostly libseccomp generating the program for three architectures).
/// The program depends only on the profile, so ags has it compiled in parallel by the
/// namespace holder and the init only loads it ([`SandboxExecutor`]).
///
/// The translation is libcontainer 0.7's (`libcontainer::seccomp::initialize_seccomp`):
/// actions with their errno (EPERM when unset), rules whose action equals the default are
/// skipped, unknown syscall names are skipped (the kernel does not have them),
/// `SCMP_CMP_MASKED_EQ` takes `valueTwo` as the mask and `value` as the datum, and
/// several comparisons on one argument become separate rules. Features ags's profile
/// does not use (flags, notification, listener) are refused rather than half-translated.
pub fn compile(profile: &Value) -> Result<CompiledFilter, SeccompError> {
    use libseccomp::{ScmpArgCompare, ScmpFilterContext, ScmpSyscall};
    use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};
    let lib = |what| move |source| SeccompError::Lib { what, source };
    let profile: LinuxSeccomp =
        serde_json::from_value(profile.clone()).map_err(SeccompError::Profile)?;
    if profile.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(SeccompError::Unsupported("filter flags".into()));
    }
    if profile.listener_path().is_some() {
        return Err(SeccompError::Unsupported("a listener".into()));
    }
    let default = translate_action(profile.default_action(), profile.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(lib("create a filter"))?;
    for arch in profile.architectures().iter().flatten() {
        ctx.add_arch(translate_arch(*arch)?)
            .map_err(lib("add an architecture"))?;
    }
    for rule in profile.syscalls().iter().flatten() {
        if rule.action() == LinuxSeccompAction::ScmpActNotify {
            return Err(SeccompError::Unsupported("SCMP_ACT_NOTIFY".into()));
        }
        let action = translate_action(rule.action(), rule.errno_ret())?;
        if action == default {
            continue;
        }
        for name in rule.names() {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let Some(args) = rule.args() else {
                ctx.add_rule(action, sc).map_err(lib("add a rule"))?;
                continue;
            };
            let cmps: Vec<ScmpArgCompare> = args
                .iter()
                .map(|a| {
                    ScmpArgCompare::new(
                        a.index() as u32,
                        translate_op(a.op(), a.value_two()),
                        a.value(),
                    )
                })
                .collect();
            let mut seen = std::collections::HashSet::new();
            if args.iter().all(|a| seen.insert(a.index())) {
                ctx.add_rule_conditional(action, sc, &cmps)
                    .map_err(lib("add a rule"))?;
            } else {
                for c in &cmps {
                    ctx.add_rule_conditional(action, sc, std::slice::from_ref(c))
                        .map_err(lib("add a rule"))?;
                }
            }
        }
    }
    // Export to an anonymous file: the program can be larger than a pipe holds.
    // SAFETY: memfd_create(2) with a NUL-terminated name; it returns a new descriptor or -1.
    let fd = unsafe { libc::memfd_create(c"ags-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(SeccompError::Export(std::io::Error::last_os_error()));
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    let mut file = std::fs::File::from(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(&file).map_err(lib("export the filter"))?;
    let mut bytes = Vec::new();
    use std::io::{Read as _, Seek as _};
    file.rewind().map_err(SeccompError::Export)?;
    file.read_to_end(&mut bytes).map_err(SeccompError::Export)?;
    CompiledFilter::from_bytes(bytes)
}

fn translate_action(
    action: oci_spec::runtime::LinuxSeccompAction,
    errno: Option<u32>,
) -> Result<libseccomp::ScmpAction, SeccompError> {
    use libseccomp::ScmpAction;
    use oci_spec::runtime::LinuxSeccompAction as A;
    let errno = errno.map_or(libc::EPERM, |e| e as i32);
    Ok(match action {
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        A::ScmpActErrno => ScmpAction::Errno(errno),
        A::ScmpActTrace => ScmpAction::Trace(
            errno
                .try_into()
                .map_err(|_| SeccompError::Unsupported(format!("SCMP_ACT_TRACE errno {errno}")))?,
        ),
        A::ScmpActAllow => ScmpAction::Allow,
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActNotify => return Err(SeccompError::Unsupported("SCMP_ACT_NOTIFY".into())),
    })
}

fn translate_op(
    op: oci_spec::runtime::LinuxSeccompOperator,
    value_two: Option<u64>,
) -> libseccomp::ScmpCompareOp {
    use libseccomp::ScmpCompareOp;
    use oci_spec::runtime::LinuxSeccompOperator as O;
    match op {
        O::ScmpCmpNe => ScmpCompareOp::NotEqual,
        O::ScmpCmpLt => ScmpCompareOp::Less,
        O::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        O::ScmpCmpEq => ScmpCompareOp::Equal,
        O::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        O::ScmpCmpGt => ScmpCompareOp::Greater,
        O::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value_two.unwrap_or(0)),
    }
}

fn translate_arch(arch: oci_spec::runtime::Arch) -> Result<libseccomp::ScmpArch, SeccompError> {
    use libseccomp::ScmpArch;
    use oci_spec::runtime::Arch as A;
    Ok(match arch {
        A::ScmpArchNative => ScmpArch::Native,
        A::ScmpArchX86 => ScmpArch::X86,
        A::ScmpArchX86_64 => ScmpArch::X8664,
        A::ScmpArchX32 => ScmpArch::X32,
        A::ScmpArchArm => ScmpArch::Arm,
        A::ScmpArchAarch64 => ScmpArch::Aarch64,
        other => return Err(SeccompError::Unsupported(format!("architecture {other:?}"))),
    })
}

/// A compiled seccomp filter: classic BPF instructions (`struct sock_filter`, 8 bytes
/// each) in the kernel's layout, as seccomp_export_bpf(3) writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledFilter(Vec<u8>);

impl CompiledFilter {
    /// Wrap exported bytes, checking they are a whole, loadable number of instructions
    /// (at most BPF_MAXINSNS, 4096).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SeccompError> {
        let insn = std::mem::size_of::<libc::sock_filter>();
        if bytes.is_empty() || bytes.len() % insn != 0 || bytes.len() / insn > 4096 {
            return Err(SeccompError::Malformed(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// The exported bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Install the filter on the calling thread with seccomp(2) `SECCOMP_SET_MODE_FILTER`
    /// and no flags, as seccomp_load(3) does for a profile without flags. Requires
    /// no_new_privs (set by libcontainer from the spec's `noNewPrivileges`); checked first
    /// so that a missing bit is reported as such.
    pub fn load(&self) -> Result<(), SeccompError> {
        // SAFETY: prctl(2) PR_GET_NO_NEW_PRIVS takes no pointers.
        if unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) } != 1 {
            return Err(SeccompError::NoNewPrivs);
        }
        let insns: Vec<libc::sock_filter> = self
            .0
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        let prog = libc::sock_fprog {
            len: insns.len() as u16,
            filter: insns.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `insns`, which outlives the call; the kernel copies the
        // program and does not keep the pointer.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(SeccompError::Load(nix::Error::last()));
        }
        Ok(())
    }
}

/// libcontainer's default executor (execvp(3) of `process.args` after checking it
/// exists) preceded by loading the sandbox's precompiled filter: the last thing the
/// container's init does before it becomes the command, after libcontainer has set
/// no_new_privs, dropped every capability and waited for the start signal. The spec
/// given to libcontainer then has no `linux.seccomp`, so the filter is loaded once, by
/// this. A failure to load it fails the start (the command never runs unfiltered).
#[derive(Clone)]
pub struct SandboxExecutor {
    filter: std::sync::Arc<CompiledFilter>,
}

impl std::fmt::Debug for SandboxExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxExecutor").finish_non_exhaustive()
    }
}

impl SandboxExecutor {
    /// An executor that loads `filter` before it runs the command.
    pub fn new(filter: CompiledFilter) -> Self {
        Self {
            filter: std::sync::Arc::new(filter),
        }
    }
}

impl libcontainer::workload::Executor for SandboxExecutor {
    fn exec(
        &self,
        spec: &oci_spec::runtime::Spec,
    ) -> Result<(), libcontainer::workload::ExecutorError> {
        self.filter.load().map_err(|e| {
            libcontainer::workload::ExecutorError::Other(crate::userns::error_chain(&e))
        })?;
        libcontainer::workload::default::DefaultExecutor {}.exec(spec)
    }

    fn validate(
        &self,
        spec: &oci_spec::runtime::Spec,
    ) -> Result<(), libcontainer::workload::ExecutorValidationError> {
        libcontainer::workload::default::DefaultExecutor {}.validate(spec)
    }
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
    fn compiled_filter_refuses_in_a_child() {
        let filter = compile(&profile()).expect("the profile compiles");
        assert!(filter.as_bytes().len() / 8 > 50);
        // SAFETY: the child only makes system calls and leaves with _exit(2); glibc's
        // allocator is fork-safe.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let code = (|| {
                    // SAFETY: prctl(2) with integer arguments.
                    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                        return 10;
                    }
                    if filter.load().is_err() {
                        return 11;
                    }
                    let errno = || std::io::Error::last_os_error().raw_os_error();
                    // SAFETY: keyctl(KEYCTL_GET_KEYRING_ID) with integer arguments.
                    let rc = unsafe { libc::syscall(libc::SYS_keyctl, 0, -3i64, 0) };
                    if rc != -1 || errno() != Some(libc::EPERM) {
                        return 12;
                    }
                    // SAFETY: clone3 with a null argument: refused before it is read.
                    let rc = unsafe { libc::syscall(libc::SYS_clone3, 0usize, 0usize) };
                    if rc != -1 || errno() != Some(libc::ENOSYS) {
                        return 13;
                    }
                    // SAFETY: unshare(2) with a flag.
                    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != -1
                        || errno() != Some(libc::EPERM)
                    {
                        return 14;
                    }
                    // TIOCSTI with the upper 32 bits set is still TIOCSTI to the kernel.
                    // SAFETY: ioctl(2) on stdin; refused before the argument is read.
                    let rc = unsafe { libc::ioctl(0, (0x1_0000_0000u64 | 0x5412) as _, 0) };
                    if rc != -1 || errno() != Some(libc::EPERM) {
                        return 15;
                    }
                    // SAFETY: getpid(2) cannot fail.
                    if unsafe { libc::getpid() } <= 0 {
                        return 16;
                    }
                    0
                })();
                // SAFETY: _exit(2) skips the test harness's destructors.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }

    #[test]
    fn compile_refuses_what_it_does_not_translate() {
        let mut p = profile();
        p["flags"] = json!(["SECCOMP_FILTER_FLAG_LOG"]);
        assert!(matches!(compile(&p), Err(SeccompError::Unsupported(_))));
        let mut p = profile();
        p["syscalls"][0]["action"] = json!("SCMP_ACT_NOTIFY");
        assert!(matches!(compile(&p), Err(SeccompError::Unsupported(_))));
        assert!(matches!(
            CompiledFilter::from_bytes(vec![0; 12]),
            Err(SeccompError::Malformed(12))
        ));
        assert!(CompiledFilter::from_bytes(Vec::new()).is_err());
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
