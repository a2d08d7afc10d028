//! The fd-based mount API (open_tree, mount_setattr, move_mount): a mount is cloned, given its flags
//! and attached through descriptors, so no step re-resolves a path that a container could have
//! changed in between (the CVE-2025-31133/52565 class of runc), and flags apply to whole trees
//! (`AT_RECURSIVE`) instead of the top mount only.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

use crate::error::RuntimeError;

pub(crate) const RDONLY: u64 = libc::MOUNT_ATTR_RDONLY;
pub(crate) const NOSUID: u64 = libc::MOUNT_ATTR_NOSUID;
pub(crate) const NODEV: u64 = libc::MOUNT_ATTR_NODEV;
pub(crate) const NOEXEC: u64 = libc::MOUNT_ATTR_NOEXEC;

const EMPTY: &std::ffi::CStr = c"";

/// A detached copy of the mount (with `recursive`, the mount tree) at `fd`, like a bind mount not
/// yet attached anywhere.
pub(crate) fn clone_tree(
    fd: &OwnedFd,
    recursive: bool,
    what: &str,
) -> Result<OwnedFd, RuntimeError> {
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    // SAFETY: a valid descriptor and a NUL-terminated empty path.
    let rc = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), EMPTY.as_ptr(), flags) };
    if rc < 0 {
        return Err(RuntimeError::sys(
            format!("open_tree of {what}"),
            Errno::last(),
        ));
    }
    // SAFETY: open_tree returned a new descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
}

/// Sets `set` and clears `clear` (MOUNT_ATTR_*) on the mount at `fd` (with `recursive`, also on every
/// mount below it). Flags the kernel locked (a mount inherited into a user namespace) cannot be cleared.
pub(crate) fn set_flags(
    fd: &OwnedFd,
    set: u64,
    clear: u64,
    recursive: bool,
    what: &str,
) -> Result<(), RuntimeError> {
    let attr = libc::mount_attr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let mut at = libc::AT_EMPTY_PATH;
    if recursive {
        at |= libc::AT_RECURSIVE;
    }
    // SAFETY: `attr` outlives the call and its size is passed; the path is an empty C string.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            at as libc::c_uint,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc < 0 {
        return Err(RuntimeError::sys(
            format!("mount_setattr of {what}"),
            Errno::last(),
        ));
    }
    Ok(())
}

/// Attaches the detached mount `tree` on the object behind `target`.
pub(crate) fn attach(tree: &OwnedFd, target: &OwnedFd, what: &str) -> Result<(), RuntimeError> {
    // SAFETY: two valid descriptors and empty C-string paths.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            EMPTY.as_ptr(),
            target.as_raw_fd(),
            EMPTY.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(RuntimeError::sys(
            format!("move_mount onto {what}"),
            Errno::last(),
        ));
    }
    Ok(())
}

/// Mounts a copy of the mount `source` over `target` with flags `set` on the whole copy: clone,
/// set, attach, all through descriptors.
pub(crate) fn bind_with_flags(
    source: &OwnedFd,
    target: &OwnedFd,
    recursive: bool,
    set: u64,
    what: &str,
) -> Result<(), RuntimeError> {
    let tree = clone_tree(source, recursive, what)?;
    set_flags(&tree, set, 0, recursive, what)?;
    attach(&tree, target, what)
}
