//! Manifest and index handling: media-type negotiation, size bound, parsing and
//! platform selection.
//!
//! Registries serve four current manifest formats (OCI index and manifest, Docker
//! manifest list and schema 2). Docker schema 1 is refused with an explicit message,
//! as are artifacts (Helm charts, signatures) whose config is not a container image
//! config. Manifests are read through a 4 MiB bound so a hostile registry cannot make
//! the client buffer unbounded data.

use std::io::Read;

use bulkhead_image::Digest;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Deserialize;

use crate::error::RegistryError;
use crate::platform::Platform;

pub(crate) const MAX_MANIFEST_BYTES: u64 = 4 << 20;

pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// `Accept` header of manifest requests, preferred formats first.
pub(crate) const ACCEPTED: [&str; 4] = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

const CONFIG_TYPES: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];
const LAYER_TYPES: [&str; 5] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
];

/// A fetched manifest document.
pub(crate) struct Fetched {
    pub(crate) bytes: Vec<u8>,
    pub(crate) digest: Digest,
    pub(crate) document: Document,
}

pub(crate) enum Document {
    Index(Box<ImageIndex>),
    Image(Box<ImageManifest>),
}

/// The fields needed to classify a manifest whose response had no usable Content-Type.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
}

/// Reads a manifest response (at most [`MAX_MANIFEST_BYTES`]), checks it against
/// `expected` when fetched by digest, and parses it.
pub(crate) fn read(
    response: ureq::Response,
    expected: Option<&Digest>,
    registry: &str,
    what: &str,
) -> Result<Fetched, RegistryError> {
    let too_large = || RegistryError::ManifestTooLarge {
        what: what.to_owned(),
        limit: MAX_MANIFEST_BYTES,
    };
    let declared_length = response
        .header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared_length.is_some_and(|len| len > MAX_MANIFEST_BYTES) {
        return Err(too_large());
    }
    let content_type = response.header("content-type").map(|v| {
        v.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    let mut bytes = Vec::new();
    response
        .into_reader()
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| RegistryError::Connection {
            registry: registry.to_owned(),
            what: what.to_owned(),
            attempts: 1,
            reason: e.to_string(),
        })?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(too_large());
    }
    let digest = Digest::of_bytes(&bytes);
    if let Some(expected) = expected {
        if *expected != digest {
            return Err(RegistryError::ManifestDigestMismatch {
                what: what.to_owned(),
                expected: expected.to_string(),
                actual: digest.to_string(),
            });
        }
    }
    let document = parse(content_type.as_deref(), &bytes, what)?;
    Ok(Fetched {
        bytes,
        digest,
        document,
    })
}

fn parse(content_type: Option<&str>, bytes: &[u8], what: &str) -> Result<Document, RegistryError> {
    let invalid = |source| RegistryError::InvalidManifest {
        what: what.to_owned(),
        source,
    };
    let probe: Probe = serde_json::from_slice(bytes).map_err(invalid)?;
    let declared = content_type
        .filter(|t| {
            !matches!(
                *t,
                "application/json" | "text/plain" | "application/octet-stream"
            )
        })
        .map(str::to_owned)
        .or(probe.media_type);
    let media_type = match declared {
        Some(media_type) => media_type,
        None if probe.schema_version == Some(1) => DOCKER_SCHEMA1.to_owned(),
        None if probe.manifests.is_some() => OCI_INDEX.to_owned(),
        None => OCI_MANIFEST.to_owned(),
    };
    match media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => serde_json::from_slice(bytes)
            .map(|index| Document::Index(Box::new(index)))
            .map_err(invalid),
        OCI_MANIFEST | DOCKER_MANIFEST => serde_json::from_slice(bytes)
            .map(|image| Document::Image(Box::new(image)))
            .map_err(invalid),
        DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => Err(RegistryError::Schema1 {
            what: what.to_owned(),
            media_type,
        }),
        _ => Err(RegistryError::UnsupportedMediaType {
            what: what.to_owned(),
            media_type,
        }),
    }
}

/// Picks the manifest of `wanted` from an index, or lists the platforms it offers.
pub(crate) fn select_platform<'a>(
    index: &'a ImageIndex,
    wanted: &Platform,
    reference: &str,
) -> Result<&'a Descriptor, RegistryError> {
    let platforms = index.manifests().iter().filter_map(|descriptor| {
        descriptor.platform().as_ref().map(|p| {
            let platform = Platform::new(
                &p.os().to_string(),
                &p.architecture().to_string(),
                p.variant().as_deref(),
            );
            (descriptor, platform)
        })
    });
    if let Some((descriptor, _)) = platforms.clone().find(|(_, p)| wanted.matches(p)) {
        return Ok(descriptor);
    }
    let mut available: Vec<String> = platforms
        .map(|(_, p)| p.to_string())
        // Build attestations are listed as unknown/unknown; they are not images.
        .filter(|p| p != "unknown/unknown")
        .collect();
    let mut seen = std::collections::HashSet::new();
    available.retain(|p| seen.insert(p.clone()));
    Err(RegistryError::PlatformNotFound {
        reference: reference.to_owned(),
        wanted: wanted.to_string(),
        available: if available.is_empty() {
            "none".to_owned()
        } else {
            available.join(", ")
        },
    })
}

/// A blob to download: its digest and declared size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blob {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
}

