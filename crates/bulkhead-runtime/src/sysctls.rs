//! Kernel parameters of the container ([`Workload::sysctls`]): only those the kernel keeps per
//! namespace, in a namespace that is the container's, as runc allows them. Checked by the caller before
//! the container exists; written by its init under the container's /proc/sys before the paths there
//! are made read-only.
//!
//! [`Workload::sysctls`]: bulkhead_spec::Workload::sysctls

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::error::RuntimeError;
use crate::namespaces::{self, Joins};
use crate::safe_path::open_in_root;
use bulkhead_spec::{NamespaceKind, NetworkMode, Workload};

/// The namespace a parameter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Ipc,
    Uts,
    Net,
}

fn refuse(key: &str, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::Sysctl {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// The key in dotted form (`net/ipv4/ip_forward` is `net.ipv4.ip_forward`).
fn dotted(key: &str) -> String {
    key.replace('/', ".")
}

fn scope(key: &str) -> Result<Scope, RuntimeError> {
    let name = dotted(key);
    let ipc = name == "kernel.sem"
        || name == "kernel.sem_next_id"
        || name.starts_with("kernel.shm")
        || name.starts_with("kernel.msg")
        || name.starts_with("fs.mqueue.");
    match name.as_str() {
        _ if ipc => Ok(Scope::Ipc),
        "kernel.domainname" => Ok(Scope::Uts),
        "kernel.hostname" => Err(refuse(
            key,
            "conflicts with the container's hostname, which sets it",
        )),
        _ if name.starts_with("net.") => Ok(Scope::Net),
        _ => Err(refuse(
            key,
            "not in a separate kernel namespace (allowed: kernel.shm*, kernel.msg*, kernel.sem, \
             fs.mqueue.*, kernel.domainname, net.*)",
        )),
    }
}

/// The path under /proc/sys, checked to stay there.
fn proc_path(key: &str) -> Result<String, RuntimeError> {
    let rel = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    let valid = !rel.is_empty()
        && rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if !valid {
        return Err(refuse(key, "not a parameter name"));
    }
    Ok(format!("/proc/sys/{rel}"))
}

/// Refuses parameters that are not namespaced, or whose namespace the container shares with the host.
/// `joins` are the namespaces it joins; others of IPC and UTS are new, the network one is new for
/// [`NetworkMode::None`] and the caller's otherwise.
pub(crate) fn check(workload: &Workload, joins: &Joins) -> Result<(), RuntimeError> {
    for key in workload.sysctls.keys() {
        proc_path(key)?;
        let shared_with_host = match scope(key)? {
            Scope::Ipc => joined_hosts(joins, NamespaceKind::Ipc)?,
            Scope::Uts => joined_hosts(joins, NamespaceKind::Uts)?,
            Scope::Net => {
                workload.network != NetworkMode::None
                    && namespaces::path_is_hosts(Path::new("/proc/self/ns/net"), "net")?
            }
        };
        if shared_with_host {
            return Err(refuse(
                key,
                "the container shares this namespace with the host",
            ));
        }
    }
    Ok(())
}

fn joined_hosts(joins: &Joins, kind: NamespaceKind) -> Result<bool, RuntimeError> {
    match joins.get(kind) {
        Some(fd) => namespaces::is_hosts(fd, namespaces::proc_name(kind)),
        None => Ok(false),
    }
}

/// Writes the parameters through the container's own /proc (mounted under `root`), from inside its
/// namespaces.
pub(crate) fn write(
    root: &OwnedFd,
    sysctls: &BTreeMap<String, String>,
) -> Result<(), RuntimeError> {
    for (key, value) in sysctls {
        let path = proc_path(key)?;
        let fd = open_in_root(root.as_fd(), &path, libc::O_WRONLY, 0)
            .map_err(|e| refuse(key, format!("opening {path}: {e}")))?;
        std::fs::File::from(fd)
            .write_all(value.as_bytes())
            .map_err(|e| refuse(key, format!("writing {value:?}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_as_runc() {
        assert_eq!(scope("kernel.shmmax").unwrap(), Scope::Ipc);
        assert_eq!(scope("kernel/msgmnb").unwrap(), Scope::Ipc);
        assert_eq!(scope("kernel.sem").unwrap(), Scope::Ipc);
        assert_eq!(scope("fs.mqueue.msg_max").unwrap(), Scope::Ipc);
        assert_eq!(scope("kernel.domainname").unwrap(), Scope::Uts);
        assert_eq!(scope("net.ipv4.ip_forward").unwrap(), Scope::Net);
        let err = scope("kernel.hostname").unwrap_err().to_string();
        assert!(
            err.contains("kernel.hostname") && err.contains("hostname"),
            "{err}"
        );
        let err = scope("vm.swappiness").unwrap_err().to_string();
        assert!(err.starts_with("sysctl \"vm.swappiness\""), "{err}");
        assert!(scope("kernel.semaphore").is_err());
    }

    #[test]
    fn paths_stay_under_proc_sys() {
        assert_eq!(
            proc_path("net.ipv4.ip_forward").unwrap(),
            "/proc/sys/net/ipv4/ip_forward"
        );
        assert_eq!(
            proc_path("net/ipv4/conf/eth0.100/forwarding").unwrap(),
            "/proc/sys/net/ipv4/conf/eth0.100/forwarding"
        );
        for bad in [
            "",
            "net..ipv4",
            "net/../../etc",
            "net/./x",
            "/net/x",
            "net.",
        ] {
            assert!(proc_path(bad).is_err(), "{bad}");
        }
    }
}
