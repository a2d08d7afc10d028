//! The jail QEMU runs in, after Firecracker's jailer. The monitor (root) clones QEMU into new mount, pid,
//! network, IPC and UTS namespaces; the child joins the VM's cgroup (memory: guest RAM plus
//! [`MEMORY_OVERHEAD_MIB`]; CPU quota from `--cpus`; a pids limit), mounts a read-only tmpfs holding only
//! read-only bind mounts of what QEMU opens by path ([`files`]), `pivot_root`s into it, sets rlimits
//! (open files; file size = the writable disk's size; no core dumps), keeps only the file descriptors
//! passed on purpose (disks, agent socket, log pipes), takes an unprivileged uid/gid of its own
//! ([`uid`]), drops every capability including the bounding set, sets no_new_privs and the
//! parent-death signal, loads its seccomp allow list ([`seccomp`]) and execs QEMU with an empty
//! environment. The parent then checks the result in `/proc` ([`verify`]) before the VM counts as up.
//!
//! A VM with shared directories (virtio-9p) differs in two ways, both needed by QEMU's 9p server in its
//! `passthrough` model: QEMU keeps [`SHARE_CAPABILITIES`] (as ambient capabilities of its jail uid), so
//! files keep the guest's owners and modes and any VM reads what another VM or process mode wrote; and
//! the jail shows QEMU its own `/proc/self/fd` (a read-only bind of that one directory of a procfs of the
//! jail's pid namespace, where QEMU is the only process), through which QEMU 7.2's 9p server changes
//! modes and xattrs of files it holds `O_PATH` descriptors to without following symlinks. What these
//! capabilities reach is what the jail's mount namespace shows: the shares, and read-only binds.

mod child;
pub mod files;
mod seccomp;
pub mod uid;
mod verify;

pub use verify::{Confinement, CHECKS};

use crate::accel::AccelKind;
use bulkhead_runtime::cgroups::Cgroup;
use bulkhead_spec::Resources;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::ffi::{CString, OsString};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use uid::UidLease;

