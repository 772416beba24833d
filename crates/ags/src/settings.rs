//! Turning command-line values into validated settings. Every error here names the flag
//! it came from and is reported as a usage error.

use std::path::{Path, PathBuf};

use ags_runtime::policy::{Access, Limits, NetworkMode, SandboxPolicy};

use crate::cli::{LimitArgs, NetworkArg, RunArgs, TtyArg};

/// Bad user input, with the flag (or argument) it came from.
#[derive(Debug)]
pub struct InputError {
    /// The flag.
    pub flag: &'static str,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid value for {}: {}", self.flag, self.message)
    }
}

impl std::error::Error for InputError {}

fn bad(flag: &'static str, message: impl Into<String>) -> InputError {
    InputError {
        flag,
        message: message.into(),
    }
}

/// Parse a size like `512m`, `2g`, `1.5G`, `1048576` (bytes; k/m/g/t are powers of 1024).
pub fn parse_size(s: &str, flag: &'static str) -> Result<u64, InputError> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num.parse().map_err(|_| {
        bad(
            flag,
            format!("{s:?} is not a size (examples: 512m, 2g, 1048576)"),
        )
    })?;
    if !v.is_finite() || v <= 0.0 {
        return Err(bad(flag, format!("{s:?} must be a positive size")));
    }
    let bytes = v * mult as f64;
    if bytes > u64::MAX as f64 / 2.0 {
        return Err(bad(flag, format!("{s:?} is too large")));
    }
    Ok(bytes as u64)
}

/// Parse a CPU count like `1.5` into millicpus.
pub fn parse_cpus(s: &str) -> Result<u64, InputError> {
    let v: f64 = s.trim().parse().map_err(|_| {
        bad(
            "--cpus",
            format!("{s:?} is not a number of CPUs (example: 1.5)"),
        )
    })?;
    if !v.is_finite() || !(0.01..=4096.0).contains(&v) {
        return Err(bad(
            "--cpus",
            format!("{s:?} must be between 0.01 and 4096"),
        ));
    }
    Ok((v * 1000.0).round() as u64)
}

/// Host RAM from /proc/meminfo.
pub fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The limit flags, validated. Unset flags stay `None`; each mode fills in its own
/// defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LimitFlags {
    /// `--memory` in bytes (at least 4m).
    pub memory_bytes: Option<u64>,
    /// `--pids` (at least 2).
    pub pids: Option<u64>,
    /// `--cpus` in millicpus.
    pub cpus_milli: Option<u64>,
}

/// Validate the limit flags.
pub fn limit_flags(args: &LimitArgs) -> Result<LimitFlags, InputError> {
    let memory_bytes = args
        .memory
        .as_deref()
        .map(|m| parse_size(m, "--memory"))
        .transpose()?;
    if memory_bytes.is_some_and(|m| m < 4 << 20) {
        return Err(bad("--memory", "must be at least 4m"));
    }
    if args.pids.is_some_and(|p| p < 2) {
        return Err(bad("--pids", "must be at least 2"));
    }
    Ok(LimitFlags {
        memory_bytes,
        pids: args.pids,
        cpus_milli: args.cpus.as_deref().map(parse_cpus).transpose()?,
    })
}

/// Resolve the limits of `ags run`: the runtime's defaults, then the flags.
pub fn limits(args: &LimitArgs) -> Result<Limits, InputError> {
    let f = limit_flags(args)?;
    let mut l = Limits::defaults(host_memory());
    l.memory = f.memory_bytes.or(l.memory);
    l.pids = f.pids.or(l.pids);
    l.cpus_milli = f.cpus_milli.or(l.cpus_milli);
    Ok(l)
}

/// The base policy for `ags run --rootfs DIR -- CMD`.
pub fn rootfs_policy(rootfs: &Path, args: &RunArgs) -> Result<SandboxPolicy, anyhow::Error> {
    let root = rootfs
        .canonicalize()
        .map_err(|e| bad("--rootfs", format!("{}: {e}", rootfs.display())))?;
    if !root.is_dir() {
        return Err(bad("--rootfs", format!("{} is not a directory", root.display())).into());
    }
    if args.command.is_empty() {
        return Err(bad("CMD", "give the command to run after --").into());
    }
    let limits = limits(&args.limits)?;
    let mut policy = SandboxPolicy::new(root, args.command.clone(), limits)
        .map_err(|e| bad("CMD", e.to_string()))?;
    if let Some(u) = &args.user {
        let (uid, gid) = parse_user(u)?;
        policy.with_user(uid, gid);
        // With a directory rootfs (the caller's own files), the chosen user is the caller.
        policy.host_user_at = (uid, gid);
    }
    Ok(policy)
}

