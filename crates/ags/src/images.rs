//! What image commands share: the store, the registry client built from the config file
//! and the credential files, progress display, and "make sure this image is here and
//! unpacked" (a pull unpacks layers while later ones are still downloading).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ags_build::rootfs::{ImageRoot, StreamingUnpack};
use ags_oci::Digest;
use ags_oci::auth::{AuthFiles, default_auth_files};
use ags_oci::platform::Platform;
use ags_oci::reference::Reference;
use ags_oci::registry::{ClientOptions, RegistryClient, RegistryConfig};
use ags_oci::store::{PullOptions, PullProgress, PulledImage, Store, StoreError};
use anyhow::{Context, Result};

use crate::cli::GlobalArgs;
use crate::settings::InputError;

fn env_path(k: &str) -> Option<PathBuf> {
    std::env::var_os(k)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The user's home directory.
pub fn home() -> PathBuf {
    env_path("HOME").unwrap_or_else(|| PathBuf::from("/"))
}

/// ags's own config directory, `$XDG_CONFIG_HOME/ags` (whatever `--config` says).
pub fn config_dir() -> PathBuf {
    env_path("XDG_CONFIG_HOME")
        .unwrap_or_else(|| home().join(".config"))
        .join("ags")
}

/// The config file path: `--config`, else `$XDG_CONFIG_HOME/ags/config.toml`.
pub fn config_path(global: &GlobalArgs) -> PathBuf {
    global
        .config
        .clone()
        .unwrap_or_else(|| config_dir().join("config.toml"))
}

/// The store directory: `--store`, else `$XDG_DATA_HOME/ags`; absolute, because paths
/// inside it are recorded (build snapshots, image layouts) and handed to the runtime as
/// a sandbox's root, which must not depend on the current directory.
pub fn store_path(global: &GlobalArgs) -> PathBuf {
    let p = global.store.clone().unwrap_or_else(|| {
        env_path("XDG_DATA_HOME")
            .unwrap_or_else(|| home().join(".local/share"))
            .join("ags")
    });
    std::path::absolute(&p).unwrap_or(p)
}

/// The user's config file, when there is one.
fn user_config(global: &GlobalArgs) -> Result<Option<ags_agent::config::Config>> {
    let path = config_path(global);
    if !path.exists() {
        return Ok(None);
    }
    let env: ags_agent::config::EnvMap = std::env::vars().collect();
    let home = home();
    let host = ags_agent::config::HostContext {
        home: &home,
        env: &env,
    };
    let cfg = ags_agent::config::load_config(&path, host)
        .with_context(|| format!("cannot load {}", path.display()))?;
    Ok(Some(cfg))
}

/// `[registries]` from the config file, when there is one.
pub fn registry_config(global: &GlobalArgs) -> Result<RegistryConfig> {
    Ok(ImageSettings::from_user_config(global)?.registries)
}

/// What pulling, unpacking and building take from the config: `[registries]`, the unpack
/// budgets (`[images]`) and the build's snapshots (`[build]`).
#[derive(Debug, Clone, Default)]
pub struct ImageSettings {
    /// Mirrors, insecure hosts, CA files.
    pub registries: RegistryConfig,
    /// Limits for unpacking layers.
    pub budgets: ags_oci::unpack::Budgets,
    /// `[build] snapshots`.
    pub snapshots: ags_build::builder::snapshot::SnapshotMode,
}

impl ImageSettings {
    /// From one reading of the user's config file (image commands use no repo overlay);
    /// the defaults when there is no file.
    pub fn from_user_config(global: &GlobalArgs) -> Result<Self> {
        match user_config(global)? {
            Some(cfg) => Self::from_config(&cfg),
            None => Ok(Self::default()),
        }
    }

    /// From a config that is already loaded (in run mode: merged with the repo overlay).
    pub fn from_config(cfg: &ags_agent::config::Config) -> Result<Self> {
        let files = cfg
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" + ");
        let registries = toml::Value::Table(cfg.registries.clone())
            .try_into()
            .with_context(|| format!("invalid [registries] in {files}"))?;
        let bad = || format!("invalid [images] in {files}");
        let c: ImagesConfig = toml::Value::Table(cfg.images.clone())
            .try_into()
            .with_context(bad)?;
        let mut budgets = ags_oci::unpack::Budgets::default();
        if let Some(n) = c.max_entries {
            budgets.max_entries = n;
        }
        if let Some(s) = &c.max_layer_size {
            budgets.max_total_bytes =
                crate::settings::parse_size(s, "max_layer_size").with_context(bad)?;
        }
        if let Some(s) = &c.max_header_size {
            budgets.max_header_bytes =
                crate::settings::parse_size(s, "max_header_size").with_context(bad)?;
        }
        if let Some(n) = c.max_path_length {
            budgets.max_path_len = n;
        }
        let snapshots = cfg
            .build
            .snapshots
            .as_ref()
            .map_or_else(Default::default, |s| {
                use ags_build::builder::snapshot::SnapshotMode;
                match s.value {
                    ags_agent::config::Snapshots::Auto => SnapshotMode::Auto,
                    ags_agent::config::Snapshots::Overlay => SnapshotMode::Overlay,
                    ags_agent::config::Snapshots::Copy => SnapshotMode::Copy,
                }
            });
        Ok(Self {
            registries,
            budgets,
            snapshots,
        })
    }
}

