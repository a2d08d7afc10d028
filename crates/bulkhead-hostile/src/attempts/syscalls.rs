//! Syscalls that Docker's default profile and capability set deny a container, each made raw. Where a
//! success would do harm, the arguments are invalid so that the kernel's answer tells only whether the
//! permission check was passed (see [`judge`]).

use super::sys::{self, cstr, errno, errno_name, in_child, judge, scratch_dir, REFUSED};
use crate::report::Row;

pub fn mount() -> Row {
    let dir = match scratch_dir("mnt") {
        Ok(dir) => dir,
        Err(e) => return Row::blocked("mount", format!("no scratch dir: {e}")),
    };
    let ret = sys::mount("none", &dir, "tmpfs", 0, "");
    let row = judge("mount", ret, REFUSED);
    if ret == 0 {
        let target = cstr(dir.to_str().unwrap_or_default());
        // SAFETY: unmounts what was just mounted.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
    let _ = std::fs::remove_dir(&dir);
    row
}

fn unshare(attempt: &str, flag: libc::c_int) -> Row {
    // SAFETY: unshare in a throwaway child.
    judge(
        attempt,
        in_child(|| unsafe { libc::unshare(flag) } as i64),
        REFUSED,
    )
}

pub fn unshare_user() -> Row {
    unshare("unshare-user", libc::CLONE_NEWUSER)
}

pub fn unshare_mount() -> Row {
    unshare("unshare-mount", libc::CLONE_NEWNS)
}

pub fn unshare_net() -> Row {
    unshare("unshare-net", libc::CLONE_NEWNET)
}

/// Joining pid 1's namespaces needs CAP_SYS_ADMIN whichever namespaces they are, so any success is a hole
/// (in a container pid 1 is its own; the host's are tried through leaked fds and pids elsewhere).
pub fn setns() -> Row {
    let mut joined = Vec::new();
    let mut refused = Vec::new();
    for ns in ["mnt", "net", "pid", "uts", "ipc", "cgroup", "user"] {
        let file = match std::fs::File::open(format!("/proc/1/ns/{ns}")) {
            Ok(file) => file,
            Err(e) => {
                refused.push(format!("{ns}: open {e}"));
                continue;
            }
        };
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        // SAFETY: setns in a throwaway child on an open namespace fd.
        match in_child(|| unsafe { libc::setns(fd, 0) } as i64) {
            0 => joined.push(ns),
            _ => refused.push(format!("{ns}: {}", errno_name(errno()))),
        }
    }
    if joined.is_empty() {
        Row::blocked("setns", refused.join(", "))
    } else {
        Row::escaped("setns", format!("joined pid 1's {}", joined.join(", ")))
    }
}

pub fn keyctl() -> Row {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let name = cstr("escape-probe");
    // SAFETY: a new session keyring, in a throwaway child.
    let ret = in_child(|| unsafe {
        libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr())
    });
    judge("keyctl", ret, REFUSED)
}

pub fn bpf() -> Row {
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_TYPE_ARRAY: u32 = 2;
    // union bpf_attr for MAP_CREATE: map_type, key_size, value_size, max_entries; the rest zero.
    let mut attr = [0u32; 32];
    attr[..4].copy_from_slice(&[BPF_MAP_TYPE_ARRAY, 4, 4, 1]);
    // SAFETY: attr is a zeroed bpf_attr of the given size.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    close_if_fd(ret);
    judge("bpf", ret, REFUSED)
}

pub fn perf_event_open() -> Row {
    const PERF_TYPE_SOFTWARE: u32 = 1;
    const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;
    const DISABLED: u64 = 1;
    const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
    // struct perf_event_attr (version 0, 64 bytes): type, size, config, ..., flags at byte 40.
    let mut attr = [0u64; 8];
    attr[0] = PERF_TYPE_SOFTWARE as u64 | (64 << 32);
    attr[1] = PERF_COUNT_SW_CPU_CLOCK;
    attr[5] = DISABLED;
    // SAFETY: a disabled software counter on this process, any cpu.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            0,
            -1,
            -1,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    close_if_fd(ret);
    judge("perf_event_open", ret, REFUSED)
}

/// The unprivileged mode (user-space faults only), which the sysctl `vm.unprivileged_userfaultfd` does
/// not govern.
pub fn userfaultfd() -> Row {
    const UFFD_USER_MODE_ONLY: libc::c_long = 1;
    // SAFETY: creates an fd, closed below.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_userfaultfd,
            libc::O_CLOEXEC as libc::c_long | UFFD_USER_MODE_ONLY,
        )
    };
    close_if_fd(ret);
    judge("userfaultfd", ret, REFUSED)
}

/// A flag no kernel knows: EINVAL comes only after CAP_SYS_BOOT and the lockdown checks.
const UNKNOWN_KEXEC_FLAG: libc::c_ulong = 0x8000;

pub fn kexec_load() -> Row {
    // SAFETY: zero segments with an invalid flag: nothing can be loaded.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_kexec_load,
            0,
            0,
            std::ptr::null::<u8>(),
            UNKNOWN_KEXEC_FLAG,
        )
    };
    judge("kexec_load", ret, REFUSED)
}

