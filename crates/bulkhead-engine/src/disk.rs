//! Writable-layer disks. Formatting ext4 for every container costs more than the rest of a container
//! start, so each root keeps one formatted template per disk size (`<root>/templates/rw-<size>.img`,
//! made once under a lock) and every container gets a sparse clone of it: a reflink where the host
//! filesystem supports one, otherwise a copy of the template's few data extents.
//!
//! Even a clone costs a few milliseconds (mostly syncing its data), so a small pool of ready clones per
//! size (`<root>/templates/pool-<size>/`) makes `create` a rename; the monitor of the container that
//! took one makes the next while the container runs ([`refill_pool`]).

use crate::{fsutil, EngineError};
use std::fs::{self, File};
use std::io::{Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Ready disks kept per size: enough for a few starts in a row between refills.
const POOL_TARGET: usize = 2;

/// Creates `dest` as a fresh, empty writable-layer disk of `size` bytes.
pub fn create(root: &Path, dest: &Path, size: u64) -> Result<(), EngineError> {
    if take_from_pool(&pool_dir(root, size), dest)? {
        return Ok(());
    }
    let template = template(root, size)?;
    let result = File::open(&template)
        .map_err(EngineError::io(&template))
        .and_then(|from| {
            let to = File::options()
                .write(true)
                .create_new(true)
                .open(dest)
                .map_err(EngineError::io(dest))?;
            clone_sparse(from, &template, &to, dest)
        });
    if result.is_err() {
        let _ = fs::remove_file(dest);
    }
    result
}

fn pool_dir(root: &Path, size: u64) -> PathBuf {
    root.join("templates").join(format!("pool-{size}"))
}

/// Moves a ready disk from `pool` to `dest` (which must not exist); `false` if there is none.
fn take_from_pool(pool: &Path, dest: &Path) -> Result<bool, EngineError> {
    let entries = match fs::read_dir(pool) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(EngineError::io(pool)(e)),
    };
    for entry in entries {
        let disk = entry.map_err(EngineError::io(pool))?.path();
        match rename_noreplace(&disk, dest) {
            Ok(()) => return Ok(true),
            // Another create took this one first.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            // A filesystem without RENAME_NOREPLACE: clone instead.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(false),
            Err(e) => return Err(EngineError::io(dest)(e)),
        }
    }
    Ok(false)
}

fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use nix::fcntl::{renameat2, RenameFlags};
    Ok(renameat2(
        None,
        from,
        None,
        to,
        RenameFlags::RENAME_NOREPLACE,
    )?)
}

/// Tops the pool of `size` up to [`POOL_TARGET`] ready disks. Each is cloned into an unnamed file
/// (`O_TMPFILE`: a crash leaves nothing half-made behind), synced, and only then given a name in the
/// pool, so a disk taken from it is as durable as a fresh clone.
pub fn refill_pool(root: &Path, size: u64) -> Result<(), EngineError> {
    let pool = pool_dir(root, size);
    bulkhead_fs::private_dir(&pool).map_err(EngineError::io(&pool))?;
    let have = fs::read_dir(&pool).map_err(EngineError::io(&pool))?.count();
    let template = template(root, size)?;
    for _ in have..POOL_TARGET {
        let from = File::open(&template).map_err(EngineError::io(&template))?;
        let to = File::options()
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .mode(0o600)
            .open(&pool)
            .map_err(EngineError::io(&pool))?;
        clone_sparse(from, &template, &to, &pool)?;
        let name = pool.join(bulkhead_fs::unique_name("rw"));
        link_unnamed(&to, &name).map_err(EngineError::io(&name))?;
    }
    Ok(())
}

/// Gives the `O_TMPFILE` file `file` the name `path`.
fn link_unnamed(file: &File, path: &Path) -> std::io::Result<()> {
    use nix::fcntl::AtFlags;
    let fd_path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    Ok(nix::unistd::linkat(
        None,
        fd_path.as_path(),
        None,
        path,
        AtFlags::AT_SYMLINK_FOLLOW,
    )?)
}

