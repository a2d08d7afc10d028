//! The container's filesystem view, built by the init process in its new mount
//! namespace: the rootfs bind-mounted on itself, /proc (through which the sysctls are
//! written), read-only /sys, a minimal /dev, the generated /etc files, user mounts, masked
//! and read-only paths, then pivot_root with the old root detached.
//! Every target is resolved inside the root (see [`crate::safe_path`]); flags are set on a mount
//! through its descriptor, recursively where a subtree must not escape them ([`crate::mount_api`]).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fstat, major, minor, SFlag};

use crate::error::RuntimeError;
use crate::mount_api::{self, NODEV, NOEXEC, NOSUID, RDONLY};
use crate::pty;
use crate::safe_path::{ensure_file, fd_path, mkdir_all, open_in_root, write_file};
use crate::sysctls;
use bulkhead_spec::{ContainerSpec, MountSpec};

/// runc's default masked paths (for a spec that gives none): hidden behind /dev/null (files) or an
/// empty read-only tmpfs.
const MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// runc's default read-only paths (for a spec that gives none).
const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Character devices of the minimal /dev, bound from the caller's /dev (devtmpfs on the
/// host; the VM agent mounts one in the guest).
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

const DEV_SYMLINKS: [(&str, &str); 5] = [
    ("ptmx", "pts/ptmx"),
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

fn mount_err(what: String, e: Errno) -> RuntimeError {
    RuntimeError::sys(format!("mount {what}"), e)
}

fn mount_fd(
    source: Option<&str>,
    target: &OwnedFd,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
    what: &str,
) -> Result<(), RuntimeError> {
    mount(source, fd_path(target).as_str(), fstype, flags, data)
        .map_err(|e| mount_err(what.to_string(), e))
}

/// Makes the container's private mount namespace and binds the rootfs on itself there; returns a
/// descriptor of that bind. Called before the process takes the container's user namespace ids:
/// the rootfs lies below the owner-only bulkhead root, which only the host's root may traverse.
///
/// The host mounts container content `nosuid` (no host user may run a setuid file a container
/// made); inside its own mount namespace the container gets setuid files back, as under docker.
/// In a user namespace the kernel locks the host's flag, so there it stays.
pub(crate) fn bind_rootfs(spec: &ContainerSpec) -> Result<OwnedFd, RuntimeError> {
    // Nothing we mount may propagate back to the host (or the guest agent).
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| mount_err("/ private".into(), e))?;
    let rootfs = spec.rootfs.as_path();
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| mount_err(format!("bind of {}", rootfs.display()), e))?;
    let root = std::fs::File::open(rootfs).map_err(|e| RuntimeError::io("open", rootfs, e))?;
    let root: OwnedFd = root.into();
    if spec.workload.userns.is_none() {
        mount_api::set_flags(&root, 0, NOSUID, false, "the rootfs")?;
    }
    Ok(root)
}

