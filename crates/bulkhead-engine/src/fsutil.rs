//! The engine's state files: JSON records replaced atomically, and the locks that serialise changes
//! to them (both on `bulkhead_fs`).

use crate::EngineError;
use bulkhead_fs::{Durability, Lock};
use std::fs;
use std::path::Path;

/// Writes JSON so readers see the old or the new record, never a mix, even on a crash.
///
/// The data is synced before the rename, so a power loss leaves the old or the new file, never an empty
/// one. The directory is not synced: a rename lost to a power cut only leaves the previous state, which
/// reconciliation already handles, and container start stays fast. Creating a container syncs its parent
/// directory once (`bulkhead_fs::sync_dir`).
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), EngineError> {
    write_json_with(path, value, Durability::Data)
}

/// Writes JSON atomically for readers, as `replace` with `durability` leaves it.
pub fn write_json_with<T: serde::Serialize>(
    path: &Path,
    value: &T,
    durability: Durability,
) -> Result<(), EngineError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| EngineError::Corrupt {
        path: path.to_path_buf(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    bulkhead_fs::replace(path, &bytes, dir, durability).map_err(EngineError::io(path))
}

/// Reads JSON written by [`write_json`].
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EngineError> {
    let bytes = fs::read(path).map_err(EngineError::io(path))?;
    serde_json::from_slice(&bytes).map_err(|source| EngineError::Corrupt {
        path: path.to_path_buf(),
        source,
    })
}

/// Blocks until the exclusive lock on `path` is held.
pub fn lock(path: &Path) -> Result<Lock, EngineError> {
    Lock::exclusive(path).map_err(EngineError::io(path))
}
