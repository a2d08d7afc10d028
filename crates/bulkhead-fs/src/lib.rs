//! Filesystem primitives that bulkhead's on-disk guarantees rest on: advisory `flock` locks, names
//! unique across processes and threads, owner-only directories, atomic replacement of a file
//! whose durability the caller chooses, and file identities for naming what is derived from a file.
//!
//! Errors are plain `std::io::Error`; each caller adds the context (which file, which store).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// An advisory `flock(2)` lock on a file, released when dropped. The kernel also releases it when
/// the holder dies, so a killed process never leaves a stale lock.
#[must_use = "the lock is released as soon as it is dropped"]
pub struct Lock {
    _flock: Flock<File>,
}

impl Lock {
    /// Blocks until the exclusive lock on `path` (created if missing) is held.
    pub fn exclusive(path: &Path) -> io::Result<Lock> {
        Self::acquire(path, FlockArg::LockExclusive)
    }

    /// Blocks until a shared lock on `path` (created if missing) is held.
    pub fn shared(path: &Path) -> io::Result<Lock> {
        Self::acquire(path, FlockArg::LockShared)
    }

    /// Takes the exclusive lock only if nobody holds `path` locked; `None` otherwise.
    pub fn try_exclusive(path: &Path) -> io::Result<Option<Lock>> {
        match Self::acquire(path, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(lock)),
            Err(e) if e.raw_os_error() == Some(Errno::EWOULDBLOCK as i32) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn acquire(path: &Path, arg: FlockArg) -> io::Result<Lock> {
        // The file only carries the lock; nobody but the owner needs to open it.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        loop {
            match Flock::lock(file, arg) {
                Ok(flock) => return Ok(Lock { _flock: flock }),
                // A signal handler ran while we waited: wait again.
                Err((f, Errno::EINTR)) => file = f,
                Err((_, errno)) => return Err(errno.into()),
            }
        }
    }
}

/// `prefix` followed by a suffix unique across processes and threads, for temp files and
/// directories.
pub fn unique_name(prefix: &str) -> String {
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

/// Creates directory `path` (and missing parents) and makes it mode 0700 even if it existed: state
/// directories hold secrets (`-e` values), logs and container content that no other host user may reach.
pub fn private_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
}

/// What [`replace`] makes durable before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Nothing is synced: readers still see the old or the new content, but a crash may leave either,
    /// or an empty file. For records a crash makes stale anyway (a running container's network
    /// endpoint), where a sync would only add milliseconds to every start.
    Atomic,
    /// The new file's data is synced before the rename: after a crash the file holds the old or
    /// the new content, never a truncated one, but the rename itself may be lost.
    Data,
    /// As `Data`, and the directory is synced after the rename, so the new content survives a
    /// crash once `replace` has returned.
    DataAndEntry,
}

/// Replaces `dest` with `bytes` so readers see the old or the new content, never a mix: the bytes
/// go to a temp file in `tmp_dir` (which must be on the same filesystem as `dest`), are synced (as
/// `durability` asks), and the temp file is renamed over `dest`. The temp file is removed if any step fails. The file is
/// mode 0600: what bulkhead replaces this way are state records, readable by their owner only.
pub fn replace(
    dest: &Path,
    bytes: &[u8],
    tmp_dir: &Path,
    durability: Durability,
) -> io::Result<()> {
    let name = dest
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy());
    let tmp = tmp_dir.join(unique_name(&format!(".{name}")));
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        if durability != Durability::Atomic {
            file.sync_all()?;
        }
        fs::rename(&tmp, dest)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    match durability {
        Durability::Atomic | Durability::Data => Ok(()),
        Durability::DataAndEntry => sync_dir(parent(dest)),
    }
}

/// A new directory in `parent` named `<prefix>` and six random characters, created exclusively and
/// owner-only (mkdtemp): nobody can have prepared it, unlike a predictable name in a shared directory.
pub fn temp_dir(parent: &Path, prefix: &str) -> io::Result<PathBuf> {
    nix::unistd::mkdtemp(&parent.join(format!("{prefix}XXXXXX"))).map_err(io::Error::from)
}

/// Makes the entries of `dir` (names created in it, renames into it) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The identity of the file at `path` (device, inode, size, mtime), for naming values derived from it:
/// replacing the file (a package upgrade, a new build) gives a new identity.
pub fn file_identity(path: &Path) -> io::Result<String> {
    let meta = fs::metadata(path)?;
    Ok(format!(
        "{}-{}-{}-{}.{}",
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    ))
}

/// The directory holding `path`; `.` for a bare file name.
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_lock_excludes_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = Lock::exclusive(&path).unwrap();
        // flock locks belong to the open file description, so a second open contends even in
        // the same process.
        assert!(Lock::try_exclusive(&path).unwrap().is_none());
        drop(held);
        assert!(Lock::try_exclusive(&path).unwrap().is_some());
    }

    #[test]
    fn shared_locks_coexist_and_exclude_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let a = Lock::shared(&path).unwrap();
        let b = Lock::shared(&path).unwrap();
        assert!(Lock::try_exclusive(&path).unwrap().is_none());
        drop(a);
        assert!(Lock::try_exclusive(&path).unwrap().is_none());
        drop(b);
        assert!(Lock::try_exclusive(&path).unwrap().is_some());
    }

    #[test]
    fn lock_in_a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = Lock::exclusive(&dir.path().join("missing/lock"))
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn unique_names_differ() {
        let a = unique_name("tmp");
        let b = unique_name("tmp");
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("tmp-{}-", std::process::id())));
    }

    #[test]
    fn replace_writes_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("state.json");
        for (content, durability) in [
            (&b"old"[..], Durability::Data),
            (b"new", Durability::DataAndEntry),
        ] {
            replace(&dest, content, dir.path(), durability).unwrap();
            assert_eq!(fs::read(&dest).unwrap(), content);
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn private_dir_is_made_and_tightened_to_0700() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("a/b");
        private_dir(&fresh).unwrap();
        let existing = dir.path().join("open");
        fs::create_dir(&existing).unwrap();
        fs::set_permissions(&existing, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&existing).unwrap();
        for d in [&fresh, &existing] {
            assert_eq!(
                fs::metadata(d).unwrap().permissions().mode() & 0o7777,
                0o700
            );
        }
        replace(&existing.join("f"), b"x", &existing, Durability::Data).unwrap();
        let mode = fs::metadata(existing.join("f"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o600);
    }

    #[test]
    fn failed_replace_removes_its_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        // Renaming a file over a non-empty directory fails.
        let dest = dir.path().join("dest");
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("keep"), b"").unwrap();
        assert!(replace(&dest, b"x", &tmp, Durability::DataAndEntry).is_err());
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
        assert!(dest.join("keep").exists());
    }

    #[test]
    fn temp_dirs_are_fresh_and_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = temp_dir(dir.path(), ".t-").unwrap();
        let b = temp_dir(dir.path(), ".t-").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.parent(), Some(dir.path()));
        assert!(a.file_name().unwrap().to_str().unwrap().starts_with(".t-"));
        assert_eq!(
            fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn sync_dir_of_a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(sync_dir(&dir.path().join("missing")).is_err());
        sync_dir(dir.path()).unwrap();
    }

    #[test]
    fn file_identity_changes_when_the_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert!(file_identity(&path).is_err());
        fs::write(&path, b"v1").unwrap();
        let before = file_identity(&path).unwrap();
        let staged = dir.path().join("f.new");
        fs::write(&staged, b"v2").unwrap();
        fs::rename(&staged, &path).unwrap();
        assert_ne!(file_identity(&path).unwrap(), before);
    }
}