/// `[images]`: limits on what unpacking one layer may consume. An image that exceeds
/// them fails to unpack instead of filling the disk (a decompression bomb, millions of
/// tiny files, huge PAX headers).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImagesConfig {
    /// Entries per layer.
    max_entries: Option<u64>,
    /// Uncompressed bytes per layer, e.g. "64g".
    max_layer_size: Option<String>,
    /// Bytes of tar headers (PAX records, GNU long names) before one entry, e.g. "1m".
    max_header_size: Option<String>,
    /// Length of an entry's path.
    max_path_length: Option<usize>,
}

/// The credential files, in the order containers tools read them.
pub fn auth_files() -> Vec<PathBuf> {
    default_auth_files(
        env_path("XDG_RUNTIME_DIR").as_deref(),
        env_path("XDG_CONFIG_HOME").as_deref(),
        Some(&home()),
    )
}

/// The file `ags login` writes: the containers auth file.
pub fn login_file() -> PathBuf {
    match env_path("XDG_RUNTIME_DIR") {
        Some(d) => d.join("containers/auth.json"),
        None => env_path("XDG_CONFIG_HOME")
            .unwrap_or_else(|| home().join(".config"))
            .join("containers/auth.json"),
    }
}

/// Store plus registry client.
pub struct Images {
    /// The content store.
    pub store: Store,
    /// The registry client.
    pub client: RegistryClient,
    /// Limits for unpacking layers.
    pub budgets: ags_oci::unpack::Budgets,
}

impl Images {
    /// Open the store and build the client, with the settings of the user's config file.
    pub fn open(global: &GlobalArgs) -> Result<Self> {
        Self::open_with(global, ImageSettings::from_user_config(global)?)
    }

    /// Open the store and build the client with settings the caller already has.
    pub fn open_with(global: &GlobalArgs, settings: ImageSettings) -> Result<Self> {
        let path = store_path(global);
        let store = Store::open(&path)
            .with_context(|| format!("cannot open the image store {}", path.display()))?;
        let creds = AuthFiles::new(auth_files(), std::env::var_os("PATH"));
        let client = RegistryClient::new(
            settings.registries,
            Arc::new(creds),
            ClientOptions::default(),
        );
        Ok(Self {
            store,
            client,
            budgets: settings.budgets,
        })
    }

