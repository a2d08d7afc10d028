//! The guest's own filesystems before the container's: a tmpfs root in place of the initramfs, the
//! kernel's pseudo filesystems the runtime needs, and the host's shared directories (virtio-9p), a bundle
//! container's root among them.

use crate::error::{io_err, GuestError};
use bulkhead_proto::vm::{share_of, share_path, share_tag, INIT, ROOT_SHARE_TAG};
use bulkhead_runtime::{ContainerSpec, MountSpec};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, chroot};
use std::fs;
use std::path::{Path, PathBuf};

/// Moves PID 1 onto a fresh tmpfs root, like `switch_root`. The initramfs itself is the kernel's
/// `rootfs`, which `pivot_root(2)` refuses to move away from (EINVAL), and the runtime pivots into the
/// container root. Our binary's copy in the initramfs is deleted first: the running process keeps its
/// mapping, and the guest gets the memory back.
pub(crate) fn leave_initramfs() -> Result<(), GuestError> {
    const NEW_ROOT: &str = "/newroot";
    fs::create_dir_all(NEW_ROOT).map_err(io_err("creating", Path::new(NEW_ROOT)))?;
    mount(
        Some("tmpfs"),
        NEW_ROOT,
        Some("tmpfs"),
        MsFlags::MS_NOSUID,
        Some("mode=0755"),
    )
    .map_err(|source| GuestError::Mount {
        fstype: "tmpfs",
        target: NEW_ROOT,
        source,
    })?;
    // Only memory is at stake if this fails.
    let _ = fs::remove_file(INIT);
    let switch = || -> nix::Result<()> {
        chdir(NEW_ROOT)?;
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)?;
        chroot(".")?;
        chdir("/")
    };
    switch().map_err(GuestError::SwitchRoot)
}

/// Mounts /dev, /proc, /sys and the cgroup2 hierarchy, and delegates the cpu, memory and pids
/// controllers to child cgroups so the runtime can apply limits.
pub(crate) fn mount_pseudo_filesystems() -> Result<(), GuestError> {
    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    // cgroup2 `favordynmods`: moving the container into its cgroup then skips an RCU grace period
    // (tens of milliseconds under binary translation), at a small cost to fork and exit.
    let mounts: [(&'static str, &'static str, MsFlags, Option<&str>); 4] = [
        ("devtmpfs", "/dev", MsFlags::MS_NOSUID, None),
        ("proc", "/proc", hardened | MsFlags::MS_NODEV, None),
        ("sysfs", "/sys", hardened | MsFlags::MS_NODEV, None),
        (
            "cgroup2",
            "/sys/fs/cgroup",
            hardened | MsFlags::MS_NODEV,
            Some("favordynmods"),
        ),
    ];
    for (fstype, target, flags, data) in mounts {
        fs::create_dir_all(target).map_err(io_err("creating", Path::new(target)))?;
        mount(Some(fstype), target, Some(fstype), flags, data).map_err(|source| {
            GuestError::Mount {
                fstype,
                target,
                source,
            }
        })?;
    }
    let control = Path::new("/sys/fs/cgroup/cgroup.subtree_control");
    fs::write(control, "+cpu +memory +pids").map_err(io_err("writing", control))
}

/// 9p's message size: the most one read or write carries. The virtio transport caps it at 512000 bytes
/// (125 pages), which this asks for. Measured with a 256 MiB file under TCG (bench/share-read.sh): the
/// kernel's default of 128 KiB read at about 40% of the throughput of the cap.
const SHARE_MSIZE: u32 = 512_000;

/// Where a bundle container's root directory (the host's 9p share [`ROOT_SHARE_TAG`]) is mounted.
const ROOT_SHARE_DIR: &str = "/run/bulkhead-root";

/// Mounts a bundle container's root directory, which the host shares in place of the two disks, and
/// returns where: 9P2000.L over virtio as the other shares, `cache=mmap` so that the container can map
/// its files shared and writable (a root holds databases; the default `cache=none` maps read-only),
/// nosuid and nodev (the runtime's own bind of the root lifts nosuid, as for a root on the disks),
/// read-only for a read-only root.
pub(crate) fn mount_root_share(readonly: bool) -> Result<PathBuf, GuestError> {
    let target = Path::new(ROOT_SHARE_DIR);
    fs::create_dir_all(target).map_err(io_err("creating", target))?;
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if readonly {
        flags |= MsFlags::MS_RDONLY;
    }
    let options =
        format!("trans=virtio,version=9p2000.L,msize={SHARE_MSIZE},access=client,cache=mmap");
    mount(
        Some(ROOT_SHARE_TAG),
        target,
        Some("9p"),
        flags,
        Some(options.as_str()),
    )
    .map_err(|source| GuestError::Share {
        tag: ROOT_SHARE_TAG.to_string(),
        target: ROOT_SHARE_DIR.to_string(),
        source,
    })?;
    Ok(target.to_path_buf())
}

/// Unmounts the root share, if [`mount_root_share`] mounted it (9p writes through: nothing to flush).
pub(crate) fn unmount_root_share() -> Result<(), nix::Error> {
    match umount2(ROOT_SHARE_DIR, MntFlags::UMOUNT_NOFOLLOW) {
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => Ok(()),
        other => other,
    }
}

/// Mounts each share the container binds at its path (the host named it in the bind's source: the share
/// itself, or a copied file in the file-binds share): 9P2000.L over virtio, `access=client` so this kernel
/// checks the container's users against the owners and modes the host keeps, nosuid and nodev (QEMU
/// serves no device nodes either), read-only when every bind into it is (QEMU's server refuses writes to
/// such a share anyway).
pub(crate) fn mount_shares(spec: &ContainerSpec) -> Result<(), GuestError> {
    let mut binds = std::collections::BTreeMap::new();
    for mount in &spec.workload.mounts {
        if let MountSpec::Bind {
            source, readonly, ..
        } = mount
        {
            let index = share_of(source).ok_or_else(|| GuestError::NotShared(source.clone()))?;
            let all_readonly = binds.entry(index).or_insert(true);
            *all_readonly &= *readonly;
        }
    }
    for (index, readonly) in binds {
        let (tag, target) = (share_tag(index), share_path(index));
        fs::create_dir_all(&target).map_err(io_err("creating", Path::new(&target)))?;
        let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        if readonly {
            flags |= MsFlags::MS_RDONLY;
        }
        let options = format!("trans=virtio,version=9p2000.L,msize={SHARE_MSIZE},access=client");
        mount(
            Some(tag.as_str()),
            target.as_str(),
            Some("9p"),
            flags,
            Some(options.as_str()),
        )
        .map_err(|source| GuestError::Share {
            tag,
            target,
            source,
        })?;
    }
    Ok(())
}
