//! ags-testimage: builds small OCI images from a command-line spec and pushes them to a
//! registry over the distribution API with ags-oci's `RegistryClient`, without any
//! container engine. The end-to-end tests and ci/bench-pull.sh use it to fill the local
//! test registry (ci/registry.sh) with images whose every byte they control.
//!
//! Output is deterministic: directory walks are sorted, every tar entry has the same
//! mtime (`--mtime`, default 0) and owner (`--owner`, default 0:0), random data comes from
//! a seeded generator, so the same command line pushes the same digests every time.
//!
//! ```text
//! ags-testimage push --registry 127.0.0.1:5123 --insecure --repo busybox --tag latest \
//!     --config-cmd /bin/sh dir:/tmp/rootfs random:20M:blob 'file:/etc/motd=hi+whiteout:/tmp'
//! ```
//! prints the manifest digest (the index digest with `--platforms`) on stdout.
//!
//! `push-tar` pushes prepared layer files instead (tar, tar+gzip or tar+zstd, byte for
//! byte), e.g. the Debian base that ci/mk-debian-base.sh bootstraps:
//! ```text
//! ags-testimage push-tar --registry 127.0.0.1:5123 --insecure --repo library/debian \
//!     --tag trixie-slim --config-cmd bash /tmp/debian-base/layer.tar.gz
//! ```

#[path = "testimage/layer.rs"]
mod layer;
#[path = "testimage/tarball.rs"]
mod tarball;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use ags_oci::Digest;
use ags_oci::auth::{Credentials, StaticCredentials, normalize_key};
use ags_oci::manifest::{self, Descriptor, ImageIndex, ImageManifest};
use ags_oci::platform::Platform;
use ags_oci::reference::Reference;
use ags_oci::registry::{ClientOptions, HostConfig, RegistryClient, RegistryConfig};

use layer::{BuildContext, Compression, Item, LayerOptions, LayerSpec};

const USAGE: &str = r#"usage: ags-testimage push --registry HOST[:PORT] --repo NAME [OPTIONS] LAYER...
       ags-testimage push-tar --registry HOST[:PORT] --repo NAME [OPTIONS] TARFILE...

push builds an OCI image from LAYERs (base first) and pushes it to a registry; prints the
manifest digest (or the index digest with --platforms) on stdout, progress on stderr.
push-tar does the same with prepared layer files: each TARFILE (base first) is a tar
archive, plain or compressed with gzip or zstd (recognised by its magic number), pushed
byte for byte with the matching media type; entries, owners and modes are the file's.
The Registry and Image options below apply to both; the Layer options only to push.

Registry:
  --registry HOST[:PORT]  registry to push to (required)
  --insecure              talk plain HTTP (default: HTTPS)
  --ca FILE               trust this PEM CA for the registry (repeatable)
  --user USER --password PASSWORD
                          credentials (basic auth, or the token flow the registry asks for)
Image:
  --repo NAME             repository, e.g. test/busybox (required)
  --tag TAG               tag to push (default latest)
  --format oci|docker     media types (default oci; docker has no zstd)
  --platform OS/ARCH[/VARIANT]
                          the manifest's platform (default: this host's)
  --platforms P1,P2,...   push one manifest per platform (same layers, the config differs
                          by architecture) and an index under TAG
  --config-cmd CMD        Cmd: a JSON array, or words split at whitespace
  --entrypoint CMD        Entrypoint: likewise
  --config-env K=V        Env entry (repeatable); Env starts with the usual PATH unless
                          one sets PATH
  --config-user USER      User
  --config-workdir DIR    WorkingDir
  --mtime SECONDS         mtime of every tar entry and the config's created time (default 0)
  --seed STRING           varies the data of random: items (default empty)
Layer options (apply to the LAYERs after them; before the first LAYER: to all):
  --compression gzip|zstd|none   (default gzip)
  --owner UID:GID                owner of every entry (default 0:0)
  --raw-names / --clean-names    keep item paths verbatim (absolute, '..': hostile-image
                                 tests) / strip leading '/' and './' (default)
  --wrong-diff-id / --right-diff-id
                                 record a diff_id in the config that is not the layer's
                                 (hostile-image tests) / the layer's own (default)

