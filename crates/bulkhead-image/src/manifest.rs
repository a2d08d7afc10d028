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

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

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
pub(crate) enum ManifestDocument {
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

/// Classifies and parses a manifest, manifest list or index.
pub(crate) fn parse_document(
    bytes: &[u8],
    reference: &str,
) -> Result<ManifestDocument, ImageError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| invalid_manifest(reference, format!("not JSON: {e}")))?;
    let schema_version = value.get("schemaVersion").and_then(Value::as_u64);
    if schema_version == Some(1) {
        return Err(invalid_manifest(
            reference,
            "Docker schema 1 manifests are not supported",
        ));
    }
    if schema_version != Some(2) {
        return Err(invalid_manifest(reference, "schemaVersion must be 2"));
    }
    let media_type = value
        .get("mediaType")
        .and_then(Value::as_str)
        .map(str::to_string);
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
fn parse_config(bytes: &[u8], reference: &str) -> Result<ImageConfiguration, ImageError> {
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
    let (manifest, docker) = match parse_document(&bytes, reference)? {
        ManifestDocument::Manifest { manifest, docker } => (manifest, docker),
        ManifestDocument::Index(_) => {
            return Err(invalid_manifest(
                reference,
                "is an image index; register a single-platform manifest",
            ))
        }
    };
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
            what: "config".to_string(),
            media_type: config_type,
        });
    }
    let config_digest = descriptor_digest(config_desc)?;
    let config_size = config_desc.size();
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
    if diff_ids.len() != manifest.layers().len() {
        return Err(ImageError::InvalidConfig {
            reference: reference.to_string(),
            reason: format!(
                "{} diff_ids for {} layers",
                diff_ids.len(),
                manifest.layers().len()
            ),
        });
    }
    let mut layers = Vec::with_capacity(diff_ids.len());
    for (desc, diff_id) in manifest.layers().iter().zip(diff_ids) {
        let original = desc.media_type().to_string();
        let (media_type, compression) =
            layer_media_type(&original).ok_or_else(|| ImageError::UnknownMediaType {
                reference: reference.to_string(),
                what: format!("layer {}", desc.digest()),
                media_type: original.clone(),
            })?;
        let digest = descriptor_digest(desc)?;
        check_blob(lookup, &digest, desc.size(), reference, "layer")?;
        let diff_id: Digest = diff_id.parse().map_err(|e| ImageError::InvalidConfig {
            reference: reference.to_string(),
            reason: format!("bad diff_id: {e}"),
        })?;
        layers.push(LayerDescriptor {
            digest,
            size: desc.size(),
            media_type: media_type.to_string(),
            compression,
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
