//! The VM isolation backend, host side: every container runs in its own QEMU microVM with its own guest
//! kernel.
//!
//! # Threat model
//!
//! The guest runs untrusted code with a kernel we must assume compromised: everything that comes out of
//! the VM is attacker-controlled. The host therefore
//! - talks to the guest only through one virtio-serial port carrying bounded `bulkhead-proto` frames
//!   (decoding errors end the session, never panic, never allocate beyond one bounded frame; an
//!   `Error` the guest sends in place of `Hello`, which becomes the container's error, is cut to a bounded
//!   length with control characters escaped), and through the serial console, which is only appended to a
//!   capped log file and never parsed;
//! - exposes exactly two disks: the image's erofs artifact, attached `readonly=on` and shared by every VM
//!   of that image (a guest can corrupt only its page cache view, never the file), and the container's own
//!   writable ext4 image, which the host treats as hostile data after the VM ran: it never mounts it, and
//!   takes its content back for process mode only as a tar from an export VM (`bulkhead-engine`); a
//!   bundle container's VM gets no disk but its caller's root directory, served by QEMU's 9p server like
//!   the shared directories below;
//! - gives the VM no shared host directory, no PCI bus, no option ROMs, no ACPI tables, and a network
//!   device only for an interface of the network namespace it was handed ([`network`]): a tap inside that
//!   namespace, so the guest reaches exactly what the namespace's veth reaches;
//! - runs QEMU with `-sandbox on` (seccomp: no spawning, no obsolete syscalls, no privilege changes) inside
//!   a [`jail`]: its own namespaces (QEMU is PID 1 of its pid namespace, so killing it ends the VM as a
//!   whole), an unprivileged uid, no capabilities, a cgroup, and a seccomp allow list of our own;
//! - keeps the console and QEMU's stderr bounded (`log_pump`).
//!
//! What remains exposed is QEMU's virtio-mmio, virtio-blk, virtio-serial and virtio-net device emulation and, under
//! KVM, the host kernel's KVM interface. Under TCG (no usable KVM) the isolation is the same, only slower.
//!
//! # Layout
//!
//! Pieces, one module each: [`kernel`] builds (and caches) the guest kernel from Debian's
//! linux-source package, [`initramfs`] packs the running static `bulkhead` binary as the guest's `/init`,
//! [`accel`] decides between KVM and TCG, [`qemu`] turns a [`VmConfig`] into a QEMU command line,
//! [`jail`] confines QEMU, [`network`] wires the VM into its network namespace, and [`host`] launches the VM and hands back the agent's stream. [`load_image`] reduces the built kernel to
//! what QEMU loads.
//!
//! What `/init` does inside the VM is the guest side, `bulkhead-guest`; this crate does not link it (nor
//! the agent), so host code can never call into guest code paths by accident. The two sides share only
//! `bulkhead-proto`: the frames, and in `bulkhead_proto::vm` the names both must agree on (the agent's
//! port, the disks' order, the init path).

pub mod accel;
mod cache;
pub mod host;
pub mod initramfs;
mod io_error;
pub mod jail;
pub mod kernel;
pub mod load_image;
mod log_pump;
pub mod network;
pub mod qemu;
mod tsc;

pub use accel::{Accel, AccelChoice, AccelKind};
pub use cache::default_cache_dir;
pub use host::{Vm, VmConfig, VmError, VmRoot};
pub use io_error::IoError;
pub use jail::{Confinement, JailError};
pub use kernel::Kernel;
