//! What a container is: fixed at create time (isolation and resources may be changed by `update`).

use bulkhead_runtime::Workload;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// The isolation level of a container; switchable while it is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    #[default]
    Process,
    #[serde(alias = "hyperv")]
    Vm,
}

impl FromStr for Isolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "process" => Ok(Isolation::Process),
            "vm" | "hyperv" => Ok(Isolation::Vm),
            other => Err(format!(
                "unknown isolation \"{other}\" (expected process, vm or hyperv)"
            )),
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Isolation::Process => "process",
            Isolation::Vm => "vm",
        })
    }
}

/// Options that only VM isolation uses (the guest's size follows the resource limits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmOptions {
    /// `auto`, `kvm` or `tcg`.
    pub accel: String,
}

/// A container's definition, persisted as `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub id: String,
    pub name: String,
    pub created: DateTime<Utc>,
    /// The image reference as the user gave it, and the image id it resolved to.
    pub image: String,
    pub image_id: String,
    pub isolation: Isolation,
    /// What runs and how it is confined: the same in both isolation levels.
    #[serde(flatten)]
    pub workload: Workload,
    /// `-i`: stdin stays open for attach.
    pub open_stdin: bool,
    pub stop_signal: String,
    pub stop_timeout: u64,
    pub auto_remove: bool,
    pub vm: VmOptions,
    pub disk_size: u64,
    /// The volumes (named and anonymous) the container mounts: `volume rm` refuses them while it exists,
    /// `rm -v` removes its anonymous ones.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// `--add-host`, as `HOST:IP` or `HOST:host-gateway`.
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    /// `--dns`, `--dns-search`, `--dns-option`: override the host's resolv.conf as in docker.
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    #[serde(default)]
    pub dns_search: Vec<String>,
    #[serde(default)]
    pub dns_options: Vec<String>,
    /// `--network` as docker shows it: `bridge`, `none`, `host`, `container:<id>` or a network's name
    /// (empty for containers made before bridge networks, which have `workload.network`).
    #[serde(default)]
    pub network_mode: String,
    /// The bridge networks the container is attached to (`eth0` first); empty unless bridged.
    #[serde(default)]
    pub networks: Vec<crate::networks::NetworkAttachment>,
    /// `-p`, and `-P` expanded over the image's exposed ports.
    #[serde(default)]
    pub ports: Vec<bulkhead_net::ports::PortSpec>,
    /// The image's labels overlaid by the caller's `--label`s, as docker.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A bundle container's root filesystem: a directory the caller prepared and owns (an OCI bundle's
    /// rootfs), used as it is in place of an image and a writable disk (`image_id` is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_dir: Option<PathBuf>,
}

impl ContainerConfig {
    /// The volume a bind mount source is, if it is one of this container's volumes (a volume is mounted
    /// as a bind of its `<root>/volumes/<name>/_data`): how docker's `Mounts` tell volumes from binds.
    pub fn volume_of<'a>(&self, source: &'a std::path::Path) -> Option<&'a str> {
        source
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .filter(|n| source.ends_with("_data") && self.volumes.iter().any(|v| v == n))
    }
}

/// Everything `create`/`run` accept, as a front end hands it over. Caller-side input is resolved by the
/// front end: `env` entries are `KEY=VALUE` (a bare `KEY` removes the image's value, as dockerd does), and
/// a `seccomp=` security option carries the profile's JSON, not a file name.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub image: String,
    pub name: Option<String>,
    pub cmd: Vec<String>,
    /// `Some(vec![])` clears the image's entrypoint, as in docker.
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub interactive: bool,
    pub tty: bool,
    /// With `tty`: the terminal's size (rows, columns) from the start, before any resize arrives.
    pub console_size: Option<(u16, u16)>,
    pub volumes: Vec<String>,
    /// `--mount` values (`type=volume|bind|tmpfs,source=,target=,...`).
    pub mounts: Vec<String>,
    pub tmpfs: Vec<String>,
    pub read_only: bool,
    pub hostname: Option<String>,
    pub memory: Option<u64>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    pub network: Option<String>,
    /// `--network-alias`: more names on a user-defined network.
    pub network_aliases: Vec<String>,
    /// `-p [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]`.
    pub publish: Vec<String>,
    /// `-P`: publish every port the image exposes on a free host port.
    pub publish_all: bool,
    /// `None`: the isolation policy decides.
    pub isolation: Option<Isolation>,
    /// Pull the image when the store does not have it; `None`: never pull.
    pub pull: Option<crate::PullSettings>,
    pub userns: Option<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub privileged: bool,
    pub auto_remove: bool,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<u64>,
    pub ulimits: Vec<String>,
    pub accel: Option<String>,
    pub disk_size: Option<u64>,
    /// `--add-host HOST:IP` (or `HOST:host-gateway`).
    pub add_hosts: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `--label KEY=VALUE`, over the image's labels.
    pub labels: BTreeMap<String, String>,
}
