//! Network namespaces that outlive their processes: each is kept by a bind mount of its nsfs file at
//! `/run/bulkhead/netns/<id>` (as `ip netns` does under /run/netns), so the monitor can prepare one before
//! anything runs in it and a VM's QEMU or a second container can join it.
//!
//! Work inside a namespace happens on a short-lived thread that enters it: a namespace is a property of
//! the thread, and the caller (the monitor, which forks later) must stay in the host's.

use crate::netlink::Netlink;
use crate::{NetError, RUN_DIR};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Where the namespace of container `id` is kept.
pub fn path_for(id: &str) -> PathBuf {
    Path::new(RUN_DIR).join("netns").join(id)
}

/// Makes a new network namespace kept at `path`, with `lo` up. Fails if `path` exists.
pub fn create(path: &Path) -> Result<(), NetError> {
    let dir = path
        .parent()
        .ok_or_else(|| NetError::Invalid(format!("{} has no parent", path.display())))?;
    std::fs::create_dir_all(dir).map_err(NetError::path(dir))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(NetError::path(path))?;
    let made = std::thread::scope(|s| {
        s.spawn(|| -> Result<(), NetError> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(NetError::sys("unshare(CLONE_NEWNET)"))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(NetError::sys(format!(
                "binding a netns on {}",
                path.display()
            )))?;
            let mut nl = Netlink::open()?;
            let lo = nl.link_index("lo")?.ok_or_else(|| NetError::Netlink {
                what: "a new network namespace".into(),
                message: "it has no lo".into(),
            })?;
            nl.set_up(lo, None)
        })
        .join()
        .unwrap_or_else(|_| Err(NetError::Invalid("the netns thread panicked".into())))
    });
    if made.is_err() {
        let _ = remove(path);
    }
    made
}

/// Runs `f` on a thread inside the namespace kept at `path`.
pub fn run_in<T: Send>(
    path: &Path,
    f: impl FnOnce() -> Result<T, NetError> + Send,
) -> Result<T, NetError> {
    let ns = File::open(path).map_err(NetError::path(path))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(&ns, CloneFlags::CLONE_NEWNET)
                .map_err(NetError::sys(format!("entering {}", path.display())))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(NetError::Invalid("the netns thread panicked".into())))
    })
}

/// Unmounts and deletes a kept namespace; one already gone is not an error. Returns whether it was
/// there. The namespace itself ends once nothing else holds it, and the kernel then deletes its
/// interfaces (the container ends of veth pairs, and with them the host ends) in the background.
pub fn remove(path: &Path) -> Result<bool, NetError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(NetError::sys(format!("unmounting {}", path.display()))(e)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(NetError::path(path)(e)),
    }
}
