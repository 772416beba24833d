//! The image builder: a parsed Containerfile to an image in the local store.
//!
//! Each stage starts from its base (a pulled image's shared rootfs tree, an earlier
//! stage, or nothing for `scratch`) and each filesystem step (`RUN`, `COPY`, `ADD`, a
//! `WORKDIR` that must be created) runs on a *snapshot* of its own, of one of two kinds
//! chosen once per build ([`snapshot`], [`BuildOptions::snapshots`]):
//!
//! - overlay: an overlay of the layers so far with a fresh upper directory, which is the
//!   step's snapshot and the lower layer of later steps, so a step never copies the root
//!   it runs on (copy-on-write through overlayfs in the user namespace);
//! - copy, where the kernel cannot mount overlayfs in a user namespace: a full copy of
//!   the parent step's tree (reflinked where the filesystem can), written in place.
//!
//! Either way the step's changes are written as a tar+zstd layer ([`diff`]) into the
//! content store, and the image runs from the snapshots (the stack of upper directories,
//! or the last tree) without unpacking anything.
//!
//! `RUN` executes in the ags sandbox ([`ags_runtime::run`]) as the image's user with the
//! full subordinate-id mapping and a small capability set (those a package manager needs,
//! valid inside the user namespace only), with a writable root. `COPY`/`ADD` and
//! `WORKDIR` run in a forked worker that is root of the same user namespace
//! ([`ags_runtime::userns::run_as_root`]) and writes through the confined unpacker.
//!
//! The cache: every step has a key ([`crate::cache_key`]) chained from its parent (and,
//! for copy snapshots, from a `copy:` base key, so the two kinds never share entries). A
//! filesystem step's result (its layer, or "no change") is recorded under the key in
//! `<store>/build/cache/` only after its snapshot and layer blob are complete, so an
//! interrupted step is simply redone. The image is tagged last, in one atomic update of
//! the store's refs ([`ags_oci::store::Store::commit_image`]): a failed or interrupted
//! build tags nothing and the previous image of the tag stays usable.

mod copy;
mod diff;
mod gc;
mod output;
pub mod snapshot;
mod steps;
mod users;

use std::collections::BTreeMap;
use std::path::PathBuf;

use ags_oci::manifest::{Descriptor, Platform};
use ags_oci::reference::Reference;
use ags_oci::store::{PulledImage, Store, StoreError};
use ags_oci::unpack::Budgets;
use ags_runtime::idmap::IdMaps;
use ags_runtime::policy::{Limits, NetworkMode};
use ags_runtime::run::{Invoker, RunOptions};
use serde_json::{Value, json};

use crate::parser::{ParseError, Span, parse};
use crate::rootfs::RootfsError;
use crate::stages::{GlobalScope, StageError, needed_stages, resolve_base};
use snapshot::{SnapshotKind, SnapshotMode};

pub use copy::{CopyError, context_source};
pub use diff::{DiffError, LAYER_MEDIA_TYPE, write_layer};
pub use gc::gc;
pub use users::{read_layered, resolve_in_layers, resolve_user};

/// Errors of a build. Step errors carry `FILE:LINE:COL`.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Reading the Containerfile failed.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The Containerfile does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// ARG/stage resolution failed.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// A step failed, before or while running.
    #[error("{file}:{span}: {message}")]
    Step {
        /// The Containerfile.
        file: String,
        /// Where.
        span: Span,
        /// What went wrong.
        message: String,
    },
    /// A `RUN` exited non-zero.
    #[error("{file}:{span}: {instruction} exited with status {code}")]
    RunFailed {
        /// The Containerfile.
        file: String,
        /// Where.
        span: Span,
        /// The instruction, shortened.
        instruction: String,
        /// Its exit status.
        code: i32,
        /// Its last output lines.
        tail: Vec<String>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Preparing a base image's tree failed.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// A build directory could not be prepared.
    #[error("cannot prepare {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Getting a base image failed (the caller's message).
    #[error("cannot get image {reference}: {message}")]
    Image {
        /// The reference.
        reference: String,
        /// Why.
        message: String,
    },
}

