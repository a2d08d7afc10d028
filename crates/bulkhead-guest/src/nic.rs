//! The guest's network interfaces, configured before the container starts from the `GuestNic`s of
//! `Start`: each virtio-net device is found by its MAC (the host gave it the MAC of the interface it
//! stands for), renamed, given its MTU and addresses, brought up, and the default route goes through its
//! gateway. The container shares this namespace, so it sees `eth0` as a process container does.
//! Over rtnetlink, like the host's side; every value is validated first.

use crate::error::GuestError;
use bulkhead_proto::nic::{format_mac, validate_all, GuestNic};
use bulkhead_runtime::netlink::Netlink;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

/// Configures `nics`; nothing to do without any.
pub(crate) fn configure(nics: &[GuestNic]) -> Result<(), GuestError> {
    if nics.is_empty() {
        return Ok(());
    }
    validate_all(nics).map_err(GuestError::BadNic)?;
    let mut nl = Netlink::open().map_err(GuestError::Nic)?;
    let devices = devices(&mut nl)?;
    let mut indices = Vec::new();
    for nic in nics {
        let index = devices
            .iter()
            .find(|(_, mac, _)| *mac == nic.mac)
            .map(|(index, _, _)| *index)
            .ok_or_else(|| GuestError::NoDevice(format_mac(&nic.mac)))?;
        indices.push(index);
    }
    // Renamed in two steps so that names may swap (the kernel named the devices eth0, eth1... in the
    // order QEMU attached them, which the host's order need not match).
    for (i, (&index, nic)) in indices.iter().zip(nics).enumerate() {
        let current = devices.iter().find(|(idx, _, _)| *idx == index);
        if current.is_some_and(|(_, _, name)| *name != nic.name) {
            set_link(&mut nl, index, |l| {
                l.attributes
                    .push(LinkAttribute::IfName(format!("bhnic{i}")))
            })?;
        }
    }
    for (&index, nic) in indices.iter().zip(nics) {
        set_link(&mut nl, index, |l| {
            l.attributes.push(LinkAttribute::IfName(nic.name.clone()));
            l.attributes.push(LinkAttribute::Mtu(nic.mtu));
        })?;
        for cidr in &nic.ipv4 {
            let mut msg = AddressMessage::default();
            msg.header.family = AddressFamily::Inet;
            msg.header.prefix_len = cidr.prefix_len;
            msg.header.index = index;
            msg.attributes = vec![
                AddressAttribute::Local(IpAddr::V4(cidr.address)),
                AddressAttribute::Address(IpAddr::V4(cidr.address)),
            ];
            nl.change(
                &format!(
                    "adding {}/{} to {}",
                    cidr.address, cidr.prefix_len, nic.name
                ),
                RouteNetlinkMessage::NewAddress(msg),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .map_err(GuestError::Nic)?;
        }
        set_link(&mut nl, index, |l| {
            l.header.flags = LinkFlags::Up;
            l.header.change_mask = LinkFlags::Up;
        })?;
    }
    // One default route: the first interface's that has a gateway, as the host's namespace has it.
    if let Some((&index, nic, gateway)) = indices
        .iter()
        .zip(nics)
        .find_map(|(index, nic)| nic.gateway.map(|g| (index, nic, g)))
    {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes = vec![
            RouteAttribute::Gateway(RouteAddress::Inet(gateway)),
            RouteAttribute::Oif(index),
        ];
        nl.change(
            &format!("adding the default route via {gateway} on {}", nic.name),
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map_err(GuestError::Nic)?;
    }
    Ok(())
}

/// The guest's links: index, MAC, name.
fn devices(nl: &mut Netlink) -> Result<Vec<(u32, [u8; 6], String)>, GuestError> {
    let links = nl
        .dump(
            "listing the network devices",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
        )
        .map_err(GuestError::Nic)?;
    Ok(links
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(link) => {
                let mac = link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Address(a) => <[u8; 6]>::try_from(a.as_slice()).ok(),
                    _ => None,
                })?;
                let name = link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                })?;
                Some((link.header.index, mac, name))
            }
            _ => None,
        })
        .collect())
}

fn set_link(
    nl: &mut Netlink,
    index: u32,
    change: impl FnOnce(&mut LinkMessage),
) -> Result<(), GuestError> {
    let mut link = LinkMessage::default();
    link.header.index = index;
    change(&mut link);
    nl.change(
        &format!("configuring network device {index}"),
        RouteNetlinkMessage::SetLink(link),
        0,
    )
    .map_err(GuestError::Nic)
}