    /// Pull `reference` (with progress on a terminal) and unpack its root filesystem while
    /// the layers download: returns the image and its tree, ready to run.
    pub fn pull(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<(PulledImage, PathBuf)> {
        let display: Arc<dyn PullProgress> = if std::io::stderr().is_terminal() {
            Arc::new(Bars::default())
        } else {
            Arc::new(ags_oci::store::NoProgress)
        };
        let (maps, privileged) = crate::cmd::image_maps()?;
        let unpack = Arc::new(StreamingUnpack::new(
            &self.store,
            &self.budgets,
            &maps,
            privileged,
            display,
        ));
        let opts = PullOptions {
            platform: platform.clone(),
            progress: unpack.clone(),
            ..PullOptions::default()
        };
        // The store's error already names the reference. On an error, dropping `unpack`
        // abandons the unpack and waits for its worker to remove the temporary tree.
        let image = self.store.pull(&self.client, reference, &opts)?;
        drop(opts);
        let rootfs = unpack
            .finish(&image)
            .with_context(|| root_filesystem_of(&image))?;
        Ok((image, rootfs))
    }

    /// The image from the store and its root filesystem; pulled first when absent.
    pub fn get_or_pull(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<(PulledImage, ImageRoot)> {
        match self.store.get(reference, Some(platform)) {
            Ok(image) => {
                let rootfs = self.rootfs(&image)?;
                Ok((image, rootfs))
            }
            Err(StoreError::NotFound(_)) => {
                eprintln!("pulling {reference}");
                let (image, bottom) = self.pull(reference, platform)?;
                let root = ImageRoot {
                    bottom,
                    layers: Vec::new(),
                };
                Ok((image, root))
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {reference} from the store")),
        }
    }

    /// The root filesystem of an image in the store, unpacked first if not done yet.
    /// The image's root filesystem: its build snapshots, or its layers unpacked into its
    /// shared tree (once).
    pub fn rootfs(&self, image: &PulledImage) -> Result<ImageRoot> {
        let (maps, privileged) = crate::cmd::image_maps()?;
        ags_build::rootfs::image_root(&self.store, image, &self.budgets, &maps, privileged)
            .with_context(|| root_filesystem_of(image))
    }
}

fn root_filesystem_of(image: &PulledImage) -> String {
    format!("cannot prepare the root filesystem of {}", image.reference)
}

/// Parse an image reference from user input, naming where it came from on error.
pub fn parse_reference(s: &str, flag: &'static str) -> Result<Reference, InputError> {
    Reference::parse(s).map_err(|e| InputError {
        flag,
        message: e.to_string(),
    })
}

/// Parse `--platform`, defaulting to the host's.
pub fn parse_platform(s: Option<&str>) -> Result<Platform, InputError> {
    match s {
        None => Ok(Platform::host()),
        Some(p) => Platform::parse(p).map_err(|e| InputError {
            flag: "--platform",
            message: e.to_string(),
        }),
    }
}

/// One indicatif bar per layer.
#[derive(Default)]
struct Bars {
    multi: indicatif::MultiProgress,
    bars: Mutex<BTreeMap<String, indicatif::ProgressBar>>,
}

impl PullProgress for Bars {
    fn layer_started(&self, digest: &Digest, total: u64) {
        let bar = self.multi.add(indicatif::ProgressBar::new(total));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(digest.hex()[..12].to_owned());
        if let Ok(mut b) = self.bars.lock() {
            b.insert(digest.hex().to_owned(), bar);
        }
    }
    fn layer_progress(&self, digest: &Digest, bytes: u64) {
        if let Some(b) = self
            .bars
            .lock()
            .ok()
            .and_then(|b| b.get(digest.hex()).cloned())
        {
            b.set_position(bytes);
        }
    }
    fn layer_done(&self, digest: &Digest) {
        if let Some(b) = self
            .bars
            .lock()
            .ok()
            .and_then(|b| b.get(digest.hex()).cloned())
        {
            b.finish();
        }
    }
}

/// Human-readable size.
pub fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}
