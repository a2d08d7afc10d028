//! Writable-layer disks. Formatting ext4 for every container costs more than the rest of a container
//! start, so each root keeps one formatted template per disk size (`<root>/templates/rw-<size>.img`,
//! made once under a lock) and every container gets a sparse clone of it: a reflink where the host
//! filesystem supports one, otherwise a copy of the template's few data extents.

use crate::{fsutil, EngineError};
use std::fs::{self, File};
use std::io::{Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Creates `dest` as a fresh, empty writable-layer disk of `size` bytes.
pub fn create(root: &Path, dest: &Path, size: u64) -> Result<(), EngineError> {
    let template = template(root, size)?;
    let result = clone_sparse(&template, dest);
    if result.is_err() {
        let _ = fs::remove_file(dest);
    }
    result
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

/// Copies `src` to a new file `dest` keeping holes: FICLONE if the filesystem can, else data extents only.
fn clone_sparse(src: &Path, dest: &Path) -> Result<(), EngineError> {
    let mut from = File::open(src).map_err(EngineError::io(src))?;
    let to = File::options()
        .write(true)
        .create_new(true)
        .open(dest)
        .map_err(EngineError::io(dest))?;
    // SAFETY: FICLONE takes the source fd as its argument; both fds are open for the call.
    if unsafe { libc::ioctl(to.as_raw_fd(), libc::FICLONE, from.as_raw_fd()) } == 0 {
        return Ok(());
    }
    let len = from.metadata().map_err(EngineError::io(src))?.len();
    to.set_len(len).map_err(EngineError::io(dest))?;
    let mut pos = 0u64;
    while pos < len {
        let Some(start) = seek(&mut from, pos, libc::SEEK_DATA, src)? else {
            break;
        };
        let end = seek(&mut from, start, libc::SEEK_HOLE, src)?.unwrap_or(len);
        copy_range(&from, &to, start, end - start, dest)?;
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
        clone_sparse(&src, &dest).unwrap();
        assert_eq!(fs::read(&src).unwrap(), fs::read(&dest).unwrap());
        let blocks = std::os::unix::fs::MetadataExt::blocks(&fs::metadata(&dest).unwrap());
        assert!(
            blocks * 512 < 4 << 20,
            "the clone must stay sparse ({blocks} blocks)"
        );
    }
}
