//! The network interfaces a VM guest configures before its container starts. The host finds them by
//! scanning the network namespace it was handed (`bulkhead-vm`'s `network` module) and sends them in
//! `Start`; the guest's PID 1 gives each virtio-net device with a listed MAC the listed name, MTU and
//! addresses, and adds the default route. They come from the host, yet the guest checks them
//! ([`GuestNic::validate`]) so that a bad value is a clear error rather than an odd kernel refusal.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// The longest interface name the kernel takes (`IFNAMSIZ` less the terminating NUL).
pub const MAX_NAME_LEN: usize = 15;
/// The smallest IPv4 MTU (RFC 791) and the largest a virtio-net device takes.
pub const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=65535;

/// One interface of the guest, as the container is to see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNic {
    /// The name in the namespace the host scanned, e.g. `eth0`.
    pub name: String,
    /// The MAC of that interface, which the VM's device also carries: the guest finds its device by it.
    pub mac: [u8; 6],
    pub mtu: u32,
    pub ipv4: Vec<Ipv4Cidr>,
    /// The default route's gateway, when it leaves through this interface.
    pub gateway: Option<Ipv4Addr>,
}

/// An address with its prefix length, as `ip addr` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv4Cidr {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
}

/// Why a [`GuestNic`] cannot be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NicError {
    #[error("interface name {0:?} is not a valid name (1 to 15 bytes, no '/', ':', space or control character, not . or ..)")]
    Name(String),
    #[error("interface {name}: MAC {mac} is not a unicast address")]
    Mac { name: String, mac: String },
    #[error("interface {name}: MTU {mtu} is outside 68..=65535")]
    Mtu { name: String, mtu: u32 },
    #[error("interface {name}: prefix length /{prefix_len} of {address} is longer than 32")]
    Prefix {
        name: String,
        address: Ipv4Addr,
        prefix_len: u8,
    },
    #[error("interface {name}: gateway {gateway} is not in any of its subnets")]
    Gateway { name: String, gateway: Ipv4Addr },
    #[error("interface {0} is listed twice (by name or MAC)")]
    Duplicate(String),
}

impl GuestNic {
    /// Checks what the kernel would otherwise refuse with a bare errno, or take wrongly (a multicast
    /// MAC, a gateway no address reaches).
    pub fn validate(&self) -> Result<(), NicError> {
        let name = &self.name;
        let bad_name = name.is_empty()
            || name.len() > MAX_NAME_LEN
            || name == "."
            || name == ".."
            || name
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
        if bad_name {
            return Err(NicError::Name(name.clone()));
        }
        // Bit 0 of the first byte marks group addresses; all zeros is no address.
        if self.mac[0] & 1 != 0 || self.mac == [0; 6] {
            return Err(NicError::Mac {
                name: name.clone(),
                mac: format_mac(&self.mac),
            });
        }
        if !MTU_RANGE.contains(&self.mtu) {
            return Err(NicError::Mtu {
                name: name.clone(),
                mtu: self.mtu,
            });
        }
        if let Some(bad) = self.ipv4.iter().find(|a| a.prefix_len > 32) {
            return Err(NicError::Prefix {
                name: name.clone(),
                address: bad.address,
                prefix_len: bad.prefix_len,
            });
        }
        if let Some(gateway) = self.gateway {
            if !self.ipv4.iter().any(|a| a.contains(gateway)) {
                return Err(NicError::Gateway {
                    name: name.clone(),
                    gateway,
                });
            }
        }
        Ok(())
    }
}

/// Validates every interface, and that no two share a name or a MAC.
pub fn validate_all(nics: &[GuestNic]) -> Result<(), NicError> {
    for (i, nic) in nics.iter().enumerate() {
        nic.validate()?;
        if nics[..i]
            .iter()
            .any(|other| other.name == nic.name || other.mac == nic.mac)
        {
            return Err(NicError::Duplicate(nic.name.clone()));
        }
    }
    Ok(())
}

impl Ipv4Cidr {
    /// The netmask of the prefix (a prefix longer than 32 is taken as 32; [`GuestNic::validate`]
    /// refuses it first).
    pub fn netmask(&self) -> Ipv4Addr {
        let len = u32::from(self.prefix_len.min(32));
        Ipv4Addr::from(u32::MAX.checked_shl(32 - len).unwrap_or(0))
    }

    /// Whether `ip` is in this address' subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::from(self.netmask());
        u32::from(ip) & mask == u32::from(self.address) & mask
    }
}

/// `aa:bb:cc:dd:ee:ff`, as QEMU's `mac=` and `ip link` write it.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth0() -> GuestNic {
        GuestNic {
            name: "eth0".into(),
            mac: [0x02, 0x42, 10, 0, 0, 2],
            mtu: 1500,
            ipv4: vec![Ipv4Cidr {
                address: Ipv4Addr::new(10, 88, 0, 2),
                prefix_len: 24,
            }],
            gateway: Some(Ipv4Addr::new(10, 88, 0, 1)),
        }
    }

    #[test]
    fn a_namespace_like_the_engine_makes_is_valid() {
        assert_eq!(eth0().validate(), Ok(()));
        assert_eq!(format_mac(&eth0().mac), "02:42:0a:00:00:02");
    }

    #[test]
    fn bad_values_are_named() {
        let with = |f: fn(&mut GuestNic)| {
            let mut nic = eth0();
            f(&mut nic);
            nic.validate().unwrap_err().to_string()
        };
        assert!(with(|n| n.name = "../etc".into()).contains("not a valid name"));
        assert!(with(|n| n.name = "a-name-far-too-long".into()).contains("not a valid name"));
        assert!(with(|n| n.name = String::new()).contains("not a valid name"));
        assert!(with(|n| n.mac = [1, 0, 0, 0, 0, 1]).contains("not a unicast"));
        assert!(with(|n| n.mac = [0; 6]).contains("not a unicast"));
        assert!(with(|n| n.mtu = 67).contains("MTU 67"));
        assert!(with(|n| n.mtu = 70000).contains("MTU 70000"));
        assert!(with(|n| n.ipv4[0].prefix_len = 33).contains("/33"));
        assert!(with(|n| n.gateway = Some(Ipv4Addr::new(10, 89, 0, 1))).contains("not in any"));
        assert!(with(|n| n.ipv4.clear()).contains("not in any"));
    }

    #[test]
    fn duplicates_are_refused() {
        let mut other = eth0();
        other.name = "eth1".into();
        assert_eq!(
            validate_all(&[eth0(), other]),
            Err(NicError::Duplicate("eth1".into()))
        );
        other = eth0();
        other.mac[5] = 9;
        assert_eq!(
            validate_all(&[eth0(), other]),
            Err(NicError::Duplicate("eth0".into()))
        );
    }

    #[test]
    fn netmasks_and_membership() {
        let cidr = |prefix_len| Ipv4Cidr {
            address: Ipv4Addr::new(172, 20, 5, 6),
            prefix_len,
        };
        assert_eq!(cidr(0).netmask(), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(cidr(30).netmask(), Ipv4Addr::new(255, 255, 255, 252));
        assert_eq!(cidr(32).netmask(), Ipv4Addr::new(255, 255, 255, 255));
        assert!(cidr(30).contains(Ipv4Addr::new(172, 20, 5, 5)));
        assert!(!cidr(30).contains(Ipv4Addr::new(172, 20, 5, 9)));
        assert!(cidr(0).contains(Ipv4Addr::new(8, 8, 8, 8)));
    }
}
