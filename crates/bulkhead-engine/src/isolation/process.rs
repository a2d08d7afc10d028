//! Process isolation: the container shares the host kernel. The monitor assembles the root filesystem on
//! the host (the image's erofs artifact, mounted once for all its containers, + the ext4 writable disk
//! on a loop device + overlay; or a bind of a bundle container's directory) and forks the agent, which runs the container in new namespaces under a host
//! cgroup.

use super::{disk_export, Endpoint, Mode, RootSource, VmSizing};
use crate::config::ContainerConfig;
use crate::containers::Container;
use crate::layout::ContainerPaths;
use crate::EngineError;
use bulkhead_runtime::rootfs::{self, shared_lower};
use bulkhead_runtime::{ContainerSpec, NetworkMode};
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

pub(crate) struct ProcessMode;

/// The cgroup (below each controller's root) a process-mode container runs in on the host.
fn host_cgroup_name(id: &str) -> String {
    format!("bulkhead/{id}")
}

impl Mode for ProcessMode {
    fn check(&self, _config: &ContainerConfig) -> Result<(), EngineError> {
        Ok(())
    }

    fn adapt_spec(&self, spec: &mut ContainerSpec) {
        spec.cgroup_name = host_cgroup_name(&spec.id);
        // The agent joins a prepared namespace itself (see `launch`); the container shares it.
        if let NetworkMode::Namespace(_) = spec.workload.network {
            spec.workload.network = NetworkMode::Host;
        }
    }

    fn sizing(&self, _config: &ContainerConfig) -> Option<VmSizing> {
        None
    }

    /// A disk a VM wrote is never mounted here: its content comes back through an export VM, onto a
    /// disk the host formats.
    fn prepare_disk(
        &self,
        root: &Path,
        container: &mut Container,
        artifact: &Path,
    ) -> Result<(), EngineError> {
        if !container.state.disk_vm_written {
            return Ok(());
        }
        disk_export::take_back(root, container, artifact)
    }

    fn launch(
        &self,
        config: &ContainerConfig,
        paths: &ContainerPaths,
        root: &RootSource,
        netns: Option<&Path>,
    ) -> Result<(Box<dyn Endpoint>, UnixStream), EngineError> {
        let netns = netns
            .map(|path| std::fs::File::open(path).map_err(EngineError::io(path)))
            .transpose()?;
        let mnt = paths.mnt();
        let root = match root {
            RootSource::Image(artifact) => assemble(artifact, &config.id, paths),
            RootSource::Directory(dir) => bind_directory(dir, &mnt),
        }
        .inspect_err(|_| {
            let _ = release_root(&config.id, paths);
        })?;
        let (ours, theirs) = UnixStream::pair().map_err(EngineError::io("socketpair"))?;
        // SAFETY: the monitor is single-threaded here (see `Mode::launch`); the child only runs the agent
        // loop and exits without returning into the caller's stack.
        match unsafe { fork() }.map_err(EngineError::sys("forking the agent"))? {
            ForkResult::Child => {
                drop(ours);
                if let Some(ns) = netns {
                    if let Err(e) = setns(ns, CloneFlags::CLONE_NEWNET) {
                        eprintln!("agent: joining the container's network namespace: {e}");
                        // SAFETY: leaving the forked child without running the parent's destructors.
                        unsafe { libc::_exit(1) }
                    }
                }
                // The agent must not hold the monitor's listening socket or the CLI's ready pipe: if the
                // monitor dies, clients must see it gone, not a socket nobody serves.
                crate::fds::close_all_but(theirs.as_raw_fd());
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
                let agent = ForkedAgent {
                    pid: child,
                    id: config.id.clone(),
                    paths: paths.clone(),
                    cgroup: host_cgroup_name(&config.id),
                };
                Ok((Box::new(agent), ours))
            }
        }
    }

    /// Nothing is weaker than sharing the host kernel.
    fn confined_privileges(&self, _config: &ContainerConfig) -> Vec<String> {
        Vec::new()
    }

    fn host_cgroup(&self, id: &str) -> String {
        host_cgroup_name(id)
    }

    fn agent_name(&self) -> &'static str {
        "the container agent"
    }

    fn agent_pids_are_host_pids(&self) -> bool {
        true
    }

    fn remove_leftovers(
        &self,
        config: &ContainerConfig,
        paths: &ContainerPaths,
    ) -> Result<(), EngineError> {
        release_root(&config.id, paths)?;
        let _ = bulkhead_runtime::cgroups::cleanup(&host_cgroup_name(&config.id));
        Ok(())
    }
}

