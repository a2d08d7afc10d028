//! The store's filesystem helpers: its errors on the shared primitives of `bulkhead_fs` (locks,
//! directory syncs), and what only the store needs (removing and measuring trees, temp paths).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::ImageError;

/// Takes a lock on `path` with `take` (`Lock::exclusive`, `Lock::shared` or
/// `Lock::try_exclusive`), the error naming the lock file.
pub(crate) fn lock<T>(
    path: &Path,
    take: impl FnOnce(&Path) -> io::Result<T>,
) -> Result<T, ImageError> {
    take(path).map_err(ImageError::io(format!("lock {}", path.display())))
}

/// Flushes a directory's entries (new names, renames) to disk.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), ImageError> {
    bulkhead_fs::sync_dir(dir).map_err(ImageError::io(format!("fsync directory {}", dir.display())))
}

/// Removes a file or directory tree if present; missing is not an error.
pub(crate) fn remove_path(path: &Path) -> Result<(), ImageError> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(ImageError::io(format!("remove {}", path.display()))(e))
        }
        _ => Ok(()),
    }
}

/// Size in bytes of a file, or of all regular files below a directory.
pub(crate) fn disk_usage(path: &Path) -> Result<u64, ImageError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(ImageError::io(format!("stat {}", path.display()))(e)),
    };
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in fs::read_dir(path).map_err(ImageError::io(format!("read {}", path.display())))? {
        let entry = entry.map_err(ImageError::io(format!("read {}", path.display())))?;
        total += disk_usage(&entry.path())?;
    }
    Ok(total)
}

/// Returns a `File` opened read-only on `path` with the error naming the path.
pub(crate) fn open_read(path: &Path) -> Result<File, ImageError> {
    File::open(path).map_err(ImageError::io(format!("open {}", path.display())))
}

/// Removes a temp file or directory when dropped (operation failed or finished).
pub(crate) struct TempPath(pub(crate) PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Err(e) = remove_path(&self.0) {
            tracing::warn!(path = %self.0.display(), error = %e, "cannot remove temp path");
        }
    }
}
