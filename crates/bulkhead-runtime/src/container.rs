//! Starting container processes and managing them afterwards.
//!
//! Processes are created by cloning the caller, never by re-executing a runtime binary
//! the container could reach (CVE-2019-5736). **The caller must be single-threaded when
//! it calls [`spawn`] or [`Container::exec`]**: the child runs Rust code between clone and
//! execve, which is only sound without other threads (locks held elsewhere, setns(2) of
//! a user namespace refuses multi-threaded callers).
//!
//! Both entry points follow the same protocol: the caller clones a child that waits on
//! the setup channel, places it in the cgroup (and writes id maps), sends the go-ahead,
//! then reads messages until EOF, which the child's successful execve produces.

use std::convert::Infallible;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::panic::{catch_unwind, AssertUnwindSafe};

use nix::errno::Errno;
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Gid, Pid, Uid};

use crate::capabilities;
use crate::cgroups::{devices, Cgroup, SelfJoin};
use crate::channel::{self, Channel, Message};
use crate::container_fs;
use crate::error::RuntimeError;
use crate::namespaces::Joins;
use crate::network;
use crate::process_setup::{self, Confinement};
use crate::pty;
use crate::seccomp;
use crate::sysctls;
use bulkhead_spec::{ContainerSpec, MountSpec, NamespaceKind, NetworkMode, ProcessSpec};

/// Standard streams of a container process.
#[derive(Debug)]
pub enum Stdio {
    /// The given descriptors become stdin/stdout/stderr; no stdin means /dev/null.
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// A pty from the container's devpts becomes stdin/stdout/stderr and the controlling
    /// terminal; the caller receives the master.
    Pty,
}

/// A running container: its init process (a child of the caller) and its cgroup.
#[derive(Debug)]
pub struct Container {
    pub pid: Pid,
    pub pty_master: Option<OwnedFd>,
    cgroup: Cgroup,
    /// Keeps the container's mount namespace alive past its init's exit, so that tearing down every
    /// container mount (and the RCU grace period it waits for) happens at [`Container::destroy`],
    /// after the exit is reported, not before the exit becomes visible.
    mount_ns: Option<OwnedFd>,
}

/// A process started by [`Container::exec`], a child of the caller.
#[derive(Debug)]
pub struct ExecProcess {
    pub pid: Pid,
    pub pty_master: Option<OwnedFd>,
}

/// Docker-style exit status: the exit code, or 128 + signal number. A stopped or
/// continued process (only seen with WUNTRACED/WCONTINUED) reports 128 + the stop signal
/// or 0.
pub fn exit_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) | WaitStatus::Stopped(_, sig) => 128 + sig as i32,
        WaitStatus::PtraceEvent(_, sig, _) => 128 + sig as i32,
        WaitStatus::PtraceSyscall(_) | WaitStatus::Continued(_) | WaitStatus::StillAlive => 0,
    }
}

/// Stdio ready to install in the child: three descriptors, or a pty to create.
enum PreparedStdio {
    Pipes([OwnedFd; 3]),
    Pty,
}

fn prepare_stdio(stdio: Stdio) -> Result<PreparedStdio, RuntimeError> {
    match stdio {
        Stdio::Pty => Ok(PreparedStdio::Pty),
        Stdio::Pipes {
            stdin,
            stdout,
            stderr,
        } => {
            let stdin = match stdin {
                Some(fd) => fd,
                None => std::fs::File::open("/dev/null")
                    .map_err(|e| RuntimeError::io("open", "/dev/null", e))?
                    .into(),
            };
            Ok(PreparedStdio::Pipes([stdin, stdout, stderr]))
        }
    }
}

fn dup2(from: &OwnedFd, to: i32) -> Result<(), RuntimeError> {
    nix::unistd::dup2(from.as_raw_fd(), to)
        .map(drop)
        .map_err(|e| RuntimeError::sys(format!("dup2 to {to}"), e))
}

