//! Errors of registry operations.
//!
//! Every variant renders as one line naming what was being fetched (`what`: the
//! manifest or blob together with the image reference) and the registry, so a failed
//! `bulkhead pull` tells the user exactly which request failed and why.

use std::path::PathBuf;

/// Error of a pull, login or credential-store operation.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/amd64")]
    InvalidPlatform(String),

    #[error("authentication to registry {registry} failed for {what}: {reason}")]
    AuthFailed {
        registry: String,
        what: String,
        reason: String,
    },

    #[error("access to {what} denied by registry {registry} (HTTP 403)")]
    Denied { registry: String, what: String },

    #[error("{what} not found on registry {registry} (HTTP 404: manifest or blob unknown)")]
    NotFound { registry: String, what: String },

    #[error("rate limited by registry {registry} while fetching {what}: still HTTP 429 after {attempts} attempts")]
    RateLimited {
        registry: String,
        what: String,
        attempts: u32,
    },

    #[error(
        "registry {registry} failed with HTTP {status} while fetching {what} ({attempts} attempts)"
    )]
    ServerError {
        registry: String,
        what: String,
        status: u16,
        attempts: u32,
    },

    #[error("registry {registry} answered HTTP {status} while fetching {what}")]
    UnexpectedStatus {
        registry: String,
        what: String,
        status: u16,
    },

    #[error("connection to registry {registry} failed while fetching {what} ({attempts} attempts): {reason}")]
    Connection {
        registry: String,
        what: String,
        attempts: u32,
        reason: String,
    },

    #[error("invalid authentication challenge from registry {registry}: {challenge:?}")]
    InvalidChallenge { registry: String, challenge: String },

    #[error("invalid token response from {realm} for registry {registry}: {reason}")]
    InvalidToken {
        registry: String,
        realm: String,
        reason: String,
    },

    #[error("{what} is larger than the {limit} byte limit for manifests")]
    ManifestTooLarge { what: String, limit: u64 },

    #[error("{what} has unsupported media type {media_type:?}")]
    UnsupportedMediaType { what: String, media_type: String },

    /// A manifest the image store would refuse (format, media types, schema 1, digests); the
    /// image error names the manifest and the reference.
    #[error(transparent)]
    InvalidManifest(bulkhead_image::ImageError),

    #[error("{what} has digest {actual}, expected {expected}")]
    ManifestDigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    #[error("{reference} has no image for platform {wanted}; available: {available}")]
    PlatformNotFound {
        reference: String,
        wanted: String,
        available: String,
    },

    #[error("{what} lists invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        what: String,
        digest: String,
        reason: String,
    },

    #[error("{what} failed verification ({attempts} attempts): {source}")]
    BlobCorrupt {
        what: String,
        attempts: u32,
        #[source]
        source: bulkhead_image::ImageError,
    },

    #[error("image store failed for {what}: {source}")]
    Store {
        what: String,
        #[source]
        source: bulkhead_image::ImageError,
    },

    #[error("credential file {path}: {source}")]
    CredentialsIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("credential file {path} is not valid JSON: {source}")]
    CredentialsFormat {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("credentials for registry {registry} in {path} are malformed: {reason}")]
    CredentialsEntry {
        registry: String,
        path: PathBuf,
        reason: String,
    },

    #[error("invalid registry name {0:?}")]
    InvalidRegistry(String),
}
