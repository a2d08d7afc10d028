//! One read-only mount of an image's erofs artifact, shared by every process-mode container of that
//! image as its overlay's lower layer: one loop device and one mount per image instead of one of each
//! per container.
//!
//! Each image has a directory of its own (`dir` below, made by the caller per image, never shared
//! between images) holding `lock` (an flock serialising every change), `mnt/` (the mount point) and
//! `users/<name>`, one empty file per container whose overlay uses the mount. The mount is reference
//! counted by those files: the first [`acquire`] mounts, the [`release`] of the last user unmounts. A
//! user that crashed keeps its file until its own clean-up releases it, so nothing leaks past the
//! container's removal; [`remove`] (the image's removal) detaches the mount whatever the count.
//!
//! Host side the mount is `ro,nosuid,nodev`, like every mount of container content. An overlay holds
//! its own reference to its lower layer, so detaching the shared mount never disturbs a running
//! container.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::loop_device::attach_loop;
use crate::error::RuntimeError;

const LOCK: &str = "lock";
const MNT: &str = "mnt";
const USERS: &str = "users";
/// `EROFS_SUPER_MAGIC_V1` from <linux/magic.h>.
const EROFS_MAGIC: i64 = 0xE0F5_E1E2;

/// Mounts `artifact` at `<dir>/mnt` unless it is mounted already, records `user` as one of its users,
/// and returns the mount point (the overlay's `lowerdir`).
pub fn acquire(artifact: &Path, dir: &Path, user: &str) -> Result<PathBuf, RuntimeError> {
    let entry = user_entry(dir, user)?;
    let mnt = dir.join(MNT);
    bulkhead_fs::private_dir(dir).map_err(|e| RuntimeError::io("create", dir, e))?;
    // Inside the owner-only `dir`; `mnt` may be mounted (read-only) already, so no chmod.
    for d in [&mnt, &dir.join(USERS)] {
        match fs::create_dir(d) {
            Err(e) if e.kind() != ErrorKind::AlreadyExists => {
                return Err(RuntimeError::io("create", d, e))
            }
            _ => {}
        }
    }
    let _lock = lock(dir)?;
    if !is_mounted(&mnt)? {
        let device = attach_loop(artifact, true)?;
        mount(
            Some(device.path()),
            &mnt,
            Some("erofs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            None::<&str>,
        )
        .map_err(|e| {
            RuntimeError::sys(
                format!("mount erofs {} on {}", artifact.display(), mnt.display()),
                e,
            )
        })?;
    }
    fs::write(&entry, "").map_err(|e| RuntimeError::io("create", &entry, e))?;
    Ok(mnt)
}

/// Forgets `user`; unmounts once no user is left. Idempotent, and a no-op for a `dir` never made.
pub fn release(dir: &Path, user: &str) -> Result<(), RuntimeError> {
    let entry = user_entry(dir, user)?;
    if !dir.is_dir() {
        return Ok(());
    }
    let _lock = lock(dir)?;
    match fs::remove_file(&entry) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(RuntimeError::io("remove", &entry, e)),
    }
    let users = dir.join(USERS);
    let left = match fs::read_dir(&users) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => return Err(RuntimeError::io("read", &users, e)),
    };
    if !left {
        unmount(&dir.join(MNT), MntFlags::empty())?;
    }
    Ok(())
}

/// For the image's removal: detaches the mount whatever its users (their overlays keep their own
/// reference) and deletes `dir`. Idempotent.
pub fn remove(dir: &Path) -> Result<(), RuntimeError> {
    if !dir.is_dir() {
        return Ok(());
    }
    let lock = lock(dir)?;
    unmount(&dir.join(MNT), MntFlags::MNT_DETACH)?;
    // Only after the unmount: a mount point is never removed with what is mounted on it.
    let removed = fs::remove_dir_all(dir);
    drop(lock);
    match removed {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(RuntimeError::io("remove", dir, e)),
        _ => Ok(()),
    }
}

/// Whether `user` is recorded as a user of the mount in `dir`.
pub fn is_user(dir: &Path, user: &str) -> bool {
    user_entry(dir, user).is_ok_and(|entry| entry.exists())
}

/// Whether the erofs is mounted at `mnt` (its file system is erofs, not the one of `dir`).
pub fn is_mounted(mnt: &Path) -> Result<bool, RuntimeError> {
    match nix::sys::statfs::statfs(mnt) {
        Ok(st) => Ok(st.filesystem_type().0 == EROFS_MAGIC),
        Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(RuntimeError::sys(format!("statfs {}", mnt.display()), e)),
    }
}

fn lock(dir: &Path) -> Result<bulkhead_fs::Lock, RuntimeError> {
    let path = dir.join(LOCK);
    bulkhead_fs::Lock::exclusive(&path).map_err(|e| RuntimeError::io("lock", path, e))
}

/// `<dir>/users/<user>`; `user` must be a plain file name.
fn user_entry(dir: &Path, user: &str) -> Result<PathBuf, RuntimeError> {
    let plain = !user.is_empty() && user != "." && user != ".." && !user.contains('/');
    if !plain {
        return Err(RuntimeError::InvalidSpec(format!(
            "{user:?} cannot name a user of a shared image mount"
        )));
    }
    Ok(dir.join(USERS).join(user))
}

/// Unmounts `path` until nothing is mounted there; a missing path or a non-mount is fine.
fn unmount(path: &Path, flags: MntFlags) -> Result<(), RuntimeError> {
    loop {
        match umount2(path, flags | MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => continue,
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(RuntimeError::sys(format!("umount {}", path.display()), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_stay_inside_the_users_directory() {
        let dir = Path::new("/x");
        assert!(user_entry(dir, "abc").is_ok());
        for bad in ["", ".", "..", "a/b", "../lock"] {
            assert!(user_entry(dir, bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn release_of_a_directory_never_made_is_a_no_op() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("never");
        release(&dir, "c1").unwrap();
        remove(&dir).unwrap();
        assert!(!dir.exists());
    }
}
