//! The unpack worker (see the parent module's docs): the `ags` side ([`Worker`], which
//! hands over layer indices in order) and the worker process's side ([`worker_main`],
//! which unpacks them into its temporary tree and commits or removes it).

use std::fs;
use std::io::{self, BufReader, Read};
use std::ops::Range;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use ags_oci::Digest;
use ags_oci::reference::Reference;
use ags_oci::store::LayerInfo;
use ags_oci::unpack::{Budgets, UnpackOptions, remove_tree, unpack_layer};
use ags_runtime::idmap::IdMaps;
use ags_runtime::userns::{Orders, RootWorker, UsernsError, error_chain, spawn_as_root};

use super::RootfsError;

/// Directories every sandbox mounts over; created in each tree so that the read-only
/// overlay root never needs to create them.
const MOUNT_POINTS: &[&str] = &[
    "proc", "dev", "sys", "tmp", "run", "var/tmp", "home/dev", "etc",
];

/// The order that follows the last layer index: the image is complete, commit the tree.
const COMMIT: u32 = u32::MAX;

/// Compressed bytes a worker reads between two checks that `ags` still waits for it.
const CHECK_EVERY: u64 = 1 << 20;

/// Why a worker did not start.
pub(super) enum StartError {
    Io(PathBuf, io::Error),
    Spawn(UsernsError),
}

impl StartError {
    pub(super) fn for_image(self, image: &Reference) -> RootfsError {
        match self {
            StartError::Io(path, source) => RootfsError::Io { path, source },
            StartError::Spawn(source) => RootfsError::Unpack {
                image: image.to_string(),
                source,
            },
        }
    }
}

/// Which layers may be unpacked: all layers up to the first one not yet committed. The
/// same digest may appear at several positions of an image; it is committed once.
#[derive(Debug)]
struct InOrder {
    digests: Vec<Digest>,
    done: Vec<bool>,
    sent: usize,
}

impl InOrder {
    fn new(digests: Vec<Digest>) -> Self {
        let n = digests.len();
        Self {
            digests,
            done: vec![false; n],
            sent: 0,
        }
    }

    /// `digest` is committed; returns the layer indices that have become unpackable.
    fn committed(&mut self, digest: &Digest) -> Range<usize> {
        for (d, done) in self.digests.iter().zip(&mut self.done) {
            if d == digest {
                *done = true;
            }
        }
        let from = self.sent;
        while self.sent < self.done.len() && self.done[self.sent] {
            self.sent += 1;
        }
        from..self.sent
    }
}

/// The `ags` side of an unpack worker.
pub(super) struct Worker {
    process: RootWorker,
    order: InOrder,
}

impl Worker {
    /// Create `root` if needed and fork a worker that will unpack `layers` into a
    /// temporary tree under it and rename that to `final_path` on commit.
    pub(super) fn start(
        root: &Path,
        final_path: PathBuf,
        layers: Vec<LayerInfo>,
        budgets: &Budgets,
        maps: &IdMaps,
        privileged: bool,
    ) -> Result<Self, StartError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| StartError::Io(root.to_path_buf(), e))?;
        let order = InOrder::new(layers.iter().map(|l| l.digest.clone()).collect());
        let opts = UnpackOptions {
            budgets: budgets.clone(),
            rootless: true,
            preserve_ownership: true,
        };
        // The tree's top directory is the image's `/`: root's and 0755 when the mapping has
        // a container root (the worker runs as that root), unless a layer says otherwise.
        let own_root = maps.uids.iter().any(|m| m.container == 0);
        let process = spawn_as_root(
            maps,
            privileged,
            // Created by the invoking user, 0700, so nobody looks in before it is complete.
            || new_tmp(root),
            |tmp, orders| worker_main(root, &tmp, &final_path, &layers, &opts, own_root, orders),
        )
        .map_err(StartError::Spawn)?;
        Ok(Self { process, order })
    }

    /// `digest` is committed to the store: hand the worker every layer it may now unpack.
    pub(super) fn layer_done(&mut self, digest: &Digest) {
        for i in self.order.committed(digest) {
            // A worker that has stopped (its unpack failed) says why in commit().
            let _ = self.process.send(&(i as u32).to_le_bytes());
        }
    }

    /// Every layer was handed over: wait for the worker to unpack the rest and rename
    /// the tree into place.
    pub(super) fn commit(mut self) -> Result<(), UsernsError> {
        let _ = self.process.send(&COMMIT.to_le_bytes());
        self.process.wait()
    }
}