LAYER: ITEM[+ITEM...] (split only at '+' followed by a known KIND:), or @FILE with one
ITEM per line (blank lines and lines starting with '#' ignored). ITEMs:
  dir:HOSTDIR[=DEST]        the directory's contents (sorted; hard links kept; owner and
                            mtime replaced), under DEST (default: the root)
  random:SIZE[:NAME]        data/ and data/NAME (default random<N>, N the layer's 1-based
                            position) holding SIZE pseudo-random bytes; SIZE like 512,
                            64K, 20M, 1G (binary units)
  file:PATH[:MODE]=CONTENT  a regular file (MODE octal, default 0644)
  mkdir:PATH[:MODE]         a directory (default 0755)
  symlink:PATH=TARGET       a symbolic link (TARGET verbatim)
  hardlink:PATH=TARGET      a hard link to TARGET (an archive path)
  whiteout:PATH             DIR/.wh.NAME, deleting PATH from lower layers
  opaque:DIR                DIR/.wh..wh..opq, hiding DIR's lower contents
  fifo:PATH                 a named pipe
  chardev:PATH=MAJ:MIN      a character device node (blockdev: a block device)
"#;

/// Errors: a message plus an optional cause, printed as `error:` / `caused by:`.
#[derive(Debug)]
pub struct Error {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    usage: bool,
}

pub type Result<T> = std::result::Result<T, Error>;

/// An error without a cause.
pub fn fail(message: impl Into<String>) -> Error {
    Error {
        message: message.into(),
        source: None,
        usage: false,
    }
}

fn usage_error(message: impl Into<String>) -> Error {
    Error {
        usage: true,
        ..fail(message)
    }
}

impl Error {
    pub fn io(what: &str, e: std::io::Error) -> Self {
        Self {
            message: format!("i/o error writing {what}"),
            source: Some(Box::new(e)),
            usage: false,
        }
    }

    pub fn path(path: &Path, e: std::io::Error) -> Self {
        Self {
            message: format!("cannot read {}", path.display()),
            source: Some(Box::new(e)),
            usage: false,
        }
    }

    fn with(message: String, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            message,
            source: Some(Box::new(e)),
            usage: false,
        }
    }

    /// Prefixes the message with the file being archived.
    pub fn context(self, path: &Path) -> Self {
        Self {
            message: format!("{}: {}", path.display(), self.message),
            ..self
        }
    }
}

/// Everything `push` was asked to do.
#[derive(Debug)]
struct PushArgs {
    registry: String,
    insecure: bool,
    ca_files: Vec<PathBuf>,
    user: Option<String>,
    password: Option<String>,
    repo: String,
    tag: String,
    docker: bool,
    platform: Option<Platform>,
    platforms: Vec<Platform>,
    cmd: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    env: Vec<String>,
    user_config: Option<String>,
    workdir: Option<String>,
    ctx: BuildContext,
    layers: Vec<LayerSpec>,
    /// push-tar: prepared layer files, instead of `layers`.
    tar_files: Vec<PathBuf>,
}

/// `["a","b"]` as JSON, or words split at whitespace.
fn parse_command(flag: &str, v: &str) -> Result<Vec<String>> {
    if v.trim_start().starts_with('[') {
        serde_json::from_str(v)
            .map_err(|e| Error::with(format!("{flag}: {v:?} is not a JSON array of strings"), e))
    } else {
        Ok(v.split_whitespace().map(str::to_string).collect())
    }
}

