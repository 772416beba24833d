//! Platforms (`linux/arm64/v8`) and the mapping from Rust / uname architecture names to the
//! OCI (GOARCH) names used in image indexes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::manifest::ManifestError;

/// An OS / CPU architecture / variant triple, as in OCI index entries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// Architecture in OCI (GOARCH) spelling, e.g. `amd64`.
    pub architecture: String,
    /// CPU variant, e.g. `v8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// OS version (Windows images).
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl Platform {
    /// A linux platform with the given architecture and variant.
    pub fn linux(architecture: &str, variant: Option<&str>) -> Self {
        Self {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(str::to_string),
            os_version: None,
        }
    }

    /// The platform of the running host (always `linux`, architecture mapped to OCI names).
    pub fn host() -> Self {
        let (arch, variant) = oci_arch(std::env::consts::ARCH);
        Self::linux(arch, variant)
    }

    /// Parses `os/arch[/variant]`; architecture aliases (`x86_64`, `aarch64`) are normalized.
    pub fn parse(s: &str) -> Result<Self, ManifestError> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &str| {
            !p.is_empty()
                && p.len() <= 64
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| valid(p)) {
            return Err(ManifestError::InvalidPlatform(
                s.chars().take(100).collect(),
            ));
        }
        let arch_lower = parts[1].to_ascii_lowercase();
        let (arch, default_variant) = oci_arch(&arch_lower);
        let variant = parts.get(2).map(|v| v.to_ascii_lowercase());
        Ok(Self {
            os: parts[0].to_ascii_lowercase(),
            architecture: arch.to_string(),
            variant: variant.or_else(|| {
                // `aarch64` alone says nothing about variant; only pass on a default for arm.
                (arch == "arm").then(|| default_variant.unwrap_or("v7").to_string())
            }),
            os_version: None,
        })
    }

    /// Whether an index entry's platform satisfies this wanted platform.
    pub fn matches(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os || self.architecture != oci_arch(&candidate.architecture).0 {
            return false;
        }
        match (&self.variant, &candidate.variant) {
            (None, _) => true,
            (Some(w), Some(c)) => w == c,
            // arm64 images usually omit the (only) variant v8.
            (Some(w), None) => self.architecture == "arm64" && w == "v8",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Maps Rust / uname architecture names to OCI (GOARCH) names, with an implied variant.
pub fn oci_arch(arch: &str) -> (&str, Option<&'static str>) {
    match arch {
        "x86_64" | "amd64" => ("amd64", None),
        "aarch64" | "arm64" => ("arm64", None),
        "x86" | "i386" | "i686" | "386" => ("386", None),
        "arm" | "armv7l" | "armhf" => ("arm", Some("v7")),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
        "powerpc64le" | "ppc64le" => ("ppc64le", None),
        "powerpc64" => ("ppc64", None),
        "s390x" => ("s390x", None),
        "riscv64" | "riscv64gc" => ("riscv64", None),
        "loongarch64" | "loong64" => ("loong64", None),
        "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
        other => (other, None),
    }
}
