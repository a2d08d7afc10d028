//! Networks: records under `<root>/networks/<id>/network.json`, the default `bridge` network, and
//! user-defined ones. A network's kernel side (its bridge, the bridge's firewall rules) is host-global and
//! made by [`bridge`]; a container's side (namespace, veth, address, published ports, endpoint record)
//! by [`attach`], in the monitor.

pub(crate) mod attach;
pub(crate) mod bridge;

use crate::config::ContainerConfig;
use crate::layout::Layout;
use crate::{fsutil, EngineError};
use bulkhead_net::Subnet;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// The default network's name, bridge and subnet, as docker's.
pub const DEFAULT_NETWORK: &str = "bridge";
pub const DEFAULT_BRIDGE: &str = "bulkhead0";
const DEFAULT_SUBNET: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 0);

/// A network, persisted as `network.json` (the DNS helper reads these too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub name: String,
    pub id: String,
    /// Always `bridge`.
    pub driver: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    /// The host's bridge interface.
    pub bridge: String,
    pub created: DateTime<Utc>,
    /// Embedded name resolution: on for user-defined networks, off for the default one, as in docker.
    pub dns: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One container attached to a network, persisted as `endpoints/<container-id>.json` while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub container_id: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub ipv4: Ipv4Addr,
}

/// A container's membership of a network, kept in its definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    pub network_id: String,
    pub aliases: Vec<String>,
}

/// What `network create` takes.
#[derive(Debug, Clone, Default)]
pub struct NetworkCreateOptions {
    pub name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub labels: BTreeMap<String, String>,
}

pub(crate) fn dir(layout: &Layout) -> PathBuf {
    layout.root().join("networks")
}

fn record_path(layout: &Layout, id: &str) -> PathBuf {
    dir(layout).join(id).join("network.json")
}

pub(crate) fn endpoint_path(layout: &Layout, network_id: &str, container_id: &str) -> PathBuf {
    dir(layout)
        .join(network_id)
        .join("endpoints")
        .join(format!("{container_id}.json"))
}

fn lock(layout: &Layout) -> Result<bulkhead_fs::Lock, EngineError> {
    let d = dir(layout);
    std::fs::create_dir_all(&d).map_err(EngineError::io(&d))?;
    fsutil::lock(&d.join(".lock"))
}

/// Every network of this root, the default one first (made on first use).
pub(crate) fn list(
    layout: &Layout,
    default_subnet: Option<Subnet>,
) -> Result<Vec<NetworkRecord>, EngineError> {
    default_network(layout, default_subnet)?;
    let mut out = records(layout)?;
    out.sort_by_key(|n| (n.name != DEFAULT_NETWORK, n.created));
    Ok(out)
}

fn records(layout: &Layout) -> Result<Vec<NetworkRecord>, EngineError> {
    let d = dir(layout);
    let Ok(entries) = std::fs::read_dir(&d) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path().join("network.json");
        if path.exists() {
            out.push(fsutil::read_json(&path)?);
        }
    }
    Ok(out)
}

/// Finds a network by name, full id or unique id prefix, like docker.
pub(crate) fn find(
    layout: &Layout,
    key: &str,
    default_subnet: Option<Subnet>,
) -> Result<NetworkRecord, EngineError> {
    let all = list(layout, default_subnet)?;
    if let Some(n) = all.iter().find(|n| n.name == key || n.id == key) {
        return Ok(n.clone());
    }
    let prefixed: Vec<&NetworkRecord> = all
        .iter()
        .filter(|n| !key.is_empty() && n.id.starts_with(key))
        .collect();
    match prefixed.as_slice() {
        [one] => Ok((*one).clone()),
        _ => Err(EngineError::NoSuchNetwork(key.to_string())),
    }
}

/// The record of network `id`.
pub(crate) fn load(layout: &Layout, id: &str) -> Result<NetworkRecord, EngineError> {
    let path = record_path(layout, id);
    if !path.exists() {
        return Err(EngineError::NoSuchNetwork(id.to_string()));
    }
    fsutil::read_json(&path)
}

/// The default `bridge` network's record, made on first use with `subnet` or the first /16 of
/// 172.17-31 that no host route takes.
pub(crate) fn default_network(
    layout: &Layout,
    subnet: Option<Subnet>,
) -> Result<NetworkRecord, EngineError> {
    if let Some(n) = records(layout)?
        .into_iter()
        .find(|n| n.name == DEFAULT_NETWORK)
    {
        return Ok(n);
    }
    let _lock = lock(layout)?;
    if let Some(n) = records(layout)?
        .into_iter()
        .find(|n| n.name == DEFAULT_NETWORK)
    {
        return Ok(n);
    }
    let subnet = match subnet {
        Some(s) => s,
        None => bridge::free_default_subnet(DEFAULT_SUBNET)?,
    };
    let record = NetworkRecord {
        name: DEFAULT_NETWORK.to_string(),
        id: crate::containers::new_id()?,
        driver: "bridge".into(),
        subnet,
        gateway: subnet.first_host(),
        bridge: DEFAULT_BRIDGE.into(),
        created: Utc::now(),
        dns: false,
        labels: BTreeMap::new(),
    };
    save(layout, &record)?;
    Ok(record)
}

