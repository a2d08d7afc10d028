//! Error type of the image store.
//!
//! Every variant carries enough context (reference, digest, path or tar member) that the one-line
//! `Display` form tells the user what went wrong and with which input.

use std::path::PathBuf;

use crate::digest::Digest;

/// Errors returned by the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest { input: String, reason: String },
    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference { input: String, reason: String },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("{reference}: blob {digest} is not in the store")]
    BlobMissing { reference: String, digest: Digest },
    #[error("{reference}: oversized manifest: {what} is larger than {limit} bytes")]
    OversizedManifest {
        reference: String,
        what: String,
        limit: u64,
    },
    #[error("{reference}: unknown media type {media_type:?} for {what}")]
    UnknownMediaType {
        reference: String,
        what: String,
        media_type: String,
    },
    #[error("{reference}: invalid manifest: {reason}")]
    InvalidManifest { reference: String, reason: String },
    #[error("{reference}: invalid image config: {reason}")]
    InvalidConfig { reference: String, reason: String },
    #[error("{reference}: image index has no linux/amd64 manifest")]
    NoMatchingPlatform { reference: String },
    #[error("no such image: {reference}")]
    NotFound { reference: String },
    #[error("image id prefix {prefix:?} is ambiguous ({count} images match)")]
    Ambiguous { prefix: String, count: usize },
    #[error("image {reference} ({id}) is in use by a container (use force to remove it anyway)")]
    InUse { reference: String, id: String },
    #[error(
        "image {id} is referenced by multiple tags ({tags}); remove them by name or use force"
    )]
    MultipleTags { id: String, tags: String },
    #[error("layer {layer}: member {member:?}: {reason}")]
    HostileLayer {
        layer: String,
        member: String,
        reason: String,
    },
    #[error("layer {layer}: corrupt or truncated tar: {reason}")]
    CorruptLayer { layer: String, reason: String },
    #[error("layer {layer}: {what} exceeds the limit of {limit}")]
    LimitExceeded {
        layer: String,
        what: &'static str,
        limit: u64,
    },
    #[error("{}: unsupported archive: {reason}", path.display())]
    UnsupportedArchive { path: PathBuf, reason: String },
    #[error("import {}: {error}", path.display())]
    Import {
        path: PathBuf,
        error: Box<ImageError>,
    },
    #[error("{}: corrupt store metadata: {reason}", path.display())]
    Metadata { path: PathBuf, reason: String },
    #[error("mkfs.erofs for image {id} failed ({status}): {stderr}")]
    Mkfs {
        id: String,
        status: String,
        stderr: String,
    },
}

impl ImageError {
    /// Builds a closure that wraps an `io::Error` with a context string, for `map_err`.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
        let context = context.into();
        move |source| ImageError::Io { context, source }
    }

    /// Same as [`ImageError::io`] for `rustix` errors.
    pub(crate) fn errno(
        context: impl Into<String>,
    ) -> impl FnOnce(rustix::io::Errno) -> ImageError {
        let context = context.into();
        move |errno| ImageError::Io {
            context,
            source: errno.into(),
        }
    }
}