/// The formatted template for `size`, made on first use.
fn template(root: &Path, size: u64) -> Result<PathBuf, EngineError> {
    let dir = root.join("templates");
    let path = dir.join(format!("rw-{size}.img"));
    if path.exists() {
        return Ok(path);
    }
    fs::create_dir_all(&dir).map_err(EngineError::io(&dir))?;
    let _lock = fsutil::lock(&dir.join(".lock"))?;
    if path.exists() {
        return Ok(path);
    }
    // Formatted under a temp name and renamed, so a crash never leaves a half-made template.
    let tmp = dir.join(format!(".rw-{size}.img.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    bulkhead_runtime::rootfs::create_writable_disk(&tmp, size).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })?;
    fs::rename(&tmp, &path).map_err(EngineError::io(&path))?;
    Ok(path)
}

/// Copies `from` (the file at `src`) into the empty file `to` (at `dest`, for messages) keeping holes:
/// FICLONE if the filesystem can, else data extents only, then syncs it.
fn clone_sparse(mut from: File, src: &Path, to: &File, dest: &Path) -> Result<(), EngineError> {
    // SAFETY: FICLONE takes the source fd as its argument; both fds are open for the call.
    if unsafe { libc::ioctl(to.as_raw_fd(), libc::FICLONE, from.as_raw_fd()) } == 0 {
        return to.sync_all().map_err(EngineError::io(dest));
    }
    let len = from.metadata().map_err(EngineError::io(src))?.len();
    to.set_len(len).map_err(EngineError::io(dest))?;
    let mut pos = 0u64;
    while pos < len {
        let Some(start) = seek(&mut from, pos, libc::SEEK_DATA, src)? else {
            break;
        };
        let end = seek(&mut from, start, libc::SEEK_HOLE, src)?.unwrap_or(len);
        copy_range(&from, to, start, end - start, dest)?;
        pos = end;
    }
    to.sync_all().map_err(EngineError::io(dest))
}

/// lseek with SEEK_DATA/SEEK_HOLE; `None` when there is no more data (ENXIO).
fn seek(f: &mut File, pos: u64, whence: i32, path: &Path) -> Result<Option<u64>, EngineError> {
    // SAFETY: lseek on an open fd.
    let r = unsafe { libc::lseek(f.as_raw_fd(), pos as libc::off_t, whence) };
    if r >= 0 {
        return Ok(Some(r as u64));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENXIO) {
        return Ok(None);
    }
    f.seek(SeekFrom::Start(pos))
        .map_err(EngineError::io(path))?;
    Err(EngineError::io(path)(e))
}

fn copy_range(
    from: &File,
    to: &File,
    start: u64,
    mut len: u64,
    dest: &Path,
) -> Result<(), EngineError> {
    let (mut off_in, mut off_out) = (start as libc::loff_t, start as libc::loff_t);
    while len > 0 {
        // SAFETY: copy_file_range between two open fds with offsets we own.
        let n = unsafe {
            libc::copy_file_range(
                from.as_raw_fd(),
                &mut off_in,
                to.as_raw_fd(),
                &mut off_out,
                len as usize,
                0,
            )
        };
        if n < 0 {
            return Err(EngineError::io(dest)(std::io::Error::last_os_error()));
        }
        if n == 0 {
            break;
        }
        len -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn pool_disks_are_template_clones_each_taken_once() {
        const SIZE: u64 = 64 << 20;
        let root = tempfile::tempdir().unwrap();
        // A template of our own: no mkfs.ext4 is spawned, whose fork could hold a file of another
        // test's mount open at its unmount.
        let template_path = root.path().join("templates").join(format!("rw-{SIZE}.img"));
        fs::create_dir_all(template_path.parent().unwrap()).unwrap();
        let mut f = File::create(&template_path).unwrap();
        f.set_len(SIZE).unwrap();
        f.seek(SeekFrom::Start(SIZE / 2)).unwrap();
        f.write_all(b"superblock").unwrap();
        drop(f);
        let template = fs::read(&template_path).unwrap();
        let pool = pool_dir(root.path(), SIZE);
        refill_pool(root.path(), SIZE).unwrap();
        assert_eq!(fs::read_dir(&pool).unwrap().count(), POOL_TARGET);
        // A disk in the way is never replaced, and the pool keeps its disk.
        let taken = root.path().join("taken");
        fs::write(&taken, "mine").unwrap();
        assert!(create(root.path(), &taken, SIZE).is_err());
        assert_eq!(fs::read(&taken).unwrap(), b"mine");
        assert_eq!(fs::read_dir(&pool).unwrap().count(), POOL_TARGET);
        // The pool serves the first ones, a clone the one after.
        for i in 0..=POOL_TARGET {
            let disk = root.path().join(format!("disk{i}"));
            create(root.path(), &disk, SIZE).unwrap();
            assert!(fs::read(&disk).unwrap() == template, "disk {i}");
        }
        assert_eq!(fs::read_dir(&pool).unwrap().count(), 0);
        refill_pool(root.path(), SIZE).unwrap();
        assert_eq!(fs::read_dir(&pool).unwrap().count(), POOL_TARGET);
    }

    #[test]
    fn clone_keeps_data_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let mut f = File::create(&src).unwrap();
        f.set_len(64 << 20).unwrap();
        f.seek(SeekFrom::Start(32 << 20)).unwrap();
        f.write_all(b"middle").unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(b"start").unwrap();
        drop(f);
        let dest = dir.path().join("dest");
        let to = File::create(&dest).unwrap();
        clone_sparse(File::open(&src).unwrap(), &src, &to, &dest).unwrap();
        assert_eq!(fs::read(&src).unwrap(), fs::read(&dest).unwrap());
        let blocks = std::os::unix::fs::MetadataExt::blocks(&fs::metadata(&dest).unwrap());
        assert!(
            blocks * 512 < 4 << 20,
            "the clone must stay sparse ({blocks} blocks)"
        );
    }
}
