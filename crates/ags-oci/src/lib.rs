//! ags-oci: image references, digests, registry client, content store and layer unpacking.
//!
//! This crate owns everything between an image reference typed by the user and verified
//! layer blobs on disk:
//! - [`reference::Reference`]: parsing `debian`, `user/img:tag`, `host:5000/x@sha256:...`;
//! - [`digest::Digest`] plus [`digest::VerifyingWriter`] / [`digest::VerifyingReader`]:
//!   sha256 and size checked while streaming;
//! - [`manifest`]: OCI / Docker manifests and indexes (strict, CVE-2021-41190 safe),
//!   platform selection and [`manifest::ImageConfig`];
//! - [`platform::Platform`]: `linux/arm64/v8`, the host default, arch name mapping;
//! - [`auth`]: credentials from auth.json / Docker config / credential helpers, login and
//!   logout file updates, `WWW-Authenticate` parsing, redacting [`auth::Secret`];
//! - [`registry::RegistryClient`]: a blocking distribution client with mirrors, custom CAs,
//!   bearer/basic auth, retries, safe redirects and resumable blob downloads;
//! - [`store::Store`]: the locked, crash-safe content store with `pull`, `images`,
//!   `remove`, `gc` and the `layers` accessor the unpacker consumes;
//! - [`unpack`]: confined, verified unpacking of layers into a rootfs.
//!
//! Nothing here reads environment variables or prints: the binary passes paths and
//! settings in and renders errors and progress.
//!
//! # Example
//! ```no_run
//! use std::sync::Arc;
//! use ags_oci::auth::{AuthFiles, default_auth_files};
//! use ags_oci::reference::Reference;
//! use ags_oci::registry::{ClientOptions, RegistryClient, RegistryConfig};
//! use ags_oci::store::{PullOptions, Store};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let home = std::path::Path::new("/home/me");
//! let creds = AuthFiles::new(default_auth_files(None, None, Some(home)), None);
//! let client = RegistryClient::new(RegistryConfig::default(), Arc::new(creds), ClientOptions::default());
//! let store = Store::open(home.join(".local/share/ags"))?;
//! let reference = Reference::parse("debian:12")?;
//! let image = store.pull(&client, &reference, &PullOptions::default())?;
//! let config = store.image_config(&image)?;
//! for layer in store.layers(&image)? {
//!     println!("{} {} -> {}", layer.path.display(), layer.media_type, layer.diff_id);
//! }
//! println!("cmd: {:?}", config.cmd);
//! # Ok(())
//! # }
//! ```

pub mod auth;
pub mod digest;
pub mod manifest;
pub mod platform;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;

pub use digest::Digest;
pub use reference::Reference;