/// Installs the pipes as 0, 1, 2 (going through fresh copies so overlaps cannot clobber).
fn install_pipes(fds: &[OwnedFd; 3]) -> Result<(), RuntimeError> {
    let copies = fds
        .iter()
        .map(|fd| {
            fd.as_fd()
                .try_clone_to_owned()
                .map_err(|e| RuntimeError::io("dup", "stdio", e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (i, fd) in copies.iter().enumerate() {
        dup2(fd, i as i32)?;
    }
    Ok(())
}

/// Makes `slave` the controlling terminal and stdio, and hands `master` to the caller.
fn install_pty(master: OwnedFd, slave: OwnedFd, chan: &Channel) -> Result<(), RuntimeError> {
    pty::make_controlling(&slave)?;
    for i in 0..3 {
        dup2(&slave, i)?;
    }
    chan.send_pty(&master)
}

fn confinement(spec: &ContainerSpec) -> Result<Confinement, RuntimeError> {
    let caps = capabilities::resolve(&spec.workload.security)?;
    let privileged = spec.workload.security.privileged;
    Ok(Confinement {
        seccomp: seccomp::build(&spec.workload.security.seccomp, privileged, &caps)?,
        caps,
        no_new_privs: !privileged || spec.workload.security.no_new_privileges,
    })
}

fn validate_process(process: &ProcessSpec) -> Result<(), RuntimeError> {
    if process.args.is_empty() {
        return Err(RuntimeError::InvalidSpec("empty command".into()));
    }
    if !process.cwd.starts_with('/') {
        return Err(RuntimeError::InvalidSpec(format!(
            "working directory {:?} is not absolute",
            process.cwd
        )));
    }
    process_setup::validate_rlimits(&process.rlimits)
}

fn validate(spec: &ContainerSpec) -> Result<(), RuntimeError> {
    if spec.id.is_empty() {
        return Err(RuntimeError::InvalidSpec("empty container id".into()));
    }
    if !spec.rootfs.is_absolute() || !spec.rootfs.is_dir() {
        return Err(RuntimeError::InvalidSpec(format!(
            "rootfs {} is not an absolute directory",
            spec.rootfs.display()
        )));
    }
    for m in &spec.workload.mounts {
        let target = match m {
            MountSpec::Bind { target, .. } | MountSpec::Tmpfs { target, .. } => target,
        };
        if !target.starts_with('/') {
            return Err(RuntimeError::InvalidSpec(format!(
                "mount target {target:?} is not absolute"
            )));
        }
    }
    let security = &spec.workload.security;
    for path in [&security.masked_paths, &security.readonly_paths]
        .into_iter()
        .flatten()
        .flatten()
    {
        if !path.starts_with('/') {
            return Err(RuntimeError::InvalidSpec(format!(
                "masked or read-only path {path:?} is not absolute"
            )));
        }
    }
    validate_process(&spec.workload.process)
}

/// `clone(2)` without a new stack: returns like fork, `None` in the child.
fn raw_clone(flags: libc::c_ulong) -> Result<Option<Pid>, RuntimeError> {
    // SAFETY: with a null stack clone behaves like fork; the caller is single-threaded
    // (documented requirement), so the child's copy of the address space is consistent.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match ret {
        -1 => Err(RuntimeError::sys("clone", Errno::last())),
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}

/// Runs a child's setup; on failure reports it on the channel. Never returns.
fn run_child(chan: &Channel, setup: impl FnOnce() -> Result<Infallible, RuntimeError>) -> ! {
    chan.report_panics();
    // catch_unwind only matters where panics unwind (test builds): unwinding must not leave this
    // function in a forked child. The panic hook has reported it already.
    if let Ok(result) = catch_unwind(AssertUnwindSafe(setup)) {
        let error = match result {
            Ok(never) => match never {},
            Err(e) => e,
        };
        // Nobody is left to tell if the caller is gone.
        let _ = chan.send_failure(&error);
    }
    // SAFETY: _exit skips the caller's atexit handlers and destructors, as a forked
    // child must.
    unsafe { libc::_exit(125) }
}

/// What the caller learned from the setup channel.
#[derive(Default)]
struct Reported {
    pty_master: Option<OwnedFd>,
    pid: Option<Pid>,
}

/// Caller side: reads until EOF, recording a pty master and a pid report in `reported`
/// (kept on failure too, so the caller can reap a reported process).
fn collect(chan: &Channel, stage: &str, reported: &mut Reported) -> Result<(), RuntimeError> {
    while let Some(message) = chan.recv()? {
        match message {
            Message::PtyMaster(fd) => reported.pty_master = Some(fd),
            Message::Pid(p) => reported.pid = Some(p),
            Message::Failure(f) => return Err(f.into_error(stage)),
        }
    }
    Ok(())
}

fn write_id_maps(pid: Pid, map: &bulkhead_spec::IdMap) -> Result<(), RuntimeError> {
    for (file, host) in [("uid_map", map.host_uid), ("gid_map", map.host_gid)] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, format!("0 {host} {}\n", map.size))
            .map_err(|e| RuntimeError::io("write", path, e))?;
    }
    Ok(())
}

fn kill_and_reap(pid: Pid) {
    // The child may already be gone; both calls are best effort on this error path.
    let _ = kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
}

/// Starts the container's init process running `spec.workload.process`.
pub fn spawn(spec: &ContainerSpec, stdio: Stdio) -> Result<Container, RuntimeError> {
    validate(spec)?;
    let confinement = confinement(spec)?;
    let joins = Joins::open(&spec.workload.join_namespaces)?;
    sysctls::check(&spec.workload, &joins)?;
    container_fs::ensure_etc_mount_points(spec)?;
    let stdio = prepare_stdio(stdio)?;
    let cgroup = Cgroup::create(&spec.cgroup_name)?;
    let restricted = if spec.workload.security.privileged {
        Ok(())
    } else {
        cgroup.restrict_devices(devices::DEFAULT_RULES)
    };
    if let Err(e) = restricted.and_then(|()| cgroup.apply(&spec.workload.resources)) {
        let _ = cgroup.destroy();
        return Err(e);
    }
    let mut self_join = match cgroup.self_join() {
        Ok(j) => j,
        Err(e) => {
            let _ = cgroup.destroy();
            return Err(e);
        }
    };
    let (parent_chan, child_chan) = channel::pair()?;
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID;
    if !joins.joins(NamespaceKind::Uts) {
        flags |= libc::CLONE_NEWUTS;
    }
    if !joins.joins(NamespaceKind::Ipc) {
        flags |= libc::CLONE_NEWIPC;
    }
    if spec.workload.network == NetworkMode::None {
        flags |= libc::CLONE_NEWNET;
    }
    if spec.workload.userns.is_some() {
        flags |= libc::CLONE_NEWUSER;
    }
    let entered = match joins.enter() {
        Ok(entered) => entered,
        Err(e) => {
            let _ = cgroup.destroy();
            return Err(e);
        }
    };
    let cloned = match raw_clone(flags as libc::c_ulong | libc::SIGCHLD as libc::c_ulong) {
        Ok(None) => {
            drop(parent_chan);
            run_child(&child_chan, || {
                init_process(spec, &stdio, &confinement, self_join.as_ref(), &child_chan)
            })
        }
        // The caller goes back to its own namespaces whatever happened.
        Ok(Some(pid)) => match entered.leave() {
            Ok(()) => Ok(pid),
            Err(e) => {
                kill_and_reap(pid);
                Err(e)
            }
        },
        Err(e) => entered.leave().and(Err(e)),
    };
    let pid = match cloned {
        Ok(pid) => pid,
        Err(e) => {
            let _ = cgroup.destroy();
            return Err(e);
        }
    };
    drop(child_chan);
    drop(stdio);
    // The child has its own copies; ours would only keep the cgroup files open.
    let joins_itself = self_join.take().is_some();
    // Best effort: without it the namespace only goes away earlier.
    let mount_ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
        .ok()
        .map(OwnedFd::from);
    let mut reported = Reported::default();
    let started = (|| {
        if let Some(map) = &spec.workload.userns {
            write_id_maps(pid, map)?;
        }
        let joined = if joins_itself {
            Ok(())
        } else {
            cgroup.add_process(pid)
        };
        let joined = joined.and_then(|()| parent_chan.send_go());
        if let Err(join_error) = joined {
            // The child builds its filesystem while we join it to the cgroup; if that failed first, the
            // child has exited with its reason already queued, and that reason is the one to report.
            kill_and_reap(pid);
            collect(&parent_chan, "container init", &mut reported)?;
            return Err(join_error);
        }
        collect(&parent_chan, "container init", &mut reported)
    })();
    match started {
        Ok(()) => Ok(Container {
            pid,
            pty_master: reported.pty_master,
            cgroup,
            mount_ns,
        }),
        Err(e) => {
            kill_and_reap(pid);
            let _ = cgroup.destroy();
            Err(e)
        }
    }
}

/// The container's init process, from clone to execve.
fn init_process(
    spec: &ContainerSpec,
    stdio: &PreparedStdio,
    confinement: &Confinement,
    self_join: Option<&SelfJoin>,
    chan: &Channel,
) -> Result<Infallible, RuntimeError> {
    process_setup::reset_signals()?;
    process_setup::set_non_dumpable()?;
    // First, so that everything the setup uses is the container's.
    if let Some(join) = self_join {
        join.join()?;
    }
    let root = container_fs::bind_rootfs(spec)?;
    if spec.workload.userns.is_some() {
        // The id maps must be written before we act as root in the new user namespace.
        chan.wait_go()?;
        let root_gid = Gid::from_raw(0);
        let root_uid = Uid::from_raw(0);
        nix::unistd::setresgid(root_gid, root_gid, root_gid)
            .map_err(|e| RuntimeError::sys("setresgid in the user namespace", e))?;
        nix::unistd::setresuid(root_uid, root_uid, root_uid)
            .map_err(|e| RuntimeError::sys("setresuid in the user namespace", e))?;
    }
    nix::unistd::setsid().map_err(|e| RuntimeError::sys("setsid", e))?;
    if let PreparedStdio::Pipes(fds) = stdio {
        install_pipes(fds)?;
    }
    let pty = container_fs::build(spec, root, matches!(stdio, PreparedStdio::Pty))?;
    if let Some((master, slave)) = pty {
        install_pty(master, slave, chan)?;
    }
    if !spec.workload.hostname.is_empty() {
        nix::unistd::sethostname(&spec.workload.hostname)
            .map_err(|e| RuntimeError::sys("sethostname", e))?;
    }
    if spec.workload.network == NetworkMode::None {
        network::bring_loopback_up()?;
    }
    if spec.workload.userns.is_none() {
        // Where the parent moves us into the cgroup (v2), it does so while we build the filesystem
        // above, and nothing of the user's runs before this point.
        chan.wait_go()?;
    }
    // Only now, inside its cgroup, so the namespace is rooted there.
    unshare(CloneFlags::CLONE_NEWCGROUP)
        .map_err(|e| RuntimeError::sys("unshare cgroup namespace", e))?;
    process_setup::exec_process(&spec.workload.process, confinement, true)
}

/// Namespaces to join, in order: the user namespace first so it grants the rights for
/// the others, the mount namespace last.
const NAMESPACES: [(&str, CloneFlags); 7] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Opens the namespaces of `pid` that differ from the caller's.
fn open_namespaces(pid: Pid) -> Result<Vec<(OwnedFd, CloneFlags)>, RuntimeError> {
    let mut result = Vec::new();
    for (name, flag) in NAMESPACES {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let ours = format!("/proc/self/ns/{name}");
        let same = match (std::fs::metadata(&theirs), std::fs::metadata(&ours)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            (Err(e), _) => return Err(RuntimeError::io("stat", theirs, e)),
            (_, Err(e)) => return Err(RuntimeError::io("stat", ours, e)),
        };
        if !same {
            let fd =
                std::fs::File::open(&theirs).map_err(|e| RuntimeError::io("open", &theirs, e))?;
            result.push((fd.into(), flag));
        }
    }
    Ok(result)
}

impl Container {
    /// Starts `process` inside the running container: it joins all namespaces and the
    /// cgroup of init, with the capabilities, seccomp filter and no_new_privs derived from
    /// `spec` and the user resolved in the container. The process is a child of the caller.
    pub fn exec(
        &self,
        spec: &ContainerSpec,
        process: &ProcessSpec,
        stdio: Stdio,
    ) -> Result<ExecProcess, RuntimeError> {
        validate_process(process)?;
        let confinement = confinement(spec)?;
        let namespaces = open_namespaces(self.pid)?;
        let stdio = prepare_stdio(stdio)?;
        let mut self_join = self.cgroup.self_join()?;
        let (parent_chan, child_chan) = channel::pair()?;
        // SAFETY: the caller is single-threaded (module requirement).
        let intermediate = match unsafe { nix::unistd::fork() } {
            Ok(ForkResult::Parent { child }) => child,
            Ok(ForkResult::Child) => {
                drop(parent_chan);
                run_child(&child_chan, || {
                    let join = self_join.as_ref();
                    exec_intermediate(
                        &namespaces,
                        process,
                        &stdio,
                        &confinement,
                        join,
                        &child_chan,
                    )
                })
            }
            Err(e) => return Err(RuntimeError::sys("fork", e)),
        };
        drop(child_chan);
        drop(stdio);
        let joined = match self_join.take() {
            Some(_) => Ok(()),
            None => self.cgroup.add_process(intermediate),
        };
        let mut reported = Reported::default();
        let started = joined
            .and_then(|()| parent_chan.send_go())
            .and_then(|()| collect(&parent_chan, "exec", &mut reported));
        if started.is_err() {
            kill_and_reap(intermediate);
        } else {
            // The intermediate process exits right after reporting the final pid; a
            // failure to reap it changes nothing for the exec'd process.
            let _ = waitpid(intermediate, None);
        }
        match (started, reported.pid) {
            (Ok(()), Some(pid)) => Ok(ExecProcess {
                pid,
                pty_master: reported.pty_master,
            }),
            (Ok(()), None) => Err(RuntimeError::Channel(
                "exec helper ended without reporting a process".into(),
            )),
            (Err(e), pid) => {
                if let Some(pid) = pid {
                    kill_and_reap(pid);
                }
                Err(e)
            }
        }
    }

    /// Sends `sig` to the init process.
    pub fn signal(&self, sig: Signal) -> Result<(), RuntimeError> {
        kill(self.pid, sig).map_err(|e| RuntimeError::sys(format!("kill {} {sig}", self.pid), e))
    }

    /// Changes the limits that are set in `r`.
    pub fn update_resources(&self, r: &bulkhead_spec::Resources) -> Result<(), RuntimeError> {
        self.cgroup.apply(r)
    }

    /// The container's cgroup usage now (CPU, memory, pids).
    pub fn usage(&self) -> Result<crate::cgroups::Usage, RuntimeError> {
        self.cgroup.usage()
    }

    /// Whether the kernel OOM-killed a process of the container.
    pub fn oom_killed(&self) -> bool {
        self.cgroup.oom_kills().is_ok_and(|n| n > 0)
    }

    /// Kills every process left in the container's cgroup and removes the cgroup, then lets its mount
    /// namespace go. The caller still reaps its children (init, exec processes) with waitpid.
    pub fn destroy(self) -> Result<(), RuntimeError> {
        let destroyed = self.cgroup.destroy();
        drop(self.mount_ns);
        destroyed
    }
}

/// The exec helper: joins the namespaces, then clones the final process as a sibling
/// (CLONE_PARENT, so the caller can wait for it) inside the container's pid namespace.
fn exec_intermediate(
    namespaces: &[(OwnedFd, CloneFlags)],
    process: &ProcessSpec,
    stdio: &PreparedStdio,
    confinement: &Confinement,
    self_join: Option<&SelfJoin>,
    chan: &Channel,
) -> Result<Infallible, RuntimeError> {
    process_setup::reset_signals()?;
    process_setup::set_non_dumpable()?;
    // Before the namespaces: the cgroup files are the host's.
    if let Some(join) = self_join {
        join.join()?;
    }
    chan.wait_go()?;
    for (fd, flag) in namespaces {
        setns(fd, *flag).map_err(|e| RuntimeError::sys(format!("setns {flag:?}"), e))?;
    }
    let flags = libc::CLONE_PARENT as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    match raw_clone(flags)? {
        Some(pid) => {
            chan.send_pid(pid)?;
            // SAFETY: forked child: leave without running the caller's destructors.
            unsafe { libc::_exit(0) }
        }
        None => run_child(chan, || exec_final(process, stdio, confinement, chan)),
    }
}

fn exec_final(
    process: &ProcessSpec,
    stdio: &PreparedStdio,
    confinement: &Confinement,
    chan: &Channel,
) -> Result<Infallible, RuntimeError> {
    nix::unistd::setsid().map_err(|e| RuntimeError::sys("setsid", e))?;
    match stdio {
        PreparedStdio::Pipes(fds) => install_pipes(fds)?,
        PreparedStdio::Pty => {
            let master: OwnedFd = std::fs::File::options()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY)
                .open("/dev/ptmx")
                .map_err(|e| RuntimeError::io("open", "/dev/ptmx", e))?
                .into();
            let slave = pty::open_slave(&master)?;
            if let Some((rows, cols)) = process.console_size {
                pty::resize_pty(master.as_fd(), rows, cols)?;
            }
            install_pty(master, slave, chan)?;
        }
    }
    process_setup::exec_process(process, confinement, false)
}
