//! Manifest fetching and platform selection.
//!
//! The formats, their media types and the size cap are the image crate's
//! ([`bulkhead_image::manifest`]), so that a pull accepts exactly what the store can register.
//! Manifests are read through that cap so a hostile registry cannot make the client buffer
//! unbounded data.

use std::io::Read;

use bulkhead_image::manifest::{self as formats, BlobRef, ManifestDocument, MAX_MANIFEST_BYTES};
use bulkhead_image::{Digest, ImageError};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use crate::error::RegistryError;
use crate::platform::Platform;

/// A fetched manifest document.
pub(crate) struct Fetched {
    pub(crate) bytes: Vec<u8>,
    pub(crate) digest: Digest,
    pub(crate) document: ManifestDocument,
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
    let document =
        formats::parse_document(&bytes, content_type.as_deref(), what).map_err(refused)?;
    Ok(Fetched {
        bytes,
        digest,
        document,
    })
}

/// Picks the manifest of `wanted` from an index, with the platform the index lists for it, or
/// lists the platforms it offers.
pub(crate) fn select_platform<'a>(
    index: &'a ImageIndex,
    wanted: &Platform,
    reference: &str,
) -> Result<(&'a Descriptor, Platform), RegistryError> {
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
    if let Some(found) = platforms.clone().find(|(_, p)| wanted.matches(p)) {
        return Ok(found);
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

/// The registry's error for a manifest the image crate refuses (`what` was its reference).
fn refused(error: ImageError) -> RegistryError {
    match error {
        ImageError::UnknownMediaType {
            reference,
            what,
            media_type,
        } => RegistryError::UnsupportedMediaType {
            what: if what == "manifest" {
                reference
            } else {
                format!("{what} of {reference}")
            },
            media_type,
        },
        other => RegistryError::InvalidManifest(other),
    }
}

/// Checks that `manifest` describes a container image and returns its blobs
/// (config first, then layers in order, duplicates removed).
pub(crate) fn image_blobs(
    manifest: &ImageManifest,
    docker: bool,
    what: &str,
) -> Result<Vec<BlobRef>, RegistryError> {
    let blobs = formats::image_blobs(manifest, docker, what).map_err(refused)?;
    let mut unique: Vec<BlobRef> = Vec::with_capacity(blobs.layers.len() + 1);
    for blob in std::iter::once(blobs.config).chain(blobs.layers.into_iter().map(|l| l.blob)) {
        if !unique.iter().any(|b| b.digest == blob.digest) {
            unique.push(blob);
        }
    }
    Ok(unique)
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
    use formats::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST};

    const SHA_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn docker_manifest(layer_type: &str) -> (Box<ImageManifest>, bool) {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
            "config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":10,"digest":"{SHA_A}"}},
            "layers":[{{"mediaType":"{layer_type}","size":20,"digest":"{SHA_B}"}},
                      {{"mediaType":"{layer_type}","size":20,"digest":"{SHA_B}"}}]}}"#
        );
        match formats::parse_document(body.as_bytes(), Some(DOCKER_MANIFEST), "m").unwrap() {
            ManifestDocument::Manifest { manifest, docker } => (manifest, docker),
            ManifestDocument::Index(_) => panic!("not parsed as image manifest"),
        }
    }

    #[test]
    fn docker_schema2_manifest_yields_deduplicated_blobs() {
        let (manifest, docker) =
            docker_manifest("application/vnd.docker.image.rootfs.diff.tar.gzip");
        let blobs = image_blobs(&manifest, docker, "m").unwrap();
        assert_eq!(blobs.len(), 2);
        assert_eq!(blobs[0].digest.to_string(), SHA_A);
        assert_eq!(blobs[1].size, 20);
    }

    #[test]
    fn unknown_layer_type_is_rejected() {
        let (manifest, docker) =
            docker_manifest("application/vnd.cncf.helm.chart.content.v1.tar+gzip");
        let err = image_blobs(&manifest, docker, "m").unwrap_err().to_string();
        assert!(err.contains("helm"), "{err}");
    }

    #[test]
    fn selects_platform_or_lists_available() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[
              {{"mediaType":"{DOCKER_MANIFEST}","size":1,"digest":"{SHA_A}","platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},
              {{"mediaType":"{DOCKER_MANIFEST}","size":1,"digest":"{SHA_B}","platform":{{"architecture":"amd64","os":"linux"}}}},
              {{"mediaType":"{OCI_MANIFEST}","size":1,"digest":"{SHA_B}","platform":{{"architecture":"unknown","os":"unknown"}}}}]}}"#
        );
        let ManifestDocument::Index(index) =
            formats::parse_document(body.as_bytes(), Some(DOCKER_MANIFEST_LIST), "i").unwrap()
        else {
            panic!("not parsed as index");
        };
        let (amd64, platform) = select_platform(&index, &Platform::default(), "r").unwrap();
        assert_eq!(amd64.digest().to_string(), SHA_B);
        assert_eq!(platform, Platform::default());
        let (arm64, platform) =
            select_platform(&index, &"linux/arm64".parse().unwrap(), "r").unwrap();
        assert_eq!(arm64.digest().to_string(), SHA_A);
        assert_eq!(platform.to_string(), "linux/arm64");
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
