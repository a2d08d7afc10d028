//! The VM guest's PID 1: what the static `bulkhead` binary does as the initramfs `/init`. It moves off
//! the initramfs onto a tmpfs root (module `filesystems`), mounts the kernel's pseudo filesystems, brings up
//! `lo`, opens the agent's virtio-serial port (module `port`), mounts the host directories the container
//! binds (virtio-9p shares), configures the NICs `Start` lists (module `nic`),
//! assembles the container rootfs from the two disks (the image's erofs and
//! the container's ext4) with `bulkhead-runtime` (or mounts a bundle container's root directory, a 9p
//! share, when the spec says `root_share`), serves the container with `bulkhead-agent`, then
//! unmounts, syncs and powers off. Asked to `Export` instead of `Start`, it streams the changes on the
//! writable disk to the host as a layer tar (module `export`) and powers off.
//!
//! Every failure is written to the serial console, sent to the host as an `Error` frame when the port is
//! open (before the handshake if the guest never got that far: the host reports the guest's own message),
//! and ends in a power-off: the guest never hangs waiting for a host that will not come.
//!
//! This crate is the guest side only. The host side (kernel, initramfs, QEMU) is `bulkhead-vm`, and the
//! two meet only in `bulkhead-proto`: the frames, and the names both must agree on
//! ([`bulkhead_proto::vm`]). The host therefore never links the guest's code paths, nor the guest the
//! host's.

mod error;
mod export;
mod filesystems;
mod nic;
mod port;

use bulkhead_proto::vm::{IMAGE_DISK, WRITABLE_DISK};
use bulkhead_proto::Message;
use bulkhead_runtime::ContainerSpec;
use error::{io_err, GuestError};
use nix::sys::reboot::{reboot, RebootMode};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

/// Where the runtime assembles the container rootfs.
const ROOTFS_DIR: &str = "/run/bulkhead";
/// How long to wait for the port to appear and for the host to connect to it.
const PORT_TIMEOUT: Duration = Duration::from_secs(30);

/// PID 1's entry point. Never returns: the VM powers off.
pub fn main() -> ! {
    if let Err(e) = run() {
        console(&format!("bulkhead guest: {e}"));
    }
    power_off()
}

fn run() -> Result<(), GuestError> {
    filesystems::leave_initramfs()?;
    filesystems::mount_pseudo_filesystems()?;
    // The container shares the guest's network namespace: `lo`, and the NICs `Start` describes.
    bulkhead_runtime::bring_loopback_up().map_err(GuestError::Loopback)?;
    let port = port::open_agent_port(PORT_TIMEOUT)?;
    let served = receive_request(&port).and_then(|request| match request {
        Message::Start { spec, nics } => {
            nic::configure(&nics).and_then(|()| serve_container(&port, *spec))
        }
        Message::Export => export::export(&port),
        other => Err(GuestError::UnknownRequest(format!("{other:?}"))),
    });
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

/// Reads the host's `Hello` (which must be of our version) and its request: `Start` or `Export`. Our own
/// `Hello` goes out once the request can be served, so a guest that cannot mount its disks answers
/// with an `Error` in its place, which the host reports as the guest's own words.
fn receive_request(port: &File) -> Result<Message, GuestError> {
    match Message::recv(&mut &*port).map_err(GuestError::Proto)? {
        Message::Hello { version } if version == bulkhead_proto::VERSION => {}
        Message::Hello { version } => {
            return Err(GuestError::Proto(bulkhead_proto::ProtoError::Version(
                version,
            )))
        }
        other => return Err(GuestError::UnknownRequest(format!("{other:?}"))),
    }
    Message::recv(&mut &*port).map_err(GuestError::Proto)
}

fn serve_container(port: &File, spec: ContainerSpec) -> Result<(), GuestError> {
    filesystems::mount_shares(&spec)?;
    let rootfs = if spec.root_share {
        filesystems::mount_root_share(spec.workload.readonly_rootfs)?
    } else {
        bulkhead_runtime::rootfs::assemble(
            Path::new(IMAGE_DISK),
            Path::new(WRITABLE_DISK),
            Path::new(ROOTFS_DIR),
        )
        .map_err(GuestError::Rootfs)?
    };
    Message::Hello {
        version: bulkhead_proto::VERSION,
    }
    .send(&mut &*port)
    .map_err(GuestError::Proto)?;
    let conn: OwnedFd = port
        .try_clone()
        .map_err(io_err("duplicating", Path::new("agent port")))?
        .into();
    let status = bulkhead_agent::serve_started(conn, spec, &rootfs).map_err(GuestError::Agent)?;
    console(&format!(
        "bulkhead guest: container exited with code {}",
        status.code
    ));
    Ok(())
}

/// Unmounts the container rootfs (its disks, or the root share) and syncs, so the writable disk is left
/// clean.
fn unmount_container() {
    nix::unistd::sync();
    if let Err(e) = bulkhead_runtime::rootfs::disassemble(Path::new(ROOTFS_DIR)) {
        console(&format!(
            "bulkhead guest: unmounting the container rootfs: {e}"
        ));
    }
    if let Err(e) = filesystems::unmount_root_share() {
        console(&format!("bulkhead guest: unmounting the root share: {e}"));
    }
    nix::unistd::sync();
}

/// Writes one line to the serial console (PID 1's stderr is `/dev/console`).
fn console(line: &str) {
    // Nothing else can report a console failure.
    let _ = writeln!(io::stderr(), "{line}");
}

/// Syncs and resets the VM; with `reboot=t` and QEMU's `-no-reboot`, QEMU exits. If even that fails,
/// PID 1 exits, the kernel panics, and `panic=-1` resets the VM the same way.
fn power_off() -> ! {
    nix::unistd::sync();
    let Err(e) = reboot(RebootMode::RB_AUTOBOOT);
    console(&format!("bulkhead guest: reboot: {e}"));
    std::process::exit(1)
}
