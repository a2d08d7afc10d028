//! What the static `bulkhead` binary does as PID 1 (`/init`) inside the VM: move off the initramfs onto
//! a tmpfs root, mount the kernel's pseudo filesystems, bring up `lo`, open the `bulkhead.agent`
//! virtio-serial port, assemble the container rootfs from the two disks (erofs `/dev/vda` + ext4 `/dev/vdb`), serve the
//! container with the agent, then unmount, sync and power off. Every failure is written to the serial
//! console, reported as an `Error` frame when the port is open, and ends in a power-off: the guest never
//! hangs waiting for a host that will not come.

use crate::qemu::AGENT_PORT;
use bulkhead_proto::Message;
use nix::mount::{mount, MsFlags};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::reboot::{reboot, RebootMode};
use nix::unistd::{chdir, chroot};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The image's erofs artifact (first virtio-blk disk).
pub const LOWER_DISK: &str = "/dev/vda";
/// The container's writable ext4 disk (second virtio-blk disk).
pub const UPPER_DISK: &str = "/dev/vdb";
/// Where the runtime assembles the container rootfs.
pub const ROOTFS_DIR: &str = "/run/bulkhead";
/// How long to wait for the port to appear and for the host to connect to it.
const PORT_TIMEOUT: Duration = Duration::from_secs(30);
const PORT_POLL: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("mounting {fstype} on {target}: {source}")]
    Mount {
        fstype: &'static str,
        target: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("switching from the initramfs to a tmpfs root: {0}")]
    SwitchRoot(#[source] nix::Error),
    #[error("no virtio-serial port named {AGENT_PORT} appeared within {0:?}")]
    NoAgentPort(Duration),
    #[error("the host did not connect to the agent port within {0:?}")]
    HostAbsent(Duration),
    #[error("polling the agent port: {0}")]
    Poll(#[source] nix::Error),
    #[error("bringing up the loopback interface: {0}")]
    Loopback(#[source] bulkhead_runtime::RuntimeError),
    #[error("assembling the container rootfs: {0}")]
    Rootfs(#[source] bulkhead_runtime::RuntimeError),
    #[error("serving the container: {0}")]
    Agent(#[source] bulkhead_agent::AgentError),
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> GuestError {
    let path = path.to_path_buf();
    move |source| GuestError::Io { op, path, source }
}

/// PID 1's entry point. Never returns: the VM powers off.
pub fn main() -> ! {
    if let Err(e) = run() {
        console(&format!("bulkhead guest: {e}"));
    }
    power_off()
}

fn run() -> Result<(), GuestError> {
    leave_initramfs()?;
    mount_pseudo_filesystems()?;
    // The container shares the guest's network namespace, which has nothing but `lo`.
    bulkhead_runtime::bring_loopback_up().map_err(GuestError::Loopback)?;
    let port = open_agent_port(PORT_TIMEOUT)?;
    let served = serve_container(&port);
    if let Err(e) = &served {
        // Best effort: the host may already be gone, and the console line is written regardless.
        let _ = Message::Error {
            stream: 0,
            message: e.to_string(),
        }
        .send(&mut &port);
    }
    unmount_container();
    served
}

fn serve_container(port: &File) -> Result<(), GuestError> {
    let rootfs = bulkhead_runtime::rootfs::assemble(
        Path::new(LOWER_DISK),
        Path::new(UPPER_DISK),
        Path::new(ROOTFS_DIR),
    )
    .map_err(GuestError::Rootfs)?;
    let conn: OwnedFd = port
        .try_clone()
        .map_err(io_err("duplicating", Path::new("agent port")))?
        .into();
    let status = bulkhead_agent::serve(conn, &rootfs).map_err(GuestError::Agent)?;
    console(&format!(
        "bulkhead guest: container exited with code {}",
        status.code
    ));
    Ok(())
}

/// Moves PID 1 onto a fresh tmpfs root, like `switch_root`. The initramfs itself is the kernel's
/// `rootfs`, which `pivot_root(2)` refuses to move away from (EINVAL), and the runtime pivots into the
/// container root. Our binary's copy in the initramfs is deleted first: the running process keeps its
/// mapping, and the guest gets the memory back.
pub fn leave_initramfs() -> Result<(), GuestError> {
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
    let _ = fs::remove_file("/init");
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
pub fn mount_pseudo_filesystems() -> Result<(), GuestError> {
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

/// Finds the virtio-serial port named [`AGENT_PORT`], opens it, and waits until the host side is
/// connected (before that, reads would return end of file at once).
pub fn open_agent_port(timeout: Duration) -> Result<File, GuestError> {
    let deadline = Instant::now() + timeout;
    let device = loop {
        if let Some(device) = find_port(Path::new("/sys/class/virtio-ports"))? {
            break device;
        }
        if Instant::now() >= deadline {
            return Err(GuestError::NoAgentPort(timeout));
        }
        std::thread::sleep(PORT_POLL);
    };
    let port = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&device)
        .map_err(io_err("opening", &device))?;
    // virtio_console reports POLLHUP while no host is connected to the port.
    loop {
        let mut fds = [PollFd::new(port.as_fd(), PollFlags::POLLOUT)];
        poll(&mut fds, PollTimeout::ZERO).map_err(GuestError::Poll)?;
        let hup = fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP));
        if !hup {
            return Ok(port);
        }
        if Instant::now() >= deadline {
            return Err(GuestError::HostAbsent(timeout));
        }
        std::thread::sleep(PORT_POLL);
    }
}

/// `/dev/<vportNpM>` of the port whose sysfs `name` is [`AGENT_PORT`].
fn find_port(class_dir: &Path) -> Result<Option<PathBuf>, GuestError> {
    let entries = match fs::read_dir(class_dir) {
        Ok(entries) => entries,
        // The class appears with the first port; until then there is nothing to find.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("listing", class_dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("listing", class_dir))?;
        let name = fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        if name.trim_end() == AGENT_PORT {
            return Ok(Some(Path::new("/dev").join(entry.file_name())));
        }
    }
    Ok(None)
}

/// Unmounts the container rootfs and its disks and syncs, so the writable disk is left clean.
fn unmount_container() {
    nix::unistd::sync();
    if let Err(e) = bulkhead_runtime::rootfs::disassemble(Path::new(ROOTFS_DIR)) {
        console(&format!(
            "bulkhead guest: unmounting the container rootfs: {e}"
        ));
    }
    nix::unistd::sync();
}

/// Writes one line to the serial console (PID 1's stderr is `/dev/console`).
pub fn console(line: &str) {
    // Nothing else can report a console failure.
    let _ = writeln!(io::stderr(), "{line}");
}

/// Syncs and resets the VM; with `reboot=t` and QEMU's `-no-reboot`, QEMU exits. If even that fails,
/// PID 1 exits, the kernel panics, and `panic=-1` resets the VM the same way.
pub fn power_off() -> ! {
    nix::unistd::sync();
    let Err(e) = reboot(RebootMode::RB_AUTOBOOT);
    console(&format!("bulkhead guest: reboot: {e}"));
    std::process::exit(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_port_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for (port, name) in [("vport0p0", "other\n"), ("vport0p1", "bulkhead.agent\n")] {
            fs::create_dir(dir.path().join(port)).unwrap();
            fs::write(dir.path().join(port).join("name"), name).unwrap();
        }
        assert_eq!(
            find_port(dir.path()).unwrap(),
            Some(PathBuf::from("/dev/vport0p1"))
        );
        assert_eq!(find_port(&dir.path().join("absent")).unwrap(), None);
    }
}