/// What a build is asked to do.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The Containerfile.
    pub containerfile: PathBuf,
    /// The name used in messages (as the user wrote it).
    pub containerfile_name: String,
    /// The build context directory.
    pub context: PathBuf,
    /// `-t`.
    pub tag: Option<Reference>,
    /// `--build-arg`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`: look for newer base images.
    pub pull: bool,
    /// Network of `RUN` steps.
    pub network: NetworkMode,
    /// Platform of the result.
    pub platform: Platform,
    /// Budgets for unpacking (base images and `COPY`).
    pub budgets: Budgets,
    /// Limits of `RUN` steps.
    pub limits: Limits,
    /// Which snapshots to use.
    pub snapshots: SnapshotMode,
}

/// Facts about the invoking user the builder needs to start sandboxes.
#[derive(Debug, Clone)]
pub struct BuildEnv {
    /// The user.
    pub invoker: Invoker,
    /// Runtime options (state directory, subid files).
    pub run_opts: RunOptions,
    /// The image id mapping (container 1000 is the invoking user).
    pub maps: IdMaps,
}

/// What the builder tells its caller (which prints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A step starts: `STEP n/total: text`.
    Step {
        /// 1-based number.
        n: usize,
        /// Steps in the build.
        total: usize,
        /// The instruction as written.
        text: String,
    },
    /// The step's result came from the cache.
    Cached,
    /// A warning.
    Warning(String),
}

/// The caller's side of a build: images and reporting.
pub trait BuildHost {
    /// The image `reference` for `platform`, pulled when missing (or always when `pull`).
    fn image(
        &mut self,
        reference: &str,
        platform: &Platform,
        pull: bool,
    ) -> Result<PulledImage, String>;
    /// An event to show.
    fn event(&mut self, event: Event);
}

/// The result of a build.
#[derive(Debug, Clone)]
pub struct Built {
    /// The stored image.
    pub image: PulledImage,
    /// Steps that ran (not cached).
    pub executed: usize,
    /// Steps taken from the cache.
    pub cached: usize,
}

/// One stage's state while it is built.
#[derive(Debug, Clone)]
pub(crate) struct StageState {
    /// Lower layers, bottom first: the base tree (or an empty directory) and the
    /// snapshots of the steps so far.
    pub(crate) lowers: Vec<PathBuf>,
    /// Layer descriptors of the image so far.
    pub(crate) layers: Vec<Descriptor>,
    /// The image config document so far.
    pub(crate) config: Value,
    /// The cache key of the last step.
    pub(crate) key: String,
    /// When the last filesystem step was first built (RFC 3339): the time every later
    /// history entry and the image get, so that a build served from the cache produces a
    /// byte-identical config (and image id).
    pub(crate) created: String,
}

impl StageState {
    pub(crate) fn cfg(&mut self) -> &mut serde_json::Map<String, Value> {
        if !self.config.get("config").is_some_and(Value::is_object) {
            self.config["config"] = json!({});
        }
        self.config["config"].as_object_mut().expect("object")
    }

