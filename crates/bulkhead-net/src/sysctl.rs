//! The few kernel settings bridge networking needs.

use crate::NetError;

/// Routing between the bridges and the host's other interfaces.
pub fn enable_ip_forward() -> Result<(), NetError> {
    write("/proc/sys/net/ipv4/ip_forward", "1")
}

/// Lets packets with 127.0.0.0/8 sources be routed out of `bridge`: connections to 127.0.0.1:PORT are
/// DNATed to a container in the output chain and keep their loopback source until postrouting
/// masquerades it.
pub fn enable_route_localnet(bridge: &str) -> Result<(), NetError> {
    write(
        &format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"),
        "1",
    )
}

/// Lets a bridge port send a frame back out of the port it came in by, for hairpin NAT.
pub fn enable_hairpin(port: &str) -> Result<(), NetError> {
    write(&format!("/sys/class/net/{port}/brport/hairpin_mode"), "1")
}

fn write(path: &str, value: &str) -> Result<(), NetError> {
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(path, value).map_err(NetError::path(path))
}
