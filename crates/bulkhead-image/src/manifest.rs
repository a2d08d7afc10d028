//! Parsing and validation of manifests, indexes and image configs (OCI and Docker schema 2).
//!
//! Docker media types are accepted and mapped to their OCI equivalents; anything else (schema 1,
//! artifacts, foreign formats) is refused with an error naming the media type and the reference.
//! Manifests and configs are size-capped before being read so a hostile blob cannot exhaust memory.

use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde_json::Value;

use crate::digest::Digest;
use crate::error::ImageError;
use crate::fsutil;
use crate::layer::Compression;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The manifest and index formats this engine reads, preferred first (a registry's `Accept`).
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
];

/// Default cap on a manifest, index or config blob: real ones are a few KiB, and the cap keeps a
/// hostile registry or archive from making us buffer unbounded JSON.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// A layer of an image as referenced by its manifest, with OCI media type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerDescriptor {
    /// Digest of the (possibly compressed) blob.
    pub digest: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// OCI media type (Docker types are mapped to OCI ones).
    pub media_type: String,
    /// Compression declared by the media type (the unpacker also sniffs magic bytes).
    pub compression: Compression,
    /// Digest of the uncompressed tar, from the config's `rootfs.diff_ids`.
    pub diff_id: Digest,
}

/// A manifest blob classified by kind.
pub enum ManifestDocument {
    /// A single-platform image manifest; `docker` when it is Docker schema 2.
    Manifest {
        manifest: Box<ImageManifest>,
        docker: bool,
    },
    Index(Box<ImageIndex>),
}

/// Everything an image is made of, validated against the blobs that are available.
pub(crate) struct ImageParts {
    pub(crate) manifest_digest: Digest,
    pub(crate) config_digest: Digest,
    pub(crate) config_size: u64,
    pub(crate) config: ImageConfiguration,
    pub(crate) layers: Vec<LayerDescriptor>,
}

/// Reads a manifest or config file, refusing more than `limit` bytes.
pub(crate) fn read_capped(
    path: &Path,
    limit: u64,
    reference: &str,
    what: &str,
) -> Result<Vec<u8>, ImageError> {
    let file = fsutil::open_read(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ImageError::io(format!("read {}", path.display())))?;
    if bytes.len() as u64 > limit {
        return Err(ImageError::OversizedManifest {
            reference: reference.to_string(),
            what: what.to_string(),
            limit,
        });
    }
    Ok(bytes)
}

fn invalid_manifest(reference: &str, reason: impl Into<String>) -> ImageError {
    ImageError::InvalidManifest {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

/// Classifies and parses a manifest, manifest list or index. `declared` is the media type the
/// transport gave (a registry's `Content-Type`); it wins over the document's own `mediaType`,
/// except when it is a generic type that says nothing about the format.
pub fn parse_document(
    bytes: &[u8],
    declared: Option<&str>,
    reference: &str,
) -> Result<ManifestDocument, ImageError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| invalid_manifest(reference, format!("not JSON: {e}")))?;
    let declared = declared.filter(|t| {
        !matches!(
            *t,
            "application/json" | "text/plain" | "application/octet-stream"
        )
    });
    let media_type = declared
        .or_else(|| value.get("mediaType").and_then(Value::as_str))
        .map(str::to_string);
    let schema_version = value.get("schemaVersion").and_then(Value::as_u64);
    if schema_version == Some(1)
        || matches!(
            media_type.as_deref(),
            Some(DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED)
        )
    {
        return Err(invalid_manifest(
            reference,
            "Docker schema 1 is deprecated and not supported; rebuild or re-push the image",
        ));
    }
    let is_index = match media_type.as_deref() {
        Some(OCI_MANIFEST) | Some(DOCKER_MANIFEST) => false,
        Some(OCI_INDEX) | Some(DOCKER_MANIFEST_LIST) => true,
        Some(other) => {
            return Err(ImageError::UnknownMediaType {
                reference: reference.to_string(),
                what: "manifest".to_string(),
                media_type: other.to_string(),
            })
        }
        None if value.get("manifests").is_some() => true,
        None => false,
    };
    if schema_version != Some(2) {
        return Err(invalid_manifest(reference, "schemaVersion must be 2"));
    }
    if is_index {
        let index: ImageIndex = serde_json::from_value(value)
            .map_err(|e| invalid_manifest(reference, format!("bad index: {e}")))?;
        Ok(ManifestDocument::Index(Box::new(index)))
    } else {
        let manifest: ImageManifest = serde_json::from_value(value)
            .map_err(|e| invalid_manifest(reference, e.to_string()))?;
        Ok(ManifestDocument::Manifest {
            manifest: Box::new(manifest),
            docker: media_type.as_deref() == Some(DOCKER_MANIFEST),
        })
    }
}

