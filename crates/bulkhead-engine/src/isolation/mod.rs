//! Everything that differs between the isolation levels, behind one trait: what each mode refuses, how
//! the runtime spec and the resources map onto it, how the container's agent is brought up and reached,
//! and what a run leaves on the host. Nothing else in the engine matches on [`Isolation`]; a feature that
//! differs per mode (networking, volumes, templates) adds a method here and an implementation in each
//! module.

mod disk_export;
mod file_binds;
mod mount_points;
mod process;
mod vm;

use crate::config::ContainerConfig;
use crate::containers::Container;
use crate::layout::ContainerPaths;
use crate::{EngineError, Isolation};
use bulkhead_proto::nic::GuestNic;
use bulkhead_runtime::ContainerSpec;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

pub use disk_export::ExportError;
pub use file_binds::FileBindError;
pub use vm::VmSizing;

/// Where a run's root filesystem comes from.
pub(crate) enum RootSource {
    /// The image's erofs artifact (this path) under the container's writable disk.
    Image(PathBuf),
    /// A directory the caller prepared and owns (a bundle container's `rootfs_dir`), used as it is.
    Directory(PathBuf),
}

impl RootSource {
    /// The root of `config`'s runs; an image's artifact is built or found by `artifact`.
    pub(crate) fn of(
        config: &ContainerConfig,
        artifact: impl FnOnce() -> Result<PathBuf, EngineError>,
    ) -> Result<RootSource, EngineError> {
        Ok(match &config.rootfs_dir {
            Some(dir) => RootSource::Directory(dir.clone()),
            None => RootSource::Image(artifact()?),
        })
    }
}

/// One isolation level.
pub(crate) trait Mode: Sync {
    /// Refuses, before anything runs, what this mode cannot honour.
    fn check(&self, config: &ContainerConfig) -> Result<(), EngineError>;

    /// Adapts the runtime spec the agent starts the container from.
    fn adapt_spec(&self, spec: &mut ContainerSpec);

    /// The guest's size, for modes that have a guest.
    fn sizing(&self, config: &ContainerConfig) -> Option<VmSizing>;

    /// Makes the container's writable disk fit for a run in this mode, before anything runs: VM mode
    /// records that a guest is about to own the disk's bytes, process mode takes back a disk a VM wrote
    /// (the host kernel never mounts one) by replacing it with a host-written copy of its content.
    /// Only for a root from an image: a bundle container has no disk.
    fn prepare_disk(
        &self,
        root: &Path,
        container: &mut Container,
        artifact: &Path,
    ) -> Result<(), EngineError>;

    /// Brings up the container's agent and returns the stream to it. Must be called while the monitor is
    /// single-threaded (process mode forks). `netns` is the container's network namespace as the engine
    /// prepared it (`lo`, `eth0`... on host bridges; `None` for `--network none` and `host`); process
    /// mode's runtime joins it through the spec, VM mode connects the guest's NIC inside it.
    fn launch(
        &self,
        config: &ContainerConfig,
        paths: &ContainerPaths,
        root: &RootSource,
        netns: Option<&Path>,
    ) -> Result<(Box<dyn Endpoint>, UnixStream), EngineError>;

    /// Settings this mode's boundary makes acceptable but that would be privileges on the host under a
    /// weaker one (`--privileged` inside a VM owns only the VM), named for messages. A switch away from
    /// this mode refuses them unless the caller insists.
    fn confined_privileges(&self, config: &ContainerConfig) -> Vec<String>;

    /// The host cgroup that holds what runs the container (its processes, or its VM): what `pause`
    /// freezes.
    fn host_cgroup(&self, id: &str) -> String;

    /// Who is at the other end of the agent stream, for messages ("the VM guest").
    fn agent_name(&self) -> &'static str;

    /// Whether the pids the agent reports are host pids (they are guest pids in a VM).
    fn agent_pids_are_host_pids(&self) -> bool;

    /// Removes what a run in this mode may have left on the host (after a crash too). Idempotent.
    fn remove_leftovers(
        &self,
        config: &ContainerConfig,
        paths: &ContainerPaths,
    ) -> Result<(), EngineError>;
}

/// A running agent endpoint: the forked agent or the VM.
pub(crate) trait Endpoint {
    /// The host pid that stands for the container: the forked agent or QEMU.
    fn host_pid(&self) -> i32;

    /// VM mode: how QEMU is confined.
    fn jail(&self) -> Option<bulkhead_vm::Confinement> {
        None
    }

    /// VM mode: the interfaces the guest is to configure before the container starts.
    fn nics(&self) -> Vec<GuestNic> {
        Vec::new()
    }

    /// After the agent failed to start: why, if the endpoint itself has ended (VM mode: QEMU's exit and
    /// the end of its log).
    fn exit_report(&mut self) -> Option<String> {
        None
    }

    /// Forces the endpoint down (used when the agent misbehaves).
    fn kill(&mut self);

    /// Ends the endpoint once the main process has exited, for a container about to be removed.
    fn discard(&mut self);

    /// Waits for the endpoint to end and removes what it used on the host.
    fn teardown(self: Box<Self>) -> Result<(), EngineError>;
}

/// The implementation of `isolation`.
pub(crate) fn mode(isolation: Isolation) -> &'static dyn Mode {
    match isolation {
        Isolation::Process => &process::ProcessMode,
        Isolation::Vm => &vm::VmMode,
    }
}

/// Every mode, for clean-ups that must not depend on the mode a container has now.
pub(crate) fn all_modes() -> [&'static dyn Mode; 2] {
    [mode(Isolation::Process), mode(Isolation::Vm)]
}
