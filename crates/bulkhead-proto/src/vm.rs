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
/// container spec names that path (or a [`file_bind_path`] in it) as the bind's source.
pub const SHARES_DIR: &str = "/shares";

/// The virtio-9p mount tag of share `index`.
pub fn share_tag(index: usize) -> String {
    format!("share{index}")
}

/// The guest path share `index` is mounted at.
pub fn share_path(index: usize) -> String {
    format!("{SHARES_DIR}/{index}")
}

/// The guest path of file bind `index` (counted among the file binds) in the file-binds share `share`:
/// a VM cannot share a single file, so the host copies each bound file to `<index>/<name>` of one staging
/// directory and shares that directory, after the shared directories.
pub fn file_bind_path(share: usize, index: usize, name: &std::ffi::OsStr) -> std::path::PathBuf {
    std::path::Path::new(&share_path(share))
        .join(index.to_string())
        .join(name)
}

/// The share a bind's guest source lies in: share `i` for [`share_path`]`(i)` or a path below it (a
/// [`file_bind_path`]); `None` for any other path.
pub fn share_of(source: &std::path::Path) -> Option<usize> {
    let mut parts = source.strip_prefix(SHARES_DIR).ok()?.components();
    match parts.next()? {
        std::path::Component::Normal(index) => {
            let index = index.to_str()?;
            // Only the form `share_path` writes: no sign, no leading zero.
            if !index.bytes().all(|b| b.is_ascii_digit()) || index != "0" && index.starts_with('0')
            {
                return None;
            }
            index.parse().ok()
        }
        _ => None,
    }
}

/// The virtio-9p mount tag of a bundle container's root directory, which the guest mounts as the
/// container root in place of the two disks (its spec says so: `ContainerSpec::root_share`).
pub const ROOT_SHARE_TAG: &str = "root";

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::path::Path;

    #[test]
    fn binds_name_their_share() {
        assert_eq!(share_of(Path::new(&share_path(3))), Some(3));
        let file = file_bind_path(2, 0, OsStr::new("hosts"));
        assert_eq!(file, Path::new("/shares/2/0/hosts"));
        assert_eq!(share_of(&file), Some(2));
        for other in [
            "/shares",
            "/sharesx/1",
            "/etc/hosts",
            "/shares/01",
            "/shares/+1",
            "/shares/x",
        ] {
            assert_eq!(share_of(Path::new(other)), None, "{other}");
        }
    }
}