/// Picks the linux/amd64 image manifest from an index (the platform this engine runs).
pub(crate) fn select_platform(
    index: &ImageIndex,
    reference: &str,
) -> Result<Descriptor, ImageError> {
    let candidates: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| {
            matches!(
                d.media_type().to_string().as_str(),
                OCI_MANIFEST | DOCKER_MANIFEST
            )
        })
        .collect();
    let amd64 = candidates.iter().find(|d| {
        d.platform().as_ref().is_some_and(|p| {
            p.os().to_string() == "linux" && p.architecture().to_string() == "amd64"
        })
    });
    match (amd64, candidates.as_slice()) {
        (Some(d), _) => Ok((*d).clone()),
        // A single manifest without platform information is what OCI layouts usually hold.
        (None, [only]) if only.platform().is_none() => Ok((*only).clone()),
        _ => Err(ImageError::NoMatchingPlatform {
            reference: reference.to_string(),
        }),
    }
}

/// Digest of a descriptor, refusing algorithms other than sha256.
pub(crate) fn descriptor_digest(d: &Descriptor) -> Result<Digest, ImageError> {
    Digest::try_from(d.digest())
}

fn layer_media_type(media_type: &str) -> Option<(&'static str, Compression)> {
    Some(match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => {
            ("application/vnd.oci.image.layer.v1.tar", Compression::None)
        }
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => (
            "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Gzip,
        ),
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
        | "application/vnd.docker.image.rootfs.diff.tar.zstd" => (
            "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::Zstd,
        ),
        _ => return None,
    })
}

fn check_blob(
    lookup: &dyn Fn(&Digest) -> Option<PathBuf>,
    digest: &Digest,
    size: u64,
    reference: &str,
    what: &str,
) -> Result<PathBuf, ImageError> {
    let path = lookup(digest).ok_or_else(|| ImageError::BlobMissing {
        reference: reference.to_string(),
        digest: digest.clone(),
    })?;
    let actual = std::fs::metadata(&path)
        .map_err(ImageError::io(format!("stat {}", path.display())))?
        .len();
    if actual != size {
        return Err(ImageError::SizeMismatch {
            what: format!("{reference}: {what} {digest}"),
            expected: size,
            actual,
        });
    }
    Ok(path)
}

/// Parses an image config. `history` is optional in the OCI spec but required by oci-spec 0.7,
/// so a missing one is supplied as empty (the blob, and so the image id, is untouched).
pub(crate) fn parse_config(
    bytes: &[u8],
    reference: &str,
) -> Result<ImageConfiguration, ImageError> {
    let invalid = |e: serde_json::Error| ImageError::InvalidConfig {
        reference: reference.to_string(),
        reason: e.to_string(),
    };
    let mut value: Value = serde_json::from_slice(bytes).map_err(invalid)?;
    if let Some(object) = value.as_object_mut() {
        object
            .entry("history")
            .or_insert_with(|| Value::Array(Vec::new()));
    }
    serde_json::from_value(value).map_err(invalid)
}

/// A blob a manifest references: its digest and declared size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRef {
    pub digest: Digest,
    pub size: u64,
}

/// A layer blob of a manifest, with its media type mapped to OCI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerBlob {
    pub blob: BlobRef,
    /// OCI media type (Docker types are mapped to OCI ones).
    pub media_type: &'static str,
    /// Compression declared by the media type.
    pub compression: Compression,
}

/// The blobs of a single-platform image manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageBlobs {
    pub config: BlobRef,
    /// In manifest order (bottom layer first).
    pub layers: Vec<LayerBlob>,
}

/// Checks that `manifest` describes a container image (config and layer media types this engine
/// reads; a Docker schema 2 manifest must have a Docker config) and returns its blobs.
pub fn image_blobs(
    manifest: &ImageManifest,
    docker: bool,
    reference: &str,
) -> Result<ImageBlobs, ImageError> {
    let config_desc = manifest.config();
    let config_type = config_desc.media_type().to_string();
    let config_ok = if docker {
        config_type == DOCKER_CONFIG
    } else {
        config_type == OCI_CONFIG || config_type == DOCKER_CONFIG
    };
    if !config_ok {
        return Err(ImageError::UnknownMediaType {
            reference: reference.to_string(),
            what: "config (not a container image)".to_string(),
            media_type: config_type,
        });
    }
    // A digest error alone would not say which manifest listed it.
    let digest_of = |d: &Descriptor| {
        descriptor_digest(d).map_err(|e| invalid_manifest(reference, e.to_string()))
    };
    let config = BlobRef {
        digest: digest_of(config_desc)?,
        size: config_desc.size(),
    };
    let layers = manifest
        .layers()
        .iter()
        .map(|desc| {
            let original = desc.media_type().to_string();
            let (media_type, compression) =
                layer_media_type(&original).ok_or_else(|| ImageError::UnknownMediaType {
                    reference: reference.to_string(),
                    what: format!("layer {}", desc.digest()),
                    media_type: original.clone(),
                })?;
            Ok(LayerBlob {
                blob: BlobRef {
                    digest: digest_of(desc)?,
                    size: desc.size(),
                },
                media_type,
                compression,
            })
        })
        .collect::<Result<_, ImageError>>()?;
    Ok(ImageBlobs { config, layers })
}

