//! VM isolation: the container runs in its own QEMU microVM with its own guest kernel. The VM gets the
//! image's erofs artifact (read-only) and the container's writable disk as virtio-blk disks (a bundle
//! container: its root directory as a virtio-9p share instead), each directory bind and volume as a
//! virtio-9p share, and one more share for all the binds of single files: a copy of each, taken at
//! every start (`file_binds`), so writes in the guest never reach the host's file. The agent, the
//! guest's PID 1, is reached over virtio-serial. Given a network namespace, the VM takes its
//! interfaces over (`bulkhead_vm::network`: a tap per interface, mirrored with tc) and the guest gives
//! its NICs their names, addresses, MTU and route, which the container shares.

use super::file_binds::{self, BindPlan};
use super::mount_points;
use super::{Endpoint, Mode, RootSource};
use crate::config::ContainerConfig;
use crate::containers::Container;
use crate::layout::ContainerPaths;
use crate::EngineError;
use bulkhead_runtime::{ContainerSpec, MountSpec, NetworkMode, Resources, SeccompPolicy};
use bulkhead_vm::host::Share;
use bulkhead_vm::{AccelChoice, Vm, VmConfig, VmRoot};
use serde::Serialize;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

const DEFAULT_MEMORY_MIB: u64 = 256;
const MIN_MEMORY_MIB: u64 = 64;
const MIB: u64 = 1 << 20;
/// How long a failed start waits for QEMU's exit to explain it.
const EXIT_REPORT_GRACE: std::time::Duration = std::time::Duration::from_millis(300);

/// Shared directories (virtio-9p devices) one VM takes: microvm's 8 virtio-mmio transports less the two
/// disks, the agent's serial device and a network device. A bundle container's root share takes the
/// disks' place: one slot instead of two. The binds of single files take one share together.
const MAX_SHARES: usize = 4;

pub(crate) struct VmMode;

/// A guest's size, derived from the container's resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VmSizing {
    pub memory_mib: u64,
    pub vcpus: u32,
}

impl VmSizing {
    /// The memory limit becomes guest RAM (at least 64 MiB, 256 by default) and the CPU quota whole vCPUs.
    pub fn of(resources: &Resources) -> VmSizing {
        VmSizing {
            memory_mib: resources
                .memory_bytes
                .map(|m| (m / MIB).max(MIN_MEMORY_MIB))
                .unwrap_or(DEFAULT_MEMORY_MIB),
            vcpus: resources
                .cpus
                .map(|c| c.ceil().max(1.0) as u32)
                .unwrap_or(1),
        }
    }
}

impl Mode for VmMode {
    fn check(&self, config: &ContainerConfig) -> Result<(), EngineError> {
        let shared = BindPlan::of(&config.workload.mounts).share_count();
        let most = MAX_SHARES + usize::from(config.rootfs_dir.is_some());
        if shared > most {
            return Err(EngineError::InvalidOption(format!(
                "the volumes and binds take {shared} shared directories (one each, and one for all \
                 the binds of single files), more than a VM takes ({most}): QEMU's microvm has 8 \
                 virtio-mmio slots, and the root, the agent's port and the network use the rest"
            )));
        }
        if config.network_mode.starts_with("container:") {
            return Err(EngineError::InvalidOption(
                "--network container: is refused with vm isolation: a guest cannot share another \
                 container's network namespace"
                    .into(),
            ));
        }
        if config.workload.network == NetworkMode::Host {
            return Err(EngineError::InvalidOption(
                "host networking is refused with vm isolation: the guest has no host network"
                    .into(),
            ));
        }
        accel_choice(config)?;
        guest_memory_mib(&VmSizing::of(&config.workload.resources))?;
        Ok(())
    }

    fn adapt_spec(&self, spec: &mut ContainerSpec) {
        // The guest's own network namespace holds `lo` and the NICs its init configured, and serves this
        // one container, so the container shares it rather than paying for a new one.
        spec.workload.network = NetworkMode::Host;
        // Namespaces to join are the host's (a pod's, through its relay): the guest is the container's
        // own kernel, whose fresh IPC and UTS namespaces the container gets instead.
        spec.workload.join_namespaces.clear();
        // The guest's only tenant gets one cgroup level under the root: every level is a cgroup the guest
        // kernel creates at each start.
        spec.cgroup_name = "container".to_string();
        // Each directory bind (a volume's data or a host directory) reaches the guest as a 9p share,
        // which its PID 1 mounts at the share's path, and each bound file as a copy in one more share;
        // the runtime binds those to the targets as it would host paths.
        let sources = BindPlan::of(&spec.workload.mounts).guest_sources();
        let binds = spec.workload.mounts.iter_mut().filter_map(|m| match m {
            MountSpec::Bind { source, .. } => Some(source),
            MountSpec::Tmpfs { .. } => None,
        });
        for (source, guest) in binds.zip(sources) {
            *source = guest;
        }
    }

