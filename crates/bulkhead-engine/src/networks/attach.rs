//! A container's side of its networks, set up by the monitor before the agent starts and torn down when
//! the container ends (and by removal, after a crash): a network namespace kept at
//! `/run/bulkhead/netns/<id>`, per network a veth pair (host end `veth<id[..10]><n>` on the bridge,
//! container end `eth<n>` made inside the namespace), a leased address, the default route via the first
//! network's gateway, the endpoint record, and the published ports (reserved host ports and DNAT rules).

use super::{endpoint_path, EndpointRecord, NetworkRecord};
use crate::config::ContainerConfig;
use crate::containers::Container;
use crate::layout::Layout;
use crate::{fsutil, EngineError, Isolation, Status};
use bulkhead_net::netlink::{format_mac, mac_for, Netlink, VethPair};
use bulkhead_net::ports::{self, PublishedPort, Reservation};
use bulkhead_net::{firewall, ipam, netns};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::PathBuf;

/// The MTU of every bridge and veth (docker's default).
const MTU: u32 = 1500;

/// A container's network as it runs, kept in its state (`inspect`, `port`, `ps`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkState {
    pub interfaces: Vec<InterfaceState>,
    pub ports: Vec<PublishedPort>,
}

/// One interface of a running container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterfaceState {
    pub network_id: String,
    pub network_name: String,
    /// `eth0`, `eth1`, ...
    pub interface: String,
    pub ipv4: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
}

/// What the monitor holds while the container runs.
pub(crate) struct Attached {
    /// The namespace the container joins; `None` for `--network none` and `host`.
    pub netns: Option<PathBuf>,
    pub state: Option<NetworkState>,
    _ports: Option<Reservation>,
}

/// The host end of the container's `n`th interface.
pub fn host_veth_name(id: &str, n: usize) -> String {
    format!("veth{}{:x}", &id[..10], n % 16)
}

/// Sets up the container's networks; on error nothing is left.
pub(crate) fn setup(layout: &Layout, config: &ContainerConfig) -> Result<Attached, EngineError> {
    if let Some(other) = config.network_mode.strip_prefix("container:") {
        return Ok(Attached {
            netns: Some(joined_namespace(layout, other)?),
            state: None,
            _ports: None,
        });
    }
    if config.networks.is_empty() {
        return Ok(Attached {
            netns: None,
            state: None,
            _ports: None,
        });
    }
    // Whatever a crashed run left goes first, so a start after `kill -9` of the monitor works.
    teardown(layout, config)?;
    let made = build(layout, config);
    if made.is_err() {
        let _ = teardown(layout, config);
    }
    made
}

fn build(layout: &Layout, config: &ContainerConfig) -> Result<Attached, EngineError> {
    let id = &config.id;
    let (published, reservation) = ports::reserve(&config.ports)?;
    let path = netns::path_for(id);
    netns::create(&path)?;
    let ns = std::fs::File::open(&path).map_err(EngineError::io(&path))?;
    let mut nl = Netlink::open()?;
    let mut interfaces = Vec::new();
    for (n, attachment) in config.networks.iter().enumerate() {
        let record = super::load(layout, &attachment.network_id).map_err(|_| {
            EngineError::InvalidOption(format!(
                "network {} of container {} no longer exists",
                attachment.network_id, config.name
            ))
        })?;
        super::bridge::ensure(&record)?;
        let bridge = nl.link_index(&record.bridge)?.ok_or_else(|| {
            EngineError::InvalidOption(format!("bridge {} vanished", record.bridge))
        })?;
        let ipv4 = ipam::lease(&record.bridge, record.subnet, record.gateway, id, None)?;
        let interface = format!("eth{n}");
        let mac = mac_for(ipv4);
        let host = nl.create_veth(&VethPair {
            host_name: &host_veth_name(id, n),
            peer_name: &interface,
            netns: ns.as_fd(),
            peer_mac: mac,
            mtu: MTU,
        })?;
        nl.set_up(host, Some(bridge))?;
        // A container reaching its own published port comes back through its own bridge port.
        bulkhead_net::sysctl::enable_hairpin(&host_veth_name(id, n))?;
        configure_inside(&path, &interface, ipv4, &record, n == 0)?;
        // `rename` rewrites the endpoint records under the container's lock: the name is read and the
        // record written under it too, so a rename during this start is not lost.
        let paths = layout.container(id);
        let _lock = fsutil::lock(&paths.lock())?;
        let endpoint = EndpointRecord {
            container_id: id.clone(),
            name: fsutil::read_json::<ContainerConfig>(&paths.config())
                .map(|c| c.name)
                .unwrap_or_else(|_| config.name.clone()),
            aliases: attachment.aliases.clone(),
            ipv4,
        };
        // Runtime data: a crash makes it stale anyway, and teardown removes it; no sync on the start path.
        fsutil::write_json_with(
            &endpoint_path(layout, &record.id, id),
            &endpoint,
            bulkhead_fs::Durability::Atomic,
        )?;
        interfaces.push(InterfaceState {
            network_id: record.id.clone(),
            network_name: record.name.clone(),
            interface,
            ipv4,
            prefix: record.subnet.prefix(),
            gateway: record.gateway,
            mac: format_mac(&mac),
        });
    }
    firewall::publish(id, interfaces[0].ipv4, &published)?;
    Ok(Attached {
        netns: Some(path),
        state: Some(NetworkState {
            interfaces,
            ports: published,
        }),
        _ports: Some(reservation),
    })
}

