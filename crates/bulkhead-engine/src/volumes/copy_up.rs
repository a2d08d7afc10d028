//! Docker's copy-up: an empty volume mounted where the image has content gets that content once, when
//! the container is created (owners, modes with setuid bits, times, symlinks as links, fifos and device
//! nodes; hard links become copies and xattrs are not copied). The source is the image's erofs artifact,
//! which the host built, loop-mounted read-only for the copy; the target path is resolved inside it
//! (`RESOLVE_IN_ROOT`). The destination is a volume's data directory, which a VM guest may have written
//! before: it is opened `O_NOFOLLOW`, and every entry is made relative to a directory descriptor with
//! `mkdirat`, `O_CREAT|O_EXCL|O_NOFOLLOW`, `symlinkat` or `mknodat`, so nothing planted there is
//! followed (an entry that appears meanwhile fails the copy instead).

use crate::layout::Layout;
use crate::EngineError;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{
    fchmod, fchmodat, fstat, fstatat, futimens, mkdirat, mknodat, utimensat, FchmodatFlags, Mode,
    SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, symlinkat, Gid, Uid};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Deeper trees than this in an image are refused rather than risk the stack.
const MAX_DEPTH: usize = 256;

fn sys(what: String) -> impl FnOnce(nix::Error) -> EngineError {
    EngineError::sys(what)
}

/// Copies the image's content at each `(data dir, target)` into the data dir if that is empty.
pub(super) fn from_image(
    layout: &Layout,
    artifact: &Path,
    copies: &[(PathBuf, &str)],
) -> Result<(), EngineError> {
    let mut empty = Vec::new();
    for (data, target) in copies {
        let dst = open_dir(None, data)?;
        if is_empty(&dst, data)? {
            empty.push((dst, data, *target));
        }
    }
    if empty.is_empty() {
        return Ok(());
    }
    let image = ImageMount::new(layout, artifact)?;
    for (dst, data, target) in empty {
        let src = match bulkhead_runtime::open_in_root(
            image.root.as_fd(),
            target,
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        ) {
            Ok(src) => src,
            // Nothing (or no directory) there in the image: nothing to copy.
            Err(nix::Error::ENOENT | nix::Error::ENOTDIR) => continue,
            Err(e) => return Err(sys(format!("opening {target} in the image"))(e)),
        };
        let st = fstat(src.as_raw_fd()).map_err(sys(format!("stat of {target} in the image")))?;
        copy_tree(&src, &dst, 0).map_err(|e| match e {
            EngineError::Sys { what, source } => EngineError::Sys {
                what: format!(
                    "copying the image's {target} into {}: {what}",
                    data.display()
                ),
                source,
            },
            other => other,
        })?;
        set_attrs(&dst, &st)?;
    }
    Ok(())
}

/// A directory opened without following a final symlink, relative to `parent` (or absolute).
fn open_dir(parent: Option<&OwnedFd>, path: &Path) -> Result<OwnedFd, EngineError> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let dirfd = parent.map(|p| p.as_raw_fd());
    openat(dirfd, path, flags, Mode::empty())
        .map(owned)
        .map_err(sys(format!("opening directory {}", path.display())))
}

fn owned(fd: std::os::fd::RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
}

