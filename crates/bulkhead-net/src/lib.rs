//! The host's network plumbing for bridge networks, one module per concern: [`netlink`] (bridges, veth
//! pairs, addresses, routes), [`netns`] (network namespaces kept by a bind mount), [`ipam`] (address
//! leases shared by every bulkhead root on the host), [`firewall`] (the `ip bulkhead` nftables table:
//! masquerade, published ports, forwarding), [`ports`] (host ports held by a bound socket) and
//! [`sysctl`]. The engine composes them; nothing here knows containers beyond their ids.

mod error;
pub mod firewall;
pub mod ipam;
pub mod netlink;
pub mod netns;
pub mod ports;
mod subnet;
pub mod sysctl;

pub use error::NetError;
pub use subnet::Subnet;

/// Where host-global network state lives (shared by every bulkhead root on the host).
pub const RUN_DIR: &str = "/run/bulkhead";
