//! QEMU's own seccomp allow list, loaded before `exec` under QEMU's `-sandbox on` (a deny list QEMU adds
//! itself once running). No `socket`: QEMU gets its only socket from the host. Measured with `strace -f` on QEMU 7.2 under TCG over boots, container starts,
//! disk writes and syncs, console output and guest power-off; plus the KVM and coroutine calls QEMU makes
//! on hosts with KVM, and what the dynamic loader and `execve` itself need.
//!
//! Default action: kill the process. A call outside this list means QEMU runs code it does not run for
//! any guest we measured, most likely because the guest took it over; an error return would let such code
//! keep probing the host kernel, while a kill ends the VM (the container fails with QEMU's "killed by
//! SIGSYS") and is visible in the kernel's audit log.

use super::JailError;
use bulkhead_runtime::{ArgBitsRefused, SeccompProgram};
use libseccomp::ScmpAction;

const ALLOWED: &[&str] = &[
    // exec and the dynamic loader
    "execve",
    "brk",
    "arch_prctl",
    "access",
    "faccessat2",
    "newfstatat",
    "fstat",
    "stat",
    "lstat",
    "statx",
    "read",
    "pread64",
    "mmap",
    "mprotect",
    "munmap",
    "close",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "getrandom",
    "readlink",
    "readlinkat",
    "getcwd",
    // memory
    "madvise",
    "mremap",
    "memfd_create",
    "ftruncate",
    "set_mempolicy",
    "get_mempolicy",
    "mbind",
    "membarrier",
    "mlock",
    "munlock",
    "sysinfo",
    // threads, signals, time
    "clone",
    "clone3",
    "futex",
    "exit",
    "exit_group",
    "gettid",
    "getpid",
    "tgkill",
    "sched_yield",
    "sched_getaffinity",
    "sched_setaffinity",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigtimedwait",
    "sigaltstack",
    "restart_syscall",
    "clock_gettime",
    "clock_getres",
    "clock_nanosleep",
    "nanosleep",
    "gettimeofday",
    "timerfd_create",
    "timerfd_settime",
    "prctl",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "uname",
    // event loop
    "ppoll",
    "poll",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "eventfd2",
    "signalfd4",
    "pipe2",
    "write",
    "writev",
    // readv/writev also carry the network: virtio-net frames through the passed tap descriptor (whose
    // setup ioctls, TUNGETIFF and TUNSETOFFLOAD/TUNSETVNETHDRSZ, fall under `ioctl` below).
    "readv",
    "fcntl",
    "dup",
    "dup3",
    "lseek",
    "ioctl",
    // disks (virtio-blk through the thread pool; io_uring is refused, see UNSUPPORTED)
    "pwrite64",
    "preadv",
    "pwritev",
    "preadv2",
    "pwritev2",
    "fdatasync",
    "fsync",
    "fallocate",
    "statfs",
    "fstatfs",
    "getdents64",
    "fchdir",
    // shared directories (QEMU's 9p local backend, passthrough model): entries made and changed
    // relative to directory descriptors, modes and xattrs through /proc/self/fd paths
    "symlinkat",
    "linkat",
    "unlinkat",
    "renameat",
    "renameat2",
    "fchownat",
    "fchown",
    "utimensat",
    "lgetxattr",
    "llistxattr",
    "lsetxattr",
    "lremovexattr",
    "fgetxattr",
    "flistxattr",
    "fsetxattr",
    "fremovexattr",
    "getxattr",
    "listxattr",
    "setxattr",
    "removexattr",
    // the agent's socket (virtio-serial chardev)
    "sendmsg",
    "recvmsg",
    "sendto",
    "recvfrom",
    "getsockname",
    "getpeername",
    "getsockopt",
    "setsockopt",
    "shutdown",
    // QEMU's own -sandbox
    "seccomp",
    // Not QEMU's: what a busybox shell script standing in for it needs (the end-to-end tests' fake
    // QEMUs). Harmless here: without capabilities setuid/setgid can only set the jail's own ids, and
    // getppid returns 0 in the jail's pid namespace.
    "setuid",
    "setgid",
    "getppid",
    "dup2",
];

/// Refused with ENOSYS: QEMU probes io_uring at start (for its event loop and for `aio=io_uring`, which
/// we do not ask for) and falls back to ppoll and its thread pool, as on a kernel without it. io_uring is
/// a large kernel interface that a taken-over QEMU has no need to reach.
const UNSUPPORTED: &[&str] = &["io_uring_setup", "io_uring_enter", "io_uring_register"];

/// Modes the 9p server sets (setattr) or creates with: allowed, but never a setuid or setgid mode, which
/// fails with EPERM. QEMU keeps CAP_CHOWN, CAP_DAC_OVERRIDE and CAP_FOWNER to give files the guest's
/// owners and modes, so a guest could otherwise leave a setuid-root program in a host directory bound
/// into its VM, for any host user to run. (Without CAP_FSETID, a write or a chown clears these bits, so
/// an existing setuid program cannot be rewritten with them kept either.)
const SETUID_MODES_REFUSED: &[ArgBitsRefused] = &[
    mode_arg("chmod", 1),
    mode_arg("fchmod", 1),
    mode_arg("fchmodat", 2),
    mode_arg("open", 2),
    mode_arg("openat", 3),
    mode_arg("mkdirat", 2),
    mode_arg("mknodat", 2),
];

const fn mode_arg(name: &'static str, arg: u32) -> ArgBitsRefused {
    ArgBitsRefused {
        name,
        arg,
        bits: &[libc::S_ISUID as u64, libc::S_ISGID as u64],
    }
}

/// The compiled filter.
pub fn program() -> Result<SeccompProgram, JailError> {
    bulkhead_runtime::seccomp_allowlist(
        ALLOWED,
        UNSUPPORTED,
        SETUID_MODES_REFUSED,
        ScmpAction::KillProcess,
    )
    .map_err(|e| JailError::Seccomp(e.to_string()))
}