/// Host memory QEMU uses beyond guest RAM: its heap, the 16 MiB TCG translation cache, thread stacks
/// and the page cache of the kernel and initramfs it reads (measured: see docs/ARCHITECTURE.md).
pub const MEMORY_OVERHEAD_MIB: u64 = 128;
/// QEMU's threads: vCPUs, the block layer's pool (at most 64), RCU, the main loop.
const PIDS_MAX: i64 = 256;
/// Open files: QEMU under TCG uses about 20, under KVM a few per vCPU and queue.
const NOFILE: u64 = 1024;
const MIB: u64 = 1 << 20;
/// Descriptors the parent moves above this before cloning, so the child's `dup2` to 0.. never clobbers
/// one it still needs.
const HIGH_FD: i32 = 100;
const CHILD_STACK: usize = 256 << 10;
/// How long a QEMU that failed a check may take to turn out to be exiting.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_millis(200);
/// How long the child may take from `clone` to `exec`.
const SETUP_TIMEOUT_MS: u16 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum JailError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "no free jail uid: all {} in {}.. are in use",
        uid::UID_COUNT,
        uid::FIRST_UID
    )]
    NoFreeUid,
    #[error(
        "{} not found in PATH (install the Debian package qemu-system-x86)",
        crate::qemu::QEMU
    )]
    NoQemu,
    #[error("cannot list the libraries of {}:\n{output}", qemu.display())]
    Libraries { qemu: PathBuf, output: String },
    #[error("QEMU's seccomp filter: {0}")]
    Seccomp(String),
    #[error("QEMU's cgroup: {0}")]
    Cgroup(String),
    #[error("jailing QEMU failed at {step}: {errno}")]
    Setup { step: &'static str, errno: Errno },
    #[error("QEMU exited at once ({0})")]
    Exited(String),
    #[error("QEMU's confinement check failed ({check}): {detail}")]
    Check { check: &'static str, detail: String },
}

impl JailError {
    pub(crate) fn io(what: &'static str, path: &Path, source: io::Error) -> JailError {
        JailError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// One VM's jail, as the caller describes it.
pub struct JailSpec<'a> {
    /// QEMU's arguments (after argv[0]), with jail-side paths.
    pub args: Vec<OsString>,
    /// Become QEMU's fds 0, 1, 2, ... in this order.
    pub fds: Vec<OwnedFd>,
    pub kernel: &'a Path,
    pub initramfs: &'a Path,
    pub accel: AccelKind,
    /// The directory the jail's mount point is created in.
    pub run_dir: &'a Path,
    /// The cgroup's name (relative to the hierarchy roots).
    pub cgroup: &'a str,
    pub memory_mib: u64,
    pub cpus: Option<f64>,
    /// The largest file QEMU may write: its writable disk.
    pub max_file_bytes: u64,
    /// Host directories served to the guest over virtio-9p.
    pub shares: &'a [crate::host::Share],
}

/// The capabilities QEMU keeps when it serves shared directories: set owners (CHOWN), read and write
/// whatever the guest's files' modes say (DAC_OVERRIDE: the guest kernel enforces its users'
/// permissions itself, `access=client`), and set modes and times of files it does not own (FOWNER). Not
/// FSETID (a write or chown clears setuid/setgid bits) and not MKNOD (a guest's `mknod` of a device
/// fails); setting a setuid or setgid mode is refused by QEMU's seccomp filter.
pub const SHARE_CAPABILITIES: [(u32, &str); 3] =
    [(0, "CAP_CHOWN"), (1, "CAP_DAC_OVERRIDE"), (3, "CAP_FOWNER")];

/// Where the jail shows QEMU its own descriptors (QEMU's 9p server names files through it).
const JAIL_PROC_FD: &str = "/proc/self/fd";
/// Where the child mounts the jail's procfs for the moment it takes `/proc/1/fd` from it.
const JAIL_PROC_TMP: &str = "/.proc";

/// A jailed QEMU that passed its checks. The caller reaps it, then calls [`Jailed::remove`].
#[derive(Debug)]
pub struct Jailed {
    pid: Pid,
    confinement: Confinement,
    cgroup: Cgroup,
    dir: PathBuf,
    _lease: UidLease,
}

impl Jailed {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    pub fn confinement(&self) -> &Confinement {
        &self.confinement
    }

    /// Removes the cgroup (killing anything left in it) and the mount point, once QEMU is reaped.
    pub fn remove(self) -> Result<(), JailError> {
        let result = self
            .cgroup
            .destroy()
            .map_err(|e| JailError::Cgroup(e.to_string()));
        // The mount point is an empty directory: the tmpfs lived only in QEMU's mount namespace.
        let _ = std::fs::remove_dir(&self.dir);
        result
    }
}

/// Starts QEMU jailed and checks the jail; on any failure nothing is left running.
pub fn spawn(spec: JailSpec) -> Result<Jailed, JailError> {
    let lease = UidLease::acquire()?;
    let qemu = files::qemu_binary()?;
    let binds = files::binds(&qemu, spec.kernel, spec.initramfs, spec.accel, spec.shares)?;
    let seccomp = seccomp::program()?;
    let cgroup = vm_cgroup(&spec)?;
    let dir = make_mount_point(spec.run_dir)?;
    let started = start(&spec, &qemu, &binds, seccomp, &cgroup, &dir, lease.uid());
    let pid = match started {
        Ok(pid) => pid,
        Err(e) => {
            let _ = cgroup.destroy();
            let _ = std::fs::remove_dir(&dir);
            return Err(e);
        }
    };
    let mut mounts = vec!["/".to_string()];
    mounts.extend(binds.iter().map(|b| b.jail.to_string_lossy().into_owned()));
    let writable: Vec<String> = binds
        .iter()
        .filter(|b| b.kind == files::BindKind::Share { readonly: false })
        .map(|b| b.jail.to_string_lossy().into_owned())
        .collect();
    let capabilities: &[(u32, &str)] = if spec.shares.is_empty() {
        &[]
    } else {
        mounts.push(JAIL_PROC_FD.to_string());
        &SHARE_CAPABILITIES
    };
    let controllers: Vec<&str> = cgroup.dirs().iter().map(|(c, _)| *c).collect();
    let checked = verify::verify(&verify::Expected {
        pid: pid.as_raw() as u32,
        uid: lease.uid(),
        cgroup: spec.cgroup,
        controllers: &controllers,
        mounts: &mounts,
        writable: &writable,
        capabilities,
    });
    match checked {
        Ok(confinement) => Ok(Jailed {
            pid,
            confinement,
            cgroup,
            dir,
            _lease: lease,
        }),
        Err(e) => {
            // A QEMU that exited at once (it refused its options, say) fails the checks while it is still
            // exiting; say that instead.
            let exited = exit_within(pid, EXIT_GRACE);
            if matches!(exited, Ok(WaitStatus::StillAlive)) {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
            }
            let _ = cgroup.destroy();
            let _ = std::fs::remove_dir(&dir);
            Err(match exited {
                Ok(WaitStatus::Exited(_, code)) => JailError::Exited(format!("exit code {code}")),
                Ok(WaitStatus::Signaled(_, signal, _)) => JailError::Exited(format!("{signal}")),
                _ => e,
            })
        }
    }
}

/// Reaps `pid` if it exits within `grace`.
fn exit_within(pid: Pid, grace: std::time::Duration) -> nix::Result<WaitStatus> {
    let deadline = std::time::Instant::now() + grace;
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            other => return other,
        }
    }
}

