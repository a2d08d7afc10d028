//! Address leases, host-global: every bulkhead root on the host that uses a bridge draws from the same
//! pool, since the bridge is a kernel object they share. A lease is a file
//! `/run/bulkhead/ipam/<bridge>/<address>` holding the owner's container id, made under the bridge's
//! flock; /run is a tmpfs, so leases end with the bridges at a reboot.

use crate::{NetError, Subnet, RUN_DIR};
use bulkhead_fs::Lock;
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The pool's last leased address (not a lease: it does not parse as an address).
const LAST: &str = ".last";

fn pool_dir(bridge: &str) -> PathBuf {
    Path::new(RUN_DIR).join("ipam").join(bridge)
}

fn lock(bridge: &str) -> Result<Lock, NetError> {
    let dir = Path::new(RUN_DIR).join("ipam");
    std::fs::create_dir_all(&dir).map_err(NetError::path(&dir))?;
    let path = dir.join(format!("{bridge}.lock"));
    Lock::exclusive(&path).map_err(NetError::path(path))
}

/// Leases an address of `subnet` on `bridge` to `owner`: `wanted` if given (it must be free), else the
/// lowest free one. The gateway is never leased.
pub fn lease(
    bridge: &str,
    subnet: Subnet,
    gateway: Ipv4Addr,
    owner: &str,
    wanted: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, NetError> {
    let _lock = lock(bridge)?;
    let dir = pool_dir(bridge);
    std::fs::create_dir_all(&dir).map_err(NetError::path(&dir))?;
    let taken: HashSet<Ipv4Addr> = std::fs::read_dir(&dir)
        .map_err(NetError::path(&dir))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let addr = match wanted {
        Some(a) if !subnet.holds_host(a) || a == gateway => {
            return Err(NetError::Invalid(format!(
                "address {a} is not a usable address of {subnet}"
            )))
        }
        Some(a) if taken.contains(&a) => {
            return Err(NetError::Invalid(format!("address {a} is already in use")))
        }
        Some(a) => a,
        None => {
            // Round robin from the last lease, as docker's allocator does: an address just released
            // may still sit on the veth of a namespace the kernel is tearing down, under the same MAC.
            let last: Option<Ipv4Addr> = std::fs::read_to_string(dir.join(LAST))
                .ok()
                .and_then(|l| l.trim().parse().ok());
            let hosts: Vec<Ipv4Addr> = subnet.hosts().collect();
            let start = last
                .and_then(|l| hosts.iter().position(|h| *h == l))
                .map_or(0, |i| i + 1);
            (0..hosts.len())
                .map(|k| hosts[(start + k) % hosts.len()])
                .find(|a| *a != gateway && !taken.contains(a))
                .ok_or_else(|| NetError::PoolExhausted {
                    subnet: subnet.to_string(),
                    bridge: bridge.to_string(),
                })?
        }
    };
    let path = dir.join(addr.to_string());
    std::fs::write(&path, owner).map_err(NetError::path(&path))?;
    let last = dir.join(LAST);
    std::fs::write(&last, addr.to_string()).map_err(NetError::path(last))?;
    Ok(addr)
}

/// Releases every lease of `owner` on every bridge (the owner's bridges need not be known: this also
/// serves the clean-up after a crash). Idempotent.
pub fn release_all(owner: &str) -> Result<(), NetError> {
    let root = Path::new(RUN_DIR).join("ipam");
    let Ok(bridges) = std::fs::read_dir(&root) else {
        return Ok(());
    };
    for bridge in bridges.flatten() {
        if !bridge.path().is_dir() {
            continue;
        }
        let Some(name) = bridge.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let _lock = lock(&name)?;
        for lease in std::fs::read_dir(bridge.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if std::fs::read_to_string(lease.path()).is_ok_and(|o| o == owner) {
                std::fs::remove_file(lease.path()).map_err(NetError::path(lease.path()))?;
            }
        }
    }
    Ok(())
}

/// Drops the whole pool of a bridge that is being deleted, lock file included (a user network's
/// bridge name is never used again).
pub fn drop_pool(bridge: &str) -> Result<(), NetError> {
    let _lock = lock(bridge)?;
    let dir = pool_dir(bridge);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(NetError::path(dir)(e)),
        _ => {}
    }
    let lock_file = Path::new(RUN_DIR)
        .join("ipam")
        .join(format!("{bridge}.lock"));
    let _ = std::fs::remove_file(lock_file);
    Ok(())
}
