//! Atomic file replacement and advisory locks: the two primitives every state change rests on.

use crate::EngineError;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes` so readers see the old or the new content, never a mix, even on a crash.
///
/// The data is synced before the rename, so a power loss leaves the old or the new file, never an empty
/// one. The directory is not synced: a rename lost to a power cut only leaves the previous state, which
/// reconciliation already handles. Creating a container syncs its parent directory once (`sync_dir`).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        EngineError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    })
}

/// Makes the entries of `dir` (a rename into it) durable.
pub fn sync_dir(dir: &Path) -> Result<(), EngineError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(EngineError::io(dir))
}

/// Writes JSON atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), EngineError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| EngineError::Corrupt {
        path: path.to_path_buf(),
        source,
    })?;
    atomic_write(path, &bytes)
}

/// Reads JSON written by [`write_json`].
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EngineError> {
    let bytes = fs::read(path).map_err(EngineError::io(path))?;
    serde_json::from_slice(&bytes).map_err(|source| EngineError::Corrupt {
        path: path.to_path_buf(),
        source,
    })
}

/// An exclusive `flock` held until dropped; the kernel releases it if the holder dies.
pub type Lock = Flock<File>;

pub fn lock(path: &Path) -> Result<Lock, EngineError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(EngineError::io(path))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| EngineError::Sys {
        what: format!("locking {}", path.display()),
        source: e,
    })
}