/// Sets up the filesystem inside the rootfs bound by [`bind_rootfs`] (`root`) and pivots into it.
/// When `terminal`, a pty is allocated from the container's devpts, its slave bound to
/// /dev/console, and (master, slave) returned.
pub(crate) fn build(
    spec: &ContainerSpec,
    root: OwnedFd,
    terminal: bool,
) -> Result<Option<(OwnedFd, OwnedFd)>, RuntimeError> {
    let privileged = spec.workload.security.privileged;

    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let proc_dir = mkdir_all(root.as_fd(), "/proc")?;
    mount_fd(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        nosuid_nodev_noexec,
        None,
        "/proc",
    )?;
    sysctls::write(&root, &spec.workload.sysctls)?;
    mount_sys(&root, privileged)?;
    let pty = mount_dev(&root, terminal)?;
    mount_etc_files(&root, spec)?;
    for m in &spec.workload.mounts {
        mount_user(&root, m)?;
    }
    if !privileged {
        let security = &spec.workload.security;
        let masked = security.masked_paths.as_ref().map_or_else(
            || MASKED_PATHS.to_vec(),
            |p| p.iter().map(String::as_str).collect(),
        );
        let readonly = security.readonly_paths.as_ref().map_or_else(
            || READONLY_PATHS.to_vec(),
            |p| p.iter().map(String::as_str).collect(),
        );
        mask_paths(&root, &masked, &readonly)?;
    }
    if spec.workload.readonly_rootfs {
        let current_root = open_in_root(root.as_fd(), "/", libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(|e| RuntimeError::sys("reopening the root", e))?;
        // The root only: /dev, /proc, tmpfs and volumes keep their own modes, as under docker.
        mount_api::set_flags(&current_root, RDONLY, 0, false, "/")?;
    }
    pivot(&root)?;
    Ok(pty)
}

/// The files under /etc generated for each run.
pub(crate) const ETC_FILES: [&str; 3] = ["hostname", "hosts", "resolv.conf"];

/// [`ETC_FILES`] with their content.
fn etc_files(spec: &ContainerSpec) -> [(&'static str, String); 3] {
    let [hostname, hosts, resolv] = ETC_FILES;
    [
        (hostname, format!("{}\n", spec.workload.hostname)),
        (hosts, spec.etc_hosts.clone()),
        (resolv, spec.resolv_conf.clone()),
    ]
}

/// Creates the mount points of the generated /etc files that the rootfs lacks. Done by the caller, before
/// the container exists, so it works with unshifted user namespaces too. Existing files are left alone:
/// a start writes nothing to the container's writable layer.
pub(crate) fn ensure_etc_mount_points(spec: &ContainerSpec) -> Result<(), RuntimeError> {
    let root =
        std::fs::File::open(&spec.rootfs).map_err(|e| RuntimeError::io("open", &spec.rootfs, e))?;
    for name in ETC_FILES {
        ensure_file(root.as_fd(), &format!("/etc/{name}"))?;
    }
    Ok(())
}

/// Bind-mounts /etc/hostname, /etc/hosts and /etc/resolv.conf, generated for this run, over the image's
/// files, as docker does: the writable layer is not rewritten at every start (in a VM guest the first
/// ext4 write of a boot alone costs ~50 ms under binary translation). Each file is staged on the
/// container's /dev tmpfs, bound, and unlinked there, so only its mount keeps it. A file the spec
/// mounts itself (an OCI caller's /etc/hosts) is left to that mount: nothing can be mounted over an
/// unlinked file.
fn mount_etc_files(root: &OwnedFd, spec: &ContainerSpec) -> Result<(), RuntimeError> {
    let dev = open_in_root(root.as_fd(), "/dev", libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| RuntimeError::sys("reopening /dev", e))?;
    let mounted_by_spec = |target: &str| {
        spec.workload.mounts.iter().any(|m| match m {
            MountSpec::Bind { target: t, .. } | MountSpec::Tmpfs { target: t, .. } => {
                Path::new(t) == Path::new(target)
            }
        })
    };
    for (name, content) in etc_files(spec) {
        if mounted_by_spec(&format!("/etc/{name}")) {
            continue;
        }
        let staged_name = format!(".etc-{name}");
        let staged_path = format!("/dev/{staged_name}");
        write_file(root.as_fd(), &staged_path, &content)?;
        let staged = open_in_root(root.as_fd(), &staged_path, libc::O_PATH, 0)
            .map_err(|e| RuntimeError::sys(format!("reopening {staged_path}"), e))?;
        let target = format!("/etc/{name}");
        let target_fd = ensure_file(root.as_fd(), &target)?;
        mount_fd(
            Some(&fd_path(&staged)),
            &target_fd,
            None,
            MsFlags::MS_BIND,
            None,
            &target,
        )?;
        nix::unistd::unlinkat(
            Some(dev.as_raw_fd()),
            staged_name.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )
        .map_err(|e| RuntimeError::sys(format!("unlinking {staged_path}"), e))?;
    }
    Ok(())
}

fn mount_sys(root: &OwnedFd, privileged: bool) -> Result<(), RuntimeError> {
    let sys = mkdir_all(root.as_fd(), "/sys")?;
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if !privileged {
        flags |= MsFlags::MS_RDONLY;
    }
    match mount(
        Some("sysfs"),
        fd_path(&sys).as_str(),
        Some("sysfs"),
        flags,
        None::<&str>,
    ) {
        Ok(()) => Ok(()),
        // A user namespace without its own network namespace may not mount sysfs:
        // bind the current one instead, like runc.
        Err(Errno::EPERM) => {
            let host_sys = std::fs::File::open("/sys")
                .map_err(|e| RuntimeError::io("open", "/sys", e))?
                .into();
            let mut flags = NOSUID | NODEV | NOEXEC;
            if !privileged {
                flags |= RDONLY;
            }
            mount_api::bind_with_flags(&host_sys, &sys, true, flags, "/sys (bind)")
        }
        Err(e) => Err(mount_err("/sys".into(), e)),
    }
}

/// Binds the caller's device node `/dev/<name>` into the container's /dev. Binding
/// rather than mknod keeps the container's /dev `nodev` (so nodes created there by the
/// container, with CAP_MKNOD, cannot be opened) and also works in a user namespace.
fn bind_device(root: &OwnedFd, name: &str) -> Result<(), RuntimeError> {
    let host_path = format!("/dev/{name}");
    let target = ensure_file(root.as_fd(), &host_path)?;
    mount_fd(
        Some(&host_path),
        &target,
        None,
        MsFlags::MS_BIND,
        None,
        &host_path,
    )
}

fn mount_dev(root: &OwnedFd, terminal: bool) -> Result<Option<(OwnedFd, OwnedFd)>, RuntimeError> {
    let dev_mount = mkdir_all(root.as_fd(), "/dev")?;
    mount_fd(
        Some("tmpfs"),
        &dev_mount,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
        "/dev",
    )?;
    let dev = open_in_root(root.as_fd(), "/dev", libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| RuntimeError::sys("reopening /dev", e))?;
    for name in DEVICES {
        bind_device(root, name)?;
    }
    for (name, target) in DEV_SYMLINKS {
        nix::unistd::symlinkat(target, Some(dev.as_raw_fd()), name)
            .map_err(|e| RuntimeError::sys(format!("symlink /dev/{name}"), e))?;
    }
    let pts = mkdir_all(root.as_fd(), "/dev/pts")?;
    let pts_flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    let with_gid = "newinstance,ptmxmode=0666,mode=0620,gid=5";
    if mount(
        Some("devpts"),
        fd_path(&pts).as_str(),
        Some("devpts"),
        pts_flags,
        Some(with_gid),
    )
    .is_err()
    {
        // gid 5 (tty) may be unmapped in a user namespace.
        mount_fd(
            Some("devpts"),
            &pts,
            Some("devpts"),
            pts_flags,
            Some("newinstance,ptmxmode=0666,mode=0620"),
            "/dev/pts",
        )?;
    }
    let shm = mkdir_all(root.as_fd(), "/dev/shm")?;
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fd(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        nosuid_nodev_noexec,
        Some("mode=1777,size=65536k"),
        "/dev/shm",
    )?;
    let mqueue = mkdir_all(root.as_fd(), "/dev/mqueue")?;
    mount_fd(
        Some("mqueue"),
        &mqueue,
        Some("mqueue"),
        nosuid_nodev_noexec,
        None,
        "/dev/mqueue",
    )?;
    if !terminal {
        return Ok(None);
    }
    let master = open_in_root(
        root.as_fd(),
        "/dev/pts/ptmx",
        libc::O_RDWR | libc::O_NOCTTY,
        0,
    )
    .map_err(|e| RuntimeError::sys("opening /dev/pts/ptmx", e))?;
    let slave = pty::open_slave(&master)?;
    let console = ensure_file(root.as_fd(), "/dev/console")?;
    mount(
        Some(fd_path(&slave).as_str()),
        fd_path(&console).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| mount_err("/dev/console".into(), e))?;
    Ok(Some((master, slave)))
}

/// Docker `--tmpfs` options split into mount flags and filesystem data, and whether to copy the
/// directory's content up (`tmpcopyup`, podman's). The defaults are docker's: nosuid, nodev, noexec.
struct TmpfsOptions {
    flags: MsFlags,
    data: String,
    copy_up: bool,
}

fn tmpfs_options(options: &str) -> TmpfsOptions {
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let mut data = Vec::new();
    let mut copy_up = false;
    for opt in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        match opt {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags &= !MsFlags::MS_RDONLY,
            "exec" => flags &= !MsFlags::MS_NOEXEC,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "suid" => flags &= !MsFlags::MS_NOSUID,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "dev" => flags &= !MsFlags::MS_NODEV,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "tmpcopyup" => copy_up = true,
            "notmpcopyup" => copy_up = false,
            other => data.push(other),
        }
    }
    TmpfsOptions {
        flags,
        data: data.join(","),
        copy_up,
    }
}

fn mount_user(root: &OwnedFd, m: &MountSpec) -> Result<(), RuntimeError> {
    match m {
        MountSpec::Bind {
            source,
            target,
            readonly,
        } => {
            let src = std::fs::File::open(source)
                .map_err(|e| RuntimeError::io("open bind source", source, e))?;
            let is_dir = src
                .metadata()
                .map_err(|e| RuntimeError::io("stat", source, e))?
                .is_dir();
            let src: OwnedFd = src.into();
            let tgt = if is_dir {
                mkdir_all(root.as_fd(), target)?
            } else {
                ensure_file(root.as_fd(), target)?
            };
            // nodev: device nodes the container creates in a host directory (it holds
            // CAP_MKNOD) must not open host devices.
            let mut flags = NODEV;
            if *readonly {
                flags |= RDONLY;
            }
            let what = format!("bind {} on {target}", source.display());
            mount_api::bind_with_flags(&src, &tgt, true, flags, &what)
        }
        MountSpec::Tmpfs { target, options } => {
            let tgt = mkdir_all(root.as_fd(), target)?;
            let TmpfsOptions {
                flags,
                data,
                copy_up,
            } = tmpfs_options(options);
            let what = format!("tmpfs on {target}");
            let open_dir = || {
                open_in_root(root.as_fd(), target, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .map_err(|e| RuntimeError::sys(format!("opening {target}"), e))
            };
            // The directory below the tmpfs, opened before the tmpfs hides it.
            let lower = if copy_up { Some(open_dir()?) } else { None };
            // Filled first, made read-only after.
            let mount_flags = if copy_up {
                flags - MsFlags::MS_RDONLY
            } else {
                flags
            };
            mount_fd(
                Some("tmpfs"),
                &tgt,
                Some("tmpfs"),
                mount_flags,
                Some(&data),
                &what,
            )?;
            if let Some(lower) = lower {
                let upper = open_dir()?;
                crate::copy_up::copy_tree(&lower, &upper)?;
                if flags.contains(MsFlags::MS_RDONLY) {
                    mount_api::set_flags(&upper, RDONLY, 0, false, &what)?;
                }
            }
            Ok(())
        }
    }
}

/// The container's /dev/null, checked to be the null device (char 1:3): it is what masks files of
/// /proc, so a symlink or another file put there (by a volume over /dev, say) must not be bound
/// over them (runc's CVE-2025-31133). Opened without following a final symlink, checked on the
/// descriptor that is then bound.
fn verified_dev_null(root: &OwnedFd) -> Result<OwnedFd, RuntimeError> {
    let null = open_in_root(
        root.as_fd(),
        "/dev/null",
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
    )
    .map_err(|e| RuntimeError::sys("opening /dev/null", e))?;
    let st = fstat(null.as_raw_fd()).map_err(|e| RuntimeError::sys("stat of /dev/null", e))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind == SFlag::S_IFCHR && (major(st.st_rdev), minor(st.st_rdev)) == (1, 3) {
        return Ok(null);
    }
    let found = match kind {
        SFlag::S_IFCHR => format!(
            "character device {}:{}",
            major(st.st_rdev),
            minor(st.st_rdev)
        ),
        SFlag::S_IFLNK => "a symlink".to_string(),
        SFlag::S_IFREG => "a regular file".to_string(),
        SFlag::S_IFDIR => "a directory".to_string(),
        _ => format!("file type {:o}", kind.bits()),
    };
    Err(RuntimeError::Setup {
        stage: "masking paths".into(),
        reason: format!("/dev/null is {found}, not the null device (char 1:3); refusing to bind it over masked paths"),
    })
}

/// Hides `masked` paths (files behind the verified /dev/null, directories behind an empty tmpfs)
/// and makes `readonly` ones read-only with everything below them. Each mount is cloned, given
/// its flags and attached through descriptors.
fn mask_paths(root: &OwnedFd, masked: &[&str], readonly: &[&str]) -> Result<(), RuntimeError> {
    let null = verified_dev_null(root)?;
    for &path in masked {
        let target = match open_in_root(root.as_fd(), path, libc::O_PATH | libc::O_NOFOLLOW, 0) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(RuntimeError::sys(format!("opening {path}"), e)),
        };
        let is_dir = std::fs::metadata(fd_path(&target))
            .map(|m| m.is_dir())
            .map_err(|e| RuntimeError::io("stat", path, e))?;
        if is_dir {
            mount_fd(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None,
                path,
            )?;
        } else {
            // Not nodev: that would make reading a masked file fail instead of reading empty.
            mount_api::bind_with_flags(&null, &target, false, RDONLY | NOSUID | NOEXEC, path)?;
        }
    }
    for &path in readonly {
        let target = match open_in_root(root.as_fd(), path, libc::O_PATH | libc::O_NOFOLLOW, 0) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(RuntimeError::sys(format!("opening {path}"), e)),
        };
        mount_api::bind_with_flags(
            &target,
            &target,
            true,
            RDONLY | NOSUID | NODEV | NOEXEC,
            path,
        )?;
    }
    Ok(())
}

/// pivot_root(".", ".") then detaching the old root, which is stacked on the new one.
fn pivot(root: &OwnedFd) -> Result<(), RuntimeError> {
    nix::unistd::fchdir(root.as_raw_fd()).map_err(|e| RuntimeError::sys("chdir to rootfs", e))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| RuntimeError::sys("pivot_root", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| RuntimeError::sys("detaching old root", e))?;
    nix::unistd::chdir(Path::new("/")).map_err(|e| RuntimeError::sys("chdir /", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmpfs_option_parsing() {
        let o = tmpfs_options("size=64m,exec,mode=1777,ro");
        assert!(!o.flags.contains(MsFlags::MS_NOEXEC));
        assert!(o.flags.contains(MsFlags::MS_RDONLY | MsFlags::MS_NOSUID));
        assert_eq!(o.data, "size=64m,mode=1777");
        assert!(!o.copy_up);
        assert!(tmpfs_options("tmpcopyup,size=1m").copy_up);
        assert!(!tmpfs_options("tmpcopyup,notmpcopyup").copy_up);
    }
}
