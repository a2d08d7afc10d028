//! The code that runs in the jailed child between `clone` and `exec`: only system calls on data the
//! parent prepared (no allocation, no locks: the parent may have other threads). A failing step writes
//! its number and errno to the error pipe and exits; a successful `execve` closes that pipe.

use bulkhead_runtime::SeccompProgram;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Every step, in order; the parent names a failure by its index.
pub const STEPS: &[&str] = &[
    "joining the cgroup",
    "making the mounts private",
    "mounting the jail's tmpfs",
    "creating a directory in the jail",
    "creating a bind-mount target",
    "bind-mounting a host file",
    "making a bind mount read-only",
    "pivot_root into the jail",
    "detaching the host's root",
    "making the jail root read-only",
    "setting rlimits",
    "placing the file descriptors",
    "setting the groups",
    "setting the gid",
    "dropping the capability bounding set",
    "setting the uid",
    "clearing the capabilities",
    "setting the parent-death signal",
    "setting no_new_privs",
    "loading the seccomp filter",
    "mounting the jail's procfs",
    "binding /proc/self/fd",
    "keeping the capabilities of the 9p server",
    "executing QEMU",
];

/// One bind mount into the jail.
pub struct BindPlan {
    pub source: CString,
    /// Host-side path under the jail.
    pub target: CString,
    /// The flags of the read-only (or not) remount, besides `MS_BIND | MS_REMOUNT | MS_NOSUID`.
    pub flags: libc::c_ulong,
    /// A directory (its target is made by `dirs`), not a single file.
    pub is_dir: bool,
}

/// Everything the child needs, prepared by the parent.
pub struct Plan {
    pub cgroup_procs: Vec<OwnedFd>,
    /// The mount point of the jail's tmpfs on the host (in the child's own mount namespace).
    pub jail_dir: CString,
    pub tmpfs_options: CString,
    /// Directories to create under the jail, parents first (host-side absolute paths).
    pub dirs: Vec<CString>,
    pub binds: Vec<BindPlan>,
    /// With shares: (where to mount the jail's procfs for a moment, its `1/fd`, where that appears as
    /// `/proc/self/fd`), all host-side paths under the jail.
    pub proc_fd: Option<(CString, CString, CString)>,
    /// Capability numbers QEMU keeps (ambient), all below 32.
    pub keep_capabilities: Vec<u32>,
    pub rlimits: Vec<(libc::__rlimit_resource_t, libc::rlim_t)>,
    /// Become fds 0, 1, 2, ... in this order; every source is numbered above all targets.
    pub fds: Vec<OwnedFd>,
    pub groups: Vec<libc::gid_t>,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub last_cap: libc::c_ulong,
    pub seccomp: SeccompProgram,
    pub exe: CString,
    pub argv: Vec<*const libc::c_char>,
    pub error_pipe: OwnedFd,
}