fn save(layout: &Layout, record: &NetworkRecord) -> Result<(), EngineError> {
    let d = dir(layout).join(&record.id);
    std::fs::create_dir_all(d.join("endpoints")).map_err(EngineError::io(&d))?;
    fsutil::write_json(&record_path(layout, &record.id), record)
}

/// `network create`: the record and its bridge, or neither.
pub(crate) fn create(
    layout: &Layout,
    opts: &NetworkCreateOptions,
    default_subnet: Option<Subnet>,
) -> Result<NetworkRecord, EngineError> {
    validate_name(&opts.name)?;
    default_network(layout, default_subnet)?;
    let _lock = lock(layout)?;
    let existing = records(layout)?;
    if existing.iter().any(|n| n.name == opts.name) {
        return Err(EngineError::NetworkExists(opts.name.clone()));
    }
    let subnet = match &opts.subnet {
        Some(s) => s.parse::<Subnet>()?,
        None => bridge::free_user_subnet(&existing)?,
    };
    if let Some(clash) = existing.iter().find(|n| n.subnet.overlaps(&subnet)) {
        return Err(EngineError::InvalidOption(format!(
            "subnet {subnet} overlaps network {} ({})",
            clash.name, clash.subnet
        )));
    }
    let gateway = match &opts.gateway {
        Some(g) => {
            let g: Ipv4Addr = g
                .parse()
                .map_err(|_| EngineError::InvalidOption(format!("invalid gateway {g}")))?;
            if !subnet.holds_host(g) {
                return Err(EngineError::InvalidOption(format!(
                    "gateway {g} is not a host address of subnet {subnet}"
                )));
            }
            g
        }
        None => subnet.first_host(),
    };
    let id = crate::containers::new_id()?;
    let record = NetworkRecord {
        name: opts.name.clone(),
        bridge: format!("bh-{}", &id[..12]),
        id,
        driver: "bridge".into(),
        subnet,
        gateway,
        created: Utc::now(),
        dns: true,
        labels: opts.labels.clone(),
    };
    bridge::ensure(&record)?;
    if let Err(e) = save(layout, &record) {
        let _ = bridge::remove(&record);
        let _ = std::fs::remove_dir_all(dir(layout).join(&record.id));
        return Err(e);
    }
    Ok(record)
}

/// `network rm`: refused while a container of this root is attached to it; the default network stays.
pub(crate) fn remove(
    layout: &Layout,
    key: &str,
    default_subnet: Option<Subnet>,
) -> Result<NetworkRecord, EngineError> {
    let record = find(layout, key, default_subnet)?;
    if record.name == DEFAULT_NETWORK {
        return Err(EngineError::InvalidOption(
            "the default bridge network cannot be removed".into(),
        ));
    }
    let _lock = lock(layout)?;
    let users: Vec<String> = crate::containers::list(layout)?
        .into_iter()
        .filter(|c| c.config.networks.iter().any(|a| a.network_id == record.id))
        .map(|c| c.config.name)
        .collect();
    if !users.is_empty() {
        return Err(EngineError::NetworkInUse {
            name: record.name,
            containers: users,
        });
    }
    bridge::remove(&record)?;
    let d = dir(layout).join(&record.id);
    std::fs::remove_dir_all(&d).map_err(EngineError::io(&d))?;
    Ok(record)
}

/// Gives a renamed container's endpoint records (those of its current run) its new name.
pub(crate) fn rename_endpoints(
    layout: &Layout,
    config: &ContainerConfig,
) -> Result<(), EngineError> {
    for attachment in &config.networks {
        let path = endpoint_path(layout, &attachment.network_id, &config.id);
        let mut endpoint: EndpointRecord = match fsutil::read_json(&path) {
            Ok(e) => e,
            Err(EngineError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        endpoint.name = config.name.clone();
        // As the monitor writes it: runtime data, replaced atomically (the responder sees the old or the
        // new name), no sync.
        fsutil::write_json_with(&path, &endpoint, bulkhead_fs::Durability::Atomic)?;
    }
    Ok(())
}

/// The endpoints of a network (containers running on it).
pub(crate) fn endpoints(
    layout: &Layout,
    network_id: &str,
) -> Result<Vec<EndpointRecord>, EngineError> {
    let d = dir(layout).join(network_id).join("endpoints");
    let Ok(entries) = std::fs::read_dir(&d) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        if e.path().extension().is_some_and(|x| x == "json") {
            out.push(fsutil::read_json(&e.path())?);
        }
    }
    Ok(out)
}

fn validate_name(name: &str) -> Result<(), EngineError> {
    if crate::docker_names::is_valid(name, 64) && !["none", "host", DEFAULT_NETWORK].contains(&name)
    {
        Ok(())
    } else {
        Err(EngineError::InvalidOption(format!(
            "invalid network name \"{name}\": use [a-zA-Z0-9][a-zA-Z0-9_.-]* (not bridge, host or none)"
        )))
    }
}