    fn sizing(&self, config: &ContainerConfig) -> Option<VmSizing> {
        Some(VmSizing::of(&config.workload.resources))
    }

    /// The guest owns the disk's bytes from now on; recorded durably before QEMU can write any.
    fn prepare_disk(
        &self,
        _root: &Path,
        container: &mut Container,
        _artifact: &Path,
    ) -> Result<(), EngineError> {
        if container.state.disk_vm_written {
            return Ok(());
        }
        container.update_state(|s| s.disk_vm_written = true)?;
        bulkhead_fs::sync_dir(&container.paths.dir).map_err(EngineError::io(&container.paths.dir))
    }

    fn launch(
        &self,
        config: &ContainerConfig,
        paths: &ContainerPaths,
        root: &RootSource,
        netns: Option<&Path>,
    ) -> Result<(Box<dyn Endpoint>, UnixStream), EngineError> {
        let root = match root {
            RootSource::Image(artifact) => VmRoot::Disks {
                artifact: artifact.clone(),
                writable: paths.disk(),
            },
            // Read-only in QEMU's server too, so not even a compromised guest kernel writes it.
            RootSource::Directory(dir) => {
                mount_points::ensure(dir, &config.workload)?;
                VmRoot::Share(Share {
                    host: dir.clone(),
                    readonly: config.workload.readonly_rootfs,
                })
            }
        };
        let plan = BindPlan::of(&config.workload.mounts);
        let staging = file_binds::stage(&paths.run, &plan)?;
        let booted = boot(config, &paths.run, root, plan.shares(staging), netns).and_then(|vm| {
            let stream = vm
                .stream()
                .try_clone()
                .map_err(EngineError::io("agent socket"))?;
            Ok((vm, stream))
        });
        match booted {
            Ok((vm, stream)) => Ok((Box::new(RunningVm(vm, paths.run.clone())), stream)),
            Err(e) => {
                if let Err(e) = file_binds::remove(&paths.run) {
                    tracing::warn!("{e}");
                }
                Err(e)
            }
        }
    }

    fn confined_privileges(&self, config: &ContainerConfig) -> Vec<String> {
        let security = &config.workload.security;
        let mut found = Vec::new();
        if security.privileged {
            // All capabilities and no seccomp: naming those too would only repeat it.
            found.push("privileged".to_string());
        } else {
            if !security.cap_add.is_empty() {
                found.push(format!(
                    "added capabilities {}",
                    security.cap_add.join(", ")
                ));
            }
            if security.seccomp == SeccompPolicy::Unconfined {
                found.push("seccomp unconfined".to_string());
            }
        }
        for mount in &config.workload.mounts {
            if let MountSpec::Tmpfs { target, options } = mount {
                // The last of dev/nodev wins, as when the runtime mounts it.
                let dev = options
                    .split(',')
                    .map(str::trim)
                    .rfind(|o| *o == "dev" || *o == "nodev");
                if dev == Some("dev") {
                    found.push(format!("tmpfs {target} with device nodes (dev)"));
                }
            }
        }
        found
    }

    fn host_cgroup(&self, id: &str) -> String {
        cgroup_name(id)
    }

    fn agent_name(&self) -> &'static str {
        "the VM guest"
    }

    fn agent_pids_are_host_pids(&self) -> bool {
        false
    }

    /// QEMU's run files live in the container's run directory, which removal deletes (the copies of
    /// bound files first); its cgroup is left behind only when the monitor died (QEMU died with it), and
    /// so are the tc mirrors in a namespace the container joined (its taps died with QEMU). A namespace
    /// the engine made goes with them.
    fn remove_leftovers(
        &self,
        config: &ContainerConfig,
        paths: &ContainerPaths,
    ) -> Result<(), EngineError> {
        file_binds::remove(&paths.run)?;
        bulkhead_vm::jail::remove_leftovers(&cgroup_name(&config.id))
            .map_err(|e| EngineError::Vm(e.into()))?;
        if let NetworkMode::Namespace(netns) = &config.workload.network {
            bulkhead_vm::network::unwire(netns).map_err(|e| EngineError::Vm(e.into()))?;
        }
        Ok(())
    }
}

