//! Loop devices over image files, configured with autoclear so that the device is freed
//! as soon as its last user (the mount, or this handle) goes away.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::error::RuntimeError;

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_SET_DIRECT_IO: libc::c_ulong = 0x4C08;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;

const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_DIRECT_IO: u32 = 16;

/// Attempts at grabbing a free device, which other processes may race us for.
const ATTACH_ATTEMPTS: u32 = 16;

/// `struct loop_info64` from <linux/loop.h>.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` from <linux/loop.h>.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// An attached loop device. Dropping the handle closes it; thanks to autoclear the
/// kernel then detaches the device unless it is mounted, in which case it is detached
/// at unmount.
#[derive(Debug)]
pub struct LoopDevice {
    path: PathBuf,
    // Held open so the device stays attached until it is mounted.
    _device: File,
}

impl LoopDevice {
    /// The device node, e.g. `/dev/loop3`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn info(file: &Path, flags: u32) -> LoopInfo64 {
    let mut name = [0u8; 64];
    let bytes = file.as_os_str().as_encoded_bytes();
    let n = bytes.len().min(63);
    name[..n].copy_from_slice(&bytes[..n]);
    LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: 0,
        lo_sizelimit: 0,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: flags,
        lo_file_name: name,
        lo_crypt_name: [0; 64],
        lo_encrypt_key: [0; 32],
        lo_init: [0; 2],
    }
}

/// Binds `backing` to `device` with `LOOP_CONFIGURE`, or the older two-step ioctls.
fn configure(device: &File, backing: &File, file: &Path, read_only: bool) -> Result<(), Errno> {
    let mut flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO;
    if read_only {
        flags |= LO_FLAGS_READ_ONLY;
    }
    let config = LoopConfig {
        fd: backing.as_raw_fd() as u32,
        block_size: 0,
        info: info(file, flags),
        reserved: [0; 8],
    };
    // SAFETY: LOOP_CONFIGURE reads a loop_config we own for the duration of the call.
    let rc = unsafe { libc::ioctl(device.as_raw_fd(), LOOP_CONFIGURE, &config) };
    if rc == 0 {
        return Ok(());
    }
    let err = Errno::last();
    if err != Errno::EINVAL && err != Errno::ENOTTY {
        return Err(err);
    }
    // Kernels before 5.8: attach, then set the flags (direct I/O separately).
    // SAFETY: LOOP_SET_FD takes the backing descriptor by value.
    if unsafe { libc::ioctl(device.as_raw_fd(), LOOP_SET_FD, backing.as_raw_fd()) } != 0 {
        return Err(Errno::last());
    }
    let status = info(file, flags & !LO_FLAGS_DIRECT_IO);
    // SAFETY: LOOP_SET_STATUS64 reads a loop_info64 we own for the duration of the call.
    if unsafe { libc::ioctl(device.as_raw_fd(), LOOP_SET_STATUS64, &status) } != 0 {
        let err = Errno::last();
        // SAFETY: detaching the device we attached above.
        unsafe { libc::ioctl(device.as_raw_fd(), LOOP_CLR_FD, 0) };
        return Err(err);
    }
    // Direct I/O is an optimisation: the device works without it.
    // SAFETY: LOOP_SET_DIRECT_IO takes an integer by value.
    let _ = unsafe { libc::ioctl(device.as_raw_fd(), LOOP_SET_DIRECT_IO, 1 as libc::c_ulong) };
    Ok(())
}

/// Attaches `file` to a free loop device (read-only if asked), with autoclear and direct I/O.
pub fn attach_loop(file: &Path, read_only: bool) -> Result<LoopDevice, RuntimeError> {
    let backing = File::options()
        .read(true)
        .write(!read_only)
        .custom_flags(libc::O_CLOEXEC)
        .open(file)
        .map_err(|e| RuntimeError::io("open loop backing file", file, e))?;
    let control = File::options()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .map_err(|e| RuntimeError::io("open", "/dev/loop-control", e))?;
    let mut last_error = Errno::EBUSY;
    for _ in 0..ATTACH_ATTEMPTS {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let number = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if number < 0 {
            return Err(RuntimeError::sys("LOOP_CTL_GET_FREE", Errno::last()));
        }
        let path = PathBuf::from(format!("/dev/loop{number}"));
        let device = File::options()
            .read(true)
            .write(!read_only)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| RuntimeError::io("open", &path, e))?;
        match configure(&device, &backing, file, read_only) {
            Ok(()) => {
                return Ok(LoopDevice {
                    path,
                    _device: device,
                })
            }
            // Someone else took this device between GET_FREE and our ioctl: try another.
            Err(Errno::EBUSY) => last_error = Errno::EBUSY,
            Err(e) => {
                return Err(RuntimeError::sys(
                    format!("configuring {} for {}", path.display(), file.display()),
                    e,
                ))
            }
        }
    }
    Err(RuntimeError::sys(
        format!("attaching {} to a loop device", file.display()),
        last_error,
    ))
}
