//! Published ports: docker's `-p` syntax, and host ports reserved by a bound socket that the monitor
//! holds while the container runs. The socket never listens (the firewall's DNAT takes the connections
//! before they could reach it); it only makes "port already in use" an error at start and keeps two
//! containers, or a host service, from taking the same port.

use crate::NetError;
use nix::sys::socket::{bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// What the user asked for: `-p [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// `None`: every address of the host.
    pub host_ip: Option<Ipv4Addr>,
    /// `None`: a free port the kernel picks at start.
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// A port as published by a running container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    /// `0.0.0.0` for every address of the host.
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortSpec {
    /// Parses docker's `-p` value. Ranges are refused with a clear error.
    pub fn parse(s: &str) -> Result<PortSpec, NetError> {
        let bad = |why: &str| NetError::Invalid(format!("invalid port mapping {s}: {why}"));
        let (rest, protocol) = match s.rsplit_once('/') {
            Some((r, "tcp")) => (r, Protocol::Tcp),
            Some((r, "udp")) => (r, Protocol::Udp),
            Some((_, p)) => return Err(bad(&format!("unknown protocol {p} (use tcp or udp)"))),
            None => (s, Protocol::Tcp),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let (ip, host, container) = match parts.as_slice() {
            [c] => (None, None, *c),
            [h, c] => (None, Some(*h), *c),
            [ip, h, c] => (Some(*ip), Some(*h).filter(|h| !h.is_empty()), *c),
            _ => return Err(bad("expected [IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]")),
        };
        let port = |p: &str, what: &str| -> Result<u16, NetError> {
            if p.contains('-') {
                return Err(bad("port ranges are not supported"));
            }
            match p.parse::<u32>() {
                Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
                _ => Err(bad(&format!(
                    "{what} {p} is not a port number (1 to 65535)"
                ))),
            }
        };
        let host_ip = match ip {
            None | Some("") => None,
            Some(ip) => Some(
                ip.parse::<Ipv4Addr>()
                    .map_err(|_| bad(&format!("{ip} is not an IPv4 address")))?,
            ),
        };
        Ok(PortSpec {
            host_ip: host_ip.filter(|ip| !ip.is_unspecified()),
            host_port: host.map(|h| port(h, "host port")).transpose()?,
            container_port: port(container, "container port")?,
            protocol,
        })
    }
}

/// Sockets holding the host side of a container's published ports.
pub struct Reservation {
    _sockets: Vec<OwnedFd>,
}

/// Binds a socket for each port (a free one where no host port was given) and returns what was
/// published. Nothing stays bound on error.
pub fn reserve(specs: &[PortSpec]) -> Result<(Vec<PublishedPort>, Reservation), NetError> {
    let mut sockets = Vec::new();
    let mut published = Vec::new();
    for spec in specs {
        let ty = match spec.protocol {
            Protocol::Tcp => SockType::Stream,
            Protocol::Udp => SockType::Datagram,
        };
        let fd = socket(AddressFamily::Inet, ty, SockFlag::SOCK_CLOEXEC, None)
            .map_err(NetError::sys("socket for a published port"))?;
        let ip = spec.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let want = SocketAddrV4::new(ip, spec.host_port.unwrap_or(0));
        let shown = format!("{want}/{}", spec.protocol);
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrIn::from(want),
        )
        .map_err(|e| match e {
            nix::errno::Errno::EADDRINUSE => NetError::PortInUse {
                addr: shown.clone(),
            },
            nix::errno::Errno::EADDRNOTAVAIL => NetError::Invalid(format!(
                "cannot publish {shown}: {ip} is not an address of this host"
            )),
            e => NetError::sys(format!("binding {shown}"))(e),
        })?;
        let bound: SockaddrIn = getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd))
            .map_err(NetError::sys("getsockname of a published port"))?;
        published.push(PublishedPort {
            host_ip: ip,
            host_port: bound.port(),
            container_port: spec.container_port,
            protocol: spec.protocol,
        });
        sockets.push(fd);
    }
    Ok((published, Reservation { _sockets: sockets }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_syntax() {
        let p = PortSpec::parse("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!((p.host_port, p.container_port), (Some(8080), 80));
        assert_eq!(p.protocol, Protocol::Udp);
        assert_eq!(PortSpec::parse("80").unwrap().host_port, None);
        assert_eq!(PortSpec::parse("127.0.0.1::80").unwrap().host_port, None);
        assert_eq!(PortSpec::parse("0.0.0.0:81:80").unwrap().host_ip, None);
        for bad in [
            "99999:80", "80:0", "a:80", "1-5:1-5", "80/sctp", "1:2:3:4", "x.y:1:2",
        ] {
            assert!(PortSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_reserved_port_cannot_be_reserved_twice() {
        let (first, _held) = reserve(&[PortSpec::parse("127.0.0.1::80").unwrap()]).unwrap();
        let again = PortSpec {
            host_port: Some(first[0].host_port),
            ..PortSpec::parse("127.0.0.1::80").unwrap()
        };
        assert!(matches!(reserve(&[again]), Err(NetError::PortInUse { .. })));
    }
}
