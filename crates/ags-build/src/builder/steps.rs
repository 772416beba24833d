//! Executing one stage: instructions to config changes and filesystem steps, with the
//! cache in front of every filesystem step.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use ags_oci::manifest::Platform;
use ags_oci::store::Store;
use ags_runtime::userns::run_as_root;
use serde_json::{Value, json};

use super::snapshot::SnapshotKind;
use super::{BuildEnv, BuildError, BuildHost, BuildOptions, Event, StageState, build_root, chain};
use crate::cache_key::{CacheKeyInput, cache_key};
use crate::ignore::IgnoreMatcher;
use crate::parser::{Command, Containerfile, Healthcheck, Instruction, InstructionKind, Span};
use crate::stages::{GlobalScope, StageRef, StageScope};

/// Capabilities of a `RUN` step, inside the build's user namespace only: what package
/// managers need to own files, switch to their own users and bind low ports. Docker's
/// default set minus NET_RAW, MKNOD and AUDIT_WRITE (capabilities(7)); no capability
/// reaches the host, and NoNewPrivs and the seccomp profile stay in force.
pub(crate) const BUILD_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_SETFCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
];

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The directories under `<store>/build`.
#[derive(Debug, Clone)]
pub(crate) struct Dirs {
    cache: PathBuf,
    snap: PathBuf,
    mounts: PathBuf,
    empty: PathBuf,
    logs: PathBuf,
}

impl Dirs {
    pub(crate) fn create(store: &Store) -> Result<Self, BuildError> {
        let root = build_root(store);
        let d = Dirs {
            cache: root.join("cache"),
            snap: root.join("snap"),
            mounts: root.join("mounts"),
            empty: root.join("empty"),
            logs: root.join("logs"),
        };
        for p in [&root, &d.cache, &d.snap, &d.mounts, &d.empty, &d.logs] {
            mkdir(p)?;
        }
        Ok(d)
    }
}

fn mkdir(p: &Path) -> Result<(), BuildError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(|source| BuildError::Io {
            path: p.to_path_buf(),
            source,
        })
}

pub(crate) struct Builder<'a> {
    pub(crate) store: &'a Store,
    pub(crate) env: &'a BuildEnv,
    pub(crate) opts: &'a BuildOptions,
    pub(crate) cf: &'a Containerfile,
    pub(crate) ignore: IgnoreMatcher,
    pub(crate) dirs: Dirs,
    pub(crate) host: &'a mut dyn BuildHost,
    pub(crate) results: BTreeMap<usize, StageState>,
    pub(crate) step: usize,
    pub(crate) total: usize,
    pub(crate) executed: usize,
    pub(crate) cached: usize,
    /// A filesystem step of this build ran: later metadata steps are new too.
    pub(crate) dirty: bool,
    /// The snapshots of this build.
    pub(crate) kind: SnapshotKind,
}

fn step_err(cf: &Containerfile, span: Span, message: impl Into<String>) -> BuildError {
    BuildError::Step {
        file: cf.file.clone(),
        span,
        message: message.into(),
    }
}