/// Parses `push` arguments, or `push-tar` arguments when `tar_files` is set (positional
/// arguments are then layer files, and the layer options are refused).
fn parse_push(args: &[String], tar_files: bool) -> Result<PushArgs> {
    let mut a = PushArgs {
        registry: String::new(),
        insecure: false,
        ca_files: Vec::new(),
        user: None,
        password: None,
        repo: String::new(),
        tag: "latest".into(),
        docker: false,
        platform: None,
        platforms: Vec::new(),
        cmd: None,
        entrypoint: None,
        env: Vec::new(),
        user_config: None,
        workdir: None,
        ctx: BuildContext {
            mtime: 0,
            seed: String::new(),
        },
        layers: Vec::new(),
        tar_files: Vec::new(),
    };
    let mut opts = LayerOptions {
        compression: Compression::Gzip,
        uid: 0,
        gid: 0,
        raw_names: false,
        wrong_diff_id: false,
    };
    // Whether a layer option was given after the last LAYER (it would apply to nothing).
    let mut dangling: Option<String> = None;
    let mut it = args.iter();
    let mut only_layers = false;
    while let Some(arg) = it.next() {
        if only_layers || !arg.starts_with("--") {
            if tar_files {
                a.tar_files.push(PathBuf::from(arg));
                continue;
            }
            a.layers.push(parse_layer(arg, &opts)?);
            dangling = None;
            continue;
        }
        if arg == "--" {
            only_layers = true;
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let mut value = || -> Result<String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            it.next()
                .cloned()
                .ok_or_else(|| usage_error(format!("{flag} needs a value")))
        };
        if tar_files
            && matches!(
                flag,
                "--compression" | "--owner" | "--raw-names" | "--clean-names" | "--seed"
            )
        {
            return Err(usage_error(format!(
                "{flag} is a push option: push-tar sends the layer files as they are"
            )));
        }
        match flag {
            "--registry" => a.registry = value()?,
            "--insecure" => a.insecure = true,
            "--ca" => a.ca_files.push(PathBuf::from(value()?)),
            "--user" => a.user = Some(value()?),
            "--password" => a.password = Some(value()?),
            "--repo" => a.repo = value()?,
            "--tag" => a.tag = value()?,
            "--format" => {
                a.docker = match value()?.as_str() {
                    "oci" => false,
                    "docker" => true,
                    other => {
                        return Err(usage_error(format!(
                            "--format: {other:?} is neither oci nor docker"
                        )));
                    }
                }
            }
            "--platform" => {
                let v = value()?;
                a.platform = Some(
                    Platform::parse(&v).map_err(|e| Error::with(format!("--platform {v}"), e))?,
                );
            }
            "--platforms" => {
                for p in value()?.split(',').filter(|p| !p.is_empty()) {
                    a.platforms.push(
                        Platform::parse(p)
                            .map_err(|e| Error::with(format!("--platforms: {p}"), e))?,
                    );
                }
            }
            "--config-cmd" => a.cmd = Some(parse_command(flag, &value()?)?),
            "--entrypoint" => a.entrypoint = Some(parse_command(flag, &value()?)?),
            "--config-env" => {
                let v = value()?;
                if !v.contains('=') || v.starts_with('=') {
                    return Err(usage_error(format!("--config-env: {v:?} is not KEY=VALUE")));
                }
                a.env.push(v);
            }
            "--config-user" => a.user_config = Some(value()?),
            "--config-workdir" => a.workdir = Some(value()?),
            "--mtime" => {
                let v = value()?;
                a.ctx.mtime = v
                    .parse()
                    .map_err(|_| usage_error(format!("--mtime: {v:?} is not a number")))?;
            }
            "--seed" => a.ctx.seed = value()?,
            "--compression" => {
                opts.compression = Compression::parse(&value()?)?;
                dangling = Some(flag.to_string());
            }
            "--owner" => {
                let v = value()?;
                let (u, g) = v
                    .split_once(':')
                    .and_then(|(u, g)| Some((u.parse().ok()?, g.parse().ok()?)))
                    .ok_or_else(|| usage_error(format!("--owner: {v:?} is not UID:GID")))?;
                (opts.uid, opts.gid) = (u, g);
                dangling = Some(flag.to_string());
            }
            "--raw-names" | "--clean-names" => {
                opts.raw_names = flag == "--raw-names";
                dangling = Some(flag.to_string());
            }
            "--wrong-diff-id" | "--right-diff-id" => {
                opts.wrong_diff_id = flag == "--wrong-diff-id";
                dangling = Some(flag.to_string());
            }
            _ => return Err(usage_error(format!("unknown option {flag}"))),
        }
    }
    if let Some(flag) = dangling.filter(|_| !a.layers.is_empty()) {
        return Err(usage_error(format!(
            "{flag} comes after the last LAYER: layer options apply to the LAYERs after them"
        )));
    }
    if a.registry.is_empty() || a.repo.is_empty() {
        return Err(usage_error("--registry and --repo are required"));
    }
    if a.layers.is_empty() && a.tar_files.is_empty() {
        return Err(usage_error(if tar_files {
            "no TARFILE given"
        } else {
            "no LAYER given"
        }));
    }
    if a.user.is_some() != a.password.is_some() {
        return Err(usage_error("--user and --password go together"));
    }
    if a.platform.is_some() && !a.platforms.is_empty() {
        return Err(usage_error("--platform and --platforms exclude each other"));
    }
    if a.docker
        && a.layers
            .iter()
            .any(|l| l.options.compression == Compression::Zstd)
    {
        return Err(usage_error(
            "--format docker has no zstd layer media type: use --format oci",
        ));
    }
    // Validates registry, repository and tag the way ags will parse them.
    Reference::from_parts(&a.registry, &a.repo, Some(&a.tag), None).map_err(|e| {
        Error::with(
            format!("invalid image name {}/{}:{}", a.registry, a.repo, a.tag),
            e,
        )
    })?;
    Ok(a)
}

