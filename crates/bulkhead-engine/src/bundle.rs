//! Bundle containers: a container whose root filesystem and workload a caller supplies (an OCI bundle:
//! podman's or containerd's prepared rootfs directory and the translated config.json), not an image.
//! Such a container has no image artifact and no writable disk: process mode binds the directory as the
//! root, VM mode shares it with the guest over virtio-9p. The directory stays the caller's: `rm` never
//! touches it, and the isolation is fixed at create (there is no disk to carry across a switch).

use crate::config::{ContainerConfig, Isolation, VmOptions};
use crate::containers::{self, Container};
use crate::{events, isolation, spec, Engine, EngineError};
use bulkhead_runtime::{NetworkMode, Workload};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the policy names a bundle with no image name in its messages.
const UNNAMED: &str = "(a bundle without an image name)";

/// A container whose root filesystem and workload a caller supplies (an OCI bundle), not an image.
#[derive(Debug, Clone)]
pub struct BundleCreate {
    /// The caller's id for it; validated as a container name.
    pub name: String,
    /// Absolute path of an existing directory (the caller's overlay), used as the container's root.
    pub rootfs: PathBuf,
    pub workload: Workload,
    /// Requested; `None`: the policy decides.
    pub isolation: Option<Isolation>,
    /// The image the bundle was made from (from its annotations), for the isolation policy; `None`: no
    /// name matches, so with `process_allowed` set the container gets a VM.
    pub image_name: Option<String>,
    /// The bundle's annotations.
    pub labels: BTreeMap<String, String>,
    pub open_stdin: bool,
}

impl Engine {
    /// Creates a bundle container: its records only (no image, no disk). The isolation is what the
    /// policy decides for `image_name` and the requested isolation. The network is the workload's as
    /// given (a namespace path, none, or the host's): a bundle container joins no bridge and publishes
    /// no ports.
    pub fn create_bundle(&self, b: &BundleCreate) -> Result<Container, EngineError> {
        // Callers name containers by 64-hex ids (podman, containerd's CRI); `find` tries a full engine
        // id before an exact name, so such a name stays unambiguous.
        if !crate::docker_names::is_valid(&b.name, 128) {
            crate::lifecycle::validate_name(&b.name)?;
        }
        let rootfs = checked_rootfs(&b.rootfs)?;
        let process = &b.workload.process;
        if process.args.is_empty() {
            return Err(EngineError::InvalidOption(
                "the bundle's process has no arguments".into(),
            ));
        }
        if !process.cwd.starts_with('/') {
            return Err(EngineError::InvalidOption(format!(
                "working directory {} is not absolute",
                process.cwd
            )));
        }
        spec::validate_resources(&b.workload.resources)?;
        let network_mode = match &b.workload.network {
            NetworkMode::None => "none".to_string(),
            NetworkMode::Host => "host".to_string(),
            NetworkMode::Namespace(path) if path.is_absolute() => {
                format!("ns:{}", path.display())
            }
            NetworkMode::Namespace(path) => {
                return Err(EngineError::InvalidOption(format!(
                    "network namespace {} is not an absolute path",
                    path.display()
                )))
            }
        };
        let (subject, names) = policy_subject(b.image_name.as_deref().unwrap_or_default());
        let isolation = self.config.policy.decide(subject, || names, b.isolation)?;
        let id = containers::new_id()?;
        let config = ContainerConfig {
            id: id.clone(),
            name: b.name.clone(),
            created: chrono::Utc::now(),
            // The name the policy matched, so `start` checks the same one (the policy may change).
            image: b.image_name.clone().unwrap_or_default(),
            image_id: String::new(),
            isolation,
            workload: b.workload.clone(),
            open_stdin: b.open_stdin,
            stop_signal: "SIGTERM".into(),
            stop_timeout: 10,
            auto_remove: false,
            vm: VmOptions {
                accel: "auto".into(),
            },
            disk_size: 0,
            volumes: Vec::new(),
            extra_hosts: Vec::new(),
            dns: Vec::new(),
            dns_search: Vec::new(),
            dns_options: Vec::new(),
            network_mode,
            networks: Vec::new(),
            ports: Vec::new(),
            labels: b.labels.clone(),
            rootfs_dir: Some(rootfs),
        };
        isolation::mode(isolation).check(&config)?;
        // As `create`: made where `list` does not look, renamed into place last.
        let staged = containers::stage(&self.layout, &id)?;
        let container = staged.commit(&self.layout, config)?;
        events::container(&self.layout, &container.config, "create", &[]);
        Ok(container)
    }
}

/// The rootfs as the container keeps it: absolute, an existing directory, symlinks resolved now (the
/// path the caller gave is what it prepared, whatever a link in it points at later).
fn checked_rootfs(rootfs: &std::path::Path) -> Result<PathBuf, EngineError> {
    if !rootfs.is_absolute() {
        return Err(EngineError::InvalidOption(format!(
            "the bundle's rootfs {} is not an absolute path",
            rootfs.display()
        )));
    }
    let resolved = std::fs::canonicalize(rootfs).map_err(EngineError::io(rootfs))?;
    if !resolved.is_dir() {
        return Err(EngineError::InvalidOption(format!(
            "the bundle's rootfs {} is not a directory",
            rootfs.display()
        )));
    }
    Ok(resolved)
}

/// What the isolation policy matches a bundle container by (`image`: the bundle's image name, empty if
/// it has none): the name its messages use, and `REGISTRY/REPOSITORY` as the patterns match images (a
/// name that does not parse as a reference is matched as it is). No name matches no pattern.
pub(crate) fn policy_subject(image: &str) -> (&str, Vec<String>) {
    if image.is_empty() {
        return (UNNAMED, Vec::new());
    }
    let name = image
        .parse::<bulkhead_image::Reference>()
        .map(|r| r.name())
        .unwrap_or_else(|_| image.to_string());
    (image, vec![name])
}