/// Inside the namespace: the address, the link up, and (first network) the default route.
fn configure_inside(
    netns_path: &std::path::Path,
    interface: &str,
    ipv4: Ipv4Addr,
    record: &NetworkRecord,
    default_route: bool,
) -> Result<(), EngineError> {
    netns::run_in(netns_path, || {
        let mut nl = Netlink::open()?;
        let index = nl.link_index(interface)?.ok_or_else(|| {
            bulkhead_net::NetError::Invalid(format!("{interface} is missing in the namespace"))
        })?;
        nl.add_address(index, ipv4, record.subnet.prefix())?;
        nl.set_up(index, None)?;
        if default_route {
            nl.add_default_route(index, record.gateway)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// `--network container:NAME`: the other container's namespace, which must be running in process mode.
fn joined_namespace(layout: &Layout, other: &str) -> Result<PathBuf, EngineError> {
    let c = Container::load(layout, other).or_else(|_| crate::containers::find(layout, other))?;
    let refuse = |why: &str| {
        EngineError::InvalidOption(format!(
            "cannot join the network namespace of container {}: {why}",
            c.config.name
        ))
    };
    if c.state.status != Status::Running {
        return Err(refuse("it is not running"));
    }
    if c.config.isolation == Isolation::Vm {
        return Err(refuse("it runs in a VM"));
    }
    let kept = netns::path_for(&c.config.id);
    if kept.exists() {
        return Ok(kept);
    }
    match c.state.pid {
        Some(pid) if c.config.network_mode != "host" => {
            Ok(PathBuf::from(format!("/proc/{pid}/ns/net")))
        }
        _ => Err(refuse("it uses the host's network")),
    }
}

/// Removes everything [`setup`] makes for `config`'s container. Idempotent; also the clean-up after a
/// crash, so it works from the definition alone.
pub(crate) fn teardown(layout: &Layout, config: &ContainerConfig) -> Result<(), EngineError> {
    if config.networks.is_empty() {
        return Ok(());
    }
    let id = &config.id;
    // Deleting a veth waits for RCU grace periods (~20 ms); the namespace's end takes the pairs with it
    // off the start/stop path. Only a namespace that was already gone (a crash) leaves them to us.
    if !netns::remove(&netns::path_for(id))? {
        let mut nl = Netlink::open()?;
        for n in 0..config.networks.len() {
            nl.delete_link(&host_veth_name(id, n))?;
        }
    }
    ipam::release_all(id)?;
    if !config.ports.is_empty() {
        firewall::remove(&firewall::container_owner(id))?;
    }
    for attachment in &config.networks {
        let path = endpoint_path(layout, &attachment.network_id, id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(EngineError::io(path)(e))
            }
            _ => {}
        }
    }
    Ok(())
}