/// Make the worker's temporary tree, named after the calling process (the worker).
fn new_tmp(root: &Path) -> Result<PathBuf, String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = root.join(format!(".tmp-{}-{nanos}", std::process::id()));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    Ok(tmp)
}

/// The worker: unpack the layers into `tmp` as their indices arrive, rename `tmp` to
/// `final_path` on the commit order; on any error or when `ags` goes away, remove `tmp`.
fn worker_main(
    root: &Path,
    tmp: &Path,
    final_path: &Path,
    layers: &[LayerInfo],
    opts: &UnpackOptions,
    own_root: bool,
    mut orders: Orders,
) -> Result<(), String> {
    // While the first layer is still downloading.
    sweep_stale(root);
    let result = own_tree_root(tmp, own_root)
        .and_then(|()| unpack_in_order(tmp, final_path, layers, opts, &mut orders))
        .and_then(|()| commit(tmp, final_path));
    if result.is_err() {
        let _ = remove_tree(tmp);
    }
    result
}

/// Make the tree's top directory root's and 0755, as `/` is in any image (the invoking
/// user created it 0700). Without a container root in the mapping it stays the user's.
fn own_tree_root(tmp: &Path, own_root: bool) -> Result<(), String> {
    if !own_root {
        return Ok(());
    }
    use std::os::unix::fs::PermissionsExt as _;
    std::os::unix::fs::chown(tmp, Some(0), Some(0))
        .and_then(|()| fs::set_permissions(tmp, fs::Permissions::from_mode(0o755)))
        .map_err(|e| format!("cannot make {} root's: {e}", tmp.display()))
}

fn unpack_in_order(
    tmp: &Path,
    final_path: &Path,
    layers: &[LayerInfo],
    opts: &UnpackOptions,
    orders: &mut Orders,
) -> Result<(), String> {
    let mut next = 0;
    loop {
        let mut order = [0u8; 4];
        orders
            .read_exact(&mut order)
            .map_err(|_| "abandoned before the image was complete".to_string())?;
        let order = u32::from_le_bytes(order);
        if order == COMMIT {
            if next != layers.len() {
                return Err(format!(
                    "told to commit after {next} of {} layers",
                    layers.len()
                ));
            }
            return Ok(());
        }
        let Some(layer) = layers.get(next).filter(|_| order as usize == next) else {
            return Err(format!("layer {order} announced, expected layer {next}"));
        };
        // Another ags that finished the same image first makes the rest wasted work;
        // commit() keeps their tree.
        if !final_path.is_dir() {
            unpack_one(tmp, layer, opts, orders)?;
        }
        next += 1;
    }
}

fn unpack_one(
    tmp: &Path,
    layer: &LayerInfo,
    opts: &UnpackOptions,
    orders: &Orders,
) -> Result<(), String> {
    let file = fs::File::open(&layer.path)
        .map_err(|e| format!("cannot open {}: {e}", layer.path.display()))?;
    let blob = Watched {
        file,
        orders,
        unchecked: 0,
    };
    unpack_layer(
        tmp,
        BufReader::with_capacity(1 << 20, blob),
        &layer.media_type,
        Some(&layer.diff_id.to_string()),
        opts,
    )
    .map_err(|e| format!("layer {}: {}", layer.digest, error_chain(&e)))?;
    Ok(())
}

/// A layer blob that stops being readable once `ags` no longer waits for the tree, so an
/// abandoned worker does not finish a large layer first.
struct Watched<'a> {
    file: fs::File,
    orders: &'a Orders,
    unchecked: u64,
}

impl Read for Watched<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.unchecked >= CHECK_EVERY {
            self.unchecked = 0;
            if self.orders.parent_gone() {
                return Err(io::Error::other("abandoned before the image was complete"));
            }
        }
        let n = self.file.read(buf)?;
        self.unchecked += n as u64;
        Ok(n)
    }
}

/// Add the mount points and rename `tmp` to `final_path`, or drop `tmp` when another
/// ags got there first.
fn commit(tmp: &Path, final_path: &Path) -> Result<(), String> {
    if final_path.is_dir() {
        return remove_tree(tmp).map_err(|e| error_chain(&e));
    }
    for d in MOUNT_POINTS {
        // Best effort: a symlink at one of these (e.g. /etc) is checked at run time.
        let _ = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(tmp.join(d));
    }
    match fs::rename(tmp, final_path) {
        Ok(()) => Ok(()),
        // Another ags finished the same image first: keep theirs.
        Err(_) if final_path.is_dir() => remove_tree(tmp).map_err(|e| error_chain(&e)),
        Err(e) => Err(format!(
            "cannot rename {} to {}: {e}",
            tmp.display(),
            final_path.display()
        )),
    }
}