pub fn kexec_file_load() -> Row {
    let empty = cstr("");
    // SAFETY: invalid fds and flag: nothing can be loaded.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_kexec_file_load,
            -1,
            -1,
            1,
            empty.as_ptr(),
            UNKNOWN_KEXEC_FLAG,
        )
    };
    judge("kexec_file_load", ret, REFUSED)
}

pub fn init_module() -> Row {
    let params = cstr("");
    // SAFETY: an empty image (ENOEXEC once CAP_SYS_MODULE was checked).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_init_module,
            std::ptr::null::<u8>(),
            0,
            params.as_ptr(),
        )
    };
    judge("init_module", ret, REFUSED)
}

pub fn finit_module() -> Row {
    let params = cstr("");
    // SAFETY: no fd (EBADF once CAP_SYS_MODULE was checked).
    let ret = unsafe { libc::syscall(libc::SYS_finit_module, -1, params.as_ptr(), 0) };
    judge("finit_module", ret, REFUSED)
}

/// The "shocker" attack: a handle for inode 2 (the root of most file systems) opened relative to a
/// mount of the container, which would reach the file system's root beyond the container's.
pub fn open_by_handle_at() -> Row {
    #[repr(C)]
    struct FileHandle {
        handle_bytes: u32,
        handle_type: i32,
        f_handle: [u32; 2],
    }
    const FILEID_INO32_GEN: i32 = 1;
    let handle = FileHandle {
        handle_bytes: 8,
        handle_type: FILEID_INO32_GEN,
        f_handle: [2, 0],
    };
    let root = match std::fs::File::open("/") {
        Ok(root) => root,
        Err(e) => return Row::blocked("open_by_handle_at", format!("open /: {e}")),
    };
    // SAFETY: a valid file_handle and an open directory fd.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            std::os::fd::AsRawFd::as_raw_fd(&root),
            &handle as *const FileHandle,
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    close_if_fd(ret);
    judge("open_by_handle_at", ret, REFUSED)
}

/// Sets the wall clock to what it reads (the least harm a success can do).
pub fn clock_settime() -> Row {
    // SAFETY: a zeroed timespec filled by clock_gettime.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    // SAFETY: valid pointer.
    let ret = unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &now) } as i64;
    judge("clock_settime", ret, REFUSED)
}

pub fn iopl() -> Row {
    // SAFETY: raises this probe's I/O privilege level (it then does no port I/O).
    let ret = unsafe { libc::syscall(libc::SYS_iopl, 3) };
    judge("iopl", ret, REFUSED)
}

pub fn ioperm() -> Row {
    // SAFETY: grants this probe access to port 0x80 (it then does no port I/O).
    let ret = unsafe { libc::syscall(libc::SYS_ioperm, 0x80, 1, 1) };
    judge("ioperm", ret, REFUSED)
}

pub fn syslog_read() -> Row {
    const SYSLOG_ACTION_READ_ALL: libc::c_int = 3;
    let mut buf = [0u8; 4096];
    // SAFETY: reads into a buffer of the given length.
    let ret = unsafe {
        libc::klogctl(
            SYSLOG_ACTION_READ_ALL,
            buf.as_mut_ptr().cast(),
            buf.len() as libc::c_int,
        )
    } as i64;
    judge("syslog-read", ret, REFUSED)
}

/// Clears the kernel log if allowed (in a container this must be refused).
pub fn syslog_clear() -> Row {
    const SYSLOG_ACTION_CLEAR: libc::c_int = 5;
    // SAFETY: no buffer is used by this action.
    let ret = unsafe { libc::klogctl(SYSLOG_ACTION_CLEAR, std::ptr::null_mut(), 0) } as i64;
    judge("syslog-clear", ret, REFUSED)
}

/// A wrong second magic number: EINVAL comes only after the CAP_SYS_BOOT check.
pub fn reboot() -> Row {
    const MAGIC1: libc::c_long = 0xfee1dead;
    // SAFETY: rejected by the kernel whatever the caller's privileges.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_reboot,
            MAGIC1,
            0,
            libc::LINUX_REBOOT_CMD_RESTART,
            std::ptr::null::<u8>(),
        )
    };
    judge("reboot", ret, REFUSED)
}

fn socket(attempt: &str, family: libc::c_int, kind: libc::c_int) -> Row {
    // SAFETY: creates a socket, closed below.
    let ret = unsafe { libc::socket(family, kind | libc::SOCK_CLOEXEC, 0) } as i64;
    close_if_fd(ret);
    // A kernel without the family has nothing to reach.
    judge(attempt, ret, &[REFUSED, &[libc::EAFNOSUPPORT]].concat())
}

pub fn socket_vsock() -> Row {
    socket("socket-vsock", libc::AF_VSOCK, libc::SOCK_STREAM)
}

pub fn socket_alg() -> Row {
    socket("socket-alg", libc::AF_ALG, libc::SOCK_SEQPACKET)
}

fn close_if_fd(ret: libc::c_long) {
    if ret >= 0 {
        // SAFETY: closes the fd the attempt just made.
        unsafe { libc::close(ret as libc::c_int) };
    }
}
