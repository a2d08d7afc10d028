//! What can be wrong with a bundle: each error names the file or the config.json field and the cause.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle {path}: {source}")]
    Bundle {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bundle {path} is not a directory")]
    BundleNotDirectory { path: PathBuf },
    #[error("{path}: the bundle has no config.json")]
    MissingConfig { path: PathBuf },
    #[error("reading {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not JSON, or a field of the wrong shape; `field` is the path of the field in config.json.
    #[error("config.json is malformed at {field}: {reason}")]
    Malformed { field: String, reason: String },
    #[error("linux.namespaces[{index}]: unknown namespace type {kind:?}")]
    UnknownNamespace { index: usize, kind: String },
    #[error("config.json has no {0}")]
    MissingField(&'static str),
    #[error("root.path {rootfs}: resolves to {resolved}, outside the bundle {bundle}")]
    RootfsOutsideBundle {
        rootfs: PathBuf,
        resolved: PathBuf,
        bundle: PathBuf,
    },
    #[error("root.path {path}: {reason}")]
    Rootfs { path: PathBuf, reason: String },
    /// Valid OCI, but asking for something bulkhead does not do.
    #[error("{field}: not supported by bulkhead: {reason}")]
    Unsupported { field: String, reason: String },
    /// A value that no runtime could honour.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl BundleError {
    pub(crate) fn unsupported(field: impl Into<String>, reason: impl Into<String>) -> Self {
        BundleError::Unsupported {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        BundleError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