/// Checks that `manifest` describes a container image and returns its blobs
/// (config first, then layers in order, duplicates removed).
pub(crate) fn image_blobs(
    manifest: &ImageManifest,
    what: &str,
) -> Result<Vec<Blob>, RegistryError> {
    let config_type = manifest.config().media_type().to_string();
    if !CONFIG_TYPES.contains(&config_type.as_str()) {
        return Err(RegistryError::UnsupportedMediaType {
            what: format!("config of {what} (not a container image)"),
            media_type: config_type,
        });
    }
    let mut blobs: Vec<Blob> = Vec::with_capacity(manifest.layers().len() + 1);
    for (index, descriptor) in std::iter::once(manifest.config())
        .chain(manifest.layers())
        .enumerate()
    {
        if index > 0 {
            let layer_type = descriptor.media_type().to_string();
            if !LAYER_TYPES.contains(&layer_type.as_str()) {
                return Err(RegistryError::UnsupportedMediaType {
                    what: format!("layer {} of {what}", descriptor.digest()),
                    media_type: layer_type,
                });
            }
        }
        let digest: Digest =
            Digest::try_from(descriptor.digest()).map_err(|e| RegistryError::InvalidDigest {
                what: what.to_owned(),
                digest: descriptor.digest().to_string(),
                reason: e.to_string(),
            })?;
        if !blobs.iter().any(|b| b.digest == digest) {
            blobs.push(Blob {
                digest,
                size: descriptor.size(),
            });
        }
    }
    Ok(blobs)
}

/// Digest of an index entry, as the store's digest type.
pub(crate) fn descriptor_digest(
    descriptor: &Descriptor,
    what: &str,
) -> Result<Digest, RegistryError> {
    Digest::try_from(descriptor.digest()).map_err(|e| RegistryError::InvalidDigest {
        what: what.to_owned(),
        digest: descriptor.digest().to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn docker_manifest(layer_type: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
            "config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":10,"digest":"{SHA_A}"}},
            "layers":[{{"mediaType":"{layer_type}","size":20,"digest":"{SHA_B}"}},
                      {{"mediaType":"{layer_type}","size":20,"digest":"{SHA_B}"}}]}}"#
        )
    }

    #[test]
    fn docker_schema2_manifest_yields_deduplicated_blobs() {
        let body = docker_manifest("application/vnd.docker.image.rootfs.diff.tar.gzip");
        let Document::Image(manifest) = parse(Some(DOCKER_MANIFEST), body.as_bytes(), "m").unwrap()
        else {
            panic!("not parsed as image manifest");
        };
        let blobs = image_blobs(&manifest, "m").unwrap();
        assert_eq!(blobs.len(), 2);
        assert_eq!(blobs[0].digest.to_string(), SHA_A);
        assert_eq!(blobs[1].size, 20);
    }

    #[test]
    fn unknown_layer_type_is_rejected() {
        let body = docker_manifest("application/vnd.cncf.helm.chart.content.v1.tar+gzip");
        let Document::Image(manifest) = parse(None, body.as_bytes(), "m").unwrap() else {
            panic!("not parsed as image manifest");
        };
        let err = image_blobs(&manifest, "m").unwrap_err().to_string();
        assert!(err.contains("helm"), "{err}");
    }

    #[test]
    fn schema1_and_unknown_types_are_rejected() {
        let schema1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert!(matches!(
            parse(Some("application/json"), schema1.as_bytes(), "m"),
            Err(RegistryError::Schema1 { .. })
        ));
        assert!(matches!(
            parse(Some(DOCKER_SCHEMA1_SIGNED), schema1.as_bytes(), "m"),
            Err(RegistryError::Schema1 { .. })
        ));
        assert!(matches!(
            parse(Some("application/vnd.example+json"), b"{}", "m"),
            Err(RegistryError::UnsupportedMediaType { .. })
        ));
        assert!(matches!(
            parse(Some(OCI_MANIFEST), b"not json", "m"),
            Err(RegistryError::InvalidManifest { .. })
        ));
    }

    #[test]
    fn selects_platform_or_lists_available() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[
              {{"mediaType":"{DOCKER_MANIFEST}","size":1,"digest":"{SHA_A}","platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},
              {{"mediaType":"{DOCKER_MANIFEST}","size":1,"digest":"{SHA_B}","platform":{{"architecture":"amd64","os":"linux"}}}},
              {{"mediaType":"{OCI_MANIFEST}","size":1,"digest":"{SHA_B}","platform":{{"architecture":"unknown","os":"unknown"}}}}]}}"#
        );
        let Document::Index(index) = parse(Some(DOCKER_LIST), body.as_bytes(), "i").unwrap() else {
            panic!("not parsed as index");
        };
        let amd64 = select_platform(&index, &Platform::default(), "r").unwrap();
        assert_eq!(amd64.digest().to_string(), SHA_B);
        let arm64 = select_platform(&index, &"linux/arm64".parse().unwrap(), "r").unwrap();
        assert_eq!(arm64.digest().to_string(), SHA_A);
        let err = select_platform(&index, &"linux/s390x".parse().unwrap(), "reg/x:1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("reg/x:1") && err.contains("linux/s390x"),
            "{err}"
        );
        assert!(err.contains("available: linux/arm64, linux/amd64"), "{err}");
    }
}