impl Builder<'_> {
    fn privileged(&self) -> bool {
        self.env.invoker.uid == 0
    }

    fn announce(&mut self, text: &str) {
        self.step += 1;
        self.host.event(Event::Step {
            n: self.step,
            total: self.total,
            text: text.to_string(),
        });
    }

    /// The empty bottom layer of `FROM scratch`, owned by the image's root (0:0, 0755) so
    /// that the root directory of the image is, too.
    fn scratch_root(&self) -> Result<PathBuf, BuildError> {
        use std::os::unix::fs::MetadataExt as _;
        let dir = self.dirs.empty.clone();
        let meta = fs::metadata(&dir).map_err(|source| BuildError::Io {
            path: dir.clone(),
            source,
        })?;
        if meta.uid() == self.env.invoker.uid && !self.privileged() {
            let d = dir.clone();
            run_as_root(&self.env.maps, self.privileged(), || {
                use std::os::unix::fs::PermissionsExt as _;
                std::os::unix::fs::chown(&d, Some(0), Some(0))
                    .and_then(|()| fs::set_permissions(&d, fs::Permissions::from_mode(0o755)))
                    .map_err(|e| format!("{}: {e}", d.display()))
            })
            .map_err(|e| BuildError::Io {
                path: dir.clone(),
                source: std::io::Error::other(chain(&e)),
            })?;
        } else if self.privileged() {
            use std::os::unix::fs::PermissionsExt as _;
            let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
        }
        Ok(dir)
    }

    /// A base image's state: its tree, layers and config.
    fn image_state(
        &mut self,
        name: &str,
        platform: &Platform,
        span: Span,
    ) -> Result<StageState, BuildError> {
        let image = self
            .host
            .image(name, platform, self.opts.pull)
            .map_err(|message| BuildError::Image {
                reference: name.to_string(),
                message,
            })?;
        let tree = crate::rootfs::materialize(
            self.store,
            &image,
            &self.opts.budgets,
            &self.env.maps,
            self.privileged(),
        )?;
        let bytes = self.store.read_blob(&image.manifest.config.digest)?;
        let config: Value = serde_json::from_slice(&bytes)
            .map_err(|e| step_err(self.cf, span, format!("image {name}: bad config: {e}")))?;
        if config["config"]["OnBuild"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            self.host.event(Event::Warning(format!(
                "{name} has ONBUILD triggers; ags build does not run them"
            )));
        }
        let created = config["created"]
            .as_str()
            .unwrap_or("1970-01-01T00:00:00Z")
            .to_string();
        Ok(StageState {
            lowers: vec![tree],
            layers: image.manifest.layers.clone(),
            config,
            key: image.manifest.config.digest.to_string(),
            created,
        })
    }

    fn platform_for(&self, global: &GlobalScope, index: usize) -> Result<Platform, BuildError> {
        match global.from_platform(self.cf, index)? {
            None => Ok(self.opts.platform.clone()),
            Some(p) => Platform::parse(&p).map_err(|e| {
                step_err(
                    self.cf,
                    self.cf.stages[index].span,
                    format!("FROM --platform={p}: {e}"),
                )
            }),
        }
    }

    /// Builds stage `index` on `base`.
    pub(crate) fn stage(
        &mut self,
        global: &GlobalScope,
        index: usize,
        base: StageRef,
    ) -> Result<StageState, BuildError> {
        let cf = self.cf;
        let stage = &cf.stages[index];
        self.announce(&stage.text);
        let from_stage = matches!(base, StageRef::Stage(_));
        let mut state = match base {
            StageRef::Scratch => StageState {
                lowers: vec![self.scratch_root()?],
                layers: Vec::new(),
                config: json!({
                    "architecture": self.opts.platform.architecture,
                    "os": self.opts.platform.os,
                    "config": {"Env": [format!("PATH={DEFAULT_PATH}")]},
                    "rootfs": {"type": "layers", "diff_ids": []},
                    "history": [],
                }),
                key: "scratch".into(),
                created: "1970-01-01T00:00:00Z".into(),
            },
            StageRef::Stage(i) => self.results.get(&i).cloned().ok_or_else(|| {
                step_err(
                    cf,
                    stage.span,
                    format!("stage {i} is not built before this one"),
                )
            })?,
            StageRef::Image(name) => {
                let platform = self.platform_for(global, index)?;
                self.image_state(&name, &platform, stage.span)?
            }
        };
        if self.kind == SnapshotKind::Copy && !from_stage {
            // Copy snapshots are cached apart from overlay ones: every key of the stage
            // chains from this one.
            state.key = format!("copy:{}", state.key);
        }
        let mut scope = StageScope::new(global, state.env());
        let mut cmd_set = false;
        for ins in &stage.instructions {
            self.instruction(&mut scope, &mut state, ins, &mut cmd_set)?;
        }
        Ok(state)
    }

    fn expand(
        &self,
        scope: &StageScope<'_>,
        span: Span,
        what: &str,
        w: &str,
    ) -> Result<String, BuildError> {
        Ok(scope.expand(self.cf, span, what, w)?.value)
    }

    fn meta_step(&mut self, state: &mut StageState, created_by: &str) {
        state.key = cache_key(&CacheKeyInput {
            parent: &state.key,
            instruction: created_by,
            build_args: &BTreeMap::new(),
            content_digest: None,
        });
        state.history(created_by, true);
    }

    fn instruction(
        &mut self,
        scope: &mut StageScope<'_>,
        state: &mut StageState,
        ins: &Instruction,
        cmd_set: &mut bool,
    ) -> Result<(), BuildError> {
        let cf = self.cf;
        self.announce(&ins.text);
        let span = ins.span;
        let metadata = !matches!(
            ins.kind,
            InstructionKind::Run(_)
                | InstructionKind::Copy(_)
                | InstructionKind::Add(_)
                | InstructionKind::Workdir(_)
        );
        if metadata && !self.dirty {
            // Nothing before it ran: its result is the cached one, as other builders say.
            self.host.event(Event::Cached);
        }
        match &ins.kind {
            InstructionKind::Arg(_) => {
                scope.apply(cf, &ins.kind, span)?;
            }
            InstructionKind::Env(_) => {
                let pairs = scope.apply(cf, &ins.kind, span)?;
                let mut env = state.env();
                for (k, v) in &pairs {
                    match env.iter_mut().find(|(ek, _)| ek == k) {
                        Some(e) => e.1 = v.clone(),
                        None => env.push((k.clone(), v.clone())),
                    }
                }
                let list: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                state.cfg().insert("Env".into(), json!(list));
                let text = pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                self.meta_step(state, &format!("ENV {text}"));
            }
            InstructionKind::Label(_) | InstructionKind::Maintainer(_) => {
                let mut kv = Vec::new();
                if let InstructionKind::Label(pairs) = &ins.kind {
                    for p in pairs {
                        kv.push((
                            self.expand(scope, span, "the LABEL key", &p.key)?,
                            self.expand(scope, p.span, "the LABEL value", &p.value)?,
                        ));
                    }
                } else if let InstructionKind::Maintainer(m) = &ins.kind {
                    state.config["author"] = json!(m);
                    kv.push(("maintainer".to_string(), m.clone()));
                }
                let labels = state.cfg().entry("Labels").or_insert_with(|| json!({}));
                if !labels.is_object() {
                    *labels = json!({});
                }
                for (k, v) in &kv {
                    labels[k.as_str()] = json!(v);
                }
                self.meta_step(state, &format!("LABEL {kv:?}"));
            }
            InstructionKind::Workdir(w) => {
                let w = self.expand(scope, span, "the WORKDIR path", w)?;
                let dir = normalize(&join_container(&state.working_dir(), &w));
                state.cfg().insert("WorkingDir".into(), json!(dir));
                let text = format!("WORKDIR {dir}");
                let key = self.key(state, &text, &BTreeMap::new(), None);
                let d = dir.clone();
                let exists = |b: &Self, st: &StageState| b.is_dir_in_tree(st, &dir, span);
                self.fs_step(state, key, &text, span, exists, move |b, st, snap| {
                    b.worker(st, snap, &[], move |merged, _| {
                        let root = pathrs::Root::open(merged).map_err(|e| e.to_string())?;
                        root.mkdir_all(&d, &std::os::unix::fs::PermissionsExt::from_mode(0o755))
                            .map(|_| ())
                            .map_err(|e| format!("cannot create {d}: {e}"))
                    })
                })?;
            }
            InstructionKind::User(u) => {
                let u = self.expand(scope, span, "the USER", u)?;
                state.cfg().insert("User".into(), json!(u));
                self.meta_step(state, &format!("USER {u}"));
            }
            InstructionKind::Entrypoint(c) => {
                let argv = self.command(state, scope, span, c)?;
                state.cfg().insert("Entrypoint".into(), json!(argv));
                if !*cmd_set {
                    state.cfg().insert("Cmd".into(), Value::Null);
                }
                self.meta_step(state, &format!("ENTRYPOINT {argv:?}"));
            }
            InstructionKind::Cmd(c) => {
                let argv = self.command(state, scope, span, c)?;
                state.cfg().insert("Cmd".into(), json!(argv));
                *cmd_set = true;
                self.meta_step(state, &format!("CMD {argv:?}"));
            }
            InstructionKind::Shell(sh) => {
                state.cfg().insert("Shell".into(), json!(sh));
                self.meta_step(state, &format!("SHELL {sh:?}"));
            }
            InstructionKind::Expose(ports) => {
                let mut list = Vec::new();
                for p in ports {
                    let p = self.expand(scope, span, "the EXPOSE port", p)?;
                    list.push(if p.contains('/') {
                        p
                    } else {
                        format!("{p}/tcp")
                    });
                }
                let e = state
                    .cfg()
                    .entry("ExposedPorts")
                    .or_insert_with(|| json!({}));
                if !e.is_object() {
                    *e = json!({});
                }
                for p in &list {
                    e[p.as_str()] = json!({});
                }
                self.meta_step(state, &format!("EXPOSE {list:?}"));
            }
            InstructionKind::Volume(vols) => {
                let mut list = Vec::new();
                for v in vols {
                    list.push(self.expand(scope, span, "the VOLUME path", v)?);
                }
                let e = state.cfg().entry("Volumes").or_insert_with(|| json!({}));
                if !e.is_object() {
                    *e = json!({});
                }
                for v in &list {
                    e[v.as_str()] = json!({});
                }
                self.host.event(Event::Warning(format!(
                    "{}:{span}: VOLUME is recorded in the image; ags runs mount nothing there",
                    cf.file
                )));
                self.meta_step(state, &format!("VOLUME {list:?}"));
            }
            InstructionKind::StopSignal(s) => {
                let s = self.expand(scope, span, "the STOPSIGNAL", s)?;
                state.cfg().insert("StopSignal".into(), json!(s));
                self.meta_step(state, &format!("STOPSIGNAL {s}"));
            }
            InstructionKind::Healthcheck(h) => {
                let v = match h {
                    Healthcheck::None => json!({"Test": ["NONE"]}),
                    Healthcheck::Cmd {
                        command,
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                    } => {
                        let test = match command {
                            Command::Exec(a) => {
                                let mut t = vec!["CMD".to_string()];
                                t.extend(a.iter().cloned());
                                t
                            }
                            Command::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                        };
                        let ns = |d: &Option<std::time::Duration>| d.map(|d| d.as_nanos() as u64);
                        json!({"Test": test, "Interval": ns(interval), "Timeout": ns(timeout),
                               "StartPeriod": ns(start_period), "StartInterval": ns(start_interval),
                               "Retries": retries})
                    }
                };
                self.host.event(Event::Warning(format!(
                    "{}:{span}: HEALTHCHECK is recorded in the image; ags does not run it",
                    cf.file
                )));
                state.cfg().insert("Healthcheck".into(), v.clone());
                self.meta_step(state, &format!("HEALTHCHECK {v}"));
            }
            InstructionKind::Onbuild(inner) => {
                let text = inner.text.clone();
                let e = state.cfg().entry("OnBuild").or_insert_with(|| json!([]));
                if !e.is_array() {
                    *e = json!([]);
                }
                e.as_array_mut().expect("array").push(json!(text));
                self.meta_step(state, &format!("ONBUILD {text}"));
            }
            InstructionKind::Run(run) => self.run_step(scope, state, ins, run)?,
            InstructionKind::Copy(c) => self.copy_step(scope, state, ins, c, false)?,
            InstructionKind::Add(c) => self.copy_step(scope, state, ins, c, true)?,
        }
        Ok(())
    }

    /// ENTRYPOINT/CMD argv: exec form as is, shell form through the stage's shell.
    fn command(
        &self,
        state: &StageState,
        _scope: &StageScope<'_>,
        _span: Span,
        c: &Command,
    ) -> Result<Vec<String>, BuildError> {
        Ok(match c {
            Command::Exec(a) => a.clone(),
            Command::Shell(s) => {
                let mut argv = shell_of(state);
                argv.push(s.clone());
                argv
            }
        })
    }

    fn key(
        &self,
        state: &StageState,
        text: &str,
        args: &BTreeMap<String, String>,
        content: Option<&str>,
    ) -> String {
        cache_key(&CacheKeyInput {
            parent: &state.key,
            instruction: text,
            build_args: args,
            content_digest: content,
        })
    }
}

pub(crate) fn shell_of(state: &StageState) -> Vec<String> {
    state.config["config"]["Shell"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect::<Vec<_>>()
        })
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
}

/// `dir` joined to the working directory unless absolute.
pub(crate) fn join_container(cwd: &str, p: &str) -> String {
    if p.starts_with('/') {
        p.to_string()
    } else {
        format!("{}/{p}", cwd.trim_end_matches('/'))
    }
}

/// Lexical normalization of an absolute container path (`..` stops at `/`).
pub(crate) fn normalize(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

mod copy_step;
mod fs_step;
mod run_step;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths() {
        assert_eq!(normalize(&join_container("/app", "src")), "/app/src");
        assert_eq!(normalize(&join_container("/app", "/abs/")), "/abs");
        assert_eq!(normalize(&join_container("/", "../../x")), "/x");
        assert_eq!(normalize("/a/./b/../c"), "/a/c");
    }
}
