//! A network's kernel side: its bridge with the gateway address, the sysctls and the bridge's firewall
//! rules. Bridges are host-global, shared by every root that has a network on them (the default
//! `bulkhead0` is), so they are made under a host-global lock and checked rather than trusted.

use super::NetworkRecord;
use crate::EngineError;
use bulkhead_net::netlink::Netlink;
use bulkhead_net::{firewall, ipam, sysctl, Subnet};
use std::net::Ipv4Addr;
use std::path::Path;

fn lock() -> Result<bulkhead_fs::Lock, EngineError> {
    let dir = Path::new(bulkhead_net::RUN_DIR);
    std::fs::create_dir_all(dir).map_err(EngineError::io(dir))?;
    crate::fsutil::lock(&dir.join("bridges.lock"))
}

/// Makes the network's bridge, up with the gateway address, with its firewall rules, unless it exists
/// already with that address. Cheap when it exists (one link lookup, one address dump).
pub(crate) fn ensure(record: &NetworkRecord) -> Result<(), EngineError> {
    let _lock = lock()?;
    let mut nl = Netlink::open()?;
    if let Some(index) = nl.link_index(&record.bridge)? {
        let addrs = nl.addresses(index)?;
        if !addrs.contains(&(record.gateway, record.subnet.prefix())) {
            return Err(EngineError::InvalidOption(format!(
                "bridge {} exists with address(es) {} but network {} wants {}/{}",
                record.bridge,
                addrs
                    .iter()
                    .map(|(a, p)| format!("{a}/{p}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                record.name,
                record.gateway,
                record.subnet.prefix()
            )));
        }
        return Ok(());
    }
    if let Some(route) = clashing_route(&mut nl, &record.subnet, None)? {
        return Err(EngineError::InvalidOption(format!(
            "subnet {} of network {} overlaps the host's route to {route}",
            record.subnet, record.name
        )));
    }
    let made = (|| -> Result<(), EngineError> {
        let index = nl.create_bridge(&record.bridge)?;
        nl.add_address(index, record.gateway, record.subnet.prefix())?;
        nl.set_up(index, None)?;
        sysctl::enable_route_localnet(&record.bridge)?;
        sysctl::enable_ip_forward()?;
        firewall::ensure_bridge(&record.bridge, &record.subnet)?;
        Ok(())
    })();
    if made.is_err() {
        let _ = firewall::remove(&firewall::bridge_owner(&record.bridge));
        let _ = nl.delete_link(&record.bridge);
    }
    made
}

/// Deletes the network's bridge, its rules and its address pool. Idempotent.
pub(crate) fn remove(record: &NetworkRecord) -> Result<(), EngineError> {
    let _lock = lock()?;
    firewall::remove(&firewall::bridge_owner(&record.bridge))?;
    Netlink::open()?.delete_link(&record.bridge)?;
    ipam::drop_pool(&record.bridge)?;
    Ok(())
}

/// A host route (other than through `own_bridge`, and other than the default route) that overlaps
/// `subnet`, shown as `a.b.c.d/len`.
fn clashing_route(
    nl: &mut Netlink,
    subnet: &Subnet,
    own_bridge: Option<&str>,
) -> Result<Option<String>, EngineError> {
    let own = match own_bridge {
        Some(b) => nl.link_index(b)?,
        None => None,
    };
    Ok(nl
        .routes()?
        .into_iter()
        .filter(|r| r.prefix > 0 && Some(r.oif) != own)
        .find(|r| {
            let common = r.prefix.min(subnet.prefix());
            let mask = u32::MAX << (32 - u32::from(common));
            u32::from(r.destination) & mask == u32::from(subnet.network()) & mask
        })
        .map(|r| format!("{}/{}", r.destination, r.prefix)))
}

/// The default network's subnet: `start` (172.17.0.0/16) unless a host route other than the default
/// bridge's takes it, then the next free /16 up to 172.31.
pub(crate) fn free_default_subnet(start: Ipv4Addr) -> Result<Subnet, EngineError> {
    let mut nl = Netlink::open()?;
    let first = start.octets()[1];
    for second in first..=31 {
        let candidate = Subnet::new(Ipv4Addr::new(172, second, 0, 0), 16)?;
        if clashing_route(&mut nl, &candidate, Some(super::DEFAULT_BRIDGE))?.is_none() {
            return Ok(candidate);
        }
    }
    Err(EngineError::InvalidOption(
        "no free /16 in 172.17-31 for the default bridge network: set one with --bridge-subnet"
            .into(),
    ))
}

/// A user network's subnet when none is given: the first /16 of 172.18-31 that neither a network of this
/// root nor a host route takes.
pub(crate) fn free_user_subnet(existing: &[NetworkRecord]) -> Result<Subnet, EngineError> {
    let mut nl = Netlink::open()?;
    for second in 18..=31 {
        let candidate = Subnet::new(Ipv4Addr::new(172, second, 0, 0), 16)?;
        if existing.iter().all(|n| !n.subnet.overlaps(&candidate))
            && clashing_route(&mut nl, &candidate, None)?.is_none()
        {
            return Ok(candidate);
        }
    }
    Err(EngineError::InvalidOption(
        "no free /16 in 172.18-31 for a new network: give one with --subnet".into(),
    ))
}