/// The base policy for `ags run IMAGE [-- CMD]`: the image's entrypoint, command,
/// environment, working directory and user, under the same sandbox.
pub fn image_policy(
    root: &ags_build::rootfs::ImageRoot,
    config: &ags_oci::manifest::ImageConfig,
    args: &RunArgs,
    limits: Limits,
) -> Result<SandboxPolicy, anyhow::Error> {
    let mut argv = config.entrypoint.clone();
    if args.command.is_empty() {
        argv.extend(config.cmd.iter().cloned());
    } else {
        argv.extend(args.command.iter().cloned());
    }
    if argv.is_empty() {
        return Err(bad(
            "CMD",
            "the image has no entrypoint or command: give one after --",
        )
        .into());
    }
    let mut policy = SandboxPolicy::new(root.bottom.clone(), argv, limits)
        .map_err(|e| bad("CMD", e.to_string()))?;
    policy.layers = root.layers.clone();
    let user = match &args.user {
        Some(u) => Some(parse_user(u)?),
        None => config
            .user
            .as_deref()
            .filter(|u| !u.is_empty())
            .map(|u| {
                ags_build::builder::resolve_in_layers(&root.all(), u)
                    .map_err(|e| bad("IMAGE", format!("image user: {e}")))
            })
            .transpose()?,
    };
    // An image without USER runs as its root, as in other engines; root here is a
    // subordinate id with no capabilities.
    let (uid, gid) = user.unwrap_or((0, 0));
    policy.with_user(uid, gid);
    for kv in &config.env {
        if let Some((k, v)) = kv.split_once('=') {
            policy
                .set_env(k, v)
                .map_err(|e| bad("IMAGE", format!("image environment: {e}")))?;
        }
    }
    if let Some(w) = config.working_dir.as_deref().filter(|w| !w.is_empty()) {
        policy
            .set_cwd(w)
            .map_err(|e| bad("IMAGE", format!("image working directory: {e}")))?;
    }
    Ok(policy)
}

/// Apply the flags every `ags run` shares, after the base policy.
pub fn apply_flags(
    policy: &mut SandboxPolicy,
    args: &RunArgs,
    stdin_is_tty: bool,
    host_env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), anyhow::Error> {
    policy.hostname = args.hostname.clone();
    if policy.hostname.is_empty()
        || policy.hostname.len() > 64
        || !policy
            .hostname
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(bad(
            "--hostname",
            format!("{:?} is not a valid hostname", args.hostname),
        )
        .into());
    }
    policy.network = match args.network {
        NetworkArg::None => NetworkMode::None,
        NetworkArg::Egress => NetworkMode::Egress,
        NetworkArg::Host => NetworkMode::Host,
    };
    policy.tty = match args.tty {
        TtyArg::Auto => stdin_is_tty,
        TtyArg::Always => true,
        TtyArg::Never => false,
    };
    if let Some(term) = host_env("TERM").filter(|_| policy.tty) {
        policy
            .set_env("TERM", &term)
            .map_err(|e| bad("TERM", e.to_string()))?;
    }
    for e in &args.env {
        let (k, v) = match e.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (e.clone(), host_env(e).unwrap_or_default()),
        };
        policy
            .set_env(&k, &v)
            .map_err(|err| bad("-e", err.to_string()))?;
    }
    for v in &args.volumes {
        let (host, ctr, access) = parse_volume(v)?;
        policy
            .add_bind(&host, &ctr, access)
            .map_err(|e| bad("-v", e.to_string()))?;
    }
    for t in &args.tmpfs {
        let (path, size, exec) = parse_tmpfs(t)?;
        policy
            .add_tmpfs(&path, size, exec)
            .map_err(|e| bad("--tmpfs", e.to_string()))?;
    }
    if let Some(w) = &args.workdir {
        policy.set_cwd(w).map_err(|e| bad("-w", e.to_string()))?;
    }
    Ok(())
}

fn parse_user(s: &str) -> Result<(u32, u32), InputError> {
    let (u, g) = s.split_once(':').unwrap_or((s, s));
    let uid = u
        .parse()
        .map_err(|_| bad("--user", format!("{s:?}: expected UID[:GID] as numbers")))?;
    let gid = g
        .parse()
        .map_err(|_| bad("--user", format!("{s:?}: expected UID[:GID] as numbers")))?;
    if uid > 65535 || gid > 65535 {
        return Err(bad(
            "--user",
            format!("{s:?}: ids above 65535 are not mapped"),
        ));
    }
    Ok((uid, gid))
}

