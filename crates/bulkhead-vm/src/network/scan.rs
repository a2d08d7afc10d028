//! Finds the interfaces of a network namespace a VM is to take over, with what the guest must
//! reproduce on its own NIC: name, MAC, MTU, IPv4 addresses and the default route's gateway. Taken are
//! Ethernet links other than `lo`, tun/tap devices (our own taps among them) and bridges: the veth an
//! engine or a CNI plugin put there, or a macvlan/ipvlan.

use bulkhead_proto::nic::{GuestNic, Ipv4Cidr};
use bulkhead_runtime::netlink::{Netlink, NetlinkError};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::{IpAddr, Ipv4Addr};

/// The name of VM mode's taps, followed by the interface's position (`bhtap0`).
pub const NAME_PREFIX: &str = "bhtap";

/// An interface found, by its index in the namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub index: u32,
    pub nic: GuestNic,
}

/// The namespace's interfaces in the kernel's order (of creation).
pub fn interfaces(nl: &mut Netlink) -> Result<Vec<Found>, NetlinkError> {
    let links = nl.dump(
        "listing links",
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
    )?;
    let mut addresses = AddressMessage::default();
    addresses.header.family = AddressFamily::Inet;
    let addresses = nl.dump(
        "listing addresses",
        RouteNetlinkMessage::GetAddress(addresses),
    )?;
    let mut routes = RouteMessage::default();
    routes.header.address_family = AddressFamily::Inet;
    let routes = nl.dump("listing routes", RouteNetlinkMessage::GetRoute(routes))?;
    Ok(links
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(link) => taken(link),
            _ => None,
        })
        .map(|mut found| {
            found.nic.ipv4 = addresses
                .iter()
                .filter_map(|m| match m {
                    RouteNetlinkMessage::NewAddress(a) => ipv4_of(a, found.index),
                    _ => None,
                })
                .collect();
            found.nic.gateway = routes.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => default_gateway(r, found.index),
                _ => None,
            });
            found
        })
        .collect())
}

/// The interface `link` describes, if the VM is to take it over (without addresses and route yet).
fn taken(link: &LinkMessage) -> Option<Found> {
    if link.header.link_layer_type != LinkLayerType::Ether
        || link.header.flags.contains(LinkFlags::Loopback)
    {
        return None;
    }
    let mut name = None;
    let mut mac = None;
    let mut mtu = None;
    for attribute in &link.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Address(a) => mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
            LinkAttribute::Mtu(m) => mtu = Some(*m),
            LinkAttribute::LinkInfo(infos) => {
                let excluded = infos
                    .iter()
                    .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Tun | InfoKind::Bridge)));
                if excluded {
                    return None;
                }
            }
            _ => {}
        }
    }
    Some(Found {
        index: link.header.index,
        nic: GuestNic {
            name: name?,
            mac: mac?,
            mtu: mtu?,
            ipv4: Vec::new(),
            gateway: None,
        },
    })
}

fn ipv4_of(address: &AddressMessage, index: u32) -> Option<Ipv4Cidr> {
    if address.header.index != index || address.header.family != AddressFamily::Inet {
        return None;
    }
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS differs from it only on point-to-point links.
    let ip = address
        .attributes
        .iter()
        .find_map(|a| match a {
            AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        })
        .or_else(|| {
            address.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            })
        })?;
    Some(Ipv4Cidr {
        address: ip,
        prefix_len: address.header.prefix_len,
    })
}

/// The gateway of the main table's default route, if it leaves through interface `index`.
fn default_gateway(route: &RouteMessage, index: u32) -> Option<Ipv4Addr> {
    if route.header.address_family != AddressFamily::Inet
        || route.header.destination_prefix_length != 0
        || route.header.table != RouteHeader::RT_TABLE_MAIN
    {
        return None;
    }
    let through_index = route.attributes.contains(&RouteAttribute::Oif(index));
    let gateway = route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(RouteAddress::Inet(ip)) => Some(*ip),
        _ => None,
    });
    gateway.filter(|_| through_index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, attributes: Vec<LinkAttribute>) -> LinkMessage {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.header.link_layer_type = LinkLayerType::Ether;
        link.attributes = attributes;
        link
    }

    fn veth(kind: InfoKind) -> LinkMessage {
        link(
            4,
            vec![
                LinkAttribute::IfName("eth0".into()),
                LinkAttribute::Mtu(1400),
                LinkAttribute::Address(vec![2, 0x42, 10, 0, 0, 2]),
                LinkAttribute::LinkInfo(vec![LinkInfo::Kind(kind)]),
            ],
        )
    }

    #[test]
    fn takes_a_veth_with_its_mac_and_mtu() {
        let found = taken(&veth(InfoKind::Veth)).unwrap();
        assert_eq!(found.index, 4);
        assert_eq!(found.nic.name, "eth0");
        assert_eq!(found.nic.mac, [2, 0x42, 10, 0, 0, 2]);
        assert_eq!(found.nic.mtu, 1400);
    }

    #[test]
    fn leaves_loopback_taps_bridges_and_non_ethernet_links() {
        assert_eq!(taken(&veth(InfoKind::Tun)), None);
        assert_eq!(taken(&veth(InfoKind::Bridge)), None);
        let mut lo = veth(InfoKind::Veth);
        lo.header.flags = LinkFlags::Loopback;
        assert_eq!(taken(&lo), None);
        let mut ipip = veth(InfoKind::Veth);
        ipip.header.link_layer_type = LinkLayerType::Tunnel;
        assert_eq!(taken(&ipip), None);
        // No 6-byte MAC: not an interface a virtio-net device can stand for.
        let short = link(
            5,
            vec![
                LinkAttribute::IfName("x".into()),
                LinkAttribute::Mtu(1500),
                LinkAttribute::Address(vec![1, 2, 3]),
            ],
        );
        assert_eq!(taken(&short), None);
    }

    #[test]
    fn addresses_and_gateway_belong_to_their_interface() {
        let mut a = AddressMessage::default();
        a.header.family = AddressFamily::Inet;
        a.header.index = 4;
        a.header.prefix_len = 30;
        a.attributes = vec![
            AddressAttribute::Address(IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9))),
            AddressAttribute::Local(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))),
        ];
        let cidr = ipv4_of(&a, 4).unwrap();
        assert_eq!(
            (cidr.address, cidr.prefix_len),
            (Ipv4Addr::new(10, 0, 0, 2), 30)
        );
        assert_eq!(ipv4_of(&a, 5), None);

        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet;
        r.header.table = RouteHeader::RT_TABLE_MAIN;
        r.attributes = vec![
            RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(10, 0, 0, 1))),
            RouteAttribute::Oif(4),
        ];
        assert_eq!(default_gateway(&r, 4), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(default_gateway(&r, 5), None);
        r.header.destination_prefix_length = 8;
        assert_eq!(default_gateway(&r, 4), None, "not a default route");
    }
}
