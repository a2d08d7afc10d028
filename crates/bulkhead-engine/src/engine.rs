//! The engine facade: one value every front end (the CLI, the Docker API server, the OCI runtime CLI)
//! opens and calls. It owns the policy (pull if missing, the isolation policy, which image artifacts to
//! build, what may be removed); front ends only parse their input and present the typed results.

use crate::layout::Layout;
use crate::policy::IsolationPolicy;
use crate::EngineError;
use bulkhead_image::{Limits, Store};
use bulkhead_runtime::cgroups::CgroupVersion;
use bulkhead_vm::{Accel, AccelChoice, Kernel};
use std::path::{Path, PathBuf};

/// How an engine is configured: where its state lives, the unpack cap, and the isolation policy.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub root: PathBuf,
    /// Most bytes one image may unpack to (guard against tar and gzip bombs); `None`: the store's default.
    pub max_unpacked_bytes: Option<u64>,
    pub policy: IsolationPolicy,
    /// The default `bridge` network's subnet when this root first makes it; `None`: 172.17.0.0/16
    /// unless a host route takes it, then the next free /16 of 172.17-31.
    pub bridge_subnet: Option<bulkhead_net::Subnet>,
}

impl EngineConfig {
    /// The configuration of `root`, with the isolation policy read from `<root>/policy.json`. A malformed
    /// policy file is an error here, so no front end starts with a policy other than the one written.
    pub fn load(root: &Path) -> Result<EngineConfig, EngineError> {
        Ok(EngineConfig {
            root: root.to_path_buf(),
            max_unpacked_bytes: None,
            policy: IsolationPolicy::load(&policy_path(root))?,
            bridge_subnet: None,
        })
    }
}

/// Where an operator writes the isolation policy of `root`.
pub fn policy_path(root: &Path) -> PathBuf {
    root.join("policy.json")
}

/// The engine: containers plus the image store under one root.
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) layout: Layout,
    pub(crate) store: Store,
}

/// What `info` reports.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    pub root: PathBuf,
    pub store_bytes: u64,
    pub images: usize,
    pub containers: usize,
    pub running: usize,
    pub cgroup_version: CgroupVersion,
    /// The accelerator VM containers get by default, or why there is none.
    pub accel: Result<Accel, String>,
    /// The guest kernel, once built.
    pub guest_kernel: Option<Kernel>,
    pub policy: IsolationPolicy,
}

impl Engine {
    pub fn open(config: EngineConfig) -> Result<Engine, EngineError> {
        // Owner-only, and tightened if an older version made it 0755: below are `-e` secrets, logs and
        // the mounted content of every container.
        bulkhead_fs::private_dir(&config.root).map_err(EngineError::io(&config.root))?;
        Ok(Engine {
            layout: Layout::new(&config.root),
            store: open_store(&config.root, config.max_unpacked_bytes)?,
            config,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn info(&self) -> Result<EngineInfo, EngineError> {
        let containers = crate::containers::list(&self.layout)?;
        let running = containers
            .iter()
            .filter(|c| c.state.status == crate::Status::Running)
            .count();
        Ok(EngineInfo {
            root: self.config.root.clone(),
            store_bytes: self.store.total_size()?,
            images: self.store.list()?.len(),
            containers: containers.len(),
            running,
            cgroup_version: bulkhead_runtime::cgroups::version(),
            accel: bulkhead_vm::accel::detect(AccelChoice::Auto).map_err(|e| e.to_string()),
            guest_kernel: guest_kernel(),
            policy: self.config.policy.clone(),
        })
    }
}

/// The guest kernel VM containers boot, if it is built.
pub fn guest_kernel() -> Option<Kernel> {
    bulkhead_vm::kernel::info(&bulkhead_vm::default_cache_dir())
}

/// Builds the guest kernel once (about 9 minutes on 2 cores), passing its build log lines to `log`.
pub fn build_guest_kernel(log: impl Fn(&str)) -> Result<Kernel, EngineError> {
    Ok(bulkhead_vm::kernel::build(
        &bulkhead_vm::default_cache_dir(),
        log,
    )?)
}

/// Opens the image store under `root` with the given unpack cap.
pub(crate) fn open_store(
    root: &Path,
    max_unpacked_bytes: Option<u64>,
) -> Result<Store, EngineError> {
    let store = Store::open(root)?;
    Ok(match max_unpacked_bytes {
        Some(bytes) => {
            let limits = Limits {
                max_unpacked_bytes: bytes,
                ..store.limits().clone()
            };
            store.with_limits(limits)
        }
        None => store,
    })
}