fn parse_layer(arg: &str, opts: &LayerOptions) -> Result<LayerSpec> {
    let items = if let Some(file) = arg.strip_prefix('@') {
        let text = std::fs::read_to_string(file).map_err(|e| Error::path(Path::new(file), e))?;
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|(n, l)| {
                Item::parse(l).map_err(|e| Error {
                    message: format!("{file}:{}: {}", n + 1, e.message),
                    ..e
                })
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        layer::split_items(arg)
            .into_iter()
            .map(Item::parse)
            .collect::<Result<Vec<_>>>()?
    };
    if items.is_empty() {
        return Err(usage_error(format!("layer {arg:?} has no items")));
    }
    Ok(LayerSpec {
        arg: arg.to_string(),
        items,
        options: opts.clone(),
    })
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
}

/// RFC 3339 (UTC) for a Unix time, without a date crate (civil-from-days, H. Hinnant).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
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
        rem / 60 % 60,
        rem % 60
    )
}

/// Where a layer comes from: built from a spec (`push`) or read from a file (`push-tar`).
enum Source<'a> {
    Spec(&'a LayerSpec),
    File(&'a Path),
}

fn push(a: &PushArgs) -> Result<Digest> {
    let mut hosts = BTreeMap::new();
    hosts.insert(
        a.registry.clone(),
        HostConfig {
            mirrors: Vec::new(),
            insecure: a.insecure,
            ca_files: a.ca_files.clone(),
        },
    );
    let config = RegistryConfig {
        allow_localhost_http: false,
        hosts,
    };
    let mut creds = BTreeMap::new();
    if let (Some(u), Some(p)) = (&a.user, &a.password) {
        creds.insert(normalize_key(&a.registry), Credentials::new(u, p));
    }
    let options = ClientOptions {
        user_agent: concat!("ags-testimage/", env!("CARGO_PKG_VERSION")).into(),
        // Test registries are on this machine; a proxy from the environment would only
        // get in the way.
        use_env_proxy: false,
        ..ClientOptions::default()
    };
    let client = RegistryClient::new(config, Arc::new(StaticCredentials(creds)), options);
    let reg = a.registry.as_str();
    let repo = a.repo.as_str();
    let perr = |what: String| move |e| Error::with(what, e);

    let (manifest_type, config_type) = if a.docker {
        (manifest::DOCKER_MANIFEST, manifest::DOCKER_CONFIG)
    } else {
        (manifest::OCI_MANIFEST, manifest::OCI_CONFIG)
    };

    // Layers: built one at a time and pushed, so only one blob is in memory.
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    let mut history = Vec::new();
    let created = rfc3339(a.ctx.mtime);
    let sources: Vec<Source> = if a.tar_files.is_empty() {
        a.layers.iter().map(Source::Spec).collect()
    } else {
        a.tar_files.iter().map(|p| Source::File(p)).collect()
    };
    let total = sources.len();
    for (i, source) in sources.iter().enumerate() {
        let started = Instant::now();
        let (built, compression, created_by) = match source {
            Source::Spec(spec) => {
                let built = layer::build(spec, i + 1, &a.ctx).map_err(|e| Error {
                    message: format!("layer {} ({}): {}", i + 1, spec.arg, e.message),
                    ..e
                })?;
                let by = format!(
                    "ags-testimage {} ({})",
                    spec.items
                        .iter()
                        .map(Item::describe)
                        .collect::<Vec<_>>()
                        .join("+"),
                    spec.options.compression.name()
                );
                (built, spec.options.compression, by)
            }
            Source::File(path) => {
                let (built, compression) = layer::from_tar_file(path)?;
                if a.docker && compression == Compression::Zstd {
                    return Err(usage_error(format!(
                        "{}: --format docker has no zstd layer media type: use --format oci",
                        path.display()
                    )));
                }
                // The diff_id, not the host path: the config must not depend on where
                // the file happened to be.
                let by = format!("ags-testimage push-tar {}", built.diff_id);
                (built, compression, by)
            }
        };
        let media_type = match (a.docker, compression) {
            (false, Compression::Gzip) => manifest::OCI_LAYER_GZIP,
            (false, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
            (false, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
            (true, Compression::None) => "application/vnd.docker.image.rootfs.diff.tar",
            (true, _) => manifest::DOCKER_LAYER_GZIP,
        };
        let desc = Descriptor::for_data(media_type, &built.blob);
        client
            .push_blob(reg, repo, &built.blob)
            .map_err(perr(format!("cannot push layer {}", i + 1)))?;
        eprintln!(
            "ags-testimage: layer {}/{total} {} {} ({}, {} uncompressed) in {:.2}s",
            i + 1,
            desc.digest,
            mib(desc.size),
            compression.name(),
            mib(built.tar_size),
            started.elapsed().as_secs_f64()
        );
        descriptors.push(desc);
        let wrong_diff_id = matches!(source, Source::Spec(spec) if spec.options.wrong_diff_id);
        diff_ids.push(if wrong_diff_id {
            // A well-formed digest of other data: only unpacking can tell.
            Digest::of(format!("not {}", built.diff_id).as_bytes()).to_string()
        } else {
            built.diff_id.to_string()
        });
        history.push(serde_json::json!({
            "created": created,
            "created_by": created_by,
        }));
    }

    let mut env = a.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    let mut cfg = serde_json::Map::new();
    cfg.insert("Env".into(), env.into());
    if let Some(c) = &a.cmd {
        cfg.insert("Cmd".into(), c.clone().into());
    }
    if let Some(e) = &a.entrypoint {
        cfg.insert("Entrypoint".into(), e.clone().into());
    }
    if let Some(u) = &a.user_config {
        cfg.insert("User".into(), u.clone().into());
    }
    if let Some(w) = &a.workdir {
        cfg.insert("WorkingDir".into(), w.clone().into());
    }

    // One manifest per platform; without --platforms a single manifest is the result.
    let platforms = if a.platforms.is_empty() {
        vec![a.platform.clone().unwrap_or_else(Platform::host)]
    } else {
        a.platforms.clone()
    };
    let mut entries = Vec::new();
    for platform in &platforms {
        let mut image_config = serde_json::json!({
            "created": created,
            "architecture": platform.architecture,
            "os": platform.os,
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        if let Some(v) = &platform.variant {
            image_config["variant"] = v.clone().into();
        }
        let config_bytes = serde_json::to_vec(&image_config)
            .map_err(|e| Error::with("cannot serialize the image config".into(), e))?;
        client
            .push_blob(reg, repo, &config_bytes)
            .map_err(perr("cannot push the image config".into()))?;
        let m = ImageManifest {
            schema_version: 2,
            media_type: Some(manifest_type.into()),
            config: Descriptor::for_data(config_type, &config_bytes),
            layers: descriptors.clone(),
            annotations: None,
        };
        let bytes = serde_json::to_vec(&m)
            .map_err(|e| Error::with("cannot serialize the manifest".into(), e))?;
        if a.platforms.is_empty() {
            return client
                .push_manifest(reg, repo, &a.tag, manifest_type, &bytes)
                .map_err(perr(format!("cannot push manifest {repo}:{}", a.tag)));
        }
        let digest = Digest::of(&bytes);
        client
            .push_manifest(reg, repo, &digest.to_string(), manifest_type, &bytes)
            .map_err(perr(format!("cannot push the {platform} manifest")))?;
        eprintln!("ags-testimage: {platform} manifest {digest}");
        let mut d = Descriptor::for_data(manifest_type, &bytes);
        d.platform = Some(platform.clone());
        entries.push(d);
    }
    let index_type = if a.docker {
        manifest::DOCKER_MANIFEST_LIST
    } else {
        manifest::OCI_INDEX
    };
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(index_type.into()),
        manifests: entries,
        annotations: None,
    };
    let bytes = serde_json::to_vec(&index)
        .map_err(|e| Error::with("cannot serialize the index".into(), e))?;
    client
        .push_manifest(reg, repo, &a.tag, index_type, &bytes)
        .map_err(perr(format!("cannot push index {repo}:{}", a.tag)))
}

fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some(cmd @ ("push" | "push-tar")) => {
            let a = parse_push(&args[1..], cmd == "push-tar")?;
            let digest = push(&a)?;
            eprintln!(
                "ags-testimage: pushed {}/{}:{} {digest}",
                a.registry, a.repo, a.tag
            );
            println!("{digest}");
            Ok(())
        }
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(usage_error(format!("unknown command {other:?}"))),
        None => Err(usage_error("no command given")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            let mut source: Option<&(dyn std::error::Error + 'static)> =
                e.source.as_deref().map(|s| s as _);
            while let Some(s) = source {
                eprintln!("caused by: {s}");
                source = s.source();
            }
            if e.usage {
                eprintln!("hint: ags-testimage --help shows the usage");
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_table() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_704_067_199), "2023-12-31T23:59:59Z");
    }

    #[test]
    fn layer_options_apply_in_order() {
        let args: Vec<String> = [
            "--registry",
            "127.0.0.1:5000",
            "--repo",
            "x",
            "random:1K",
            "--compression=zstd",
            "--owner",
            "1:2",
            "random:2K",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let a = parse_push(&args, false).unwrap();
        assert_eq!(a.layers[0].options.compression, Compression::Gzip);
        assert_eq!(a.layers[1].options.compression, Compression::Zstd);
        assert_eq!((a.layers[1].options.uid, a.layers[1].options.gid), (1, 2));
        let mut bad = args.clone();
        bad.push("--compression=none".into());
        assert!(parse_push(&bad, false).unwrap_err().usage);
        assert!(parse_push(&args[..4], false).is_err());
    }

    #[test]
    fn push_tar_takes_files_and_refuses_layer_options() {
        let args = |extra: &[&str]| -> Vec<String> {
            ["--registry", "127.0.0.1:5000", "--repo", "library/debian"]
                .iter()
                .chain(extra)
                .map(|s| s.to_string())
                .collect()
        };
        let a = parse_push(&args(&["--config-cmd", "bash", "a.tar.gz", "b.tar"]), true).unwrap();
        assert_eq!(
            a.tar_files,
            [PathBuf::from("a.tar.gz"), PathBuf::from("b.tar")]
        );
        assert!(a.layers.is_empty());
        assert_eq!(a.cmd, Some(vec!["bash".to_string()]));
        for bad in [
            &["--compression", "zstd", "a.tar"][..],
            &["--owner", "1:1", "a.tar"],
            &["--raw-names", "a.tar"],
            &[],
        ] {
            assert!(parse_push(&args(bad), true).unwrap_err().usage, "{bad:?}");
        }
    }
}
