//! Image references (`[registry/]repository[:tag][@digest]`) with docker's normalisation rules.
//!
//! `busybox` means `docker.io/library/busybox:latest`; the first path component is a registry
//! only when it looks like a host (`.`, `:` or `localhost`), so `localhost:5000/x` works as in
//! docker. Keeping one canonical spelling is what lets tags in the store be compared as strings.
//!
//! Not `oci_spec::distribution::Reference` (0.7): it parses with a regex, which would link a regex
//! engine into the binary that is also every VM guest's /init (kept out for size) and compile the
//! pattern in every CLI process; and it is laxer: tags match a Unicode `\w`, and an uppercase first
//! component (`Uppercase/app`) is accepted as a Docker Hub repository.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::ImageError;

/// The registry implied when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
const OFFICIAL_NAMESPACE: &str = "library/";
/// The tag implied when a reference has neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// `registry/repository`, the key under which tags are grouped.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short name docker shows: `busybox` for `docker.io/library/busybox`.
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix(OFFICIAL_NAMESPACE)
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        }
    }

    /// The familiar form including tag and/or digest, e.g. `busybox:latest`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(&digest.to_string());
        }
        s
    }

    /// The same repository with only a tag (digest dropped).
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    /// The same repository with only a digest (tag dropped).
    pub fn with_digest(&self, digest: &Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.clone()),
        }
    }
}

fn invalid(input: &str, reason: impl Into<String>) -> ImageError {
    ImageError::InvalidReference {
        input: input.to_string(),
        reason: reason.into(),
    }
}

fn looks_like_registry(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(first) || !alnum(last) {
        return false;
    }
    let mut separator_run = String::new();
    for &b in bytes {
        if alnum(&b) {
            if !matches!(separator_run.as_str(), "" | "." | "_" | "__")
                && !separator_run.bytes().all(|s| s == b'-')
            {
                return false;
            }
            separator_run.clear();
        } else if matches!(b, b'.' | b'_' | b'-') {
            separator_run.push(b as char);
        } else {
            return false;
        }
    }
    true
}

fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_TAG_LEN
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl FromStr for Reference {
    type Err = ImageError;

    fn from_str(input: &str) -> Result<Reference, ImageError> {
        if input.is_empty() {
            return Err(invalid(input, "empty reference"));
        }
        let (name_and_tag, digest) = match input.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.parse::<Digest>()?)),
            None => (input, None),
        };
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let split = last_slash + i;
                (
                    &name_and_tag[..split],
                    Some(name_and_tag[split + 1..].to_string()),
                )
            }
            None => (name_and_tag, None),
        };
        if let Some(tag) = &tag {
            if !valid_tag(tag) {
                return Err(invalid(input, format!("invalid tag {tag:?}")));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if looks_like_registry(first) => {
                if !valid_registry(first) {
                    return Err(invalid(input, format!("invalid registry {first:?}")));
                }
                let registry = if first == LEGACY_DEFAULT_REGISTRY {
                    DEFAULT_REGISTRY
                } else {
                    first
                };
                (registry.to_string(), rest.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("{OFFICIAL_NAMESPACE}{repository}")
        } else {
            repository
        };
        if repository.len() > MAX_NAME_LEN {
            return Err(invalid(input, "repository name too long"));
        }
        if let Some(bad) = repository.split('/').find(|c| !valid_path_component(c)) {
            return Err(invalid(
                input,
                format!("invalid repository component {bad:?} (lowercase letters, digits and . _ - only)"),
            ));
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            _ => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn docker_normalisation() {
        assert_eq!(
            parse("busybox").to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            parse("busybox:1.36").to_string(),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(parse("user/app").to_string(), "docker.io/user/app:latest");
        assert_eq!(
            parse("index.docker.io/library/busybox").to_string(),
            "docker.io/library/busybox:latest"
        );
        let r = parse("localhost:5000/x");
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "x");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(parse("quay.io/a/b/c:v1").familiar(), "quay.io/a/b/c:v1");
        assert_eq!(parse("busybox").familiar(), "busybox:latest");
    }

    #[test]
    fn digest_references() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = parse(&format!("busybox@{d}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_ref().map(ToString::to_string), Some(d.clone()));
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{d}"));
        let r = parse(&format!("localhost:5000/x:v2@{d}"));
        assert_eq!(r.tag.as_deref(), Some("v2"));
        assert!("busybox@sha256:1234".parse::<Reference>().is_err());
    }

    #[test]
    fn rejects_invalid_names() {
        for bad in [
            "",
            "Busybox",
            "a//b",
            "-a",
            "a:",
            "a:-x",
            "a b",
            "bad host!/x",
            "a/b_",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} accepted");
        }
    }
}