/// Creates the cgroup with the VM's limits.
fn vm_cgroup(spec: &JailSpec) -> Result<Cgroup, JailError> {
    let err = |e: bulkhead_runtime::RuntimeError| JailError::Cgroup(e.to_string());
    let cgroup = Cgroup::create(spec.cgroup).map_err(err)?;
    let limits = Resources {
        memory_bytes: Some((spec.memory_mib + MEMORY_OVERHEAD_MIB) * MIB),
        cpus: spec.cpus,
        pids_limit: Some(PIDS_MAX),
    };
    if let Err(e) = cgroup.apply(&limits) {
        let _ = cgroup.destroy();
        return Err(err(e));
    }
    Ok(cgroup)
}

fn make_mount_point(run_dir: &Path) -> Result<PathBuf, JailError> {
    std::fs::create_dir_all(run_dir).map_err(|e| JailError::io("creating", run_dir, e))?;
    bulkhead_fs::temp_dir(run_dir, "jail.").map_err(|e| JailError::io("creating in", run_dir, e))
}

fn cstring(bytes: &[u8]) -> Result<CString, JailError> {
    CString::new(bytes).map_err(|_| {
        JailError::io(
            "a NUL byte in",
            Path::new(&*String::from_utf8_lossy(bytes)),
            io::ErrorKind::InvalidInput.into(),
        )
    })
}

fn high_fd(fd: impl AsFd, what: &'static str) -> Result<OwnedFd, JailError> {
    let raw = fcntl(fd.as_fd().as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(HIGH_FD))
        .map_err(|e| JailError::io("duplicating", Path::new(what), e.into()))?;
    // SAFETY: fcntl just returned this new descriptor, owned by nobody else.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) })
}

