//! Links, addresses and routes over rtnetlink, in the network namespace of the calling thread (a
//! [`Netlink`] socket stays bound to the namespace it was opened in).

use crate::{NetError, Subnet};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

/// An rtnetlink socket of one network namespace.
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

/// An IPv4 route of the main table, as far as clashes between subnets go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: Ipv4Addr,
    pub prefix: u8,
    /// The output interface's index (0 for none).
    pub oif: u32,
}

/// The veth pair of one container's interface.
pub struct VethPair<'a> {
    /// The host end's name (it goes onto the bridge).
    pub host_name: &'a str,
    /// The container end's name inside `netns` (`eth0`).
    pub peer_name: &'a str,
    /// The container's network namespace (an open namespace file).
    pub netns: BorrowedFd<'a>,
    pub peer_mac: [u8; 6],
    pub mtu: u32,
}

impl Netlink {
    pub fn open() -> Result<Netlink, NetError> {
        let mut socket =
            Socket::new(NETLINK_ROUTE).map_err(NetError::io("opening a netlink socket"))?;
        socket
            .bind_auto()
            .map_err(NetError::io("binding the netlink socket"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NetError::io("connecting the netlink socket"))?;
        // The kernel answers at once; a request that is never answered must fail the start, not hang it.
        nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(10, 0),
        )
        .map_err(NetError::sys("setting the netlink socket's timeout"))?;
        Ok(Netlink { socket, seq: 0 })
    }

    /// Sends one request and collects the answers until the kernel's ack or the end of a dump.
    fn request(
        &mut self,
        what: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetError> {
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        // With an ack asked for, a plain get ends like a change does (reply, then ack); a dump ends with Done.
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        req.finalize();
        let mut buf = vec![0; req.header.length as usize];
        req.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(NetError::io(format!("netlink: sending {what}")))?;
        let mut out = Vec::new();
        let mut rbuf = vec![0u8; 1 << 16];
        loop {
            let size = self
                .socket
                .recv(&mut &mut rbuf[..], 0)
                .map_err(NetError::io(format!("netlink: receiving for {what}")))?;
            let mut offset = 0;
            while offset < size {
                let msg: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&rbuf[offset..size]).map_err(|e| {
                        NetError::Netlink {
                            what: what.to_string(),
                            message: format!("bad answer: {e}"),
                        }
                    })?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number == self.seq {
                    match msg.payload {
                        NetlinkPayload::Done(_) => return Ok(out),
                        NetlinkPayload::Error(e) if e.code.is_none() => return Ok(out),
                        NetlinkPayload::Error(e) => {
                            return Err(NetError::Io {
                                what: format!("netlink: {what}"),
                                source: e.to_io(),
                            })
                        }
                        NetlinkPayload::InnerMessage(m) => out.push(m),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }

    fn change(&mut self, what: &str, msg: RouteNetlinkMessage, flags: u16) -> Result<(), NetError> {
        self.request(what, msg, flags).map(|_| ())
    }

    /// The index of the link called `name`, if there is one.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>, NetError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(
            &format!("looking up {name}"),
            RouteNetlinkMessage::GetLink(msg),
            0,
        ) {
            Ok(answers) => Ok(answers.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })),
            Err(NetError::Io { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Every link's name, for checks of what is left on the host.
    pub fn link_names(&mut self) -> Result<Vec<String>, NetError> {
        let answers = self.request(
            "listing links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => l.attributes.into_iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n),
                    _ => None,
                }),
                _ => None,
            })
            .collect())
    }

    /// Creates a bridge (fails with EEXIST if the name is taken).
    pub fn create_bridge(&mut self, name: &str) -> Result<u32, NetError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.change(
            &format!("creating bridge {name}"),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        self.link_index(name)?.ok_or_else(|| NetError::Netlink {
            what: format!("creating bridge {name}"),
            message: "the bridge vanished right after its creation".into(),
        })
    }

