//! `tmpcopyup` (podman's default for the tmpfs mounts it asks for): a tmpfs mounted over a directory of
//! the image starts with that directory's content. Copied entry by entry through descriptors, never
//! following a symlink out of the tree, with owners and modes kept.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fchmodat, fstatat, mkdirat, mknodat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, Gid, Uid};

use crate::error::RuntimeError;

/// Deeper trees are refused rather than recursed into without bound.
const MAX_DEPTH: usize = 64;

fn err(what: &str, name: &OsStr, e: Errno) -> RuntimeError {
    RuntimeError::sys(format!("copying up {what} {}", name.to_string_lossy()), e)
}

fn open_at(dir: &OwnedFd, name: &OsStr, flags: OFlag, mode: Mode) -> Result<OwnedFd, Errno> {
    let fd = openat(
        Some(dir.as_raw_fd()),
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        mode,
    )?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Copies the content of directory `src` into directory `dst` (both opened for reading).
pub(crate) fn copy_tree(src: &OwnedFd, dst: &OwnedFd) -> Result<(), RuntimeError> {
    copy_dir(src, dst, 0)
}

fn copy_dir(src: &OwnedFd, dst: &OwnedFd, depth: usize) -> Result<(), RuntimeError> {
    if depth > MAX_DEPTH {
        return Err(RuntimeError::Setup {
            stage: "tmpcopyup".into(),
            reason: format!("directories nested deeper than {MAX_DEPTH}"),
        });
    }
    let listing = src
        .try_clone()
        .map_err(|e| RuntimeError::io("dup", "a directory to copy up", e))?;
    let mut dir = Dir::from(listing).map_err(|e| RuntimeError::sys("reading a directory", e))?;
    let names: Vec<std::ffi::OsString> = dir
        .iter()
        .map(|entry| {
            entry
                .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
                .map_err(|e| RuntimeError::sys("reading a directory", e))
        })
        .collect::<Result<_, _>>()?;
    for name in names.iter().filter(|n| *n != "." && *n != "..") {
        copy_entry(src, dst, name, depth)?;
    }
    Ok(())
}

fn copy_entry(
    src: &OwnedFd,
    dst: &OwnedFd,
    name: &OsStr,
    depth: usize,
) -> Result<(), RuntimeError> {
    let st = fstatat(Some(src.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(|e| err("stat of", name, e))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let private = Mode::from_bits_truncate(0o700);
    match kind {
        SFlag::S_IFDIR => {
            mkdirat(Some(dst.as_raw_fd()), name, private).map_err(|e| err("directory", name, e))?;
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
            let from =
                open_at(src, name, flags, Mode::empty()).map_err(|e| err("directory", name, e))?;
            let to =
                open_at(dst, name, flags, Mode::empty()).map_err(|e| err("directory", name, e))?;
            copy_dir(&from, &to, depth + 1)?;
        }
        SFlag::S_IFREG => {
            let from = open_at(src, name, OFlag::O_RDONLY, Mode::empty())
                .map_err(|e| err("file", name, e))?;
            let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
            let to = open_at(dst, name, flags, Mode::from_bits_truncate(0o600))
                .map_err(|e| err("file", name, e))?;
            std::io::copy(&mut std::fs::File::from(from), &mut std::fs::File::from(to)).map_err(
                |e| RuntimeError::io("copying up", name.to_string_lossy().into_owned(), e),
            )?;
        }
        SFlag::S_IFLNK => {
            let target =
                readlinkat(Some(src.as_raw_fd()), name).map_err(|e| err("symlink", name, e))?;
            symlinkat(target.as_os_str(), Some(dst.as_raw_fd()), name)
                .map_err(|e| err("symlink", name, e))?;
        }
        _ => {
            mknodat(Some(dst.as_raw_fd()), name, kind, private, st.st_rdev)
                .map_err(|e| err("special file", name, e))?;
        }
    }
    fchownat(
        Some(dst.as_raw_fd()),
        name,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| err("owner of", name, e))?;
    if kind != SFlag::S_IFLNK {
        // After the owner: chown clears setuid and setgid bits. The entry is one this function just
        // made (nothing else runs in the container yet), so following it is safe.
        fchmodat(
            Some(dst.as_raw_fd()),
            name,
            Mode::from_bits_truncate(st.st_mode & 0o7777),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| err("mode of", name, e))?;
    }
    Ok(())
}