/// Where a bundle container's directory is bound, below the container's `mnt`.
const BUNDLE_ROOT: &str = "bundle";

/// Binds a bundle container's root directory (the caller's) at `<mnt>/bundle` for the runtime:
/// recursively, as runc takes a rootfs with the mounts the caller made below it, and private, so that
/// nothing mounted below the bind (the runtime mounts in its own namespace anyway) reaches the caller's
/// tree or the other way round.
fn bind_directory(dir: &Path, mnt: &Path) -> Result<PathBuf, EngineError> {
    let target = mnt.join(BUNDLE_ROOT);
    std::fs::create_dir_all(&target).map_err(EngineError::io(&target))?;
    let what = |step: &str| format!("{step} of {} at {}", dir.display(), target.display());
    mount(
        Some(dir),
        &target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(EngineError::sys(what("bind")))?;
    mount(
        None::<&str>,
        &target,
        None::<&str>,
        MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(EngineError::sys(what("making private the bind")))?;
    Ok(target)
}

/// Unmounts whatever [`ProcessMode::launch`] mounted for container `id`: below its `mnt`, a bundle's
/// bind (detached, with the caller's mounts below it; never a removal of what is in it, which is the
/// caller's) and an image root's overlay and disk; and its use of its image's shared lower mount,
/// which the last user unmounts. Idempotent, and a no-op for what was never mounted.
fn release_root(id: &str, paths: &ContainerPaths) -> Result<(), EngineError> {
    let mnt = paths.mnt();
    let bundle = mnt.join(BUNDLE_ROOT);
    loop {
        match umount2(&bundle, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
            // Again, in case something was mounted over it more than once.
            Ok(()) => continue,
            Err(Errno::EINVAL | Errno::ENOENT) => break,
            Err(e) => {
                return Err(EngineError::Sys {
                    what: format!("unmounting {}", bundle.display()),
                    source: e,
                })
            }
        }
    }
    // Only an empty directory goes: had the unmount not happened, this fails rather than delete.
    match std::fs::remove_dir(&bundle) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(EngineError::io(&bundle)(e))
        }
        _ => {}
    }
    rootfs::disassemble(&mnt)?;
    release_lowers(id, &paths.lowers)
}

/// The container's root: its disk over the shared read-only mount of its image's artifact.
fn assemble(artifact: &Path, id: &str, paths: &ContainerPaths) -> Result<PathBuf, EngineError> {
    let lower = shared_lower::acquire(artifact, &image_lower(artifact, &paths.lowers)?, id)?;
    let upper = rootfs::attach_loop(&paths.disk(), false)?;
    Ok(rootfs::assemble_on_lower(
        &lower,
        upper.path(),
        &paths.mnt(),
    )?)
}

/// The shared lower mount's directory of the image whose artifact is `artifact` (named by the image).
fn image_lower(artifact: &Path, lowers: &Path) -> Result<PathBuf, EngineError> {
    bulkhead_fs::private_dir(lowers).map_err(EngineError::io(lowers))?;
    let name = artifact.file_stem().ok_or_else(|| EngineError::Io {
        path: artifact.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"),
    })?;
    Ok(lowers.join(name))
}

/// Releases container `id`'s use of whichever image's lower mount it holds: found by its entry, since
/// the container's image may have been removed (`rmi -f`) or its record lost in a crash.
fn release_lowers(id: &str, lowers: &Path) -> Result<(), EngineError> {
    let images = match std::fs::read_dir(lowers) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(EngineError::io(lowers)(e)),
    };
    for image in images {
        let dir = image.map_err(EngineError::io(lowers))?.path();
        if shared_lower::is_user(&dir, id) {
            shared_lower::release(&dir, id)?;
        }
    }
    Ok(())
}

/// The agent forked on the host, and the mounts and cgroup it runs the container in.
struct ForkedAgent {
    pid: Pid,
    id: String,
    paths: ContainerPaths,
    cgroup: String,
}

impl Endpoint for ForkedAgent {
    fn host_pid(&self) -> i32 {
        self.pid.as_raw()
    }

    fn kill(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
    }

    /// A process agent ends by itself once its container has exited.
    fn discard(&mut self) {}

    fn teardown(self: Box<Self>) -> Result<(), EngineError> {
        let _ = waitpid(self.pid, None);
        // The agent destroys the cgroup itself; a killed agent leaves it to us.
        let _ = bulkhead_runtime::cgroups::cleanup(&self.cgroup);
        release_root(&self.id, &self.paths)?;
        Ok(())
    }
}
