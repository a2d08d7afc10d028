//! What a bundle's root directory must hold before its VM starts. The guest's runtime makes missing
//! mount points and the working directory as process mode's does, but not in a read-only root, which
//! QEMU serves read-only: the host makes those first. Every path resolves inside the directory (a
//! symlinked `/etc` stays in it), and nothing existing is replaced or followed out.

use super::file_binds::BindPlan;
use crate::EngineError;
use bulkhead_runtime::{open_in_root, MountSpec, Workload};
use nix::errno::Errno;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path};

/// The files the runtime binds the generated /etc files over (as docker's init layer has them).
const ETC_MOUNT_POINTS: [&str; 3] = ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];
/// Where the runtime mounts fresh filesystems, so mount points below are its to make.
const RUNTIME_MOUNTS: [&str; 3] = ["dev", "proc", "sys"];

/// Makes the missing mount points of the generated /etc files in the bundle root `dir` (empty files,
/// as the runtime would), and for a read-only root also the working directory and the targets of
/// the binds (a directory, or an empty file for a bound file) and tmpfs mounts, as directories owned
/// by root (as runc makes a missing working directory).
pub(super) fn ensure(dir: &Path, workload: &Workload) -> Result<(), EngineError> {
    ensure_in(
        dir,
        workload.readonly_rootfs,
        &workload.process.cwd,
        &workload.mounts,
    )
}

/// [`ensure`] for a root that is `readonly`, a working directory `cwd` and `mounts`.
fn ensure_in(
    dir: &Path,
    readonly: bool,
    cwd: &str,
    mounts: &[MountSpec],
) -> Result<(), EngineError> {
    let root = File::open(dir).map_err(EngineError::io(dir))?;
    let root = root.as_fd();
    let failed = |path: &str| {
        let what = format!("making {path} in the bundle's root {}", dir.display());
        move |source| EngineError::Sys { what, source }
    };
    for path in ETC_MOUNT_POINTS {
        ensure_file(root, path).map_err(failed(path))?;
    }
    if !readonly {
        return Ok(());
    }
    mkdir_all(root, cwd).map_err(failed(cwd))?;
    let files: Vec<_> = BindPlan::of(mounts).file_targets();
    for mount in mounts {
        let (target, file) = match mount {
            MountSpec::Bind { target, .. } => (target, files.contains(&target.as_str())),
            MountSpec::Tmpfs { target, .. } => (target, false),
        };
        let first = Path::new(target).components().find_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        });
        if first.is_some_and(|name| RUNTIME_MOUNTS.iter().any(|m| name == *m)) {
            continue;
        }
        let made = if file {
            ensure_file(root, target)
        } else {
            mkdir_all(root, target).map(drop)
        };
        made.map_err(failed(target))?;
    }
    Ok(())
}

/// Opens directory `path` inside `root` (`O_PATH`), making missing components (0755).
fn mkdir_all(root: BorrowedFd, path: &str) -> Result<OwnedFd, Errno> {
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    let mut current = String::from("/");
    let mut dir = open_in_root(root, &current, flags, 0)?;
    for component in Path::new(path).components() {
        let name = match component {
            Component::Normal(name) => name,
            Component::ParentDir => std::ffi::OsStr::new(".."),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => continue,
        };
        let name = name.to_str().ok_or(Errno::EINVAL)?;
        current = format!("{}/{name}", current.trim_end_matches('/'));
        dir = match open_in_root(root, &current, flags, 0) {
            Err(Errno::ENOENT) if name != ".." => {
                let mode = nix::sys::stat::Mode::from_bits_truncate(0o755);
                match nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name, mode) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                open_in_root(root, &current, flags, 0)?
            }
            other => other?,
        };
    }
    Ok(dir)
}

/// Makes file `path` inside `root` (empty, 0644) unless something is there already.
fn ensure_file(root: BorrowedFd, path: &str) -> Result<(), Errno> {
    match open_in_root(root, path, libc::O_PATH, 0) {
        Err(Errno::ENOENT) => {}
        other => return other.map(drop),
    }
    let path = Path::new(path);
    let name = path.file_name().ok_or(Errno::EINVAL)?;
    let parent = path.parent().and_then(Path::to_str).ok_or(Errno::EINVAL)?;
    let dir = mkdir_all(root, parent)?;
    let create = nix::fcntl::OFlag::O_CREAT
        | nix::fcntl::OFlag::O_EXCL
        | nix::fcntl::OFlag::O_WRONLY
        | nix::fcntl::OFlag::O_NOFOLLOW
        | nix::fcntl::OFlag::O_CLOEXEC;
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o644);
    match nix::fcntl::openat(Some(dir.as_raw_fd()), name, create, mode) {
        Ok(fd) => nix::unistd::close(fd),
        Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_read_only_root_gets_its_mount_points_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, outside) = (tmp.path().join("root"), tmp.path().join("outside"));
        std::fs::create_dir_all(root.join("run")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        // An absolute symlink in the root resolves inside it, not to the host's directory.
        symlink(&outside, root.join("data")).unwrap();
        let hosts = tmp.path().join("hosts");
        std::fs::write(&hosts, "").unwrap();
        let bind = |source: &Path, target: &str| MountSpec::Bind {
            source: source.to_path_buf(),
            target: target.into(),
            readonly: false,
        };
        let mounts = [
            bind(&hosts, "/run/.containerenv"),
            bind(tmp.path(), "/var/dir"),
            bind(&hosts, "/dev/termination-log"),
            MountSpec::Tmpfs {
                target: "/scratch".into(),
                options: String::new(),
            },
        ];
        ensure_in(&root, true, "/work/sub", &mounts).unwrap();
        for file in [
            "etc/hosts",
            "etc/hostname",
            "etc/resolv.conf",
            "run/.containerenv",
        ] {
            assert!(root.join(file).is_file(), "{file}");
        }
        for dir in ["work/sub", "scratch", "var/dir"] {
            assert!(root.join(dir).is_dir(), "{dir}");
        }
        assert!(!root.join("dev").exists(), "the runtime's /dev is its own");
        // The symlink names a path inside the root that does not exist: refused, nothing made outside.
        let mounts = [bind(tmp.path(), "/data/dir")];
        assert!(ensure_in(&root, true, "/", &mounts).is_err());
        assert!(
            !outside.join("dir").exists(),
            "followed a symlink out of the root"
        );
    }
}
