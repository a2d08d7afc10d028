//! What a VM's host side and its guest's PID 1 agree on besides frames: where the kernel finds PID 1,
//! how the guest finds the agent's port, and which disk is which. The host (`bulkhead-vm`) wires each VM
//! to these names and the guest (`bulkhead-guest`) looks for them; neither crate links the other, so the
//! one definition lives here, in the host<->guest contract.

/// PID 1's binary in the initramfs, named to the kernel with `rdinit=`.
pub const INIT: &str = "/init";
/// Name of the virtio-serial port that carries the agent's session.
pub const AGENT_PORT: &str = "bulkhead.agent";
/// Guest device of the image's read-only erofs artifact: the first virtio-blk disk the host attaches.
pub const IMAGE_DISK: &str = "/dev/vda";
/// Guest device of the container's writable ext4 disk: the second virtio-blk disk the host attaches.
pub const WRITABLE_DISK: &str = "/dev/vdb";
/// Where the guest mounts the host directories shared with it (volumes and binds), one virtio-9p share
/// each: share `i` has the mount tag [`share_tag`]`(i)` and is mounted at [`share_path`]`(i)`, and the
/// container spec names that path as the bind's source.
pub const SHARES_DIR: &str = "/shares";

/// The virtio-9p mount tag of share `index`.
pub fn share_tag(index: usize) -> String {
    format!("share{index}")
}

/// The guest path share `index` is mounted at.
pub fn share_path(index: usize) -> String {
    format!("{SHARES_DIR}/{index}")
}

/// The virtio-9p mount tag of a bundle container's root directory, which the guest mounts as the
/// container root in place of the two disks (its spec says so: `ContainerSpec::root_share`).
pub const ROOT_SHARE_TAG: &str = "root";