/// Clones the child with the plan and waits for its `exec` (or its failure report).
fn start(
    spec: &JailSpec,
    qemu: &Path,
    binds: &[files::Bind],
    seccomp: bulkhead_runtime::SeccompProgram,
    cgroup: &Cgroup,
    dir: &Path,
    uid: u32,
) -> Result<Pid, JailError> {
    let under_jail = |p: &Path| {
        let mut v = dir.as_os_str().as_bytes().to_vec();
        v.extend_from_slice(p.as_os_str().as_bytes());
        v
    };
    let with_shares = !spec.shares.is_empty();
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut add_dir = |dir: &Path, itself: bool| {
        let skip = usize::from(!itself);
        let ancestors: Vec<&Path> = dir.ancestors().skip(skip).collect();
        for a in ancestors.into_iter().rev().filter(|a| *a != Path::new("/")) {
            if !dirs.iter().any(|d| d == a) {
                dirs.push(a.to_path_buf());
            }
        }
    };
    for bind in binds {
        add_dir(
            &bind.jail,
            matches!(bind.kind, files::BindKind::Share { .. }),
        );
    }
    if with_shares {
        add_dir(Path::new(JAIL_PROC_FD), true);
        add_dir(Path::new(JAIL_PROC_TMP), true);
    }
    let mut cgroup_procs = Vec::new();
    for (_, d) in cgroup.dirs() {
        let path = d.join("cgroup.procs");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| JailError::io("opening", &path, e))?;
        cgroup_procs.push(OwnedFd::from(file));
    }
    let mut fds = Vec::new();
    for fd in &spec.fds {
        fds.push(high_fd(fd, "a descriptor for QEMU")?);
    }
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| JailError::io("creating", Path::new("a pipe"), e.into()))?;
    let mut groups = Vec::new();
    if spec.accel == AccelKind::Kvm {
        let kvm = Path::new("/dev/kvm");
        groups.push(
            std::fs::metadata(kvm)
                .map_err(|e| JailError::io("reading", kvm, e))?
                .gid(),
        );
    }
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63);
    let exe = cstring(qemu.as_os_str().as_bytes())?;
    let mut args = vec![exe.clone()];
    for a in &spec.args {
        args.push(cstring(a.as_bytes())?);
    }
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut plan = child::Plan {
        cgroup_procs,
        jail_dir: cstring(dir.as_os_str().as_bytes())?,
        tmpfs_options: c"mode=0755,size=64k,nr_inodes=512".to_owned(),
        dirs: dirs
            .iter()
            .map(|d| cstring(&under_jail(d)))
            .collect::<Result<_, _>>()?,
        binds: binds
            .iter()
            .map(|b| {
                let data = libc::MS_NOEXEC | libc::MS_NODEV;
                let (flags, is_dir) = match b.kind {
                    files::BindKind::Code => (libc::MS_RDONLY, false),
                    files::BindKind::Data => (libc::MS_RDONLY | data, false),
                    files::BindKind::Device => (libc::MS_RDONLY | libc::MS_NOEXEC, false),
                    files::BindKind::Share { readonly: true } => (libc::MS_RDONLY | data, true),
                    files::BindKind::Share { readonly: false } => (data, true),
                };
                Ok(child::BindPlan {
                    source: cstring(b.host.as_os_str().as_bytes())?,
                    target: cstring(&under_jail(&b.jail))?,
                    flags,
                    is_dir,
                })
            })
            .collect::<Result<_, JailError>>()?,
        proc_fd: if with_shares {
            Some((
                cstring(&under_jail(Path::new(JAIL_PROC_TMP)))?,
                cstring(&under_jail(&Path::new(JAIL_PROC_TMP).join("1/fd")))?,
                cstring(&under_jail(Path::new(JAIL_PROC_FD)))?,
            ))
        } else {
            None
        },
        keep_capabilities: if with_shares {
            SHARE_CAPABILITIES.iter().map(|(c, _)| *c).collect()
        } else {
            Vec::new()
        },
        rlimits: vec![
            (libc::RLIMIT_NOFILE, NOFILE),
            (libc::RLIMIT_FSIZE, spec.max_file_bytes),
            (libc::RLIMIT_CORE, 0),
        ],
        fds,
        groups,
        uid,
        gid: uid,
        last_cap,
        seccomp,
        exe,
        argv,
        error_pipe: high_fd(&err_w, "the error pipe")?,
    };
    drop(err_w);
    let mut stack = vec![0u8; CHILD_STACK];
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS;
    let plan_ref = &mut plan;
    // SAFETY: the child gets a copy of our memory and runs only `child::run`, which makes system calls on
    // the prepared plan and then execs or exits.
    let cloned = unsafe {
        nix::sched::clone(
            Box::new(|| child::run(plan_ref)),
            &mut stack,
            flags,
            Some(libc::SIGCHLD),
        )
    };
    // Our copies of QEMU's descriptors and of the pipe's write end close here.
    drop(plan);
    let pid = cloned.map_err(|e| JailError::Setup {
        step: "clone",
        errno: e,
    })?;
    // The child closes the pipe by exec'ing within milliseconds; a bound keeps a wedged one from
    // wedging the monitor too.
    let mut pollfd = [nix::poll::PollFd::new(
        err_r.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    if !matches!(nix::poll::poll(&mut pollfd, SETUP_TIMEOUT_MS), Ok(n) if n > 0) {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        return Err(JailError::Setup {
            step: "waiting for the jailed child to exec",
            errno: Errno::ETIMEDOUT,
        });
    }
    let mut report = Vec::new();
    let _ = std::fs::File::from(err_r).read_to_end(&mut report);
    if report.len() >= 8 {
        let step = u32::from_ne_bytes([report[0], report[1], report[2], report[3]]) as usize;
        let errno = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
        let _ = waitpid(pid, None);
        return Err(JailError::Setup {
            step: child::STEPS.get(step).copied().unwrap_or("an unknown step"),
            errno: Errno::from_raw(errno),
        });
    }
    Ok(pid)
}

/// Removes the cgroup of a VM whose monitor died (its QEMU died with it).
pub fn remove_leftovers(cgroup: &str) -> Result<(), JailError> {
    bulkhead_runtime::cgroups::cleanup(cgroup).map_err(|e| JailError::Cgroup(e.to_string()))
}