    pub(crate) fn env(&self) -> Vec<(String, String)> {
        self.config["config"]["Env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn working_dir(&self) -> String {
        self.config["config"]["WorkingDir"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
            .to_string()
    }

    pub(crate) fn history(&mut self, created_by: &str, empty: bool) {
        if !self.config.get("history").is_some_and(Value::is_array) {
            self.config["history"] = json!([]);
        }
        let mut h =
            json!({"created": self.created, "created_by": created_by, "comment": "ags build"});
        if empty {
            h["empty_layer"] = json!(true);
        }
        self.config["history"]
            .as_array_mut()
            .expect("array")
            .push(h);
    }
}

/// Where build state lives: `<store>/build`, as an absolute path: snapshot paths are
/// recorded in image layouts and become the root of `RUN` sandboxes.
pub fn build_root(store: &Store) -> PathBuf {
    let p = store.root().join("build");
    std::path::absolute(&p).unwrap_or(p)
}

/// Builds the Containerfile in `opts` and tags the result.
pub fn build(
    store: &Store,
    env: &BuildEnv,
    opts: &BuildOptions,
    host: &mut dyn BuildHost,
) -> Result<Built, BuildError> {
    let text = std::fs::read_to_string(&opts.containerfile).map_err(|source| BuildError::Read {
        path: opts.containerfile.clone(),
        source,
    })?;
    let cf = parse(&opts.containerfile_name, &text)?;
    let automatic = platform_args(&opts.platform);
    let global = GlobalScope::new(&cf, &opts.build_args, &automatic)?;
    for unused in global.unused_build_args(&cf) {
        host.event(Event::Warning(format!(
            "build arg {unused} is not declared by any ARG and was not used"
        )));
    }
    let stages = needed_stages(&cf, &global, opts.target.as_deref())?;
    let total: usize = stages
        .iter()
        .map(|&i| 1 + cf.stages[i].instructions.len())
        .sum();
    let ignore = crate::ignore::IgnoreMatcher::load(&opts.context, Some(&opts.containerfile))
        .map_err(|e| BuildError::Step {
            file: cf.file.clone(),
            span: Span::default(),
            message: chain(&e),
        })?;
    let dirs = steps::Dirs::create(store)?;
    let kind = snapshot_kind(store, env, opts.snapshots);
    let mut b = steps::Builder {
        store,
        env,
        opts,
        cf: &cf,
        ignore,
        dirs,
        host,
        results: BTreeMap::new(),
        step: 0,
        total,
        executed: 0,
        cached: 0,
        dirty: false,
        kind,
    };
    let mut last = None;
    for &index in &stages {
        let state = b.stage(&global, index, resolve_base(&cf, &global, index)?)?;
        b.results.insert(index, state.clone());
        last = Some(state);
    }
    let state = last.expect("at least one stage");
    let mut config = state.config.clone();
    config["created"] = json!(state.created);
    config["os"] = json!(opts.platform.os);
    config["architecture"] = json!(opts.platform.architecture);
    let bytes = serde_json::to_vec(&config).map_err(|source| {
        BuildError::Store(StoreError::Encode {
            what: "image config",
            source,
        })
    })?;
    let tag = match &opts.tag {
        Some(t) => t.clone(),
        None => {
            let id = ags_oci::digest::Digest::of(&bytes);
            Reference::parse(&format!("localhost/ags-untagged:{}", &id.hex()[..12]))
                .expect("a valid reference")
        }
    };
    let image = store.commit_image(&tag, &bytes, state.layers.clone(), &opts.platform)?;
    record_layout(store, &image, kind, &state.lowers)?;
    Ok(Built {
        image,
        executed: b.executed,
        cached: b.cached,
    })
}

/// The snapshot kind of a build: the one asked for, or (`auto`) overlay when the kernel
/// can mount it in the build's user namespace. That is tried once per boot and store
/// filesystem (neither the kernel nor the filesystem can change without one of them
/// changing) and remembered in `<store>/build/overlay-probe.json`: the probe forks a
/// user namespace, which would otherwise cost every build, even one with nothing to do.
fn snapshot_kind(store: &Store, env: &BuildEnv, mode: SnapshotMode) -> SnapshotKind {
    match mode {
        SnapshotMode::Overlay => return SnapshotKind::Overlay,
        SnapshotMode::Copy => return SnapshotKind::Copy,
        SnapshotMode::Auto => {}
    }
    use std::os::unix::fs::MetadataExt as _;
    let root = build_root(store);
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let dev = std::fs::metadata(&root).map_or(0, |m| m.dev());
    let key = json!({"boot_id": boot_id.trim(), "dev": dev});
    let memo = root.join("overlay-probe.json");
    let known = std::fs::read(&memo)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .filter(|v| !boot_id.is_empty() && v["key"] == key)
        .and_then(|v| v["overlay"].as_bool());
    let overlay = known.unwrap_or_else(|| {
        // Under snap/, where `ags gc` removes it if this process dies in the middle.
        let scratch = root
            .join("snap")
            .join(format!("probe-{}", std::process::id()));
        let works = snapshot::overlay_works(&scratch, &env.maps, env.invoker.uid == 0);
        let tmp = memo.with_extension(format!("tmp-{}", std::process::id()));
        let doc = json!({"key": key, "overlay": works});
        if std::fs::write(&tmp, doc.to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, &memo);
        }
        works
    });
    if overlay {
        SnapshotKind::Overlay
    } else {
        SnapshotKind::Copy
    }
}

/// Where the layout of a built image is recorded: its root's directories and their
/// kind, by config digest.
fn layout_path(store: &Store, config_hex: &str) -> PathBuf {
    build_root(store)
        .join("images")
        .join(format!("{config_hex}.json"))
}

/// Records which directories make up a built image's root, so that runs use the build's
/// snapshots instead of unpacking the image's layers again.
fn record_layout(
    store: &Store,
    image: &PulledImage,
    kind: SnapshotKind,
    lowers: &[PathBuf],
) -> Result<(), BuildError> {
    let path = layout_path(store, image.manifest.config.digest.hex());
    let dir = path.parent().expect("a parent");
    let io = |source| BuildError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(&json!({"snapshots": kind, "lowers": lowers})).expect("json"),
    )
    .map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)
}

