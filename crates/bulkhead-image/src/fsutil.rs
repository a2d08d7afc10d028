//! Small filesystem primitives the store's guarantees rest on: advisory file locks, unique temp
//! names, and crash-safe "write temp, fsync, rename, fsync directory" replacement.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{flock, FlockOperation};

use crate::error::ImageError;

/// An advisory `flock(2)` lock, released when dropped (the descriptor closes).
pub(crate) struct LockFile {
    _file: File,
}

impl LockFile {
    fn open(path: &Path) -> Result<File, ImageError> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(ImageError::io(format!("open lock file {}", path.display())))
    }

    fn acquire(path: &Path, op: FlockOperation) -> Result<LockFile, ImageError> {
        let file = Self::open(path)?;
        loop {
            match flock(&file, op) {
                Ok(()) => return Ok(LockFile { _file: file }),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    return Err(ImageError::errno(format!("lock {}", path.display()))(e));
                }
            }
        }
    }

    /// Blocks until the exclusive lock is held.
    pub(crate) fn exclusive(path: &Path) -> Result<LockFile, ImageError> {
        Self::acquire(path, FlockOperation::LockExclusive)
    }

    /// Blocks until a shared lock is held.
    pub(crate) fn shared(path: &Path) -> Result<LockFile, ImageError> {
        Self::acquire(path, FlockOperation::LockShared)
    }

    /// Takes the exclusive lock only if nobody holds the file locked; `None` otherwise.
    pub(crate) fn try_exclusive(path: &Path) -> Result<Option<LockFile>, ImageError> {
        match Self::acquire(path, FlockOperation::NonBlockingLockExclusive) {
            Ok(lock) => Ok(Some(lock)),
            Err(ImageError::Io { source, .. })
                if source.raw_os_error() == Some(libc::EWOULDBLOCK) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// A name unique across processes and threads, for temp files and directories.
pub(crate) fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Flushes a directory's entries (new names, renames) to disk.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ImageError::io(format!("fsync directory {}", dir.display())))
}

/// Atomically replaces `dest` with `bytes`: temp file in `tmp_dir`, fsync, rename, fsync parent.
pub(crate) fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let tmp = tmp_dir.join(unique_name("write"));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(ImageError::io(format!("create {}", tmp.display())))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(ImageError::io(format!("write {}", tmp.display())))?;
        fs::rename(&tmp, dest).map_err(ImageError::io(format!(
            "rename {} to {}",
            tmp.display(),
            dest.display()
        )))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    fsync_dir(dest.parent().unwrap_or(Path::new("/")))
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
