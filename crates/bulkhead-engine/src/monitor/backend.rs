//! The two ways a monitor reaches a container's agent: a forked `bulkhead-agent` on the host (process
//! isolation) or the agent inside a QEMU microVM (VM isolation). Both yield one protocol stream.

use crate::config::{ContainerConfig, Isolation};
use crate::layout::ContainerPaths;
use crate::EngineError;
use bulkhead_runtime::rootfs;
use bulkhead_vm::{AccelChoice, Vm, VmConfig};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// A started agent endpoint and what must be torn down after it.
pub enum Backend {
    Process { agent: Pid, mnt: PathBuf },
    Vm { vm: Box<Vm> },
}

/// Brings up the agent for `config` and returns the stream to it.
///
/// Must be called while the monitor is single-threaded: process mode forks.
pub fn start(
    config: &ContainerConfig,
    paths: &ContainerPaths,
    artifact: &Path,
) -> Result<(Backend, UnixStream), EngineError> {
    match config.isolation {
        Isolation::Process => start_process(paths, artifact),
        Isolation::Vm => start_vm(config, paths, artifact),
    }
}

fn start_process(
    paths: &ContainerPaths,
    artifact: &Path,
) -> Result<(Backend, UnixStream), EngineError> {
    let mnt = paths.mnt();
    let root = assemble(artifact, &paths.disk(), &mnt).inspect_err(|_| {
        let _ = rootfs::disassemble(&mnt);
    })?;
    let (ours, theirs) = UnixStream::pair().map_err(EngineError::io("socketpair"))?;
    // SAFETY: the monitor is single-threaded here (documented above); the child only runs the agent
    // loop and exits without returning into the caller's stack.
    match unsafe { fork() }.map_err(EngineError::sys("forking the agent"))? {
        ForkResult::Child => {
            drop(ours);
            close_all_but(theirs.as_raw_fd());
            let code = match bulkhead_agent::serve(OwnedFd::from(theirs), &root) {
                Ok(_) => 0,
                Err(e) => {
                    eprintln!("agent: {e}");
                    1
                }
            };
            // SAFETY: leaving the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(theirs);
            Ok((Backend::Process { agent: child, mnt }, ours))
        }
    }
}

/// Closes every fd above stderr except `keep`. The agent must not hold the monitor's listening socket or
/// the CLI's ready pipe: if the monitor dies, clients must see it gone, not a socket nobody serves.
fn close_all_but(keep: RawFd) {
    // SAFETY: close_range on fd ranges of our own process; `keep` stays open.
    unsafe {
        if keep > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, (keep - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32);
    }
}

fn assemble(artifact: &Path, disk: &Path, mnt: &Path) -> Result<PathBuf, EngineError> {
    let lower = rootfs::attach_loop(artifact, true)?;
    let upper = rootfs::attach_loop(disk, false)?;
    Ok(rootfs::assemble(lower.path(), upper.path(), mnt)?)
}

fn start_vm(
    config: &ContainerConfig,
    paths: &ContainerPaths,
    artifact: &Path,
) -> Result<(Backend, UnixStream), EngineError> {
    let cache = bulkhead_vm::default_cache_dir();
    let kernel = bulkhead_vm::kernel::info(&cache).ok_or_else(|| {
        EngineError::InvalidOption(
            "no guest kernel is built yet: run `bulkhead kernel build` once (about 9 minutes)"
                .into(),
        )
    })?;
    let choice: AccelChoice = config
        .vm
        .accel
        .parse()
        .map_err(|e: bulkhead_vm::accel::AccelError| EngineError::InvalidOption(e.to_string()))?;
    let accel = bulkhead_vm::accel::detect(choice)
        .map_err(|e| EngineError::InvalidOption(e.to_string()))?;
    let initramfs = bulkhead_vm::initramfs::for_current_exe(&cache)?;
    let vm = Vm::launch(&VmConfig {
        kernel: kernel.vmlinux.clone(),
        initramfs,
        rootfs_artifact: artifact.to_path_buf(),
        writable_disk: paths.disk(),
        memory_mib: u32::try_from(config.vm.memory_mib)
            .map_err(|_| EngineError::InvalidOption("--memory is too large for a VM".into()))?,
        vcpus: config.vm.vcpus,
        accel: accel.kind,
        run_dir: paths.run.clone(),
    })?;
    let stream = vm
        .stream()
        .try_clone()
        .map_err(EngineError::io("agent socket"))?;
    Ok((Backend::Vm { vm: Box::new(vm) }, stream))
}

impl Backend {
    /// The host pid that stands for the container: the forked agent or QEMU.
    pub fn host_pid(&self) -> i32 {
        match self {
            Backend::Process { agent, .. } => agent.as_raw(),
            Backend::Vm { vm } => vm.pid() as i32,
        }
    }

    /// Forces the endpoint down (used when the agent misbehaves).
    pub fn kill(&mut self) {
        match self {
            Backend::Process { agent, .. } => {
                let _ = kill(*agent, Signal::SIGKILL);
            }
            Backend::Vm { vm } => {
                vm.kill();
            }
        }
    }

    /// Ends the endpoint once the main process has exited, for a container about to be removed: a VM is
    /// killed rather than left to unmount and flush a writable disk that is deleted next (about 50 ms
    /// of the guest's time under TCG). A process agent ends by itself.
    pub fn discard(&mut self) {
        if let Backend::Vm { vm } = self {
            vm.kill();
        }
    }

    /// Waits for the endpoint to end and removes what it used on the host.
    pub fn teardown(self, cgroup_name: &str) -> Result<(), EngineError> {
        match self {
            Backend::Process { agent, mnt } => {
                let _ = waitpid(agent, None);
                // The agent destroys the cgroup itself; a killed agent leaves it to us.
                let _ = bulkhead_runtime::cgroups::cleanup(cgroup_name);
                rootfs::disassemble(&mnt)?;
            }
            Backend::Vm { mut vm } => {
                let _ = vm.wait();
            }
        }
        Ok(())
    }
}