/// Loads and validates the image whose (single-platform) manifest is `manifest_digest`:
/// manifest kind, media types, config, and presence and size of every blob.
pub(crate) fn load_image_parts(
    lookup: &dyn Fn(&Digest) -> Option<PathBuf>,
    manifest_digest: &Digest,
    reference: &str,
    limit: u64,
) -> Result<ImageParts, ImageError> {
    let manifest_path = lookup(manifest_digest).ok_or_else(|| ImageError::BlobMissing {
        reference: reference.to_string(),
        digest: manifest_digest.clone(),
    })?;
    let bytes = read_capped(&manifest_path, limit, reference, "manifest")?;
    let (manifest, docker) = match parse_document(&bytes, None, reference)? {
        ManifestDocument::Manifest { manifest, docker } => (manifest, docker),
        ManifestDocument::Index(_) => {
            return Err(invalid_manifest(
                reference,
                "is an image index; register a single-platform manifest",
            ))
        }
    };
    let blobs = image_blobs(&manifest, docker, reference)?;
    let BlobRef {
        digest: config_digest,
        size: config_size,
    } = blobs.config;
    if config_size > limit {
        return Err(ImageError::OversizedManifest {
            reference: reference.to_string(),
            what: "config".to_string(),
            limit,
        });
    }
    let config_path = check_blob(lookup, &config_digest, config_size, reference, "config")?;
    let config_bytes = read_capped(&config_path, limit, reference, "config")?;
    let config = parse_config(&config_bytes, reference)?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != blobs.layers.len() {
        return Err(ImageError::InvalidConfig {
            reference: reference.to_string(),
            reason: format!(
                "{} diff_ids for {} layers",
                diff_ids.len(),
                blobs.layers.len()
            ),
        });
    }
    let mut layers = Vec::with_capacity(diff_ids.len());
    for (layer, diff_id) in blobs.layers.into_iter().zip(diff_ids) {
        check_blob(
            lookup,
            &layer.blob.digest,
            layer.blob.size,
            reference,
            "layer",
        )?;
        let diff_id: Digest = diff_id.parse().map_err(|e| ImageError::InvalidConfig {
            reference: reference.to_string(),
            reason: format!("bad diff_id: {e}"),
        })?;
        layers.push(LayerDescriptor {
            digest: layer.blob.digest,
            size: layer.blob.size,
            media_type: layer.media_type.to_string(),
            compression: layer.compression,
            diff_id,
        });
    }
    Ok(ImageParts {
        manifest_digest: manifest_digest.clone(),
        config_digest,
        config_size,
        config,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(declared: Option<&str>, body: &str) -> Result<&'static str, ImageError> {
        parse_document(body.as_bytes(), declared, "r").map(|d| match d {
            ManifestDocument::Manifest { docker: true, .. } => "docker manifest",
            ManifestDocument::Manifest { docker: false, .. } => "oci manifest",
            ManifestDocument::Index(_) => "index",
        })
    }

    const EMPTY_MANIFEST: &str = r#"{"schemaVersion":2,
        "config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,
                  "digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
        "layers":[]}"#;

    #[test]
    fn declared_type_wins_unless_generic() {
        assert_eq!(kind(None, EMPTY_MANIFEST).unwrap(), "oci manifest");
        assert_eq!(
            kind(Some(DOCKER_MANIFEST), EMPTY_MANIFEST).unwrap(),
            "docker manifest"
        );
        assert_eq!(
            kind(Some("application/json"), EMPTY_MANIFEST).unwrap(),
            "oci manifest"
        );
        assert_eq!(
            kind(None, r#"{"schemaVersion":2,"manifests":[]}"#).unwrap(),
            "index"
        );
    }

    #[test]
    fn schema1_and_unknown_types_are_rejected() {
        let schema1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        let err = kind(Some("application/json"), schema1).unwrap_err();
        assert!(err.to_string().contains("schema 1"), "{err}");
        let err = kind(Some(DOCKER_SCHEMA1_SIGNED), EMPTY_MANIFEST).unwrap_err();
        assert!(err.to_string().contains("schema 1"), "{err}");
        assert!(matches!(
            kind(Some("application/vnd.example+json"), EMPTY_MANIFEST),
            Err(ImageError::UnknownMediaType { .. })
        ));
        assert!(matches!(
            kind(Some(OCI_MANIFEST), "not json"),
            Err(ImageError::InvalidManifest { .. })
        ));
    }
}
