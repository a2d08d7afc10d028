//! Path resolution confined to the container root.
//!
//! Images are untrusted: `/etc`, `/proc` or a mount target may be a symlink pointing at a
//! host path. Every path inside the container is resolved with `openat2(RESOLVE_IN_ROOT)`
//! relative to a descriptor of the root, so symlinks and `..` can never leave it, and
//! mounts target `/proc/self/fd/N` of the resolved descriptor.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Component, Path};

use nix::errno::Errno;

use crate::error::RuntimeError;

const RESOLVE: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;

fn cstring(path: &str) -> Result<CString, RuntimeError> {
    CString::new(path)
        .map_err(|_| RuntimeError::InvalidSpec(format!("path {path:?} contains a NUL byte")))
}

/// `openat2(root, path, flags, mode, RESOLVE_IN_ROOT)`; `path` is taken relative to the root.
pub fn open_in_root(
    root: BorrowedFd,
    path: &str,
    flags: libc::c_int,
    mode: u32,
) -> Result<OwnedFd, Errno> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let c = CString::new(rel).map_err(|_| Errno::EINVAL)?;
    // SAFETY: open_how is plain old data; all-zero is valid (and required for padding).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    if flags & libc::O_CREAT != 0 {
        how.mode = mode as u64;
    }
    how.resolve = RESOLVE;
    // SAFETY: `c` and `how` outlive the call; the kernel copies both.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the syscall returned a new descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The path a mount(2) call can use to refer to the object behind `fd`.
pub(crate) fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn path_err(op: &'static str, path: &str, e: Errno) -> RuntimeError {
    RuntimeError::io(op, path, std::io::Error::from(e))
}

/// Opens directory `path` inside the root as `O_PATH`, creating missing components.
pub(crate) fn mkdir_all(root: BorrowedFd, path: &str) -> Result<OwnedFd, RuntimeError> {
    let mut current = String::from("/");
    let mut dir = open_in_root(root, "/", libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| path_err("open", "/", e))?;
    for component in Path::new(path).components() {
        let name = match component {
            Component::Normal(n) => n.to_string_lossy().into_owned(),
            Component::ParentDir => "..".to_string(),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => continue,
        };
        current = format!("{}/{}", current.trim_end_matches('/'), name);
        dir = match open_in_root(root, &current, libc::O_PATH | libc::O_DIRECTORY, 0) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if name != ".." => {
                let c = cstring(&name)?;
                // SAFETY: `dir` is a valid directory descriptor and `c` a valid C string.
                let rc = unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) };
                if rc != 0 && Errno::last() != Errno::EEXIST {
                    return Err(path_err("mkdir", &current, Errno::last()));
                }
                open_in_root(root, &current, libc::O_PATH | libc::O_DIRECTORY, 0)
                    .map_err(|e| path_err("open", &current, e))?
            }
            Err(e) => return Err(path_err("open", &current, e)),
        };
    }
    Ok(dir)
}

/// Opens file `path` inside the root as `O_PATH`, creating it (and its parents) empty
/// if missing. Used for file bind-mount targets.
pub(crate) fn ensure_file(root: BorrowedFd, path: &str) -> Result<OwnedFd, RuntimeError> {
    match open_in_root(root, path, libc::O_PATH, 0) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(path_err("open", path, e)),
    }
    let p = Path::new(path);
    let parent = p.parent().map(|p| p.to_string_lossy()).unwrap_or_default();
    let name = p
        .file_name()
        .ok_or_else(|| RuntimeError::InvalidSpec(format!("mount target {path:?} has no name")))?;
    let dir = mkdir_all(root, &parent)?;
    let c = cstring(&name.to_string_lossy())?;
    // SAFETY: valid directory descriptor and C string; O_NOFOLLOW refuses a dangling symlink.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_CREAT | libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(path_err("create", path, Errno::last()));
    }
    // SAFETY: a fresh descriptor we own; closing it right away.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    open_in_root(root, path, libc::O_PATH, 0).map_err(|e| path_err("open", path, e))
}

/// Writes `content` to file `path` inside the root (creating parents), replacing it.
pub(crate) fn write_file(root: BorrowedFd, path: &str, content: &str) -> Result<(), RuntimeError> {
    if let Some(parent) = Path::new(path).parent() {
        mkdir_all(root, &parent.to_string_lossy())?;
    }
    let fd = open_in_root(
        root,
        path,
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOCTTY | libc::O_NONBLOCK,
        0o644,
    )
    .map_err(|e| path_err("open", path, e))?;
    let mut file = std::fs::File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| RuntimeError::io("stat", path, e))?;
    if !meta.is_file() {
        return Err(RuntimeError::Setup {
            stage: "writing /etc files".into(),
            reason: format!("{path} is not a regular file"),
        });
    }
    std::io::Write::write_all(&mut file, content.as_bytes())
        .map_err(|e| RuntimeError::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn symlinks_stay_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let root_path = dir.path().join("root");
        std::fs::create_dir(&root_path).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root_path.join("etc")).unwrap();
        // A dangling symlink is refused rather than followed outside.
        assert!(write_file(
            std::fs::File::open(&root_path).unwrap().as_fd(),
            "/etc/hosts",
            ""
        )
        .is_err());
        let inside = root_path.join(outside.strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        let root = std::fs::File::open(&root_path).unwrap();
        write_file(root.as_fd(), "/etc/hosts", "127.0.0.1 localhost\n").unwrap();
        // The absolute symlink was resolved inside the root, not to the outside dir.
        assert!(!outside.join("hosts").exists());
        assert_eq!(
            std::fs::read_to_string(inside.join("hosts")).unwrap(),
            "127.0.0.1 localhost\n"
        );
        mkdir_all(root.as_fd(), "/../../a/b").unwrap();
        assert!(root_path.join("a/b").is_dir());
        ensure_file(root.as_fd(), "/x/y/file").unwrap();
        assert!(root_path.join("x/y/file").is_file());
    }
}