/// Whether `name` is the temporary tree of a worker (or, before workers, of an `ags`)
/// that no longer runs: `.tmp-<pid>-...` with no process `<pid>`.
pub(super) fn stale_tmp(name: &str) -> bool {
    name.strip_prefix(".tmp-")
        .and_then(|rest| rest.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| pid > 0 && !Path::new(&format!("/proc/{pid}")).exists())
}

/// Remove the temporary trees of workers that died without cleaning up (SIGKILL, OOM,
/// power loss). Best effort: another worker or `ags gc` may be removing the same tree.
fn sweep_stale(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        if stale_tmp(&e.file_name().to_string_lossy()) {
            let _ = remove_tree(&e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    use ags_oci::store::Store;

    const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

    /// An uncompressed layer holding `files` (with their parent directories), committed to
    /// `store` like a pull would; `diff_id` is the real one unless given.
    fn layer(store: &Store, files: &[(&str, &str)], diff_id: Option<Digest>) -> LayerInfo {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in files {
            if let Some((dir, _)) = path.rsplit_once('/') {
                let mut h = tar::Header::new_ustar();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, format!("{dir}/"), io::empty())
                    .unwrap();
            }
            let mut h = tar::Header::new_ustar();
            h.set_mode(0o644);
            h.set_size(content.len() as u64);
            b.append_data(&mut h, path, content.as_bytes()).unwrap();
        }
        let blob = b.into_inner().unwrap();
        let digest = Digest::of(&blob);
        store.write_blob(&digest, &blob).unwrap();
        LayerInfo {
            path: store.blob_path(&digest),
            media_type: TAR.into(),
            diff_id: diff_id.unwrap_or_else(|| digest.clone()),
            digest,
            size: blob.len() as u64,
        }
    }

    struct Setup {
        _dir: tempfile::TempDir,
        store: Store,
        root: PathBuf,
        final_path: PathBuf,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let root = super::super::rootfs_root(&store);
        fs::create_dir_all(&root).unwrap();
        let final_path = root.join("f".repeat(64));
        Setup {
            _dir: dir,
            store,
            root,
            final_path,
        }
    }

    fn opts() -> UnpackOptions {
        // The tests run as whoever runs cargo test, not as root of a namespace.
        UnpackOptions {
            preserve_ownership: false,
            ..UnpackOptions::default()
        }
    }

    /// Run the worker in a thread; `drive` plays ags, writing orders to the pipe.
    fn run_worker(
        s: &Setup,
        layers: &[LayerInfo],
        drive: impl FnOnce(&mut fs::File),
    ) -> (Result<(), String>, PathBuf) {
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut ags = fs::File::from(w);
        let tmp = new_tmp(&s.root).unwrap();
        let result = std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                let orders = Orders::from(fs::File::from(r));
                worker_main(&s.root, &tmp, &s.final_path, layers, &opts(), false, orders)
            });
            drive(&mut ags);
            drop(ags);
            worker.join().unwrap()
        });
        (result, tmp)
    }

    fn send(ags: &mut fs::File, order: u32) {
        ags.write_all(&order.to_le_bytes()).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn layers_are_unpacked_in_order_and_committed() {
        let s = setup();
        let lower = layer(&s.store, &[("etc/motd", "lower"), ("a/x", "1")], None);
        let upper = layer(&s.store, &[("etc/motd", "upper"), ("b/y", "2")], None);
        let layers = [lower.clone(), upper.clone()];
        let mut order = InOrder::new(vec![lower.digest.clone(), upper.digest.clone()]);
        let (result, tmp) = run_worker(&s, &layers, |ags| {
            // The upper layer finishes downloading first: nothing may be unpacked yet.
            assert!(order.committed(&upper.digest).is_empty());
            for i in order.committed(&lower.digest) {
                send(ags, i as u32);
            }
            send(ags, COMMIT);
        });
        result.unwrap();
        assert!(!tmp.exists());
        let motd = fs::read_to_string(s.final_path.join("etc/motd")).unwrap();
        assert_eq!(motd, "upper");
        assert!(s.final_path.join("a/x").is_file() && s.final_path.join("b/y").is_file());
        for d in MOUNT_POINTS {
            assert!(s.final_path.join(d).is_dir(), "{d}");
        }
        assert_eq!(names(&s.root), ["f".repeat(64)]);
    }

    #[test]
    fn an_abandoned_worker_removes_its_tree() {
        let s = setup();
        let layers = [
            layer(&s.store, &[("a/x", "1")], None),
            layer(&s.store, &[("b/y", "2")], None),
        ];
        // ags sends the first layer, then exits (or its pull fails) without a commit.
        let (result, tmp) = run_worker(&s, &layers, |ags| send(ags, 0));
        let err = result.unwrap_err();
        assert!(err.contains("abandoned"), "{err}");
        assert!(!tmp.exists());
        assert!(names(&s.root).is_empty());
    }

    #[test]
    fn a_worker_notices_the_hang_up_in_the_middle_of_a_layer() {
        let s = setup();
        let big = "x".repeat(3 << 20);
        let layers = [layer(&s.store, &[("big", &big)], None)];
        let (r, w) = nix::unistd::pipe().unwrap();
        drop(w);
        let orders = Orders::from(fs::File::from(r));
        let tmp = new_tmp(&s.root).unwrap();
        let err = unpack_one(&tmp, &layers[0], &opts(), &orders).unwrap_err();
        assert!(err.contains("abandoned"), "{err}");
    }

    #[test]
    fn a_diff_id_mismatch_fails_and_leaves_no_tree() {
        let s = setup();
        let good = layer(&s.store, &[("a/x", "1")], None);
        let bad = layer(
            &s.store,
            &[("b/y", "2")],
            Some(Digest::of(b"another layer")),
        );
        let (result, tmp) = run_worker(&s, &[good, bad], |ags| {
            send(ags, 0);
            send(ags, 1);
            send(ags, COMMIT);
        });
        let err = result.unwrap_err();
        assert!(err.contains("diff_id mismatch"), "{err}");
        assert!(!tmp.exists());
        assert!(names(&s.root).is_empty());
    }

    #[test]
    fn orders_out_of_order_or_an_early_commit_fail() {
        let s = setup();
        let layers = [
            layer(&s.store, &[("a/x", "1")], None),
            layer(&s.store, &[("b/y", "2")], None),
        ];
        let (result, _) = run_worker(&s, &layers, |ags| send(ags, 1));
        assert!(result.unwrap_err().contains("expected layer 0"));
        let (result, _) = run_worker(&s, &layers, |ags| {
            send(ags, 0);
            send(ags, COMMIT);
        });
        assert!(result.unwrap_err().contains("after 1 of 2 layers"));
        assert!(names(&s.root).is_empty());
    }

    #[test]
    fn the_first_tree_committed_wins() {
        let s = setup();
        let layers = [layer(&s.store, &[("a/x", "mine")], None)];
        fs::create_dir(&s.final_path).unwrap();
        fs::write(s.final_path.join("theirs"), "").unwrap();
        let (result, tmp) = run_worker(&s, &layers, |ags| {
            send(ags, 0);
            send(ags, COMMIT);
        });
        result.unwrap();
        assert!(!tmp.exists());
        assert_eq!(names(&s.final_path), ["theirs"]);
        assert_eq!(names(&s.root), ["f".repeat(64)]);
    }

    #[test]
    fn in_order_waits_for_every_lower_layer() {
        let [a, b, c] = [b"a", b"b", b"c"].map(|x| Digest::of(x));
        // The same layer twice (a, b, a, c): one commit of `a` frees both positions.
        let mut o = InOrder::new(vec![a.clone(), b.clone(), a.clone(), c.clone()]);
        assert_eq!(o.committed(&c), 0..0);
        assert_eq!(o.committed(&b), 0..0);
        assert_eq!(o.committed(&a), 0..4);
        assert_eq!(o.committed(&a), 4..4, "nothing is handed out twice");
        let mut o = InOrder::new(vec![a.clone(), b.clone()]);
        assert_eq!(o.committed(&a), 0..1);
        assert_eq!(o.committed(&Digest::of(b"unknown")), 1..1);
        assert_eq!(o.committed(&b), 1..2);
    }

    #[test]
    fn temporary_trees_of_dead_processes_are_stale() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let me = std::process::id();
        for (name, stale) in [
            (format!(".tmp-{dead}-123"), true),
            (format!(".tmp-{dead}"), true),
            (format!(".tmp-{me}-123"), false),
            (".tmp-0-1".into(), false),
            (".tmp-x-1".into(), false),
            (".tmp--1".into(), false),
            (format!("tmp-{dead}-1"), false),
            ("f".repeat(64), false),
        ] {
            assert_eq!(stale_tmp(&name), stale, "{name}");
        }
        let s = setup();
        let stale_tree = s.root.join(format!(".tmp-{dead}-1"));
        fs::create_dir_all(stale_tree.join("a/b")).unwrap();
        let live_tree = new_tmp(&s.root).unwrap();
        sweep_stale(&s.root);
        assert!(!stale_tree.exists());
        assert!(live_tree.exists());
    }
}
