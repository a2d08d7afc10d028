//! Target platform selection for multi-platform images.
//!
//! An image index lists one manifest per platform; the pull picks the one matching
//! `os/arch[/variant]`, normalising the common architecture aliases so that
//! `linux/x86_64` and `linux/amd64` mean the same thing.

use std::fmt;
use std::str::FromStr;

use crate::error::RegistryError;

/// An `os/arch[/variant]` triple, as used by `--platform` and image indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// Builds a platform, normalising architecture aliases.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        let architecture = normalise_arch(architecture);
        let variant = variant
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .filter(|v| !is_default_variant(&architecture, v));
        Platform {
            os: os.to_ascii_lowercase(),
            architecture,
            variant,
        }
    }

    /// Whether an index entry for `candidate` satisfies this requested platform.
    ///
    /// A request without variant accepts any variant of the architecture; a request
    /// with a variant requires that exact variant.
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.os == candidate.os
            && self.architecture == candidate.architecture
            && match &self.variant {
                None => true,
                Some(v) => candidate.variant.as_deref() == Some(v.as_str()),
            }
    }
}

impl Default for Platform {
    fn default() -> Self {
        Platform::new("linux", "amd64", None)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        match parts.as_slice() {
            [os, arch] if valid(os) && valid(arch) => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] if valid(os) && valid(arch) && valid(variant) => {
                Ok(Platform::new(os, arch, Some(variant)))
            }
            _ => Err(RegistryError::InvalidPlatform(s.to_owned())),
        }
    }
}

fn normalise_arch(arch: &str) -> String {
    match arch.to_ascii_lowercase().as_str() {
        "x86_64" | "x86-64" => "amd64".to_owned(),
        "aarch64" => "arm64".to_owned(),
        "i386" | "i686" => "386".to_owned(),
        other => other.to_owned(),
    }
}

/// `arm64/v8` is the only flavour of arm64 in practice; indexes write it either way.
fn is_default_variant(arch: &str, variant: &str) -> bool {
    arch == "arm64" && variant == "v8"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let p: Platform = "linux/x86_64".parse().unwrap();
        assert_eq!(p, Platform::default());
        assert_eq!(p.to_string(), "linux/amd64");
        let arm: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(arm.variant.as_deref(), Some("v7"));
        assert_eq!(arm.to_string(), "linux/arm/v7");
        let arm64: Platform = "linux/aarch64/v8".parse().unwrap();
        assert_eq!(arm64.to_string(), "linux/arm64");
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["linux", "", "linux/", "/amd64", "a/b/c/d", "linux/amd 64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn variant_matching() {
        let any_arm: Platform = "linux/arm".parse().unwrap();
        let v7 = Platform::new("linux", "arm", Some("v7"));
        let v6 = Platform::new("linux", "arm", Some("v6"));
        assert!(any_arm.matches(&v7));
        assert!(v7.matches(&v7));
        assert!(!v7.matches(&v6));
        assert!(!Platform::default().matches(&v7));
    }
}