fn parse_volume(s: &str) -> Result<(PathBuf, String, Access), InputError> {
    let parts: Vec<&str> = s.split(':').collect();
    let (host, ctr, access) = match parts.as_slice() {
        [h, c] => (*h, *c, Access::ReadWrite),
        [h, c, "ro"] => (*h, *c, Access::ReadOnly),
        [h, c, "rw"] => (*h, *c, Access::ReadWrite),
        [_, _, m] => {
            return Err(bad(
                "-v",
                format!("{s:?}: unknown mode {m:?} (use ro or rw)"),
            ));
        }
        _ => return Err(bad("-v", format!("{s:?}: expected HOST:CONTAINER[:ro|rw]"))),
    };
    if !Path::new(host).is_absolute() && !host.starts_with('.') {
        return Err(bad(
            "-v",
            format!("{s:?}: the host path must be absolute or start with ./"),
        ));
    }
    Ok((PathBuf::from(host), ctr.to_owned(), access))
}

fn parse_tmpfs(s: &str) -> Result<(String, u64, bool), InputError> {
    let (path, opts) = s.split_once(':').unwrap_or((s, ""));
    let mut size = ags_runtime::policy::TMP_SIZE;
    let mut exec = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        if let Some(v) = o.strip_prefix("size=") {
            size = parse_size(v, "--tmpfs")?;
        } else if o == "exec" {
            exec = true;
        } else if o == "noexec" {
            exec = false;
        } else {
            return Err(bad(
                "--tmpfs",
                format!("{s:?}: unknown option {o:?} (size=SIZE, exec, noexec)"),
            ));
        }
    }
    Ok((path.to_owned(), size, exec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512m", "x").unwrap(), 512 << 20);
        assert_eq!(parse_size("2G", "x").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5g", "x").unwrap(), 3 << 29);
        assert_eq!(parse_size("100", "x").unwrap(), 100);
        assert_eq!(parse_size("4kb", "x").unwrap(), 4096);
        for bad in ["", "m", "-1m", "0", "abc", "1x", "nan", "inf"] {
            assert!(parse_size(bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("1.5").unwrap(), 1500);
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("x").is_err());
    }

    #[test]
    fn volumes() {
        assert_eq!(parse_volume("/a:/b:ro").unwrap().2, Access::ReadOnly);
        assert_eq!(parse_volume("/a:/b").unwrap().2, Access::ReadWrite);
        assert!(parse_volume("/a:/b:rx").is_err());
        assert!(parse_volume("/a").is_err());
        assert!(parse_volume("a:/b").is_err());
    }

    #[test]
    fn users_and_tmpfs() {
        assert_eq!(parse_user("0").unwrap(), (0, 0));
        assert_eq!(parse_user("1000:100").unwrap(), (1000, 100));
        assert!(parse_user("root").is_err());
        assert!(parse_user("70000").is_err());
        assert_eq!(
            parse_tmpfs("/x:size=1m,exec").unwrap(),
            ("/x".into(), 1 << 20, true)
        );
        assert!(parse_tmpfs("/x:bogus").is_err());
    }

    fn limit_args(memory: Option<&str>, pids: Option<u64>, cpus: Option<&str>) -> LimitArgs {
        LimitArgs {
            memory: memory.map(str::to_owned),
            pids,
            cpus: cpus.map(str::to_owned),
        }
    }

    #[test]
    fn errors_name_the_flag() {
        let e = limits(&limit_args(Some("lots"), None, None)).unwrap_err();
        assert!(e.to_string().starts_with("invalid value for --memory"));
        for (args, flag) in [
            (limit_args(Some("1m"), None, None), "--memory"),
            (limit_args(None, Some(1), None), "--pids"),
            (limit_args(None, None, Some("0")), "--cpus"),
        ] {
            let e = limit_flags(&args).unwrap_err();
            assert!(e.to_string().contains(flag), "{e}");
        }
    }

    #[test]
    fn flags_override_defaults() {
        let l = limits(&limit_args(Some("1g"), Some(64), Some("1.5"))).unwrap();
        assert_eq!(
            (l.memory, l.pids, l.cpus_milli),
            (Some(1 << 30), Some(64), Some(1500))
        );
        let l = limits(&limit_args(None, None, None)).unwrap();
        assert_eq!(l.pids, Some(ags_runtime::policy::DEFAULT_PIDS));
        assert!(l.memory.is_some() && l.cpus_milli.is_none());
        assert_eq!(
            limit_flags(&limit_args(None, None, None)).unwrap(),
            LimitFlags::default()
        );
    }
}