/// Reads the names in directory `dir` (without `.` and `..`).
fn entries(dir: &OwnedFd) -> Result<Vec<std::ffi::CString>, EngineError> {
    let dup = nix::unistd::dup(dir.as_raw_fd()).map_err(sys("dup".into()))?;
    let mut d = nix::dir::Dir::from_fd(dup).map_err(sys("reading a directory".into()))?;
    let mut out = Vec::new();
    for entry in d.iter() {
        let entry = entry.map_err(sys("reading a directory".into()))?;
        let name = entry.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

fn is_empty(dir: &OwnedFd, path: &Path) -> Result<bool, EngineError> {
    entries(dir).map(|e| e.is_empty()).map_err(|e| match e {
        EngineError::Sys { source, .. } => EngineError::io(path)(source.into()),
        other => other,
    })
}

/// Owner, then mode (a chown clears setuid bits), then times, on a descriptor.
fn set_attrs(fd: &OwnedFd, st: &nix::sys::stat::FileStat) -> Result<(), EngineError> {
    let raw = fd.as_raw_fd();
    fchown(
        raw,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    )
    .map_err(sys("chown".into()))?;
    fchmod(raw, Mode::from_bits_truncate(st.st_mode & 0o7777)).map_err(sys("chmod".into()))?;
    futimens(raw, &atime(st), &mtime(st)).map_err(sys("setting times".into()))
}

fn atime(st: &nix::sys::stat::FileStat) -> TimeSpec {
    TimeSpec::new(st.st_atime, st.st_atime_nsec)
}

fn mtime(st: &nix::sys::stat::FileStat) -> TimeSpec {
    TimeSpec::new(st.st_mtime, st.st_mtime_nsec)
}

fn copy_tree(src: &OwnedFd, dst: &OwnedFd, depth: usize) -> Result<(), EngineError> {
    if depth > MAX_DEPTH {
        return Err(EngineError::InvalidOption(format!(
            "the image's directory tree is deeper than {MAX_DEPTH} levels"
        )));
    }
    let (s, d) = (src.as_raw_fd(), dst.as_raw_fd());
    for name in entries(src)? {
        let name = name.as_c_str();
        let shown = name.to_string_lossy();
        let st = fstatat(Some(s), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(sys(format!("stat of {shown}")))?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        let perm = Mode::from_bits_truncate(st.st_mode & 0o7777);
        let nofollow = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match kind {
            SFlag::S_IFDIR => {
                mkdirat(Some(d), name, Mode::S_IRWXU).map_err(sys(format!("mkdir {shown}")))?;
                let child_src = open_dir(Some(src), Path::new(&*shown))?;
                let child_dst = open_dir(Some(dst), Path::new(&*shown))?;
                copy_tree(&child_src, &child_dst, depth + 1)?;
                set_attrs(&child_dst, &st)?;
            }
            SFlag::S_IFREG => {
                let from = openat(Some(s), name, OFlag::O_RDONLY | nofollow, Mode::empty())
                    .map(owned)
                    .map_err(sys(format!("opening {shown}")))?;
                let to = openat(
                    Some(d),
                    name,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | nofollow,
                    Mode::S_IRUSR | Mode::S_IWUSR,
                )
                .map(owned)
                .map_err(sys(format!("creating {shown}")))?;
                let (mut from, mut to) = (File::from(from), File::from(to));
                std::io::copy(&mut from, &mut to).map_err(|e| {
                    sys(format!("copying {shown}"))(nix::Error::from_raw(
                        e.raw_os_error().unwrap_or(libc::EIO),
                    ))
                })?;
                set_attrs(&OwnedFd::from(to), &st)?;
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(Some(s), name)
                    .map_err(sys(format!("reading link {shown}")))?;
                symlinkat(target.as_os_str(), Some(d), name)
                    .map_err(sys(format!("creating link {shown}")))?;
                link_attrs(d, name, &st)?;
            }
            SFlag::S_IFIFO | SFlag::S_IFCHR | SFlag::S_IFBLK => {
                mknodat(Some(d), name, kind, perm, st.st_rdev)
                    .map_err(sys(format!("mknod {shown}")))?;
                link_attrs(d, name, &st)?;
                // mknod's mode went through the umask; the node is ours (created just now, and a
                // replacement by a symlink would make fchmodat fail with ENOTSUP, not follow it).
                fchmodat(Some(d), name, perm, FchmodatFlags::NoFollowSymlink)
                    .or_else(|e| {
                        if e == nix::Error::ENOTSUP {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(sys(format!("chmod {shown}")))?;
            }
            // Sockets belong to a running process, not to content.
            _ => {}
        }
    }
    Ok(())
}

/// Owner and times of an entry that is not opened (a symlink, a node), without following it.
fn link_attrs(
    dir: std::os::fd::RawFd,
    name: &std::ffi::CStr,
    st: &nix::sys::stat::FileStat,
) -> Result<(), EngineError> {
    let shown = name.to_string_lossy();
    fchownat(
        Some(dir),
        name,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(sys(format!("chown {shown}")))?;
    utimensat(
        Some(dir),
        name,
        &atime(st),
        &mtime(st),
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(sys(format!("setting times of {shown}")))
}

/// The image's erofs, mounted read-only (nosuid, nodev, noexec) on a fresh directory for one copy;
/// unmounted (its autoclear loop device goes with it) and removed on drop.
struct ImageMount {
    dir: PathBuf,
    root: OwnedFd,
}

impl ImageMount {
    fn new(layout: &Layout, artifact: &Path) -> Result<ImageMount, EngineError> {
        let parent = layout.volumes();
        let dir = bulkhead_fs::temp_dir(&parent, ".copy-up-").map_err(EngineError::io(&parent))?;
        let mounted = (|| {
            let device = bulkhead_runtime::rootfs::attach_loop(artifact, true)?;
            let flags =
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount(
                Some(device.path()),
                &dir,
                Some("erofs"),
                flags,
                None::<&str>,
            )
            .map_err(sys(format!("mounting {} for copy-up", artifact.display())))?;
            open_dir(None, &dir)
        })();
        match mounted {
            Ok(root) => Ok(ImageMount { dir, root }),
            Err(e) => {
                let _ = umount2(&dir, MntFlags::MNT_DETACH);
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }
}

impl Drop for ImageMount {
    fn drop(&mut self) {
        let _ = umount2(&self.dir, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.dir);
    }
}
