//! Device nodes: made with mknod (the host's disks), shipped inside the image, and the guest's serial
//! console that a compromised guest floods.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::sys::{self, cstr, errno, errno_name, scratch_dir};
use crate::report::Row;
use crate::{env, IMAGE_DEVICES};

/// Whether a node opens and reads: `Ok` with what it read, or the errno of the step that failed.
fn open_and_read(path: &Path) -> Result<usize, String> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            format!(
                "open: {}",
                e.raw_os_error().map_or(e.to_string(), errno_name)
            )
        })?;
    let mut buf = [0u8; 512];
    file.read(&mut buf).map_err(|e| {
        format!(
            "read: {}",
            e.raw_os_error().map_or(e.to_string(), errno_name)
        )
    })
}

/// Block devices the kernel shows in /sys/dev/block (all of them, in process mode the host's), plus
/// those the suite names (the host's root device) and sda.
fn block_devices() -> Vec<(u32, u32)> {
    let mut devices = vec![(8, 0)];
    let named = std::env::var(env::HOST_DISKS).unwrap_or_default();
    let listed = std::fs::read_dir("/sys/dev/block")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned());
    for entry in named.split(',').map(str::to_string).chain(listed) {
        if let Some((major, minor)) = entry.split_once(':') {
            if let (Ok(major), Ok(minor)) = (major.trim().parse(), minor.trim().parse()) {
                if !devices.contains(&(major, minor)) {
                    devices.push((major, minor));
                }
            }
        }
    }
    devices
}

/// mknod of each disk in the container's own writable tree, then open and read it.
pub fn mknod_host_disks() -> Row {
    let dir = match scratch_dir("dev") {
        Ok(dir) => dir,
        Err(e) => return Row::blocked("mknod-host-disk", format!("no scratch dir: {e}")),
    };
    let mut read = Vec::new();
    let mut refused = Vec::new();
    for (major, minor) in block_devices() {
        let node = dir.join(format!("b{major}-{minor}"));
        let path = cstr(node.to_str().unwrap_or_default());
        // SAFETY: valid C string; a block node in the probe's scratch directory.
        let made = unsafe {
            libc::mknod(
                path.as_ptr(),
                libc::S_IFBLK | 0o600,
                libc::makedev(major, minor),
            )
        };
        if made != 0 {
            refused.push(format!("{major}:{minor} mknod: {}", errno_name(errno())));
            continue;
        }
        match open_and_read(&node) {
            Ok(_) => read.push(format!("{major}:{minor}")),
            Err(e) => refused.push(format!("{major}:{minor} {e}")),
        }
        let _ = std::fs::remove_file(&node);
    }
    let _ = std::fs::remove_dir(&dir);
    if read.is_empty() {
        Row::blocked("mknod-host-disk", refused.join(", "))
    } else {
        Row::escaped("mknod-host-disk", format!("opened {}", read.join(", ")))
    }
}

/// The nodes the suite's image ships ([`IMAGE_DEVICES`]): none may open.
pub fn image_device_nodes() -> Row {
    let mut opened = Vec::new();
    let mut refused = Vec::new();
    for device in &IMAGE_DEVICES {
        match open_and_read(Path::new(device.path)) {
            Ok(_) => opened.push(device.path),
            // A read error after a successful open still means the node opened.
            Err(e) if e.starts_with("read:") => opened.push(device.path),
            Err(e) => refused.push(format!("{} {e}", device.path)),
        }
    }
    if opened.is_empty() {
        Row::blocked("image-device-nodes", refused.join(", "))
    } else {
        Row::escaped(
            "image-device-nodes",
            format!("opened {}", opened.join(", ")),
        )
    }
}

/// What a compromised guest kernel could do to its console: mounts a devtmpfs (the container must be
/// privileged, inside its VM) and writes `bytes` of text to the first serial port, whose host side is a
/// log file. Returns what it managed to write.
pub fn flood_console(bytes: u64) -> Result<u64, String> {
    let dir = scratch_dir("devtmpfs").map_err(|e| format!("scratch dir: {e}"))?;
    let ret = sys::mount("none", &dir, "devtmpfs", 0, "");
    if ret != 0 {
        return Err(format!("mount devtmpfs: {}", errno_name(errno())));
    }
    let mut serial = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(dir.join("ttyS0"))
        .map_err(|e| format!("open ttyS0: {e}"))?;
    let mut line = vec![b'A'; 1023];
    line.push(b'\n');
    let mut written = 0;
    while written < bytes {
        match serial.write(&line) {
            Ok(n) => written += n as u64,
            Err(e) => return Err(format!("write after {written} bytes: {e}")),
        }
    }
    Ok(written)
}