const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Runs the plan; returns only by exiting.
pub fn run(plan: &Plan) -> isize {
    let Err((step, errno)) = setup(plan);
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(step as u32).to_ne_bytes());
    msg[4..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: writing a stack buffer to a pipe we own, then exiting without running any destructor.
    unsafe {
        libc::write(plan.error_pipe.as_raw_fd(), msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

fn check(rc: libc::c_long, step: usize) -> Result<(), (usize, i32)> {
    if rc < 0 {
        Err((step, nix::errno::Errno::last_raw()))
    } else {
        Ok(())
    }
}

/// Returns `(step, errno)` of the first failing step; on success `execve` does not return.
fn setup(plan: &Plan) -> Result<std::convert::Infallible, (usize, i32)> {
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: every pointer below is a NUL-terminated string or a struct the plan owns, alive for the
    // whole call; these are plain system calls.
    unsafe {
        for fd in &plan.cgroup_procs {
            // "0" is the writing process, in v1 and v2 alike.
            let rc = libc::write(fd.as_raw_fd(), c"0".as_ptr().cast(), 1);
            check(rc as libc::c_long, 0)?;
        }
        let rc = libc::mount(
            null,
            c"/".as_ptr(),
            null,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        );
        check(rc.into(), 1)?;
        let rc = libc::mount(
            c"bulkhead-jail".as_ptr(),
            plan.jail_dir.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            plan.tmpfs_options.as_ptr().cast(),
        );
        check(rc.into(), 2)?;
        for dir in &plan.dirs {
            check(libc::mkdir(dir.as_ptr(), 0o755).into(), 3)?;
        }
        for bind in &plan.binds {
            if !bind.is_dir {
                let fd = libc::open(
                    bind.target.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o444,
                );
                check(fd.into(), 4)?;
                libc::close(fd);
            }
            // Not MS_REC: a mount below a shared directory stays out of the jail.
            let rc = libc::mount(
                bind.source.as_ptr(),
                bind.target.as_ptr(),
                null,
                libc::MS_BIND,
                std::ptr::null(),
            );
            check(rc.into(), 5)?;
            let remount = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NOSUID | bind.flags;
            check(
                libc::mount(null, bind.target.as_ptr(), null, remount, std::ptr::null()).into(),
                6,
            )?;
        }
        if let Some((proc_dir, fd_dir, target)) = &plan.proc_fd {
            // Our pid namespace's procfs, where we are PID 1 (and QEMU after exec); only the one
            // directory stays, read-only.
            let hardened = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            let rc = libc::mount(
                c"proc".as_ptr(),
                proc_dir.as_ptr(),
                c"proc".as_ptr(),
                hardened | libc::MS_RDONLY,
                std::ptr::null(),
            );
            check(rc.into(), 20)?;
            let rc = libc::mount(
                fd_dir.as_ptr(),
                target.as_ptr(),
                null,
                libc::MS_BIND,
                std::ptr::null(),
            );
            check(rc.into(), 21)?;
            let remount = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | hardened;
            check(
                libc::mount(null, target.as_ptr(), null, remount, std::ptr::null()).into(),
                21,
            )?;
            check(
                libc::umount2(proc_dir.as_ptr(), libc::MNT_DETACH).into(),
                21,
            )?;
        }
        check(libc::chdir(plan.jail_dir.as_ptr()).into(), 7)?;
        // pivot_root(".", "."): the old root ends up under the new one, at the same place, and is then
        // detached; no directory for it is needed in the jail.
        check(
            libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()),
            7,
        )?;
        check(libc::umount2(c".".as_ptr(), libc::MNT_DETACH).into(), 8)?;
        check(libc::chdir(c"/".as_ptr()).into(), 8)?;
        let ro =
            libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        check(
            libc::mount(null, c"/".as_ptr(), null, ro, std::ptr::null()).into(),
            9,
        )?;
        for (resource, value) in &plan.rlimits {
            let limit = libc::rlimit {
                rlim_cur: *value,
                rlim_max: *value,
            };
            check(libc::setrlimit(*resource, &limit).into(), 10)?;
        }
        for (target, source) in plan.fds.iter().enumerate() {
            check(libc::dup2(source.as_raw_fd(), target as RawFd).into(), 11)?;
        }
        // Everything else (the lock files, the monitor's own fds) is closed by execve; the error pipe
        // stays open until then.
        let first = plan.fds.len() as libc::c_uint;
        check(
            libc::syscall(
                libc::SYS_close_range,
                first,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            ),
            11,
        )?;
        // Raw system calls: glibc's wrappers would try to change the ids of every thread of the parent,
        // whose copied state says it has several, and wait for them forever.
        let (len, groups) = (plan.groups.len(), plan.groups.as_ptr());
        check(libc::syscall(libc::SYS_setgroups, len, groups), 12)?;
        check(
            libc::syscall(libc::SYS_setresgid, plan.gid, plan.gid, plan.gid),
            13,
        )?;
        let mut keep: u32 = 0;
        for cap in &plan.keep_capabilities {
            keep |= 1 << cap;
        }
        for cap in 0..=plan.last_cap {
            if cap < 32 && keep & (1 << cap) != 0 {
                continue;
            }
            check(libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0).into(), 14)?;
        }
        let rc = libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
        check(rc.into(), 14)?;
        if keep != 0 {
            check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0).into(), 22)?;
        }
        check(
            libc::syscall(libc::SYS_setresuid, plan.uid, plan.uid, plan.uid),
            15,
        )?;
        // Leaving uid 0 cleared the permitted and effective sets (but for `keep`, with KEEPCAPS);
        // this sets all three to exactly `keep`.
        let header = CapHeader {
            version: CAP_VERSION_3,
            pid: 0,
        };
        let mut data = [CapData {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        data[0] = CapData {
            effective: keep,
            permitted: keep,
            inheritable: keep,
        };
        check(libc::syscall(libc::SYS_capset, &header, data.as_ptr()), 16)?;
        // Ambient: the only way capabilities of a non-root uid survive execve (no file capabilities,
        // and no_new_privs does not stop them).
        for cap in &plan.keep_capabilities {
            let raise = libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE,
                *cap as libc::c_ulong,
                0,
                0,
            );
            check(raise.into(), 22)?;
        }
        // Set after the uid change, which clears it. QEMU must not outlive its monitor.
        check(
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0).into(),
            17,
        )?;
        check(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0).into(),
            18,
        )?;
        if let Err(errno) = bulkhead_runtime::load_seccomp(&plan.seccomp) {
            return Err((19, errno as i32));
        }
        let envp = [null];
        libc::execve(plan.exe.as_ptr(), plan.argv.as_ptr(), envp.as_ptr());
    }
    Err((STEPS.len() - 1, nix::errno::Errno::last_raw()))
}