/// The recorded layout of an image built here: the kind of its snapshots and its root's
/// directories, bottom first (an overlay stack; a copy build's root is one full tree).
pub(crate) fn recorded_layout(
    store: &Store,
    config_hex: &str,
) -> Option<(SnapshotKind, Vec<PathBuf>)> {
    let bytes = std::fs::read(layout_path(store, config_hex)).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    // Layouts from before copy snapshots are overlay ones.
    let kind: SnapshotKind = match v.get("snapshots") {
        Some(k) => serde_json::from_value(k.clone()).ok()?,
        None => SnapshotKind::Overlay,
    };
    let lowers: Vec<PathBuf> = v["lowers"]
        .as_array()?
        .iter()
        .map(|p| p.as_str().map(PathBuf::from))
        .collect::<Option<_>>()?;
    Some((kind, lowers))
}

/// The directories (bottom first) of an image built here, when they are all still there
/// and have the shape of their kind: a copy build's root is one tree (never stacked); in
/// an overlay stack every directory above the bottom one is a step's upper directory
/// (never a copy tree).
pub fn layered_root(store: &Store, image: &PulledImage) -> Option<Vec<PathBuf>> {
    let (kind, lowers) = recorded_layout(store, image.manifest.config.digest.hex())?;
    let shaped = match kind {
        SnapshotKind::Copy => lowers.len() == 1,
        SnapshotKind::Overlay => {
            !lowers.is_empty()
                && lowers[1..]
                    .iter()
                    .all(|p| p.file_name().is_some_and(|n| n == "upper"))
        }
    };
    (shaped && lowers.iter().all(|p| p.is_dir())).then_some(lowers)
}

/// The automatic platform args (`TARGETPLATFORM`, `TARGETOS`, ...).
fn platform_args(p: &Platform) -> BTreeMap<String, String> {
    let plat = match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    };
    let mut m = BTreeMap::new();
    for prefix in ["TARGET", "BUILD"] {
        m.insert(format!("{prefix}PLATFORM"), plat.clone());
        m.insert(format!("{prefix}OS"), p.os.clone());
        m.insert(format!("{prefix}ARCH"), p.architecture.clone());
        m.insert(
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        );
    }
    m
}

/// Seconds since the epoch as RFC 3339 (UTC).
pub(crate) fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86400;
    let rem = secs % 86400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Render an error and its causes on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    ags_runtime::userns::error_chain(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_has_the_right_shape() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'));
    }

    #[test]
    fn platform_args_cover_target_and_build() {
        let p = Platform {
            os: "linux".into(),
            architecture: "arm".into(),
            variant: Some("v7".into()),
            ..Platform::host()
        };
        let m = platform_args(&p);
        assert_eq!(m["TARGETPLATFORM"], "linux/arm/v7");
        assert_eq!(m["BUILDARCH"], "arm");
        assert_eq!(m["TARGETVARIANT"], "v7");
    }
}
