//! The crate's one I/O error context: which operation on which path failed. Each module's error enum
//! wraps it (`Io(#[from] IoError)`), so `.map_err(io_err(..))?` converts wherever it is used.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct IoError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Wraps an I/O error with what was being done (`op`) to which `path`.
pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> IoError {
    let path = path.to_path_buf();
    move |source| IoError { op, path, source }
}