/// Boots `config`'s VM on `root`, with `shares` as 9p shares, the interfaces of `netns` and its run
/// files in `run_dir`: the container's own run, or (on its disks, with no shares and no network) the
/// export VM that takes its disk back for process mode.
pub(super) fn boot(
    config: &ContainerConfig,
    run_dir: &Path,
    root: VmRoot,
    shares: Vec<Share>,
    netns: Option<&Path>,
) -> Result<Vm, EngineError> {
    let cache = bulkhead_vm::default_cache_dir();
    let kernel = bulkhead_vm::kernel::info(&cache).ok_or(EngineError::NoGuestKernel)?;
    let accel = bulkhead_vm::accel::detect(accel_choice(config)?)
        .map_err(|e| EngineError::InvalidOption(e.to_string()))?;
    let initramfs = bulkhead_vm::initramfs::for_current_exe(&cache)?;
    let sizing = VmSizing::of(&config.workload.resources);
    Ok(Vm::launch(&VmConfig {
        kernel: kernel.vmlinux.clone(),
        initramfs,
        root,
        memory_mib: guest_memory_mib(&sizing)?,
        vcpus: sizing.vcpus,
        accel: accel.kind,
        run_dir: run_dir.to_path_buf(),
        cgroup: cgroup_name(&config.id),
        cpus: config.workload.resources.cpus,
        shares,
        netns: netns.map(Path::to_path_buf),
    })?)
}

/// QEMU's cgroup: one per container, next to the process mode's `bulkhead/<id>`.
fn cgroup_name(id: &str) -> String {
    format!("bulkhead-vm/{id}")
}

/// The accelerator the container asks for (`auto`, `kvm` or `tcg`).
fn accel_choice(config: &ContainerConfig) -> Result<AccelChoice, EngineError> {
    config
        .vm
        .accel
        .parse()
        .map_err(|e| EngineError::InvalidOption(format!("invalid VM accelerator: {e}")))
}

/// Guest RAM as QEMU takes it.
fn guest_memory_mib(sizing: &VmSizing) -> Result<u32, EngineError> {
    u32::try_from(sizing.memory_mib)
        .map_err(|_| EngineError::InvalidOption("the memory limit is too large for a VM".into()))
}

/// The VM and the container's run directory (which holds the copies of bound files).
struct RunningVm(Vm, PathBuf);

impl Endpoint for RunningVm {
    fn host_pid(&self) -> i32 {
        self.0.pid() as i32
    }

    fn jail(&self) -> Option<bulkhead_vm::Confinement> {
        self.0.confinement().cloned()
    }

    fn nics(&self) -> Vec<bulkhead_proto::nic::GuestNic> {
        self.0.nics().to_vec()
    }

    /// QEMU exits at once when it cannot start the VM; a guest that is merely broken leaves it running.
    fn exit_report(&mut self) -> Option<String> {
        self.0.exit_report(EXIT_REPORT_GRACE)
    }

    fn kill(&mut self) {
        self.0.kill();
    }

    /// A VM is killed rather than left to unmount and flush a writable disk that is deleted next (about
    /// 50 ms of the guest's time under TCG).
    fn discard(&mut self) {
        self.0.kill();
    }

    fn teardown(mut self: Box<Self>) -> Result<(), EngineError> {
        let _ = self.0.wait();
        Ok(file_binds::remove(&self.1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizing_follows_the_limits() {
        let r = |memory_bytes, cpus| Resources {
            memory_bytes,
            cpus,
            pids_limit: None,
        };
        assert_eq!(VmSizing::of(&r(None, None)).memory_mib, 256);
        assert_eq!(VmSizing::of(&r(Some(512 * MIB), None)).memory_mib, 512);
        assert_eq!(VmSizing::of(&r(Some(8 * MIB), None)).memory_mib, 64);
        assert_eq!(VmSizing::of(&r(None, Some(1.5))).vcpus, 2);
    }
}