    /// Creates a veth pair whose peer is made directly inside the container's namespace, under its final
    /// name, so no interface of the container is ever visible on the host under a clashing name.
    pub fn create_veth(&mut self, pair: &VethPair) -> Result<u32, NetError> {
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(pair.peer_name.to_string()));
        peer.attributes
            .push(LinkAttribute::NetNsFd(pair.netns.as_raw_fd()));
        peer.attributes
            .push(LinkAttribute::Address(pair.peer_mac.to_vec()));
        peer.attributes.push(LinkAttribute::Mtu(pair.mtu));
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::IfName(pair.host_name.to_string()));
        msg.attributes.push(LinkAttribute::Mtu(pair.mtu));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        let what = format!("creating veth {}", pair.host_name);
        self.change(
            &what,
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        self.link_index(pair.host_name)?
            .ok_or_else(|| NetError::Netlink {
                what,
                message: "the veth vanished right after its creation".into(),
            })
    }

    /// Deletes a link; a link that is already gone is not an error.
    pub fn delete_link(&mut self, name: &str) -> Result<(), NetError> {
        let Some(index) = self.link_index(name)? else {
            return Ok(());
        };
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.change(
            &format!("deleting {name}"),
            RouteNetlinkMessage::DelLink(msg),
            0,
        ) {
            Err(NetError::Io { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => {
                Ok(())
            }
            r => r,
        }
    }

    /// Sets a link up, and optionally its bridge (master).
    pub fn set_up(&mut self, index: u32, master: Option<u32>) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        if let Some(master) = master {
            msg.attributes.push(LinkAttribute::Controller(master));
        }
        self.change(
            &format!("setting link {index} up"),
            RouteNetlinkMessage::SetLink(msg),
            0,
        )
    }

    /// Adds `addr/prefix` to a link (EEXIST if it is there already).
    pub fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes
            .push(AddressAttribute::Local(IpAddr::V4(addr)));
        msg.attributes
            .push(AddressAttribute::Address(IpAddr::V4(addr)));
        let subnet = Subnet::new(addr, prefix)?;
        if prefix < 31 {
            msg.attributes
                .push(AddressAttribute::Broadcast(subnet.broadcast()));
        }
        self.change(
            &format!("adding {addr}/{prefix} to link {index}"),
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// The IPv4 addresses (with prefixes) of one link.
    pub fn addresses(&mut self, index: u32) -> Result<Vec<(Ipv4Addr, u8)>, NetError> {
        let mut query = AddressMessage::default();
        query.header.family = AddressFamily::Inet;
        let answers = self.request(
            "listing addresses",
            RouteNetlinkMessage::GetAddress(query),
            NLM_F_DUMP,
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                    let prefix = a.header.prefix_len;
                    a.attributes.into_iter().find_map(|attr| match attr {
                        AddressAttribute::Local(IpAddr::V4(v4)) => Some((v4, prefix)),
                        _ => None,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// Adds the default route via `gateway` on link `index`.
    pub fn add_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> Result<(), NetError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        msg.attributes.push(RouteAttribute::Oif(index));
        self.change(
            &format!("adding the default route via {gateway}"),
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// The IPv4 routes of the main table.
    pub fn routes(&mut self) -> Result<Vec<Route>, NetError> {
        let mut query = RouteMessage::default();
        query.header.address_family = AddressFamily::Inet;
        let answers = self.request(
            "listing routes",
            RouteNetlinkMessage::GetRoute(query),
            NLM_F_DUMP,
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r)
                    if r.header.table == RouteHeader::RT_TABLE_MAIN =>
                {
                    let mut route = Route {
                        destination: Ipv4Addr::UNSPECIFIED,
                        prefix: r.header.destination_prefix_length,
                        oif: 0,
                    };
                    for a in r.attributes {
                        match a {
                            RouteAttribute::Destination(RouteAddress::Inet(d)) => {
                                route.destination = d
                            }
                            RouteAttribute::Oif(i) => route.oif = i,
                            _ => {}
                        }
                    }
                    Some(route)
                }
                _ => None,
            })
            .collect())
    }
}

/// Docker's MAC address for a container address: `02:42` and the four address bytes, so it is stable
/// and unique on the bridge.
pub fn mac_for(addr: Ipv4Addr) -> [u8; 6] {
    let o = addr.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
