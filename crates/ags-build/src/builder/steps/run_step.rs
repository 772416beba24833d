//! `RUN`: the command in the ags sandbox with a writable root.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use ags_runtime::policy::{Access, Mount, NetworkMode, SandboxPolicy, WritableRoot};
use ags_runtime::run::Warning;
use ags_runtime::userns::run_as_root;
use sha2::{Digest as _, Sha256};

use super::{BUILD_CAPS, Builder, DEFAULT_PATH, shell_of, step_err};
use crate::builder::output::{self, Prefixed};
use crate::builder::snapshot::{self, SnapshotKind};
use crate::builder::{BuildError, Event, StageState, chain, copy, users};
use crate::parser::{Command, Instruction, MountType, NetworkMode as RunNetwork, Run};
use crate::stages::StageScope;

/// A prepared `RUN --mount`.
enum RunMount {
    Bind(PathBuf, String),
    Cache {
        dir: PathBuf,
        target: String,
        locked: bool,
    },
    Tmpfs(String, u64),
}

impl Builder<'_> {
    pub(in crate::builder) fn run_step(
        &mut self,
        scope: &StageScope<'_>,
        state: &mut StageState,
        ins: &Instruction,
        run: &Run,
    ) -> Result<(), BuildError> {
        let cf = self.cf;
        let span = ins.span;
        let argv = match &run.command {
            Command::Exec(a) => a.clone(),
            Command::Shell(_) => {
                let mut a = shell_of(state);
                a.push(run.shell_script().unwrap_or_default());
                a
            }
        };
        if argv.is_empty() || argv[0].is_empty() {
            return Err(step_err(cf, span, "RUN has no command"));
        }
        let mut mounts = Vec::new();
        let mut mount_text = Vec::new();
        for m in &run.mounts {
            let target = match &m.target {
                Some(t) => self.expand(scope, m.span, "the mount target", t)?,
                None => return Err(step_err(cf, m.span, "--mount needs target=")),
            };
            let target = super::normalize(&super::join_container(&state.working_dir(), &target));
            match m.kind {
                MountType::Cache => {
                    let id = match &m.id {
                        Some(id) => self.expand(scope, m.span, "the cache id", id)?,
                        None => target.clone(),
                    };
                    let dir = self
                        .dirs
                        .mounts
                        .join(hex::encode(&Sha256::digest(id.as_bytes())[..12]));
                    let uid = parse_id(m.uid.as_deref()).map_err(|e| step_err(cf, m.span, e))?;
                    let gid = parse_id(m.gid.as_deref()).map_err(|e| step_err(cf, m.span, e))?;
                    let mode = m.mode_bits().unwrap_or(0o755);
                    if !dir.is_dir() {
                        let d = dir.clone();
                        run_as_root(&self.env.maps, self.privileged(), || {
                            std::fs::create_dir_all(&d)
                                .and_then(|()| std::os::unix::fs::chown(&d, Some(uid), Some(gid)))
                                .and_then(|()| {
                                    std::fs::set_permissions(
                                        &d,
                                        std::fs::Permissions::from_mode(mode),
                                    )
                                })
                                .map_err(|e| format!("{}: {e}", d.display()))
                        })
                        .map_err(|e| step_err(cf, m.span, chain(&e)))?;
                    }
                    mount_text.push(format!("cache:{id}:{target}"));
                    mounts.push(RunMount::Cache {
                        dir,
                        target,
                        locked: m.sharing == crate::parser::CacheSharing::Locked,
                    });
                }
                MountType::Tmpfs => {
                    let size = match &m.size {
                        Some(s) => parse_size(s)
                            .ok_or_else(|| step_err(cf, m.span, format!("bad tmpfs size={s}")))?,
                        None => 1 << 30,
                    };
                    mount_text.push(format!("tmpfs:{target}:{size}"));
                    mounts.push(RunMount::Tmpfs(target, size));
                }
                MountType::Bind => {
                    if m.from.is_some() {
                        return Err(step_err(
                            cf,
                            m.span,
                            "RUN --mount=type=bind,from=... is not supported by ags build; COPY --from the files instead",
                        ));
                    }
                    let src = match &m.source {
                        Some(s) => self.expand(scope, m.span, "the mount source", s)?,
                        None => ".".into(),
                    };
                    let rels = copy::context_source(&self.opts.context, &src, &self.ignore)
                        .map_err(|e| step_err(cf, m.span, format!("--mount source: {e}")))?;
                    let path = self.opts.context.join(&rels[0]);
                    // The content is part of the key: the step sees it.
                    let job = copy::CopyJob {
                        sources: vec![copy::Source::Host {
                            path: path.clone(),
                            ctx_rel: Some(rels[0].clone()),
                        }],
                        dest: target.clone(),
                        dest_is_dir: true,
                        owner: (0, 0),
                        chmod: None,
                        ignore: self.ignore.clone(),
                        excludes: Default::default(),
                    };
                    let digest = copy::content_digest(&job, &[])
                        .map_err(|e| step_err(cf, m.span, e.to_string()))?;
                    mount_text.push(format!("bind:{src}:{target}:{digest}"));
                    mounts.push(RunMount::Bind(path, target));
                }
                MountType::Secret | MountType::Ssh => {
                    return Err(step_err(
                        cf,
                        m.span,
                        format!(
                            "RUN --mount=type={} is not supported by ags build",
                            m.kind.as_str()
                        ),
                    ));
                }
            }
        }
        let network = match run.network {
            Some(RunNetwork::None) => NetworkMode::None,
            Some(RunNetwork::Host) => NetworkMode::Host,
            Some(RunNetwork::Default) | None => self.opts.network,
        };
        // ENV wins over ARG of the same name; both and the proxy args reach the command.
        let mut env = state.env();
        for (k, v) in scope.arg_values().iter().chain(scope.proxy_args().iter()) {
            if !env.iter().any(|(ek, _)| ek == k) {
                env.push((k.clone(), v.clone()));
            }
        }
        let text = format!(
            "RUN {argv:?} mounts={mount_text:?} network={}",
            network.as_str()
        );
        let args: BTreeMap<String, String> = scope.arg_values().clone();
        let key = self.key(state, &text, &args, None);
        let created_by = ins.text.clone();
        let shown = created_by.clone();
        let prefix = format!("[{}/{}] ", self.step, self.total);
        let unchanged = |_: &Self, _: &StageState| Ok(false);
        self.fs_step(
            state,
            key,
            &created_by,
            span,
            unchanged,
            move |b, st, snap| {
                let user = st.config["config"]["User"]
                    .as_str()
                    .filter(|u| !u.is_empty())
                    .map(str::to_string);
                let (uid, gid) = match &user {
                    Some(u) => users::resolve_in_layers(&st.lowers, u)
                        .map_err(|e| step_err(cf, span, format!("USER {e}")))?,
                    None => (0, 0),
                };
                let home = users::home_of(&st.lowers, uid);
                let mut policy = SandboxPolicy::new(st.lowers[0].clone(), argv, b.opts.limits)
                    .map_err(|e| step_err(cf, span, e.to_string()))?;
                match b.kind {
                    SnapshotKind::Overlay => {
                        policy.layers = st.lowers[1..].to_vec();
                        policy.writable = Some(WritableRoot::Overlay {
                            upper: snap.join("upper"),
                            work: snap.join("work"),
                        });
                    }
                    SnapshotKind::Copy => {
                        // The step's own copy of its parent's tree, written in place.
                        policy.rootfs = snap.join(snapshot::TREE);
                        policy.writable = Some(WritableRoot::InPlace);
                    }
                }
                policy.mounts.clear();
                policy.with_user(uid, gid);
                policy.home = home.clone();
                policy.hostname = "ags-build".into();
                policy.network = network;
                policy.capabilities = BUILD_CAPS.iter().map(|c| c.to_string()).collect();
                policy.cwd = PathBuf::from(st.working_dir());
                let mut env = env;
                if !env.iter().any(|(k, _)| k == "PATH") {
                    env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
                }
                if !env.iter().any(|(k, _)| k == "HOME") {
                    env.push(("HOME".into(), home.to_string_lossy().into_owned()));
                }
                policy.env = env;
                let mut locks = Vec::new();
                for m in &mounts {
                    match m {
                        RunMount::Bind(src, target) => policy
                            .add_bind(src, target, Access::ReadOnly)
                            .map_err(|e| step_err(cf, span, e.to_string()))?,
                        RunMount::Cache {
                            dir,
                            target,
                            locked,
                        } => {
                            if *locked {
                                locks.push(lock(&dir.with_extension("lock"))?);
                            }
                            policy.mounts.push(Mount::Bind {
                                source: dir.clone(),
                                target: PathBuf::from(target),
                                access: Access::ReadWrite,
                            });
                        }
                        RunMount::Tmpfs(target, size) => policy
                            .add_tmpfs(target, *size, true)
                            .map_err(|e| step_err(cf, span, e.to_string()))?,
                    }
                }
                let log = snap.join("output.log");
                let pump = Prefixed::start(&prefix, &log).map_err(|source| BuildError::Io {
                    path: log.clone(),
                    source,
                })?;
                let mut warnings = Vec::new();
                let code = ags_runtime::run::run_forked(
                    &policy,
                    &b.env.invoker,
                    &b.env.run_opts,
                    &mut |w| warnings.push(w),
                );
                pump.finish();
                drop(locks);
                for w in warnings {
                    let msg = match w {
                        Warning::SingleIdMap(m) | Warning::NoCgroupDelegation(m) => m,
                    };
                    b.host.event(Event::Warning(msg));
                }
                let code = code.map_err(|e| step_err(cf, span, chain(&e)))?;
                if code != 0 {
                    let mut instruction: String = shown.chars().take(80).collect();
                    if shown.chars().count() > 80 {
                        instruction.push('…');
                    }
                    return Err(BuildError::RunFailed {
                        file: cf.file.clone(),
                        span,
                        instruction,
                        code,
                        tail: output::tail(&log, 15),
                    });
                }
                Ok(None)
            },
        )
    }
}

fn lock(path: &std::path::Path) -> Result<nix::fcntl::Flock<std::fs::File>, BuildError> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| BuildError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
        BuildError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        }
    })
}

fn parse_id(s: Option<&str>) -> Result<u32, String> {
    match s {
        None => Ok(0),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= 65535)
            .ok_or_else(|| format!("bad id {v:?} (a number up to 65535)")),
    }
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let m = match s[i..].to_ascii_lowercase().trim_end_matches('b') {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                _ => return None,
            };
            (&s[..i], m)
        }
        None => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ids() {
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("3x"), None);
        assert_eq!(parse_id(Some("42")), Ok(42));
        assert!(parse_id(Some("70000")).is_err());
        assert_eq!(parse_id(None), Ok(0));
    }
}
