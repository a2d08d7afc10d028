//! `linux.namespaces` and the id mappings: what the container gets new, what it joins, what it shares.
//!
//! The relay process (`relay_pid`) unshared an IPC and a UTS namespace for the container: a container
//! asking for new ones joins the relay's, so that `/proc/<relay>/ns/{ipc,uts}`, which CRI hands to a pod's
//! other containers, are the container's. A namespace type left out means the host's, as with runc.

use std::path::PathBuf;

use bulkhead_engine::{IdMap, NamespaceKind, NamespacePath, NetworkMode};
use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType};

use super::BundleError;

/// What the namespaces section becomes in a workload.
#[derive(Debug, PartialEq)]
pub(super) struct Namespaces {
    pub network: NetworkMode,
    pub join: Vec<NamespacePath>,
    pub userns: Option<IdMap>,
}

pub(super) fn namespaces(linux: Option<&Linux>, relay_pid: i32) -> Result<Namespaces, BundleError> {
    if relay_pid <= 0 {
        return Err(BundleError::invalid(
            "relay pid",
            format!("{relay_pid} is not a process id"),
        ));
    }
    let list = linux
        .and_then(|l| l.namespaces().as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let find = |kind: LinuxNamespaceType| list.iter().find(|ns| ns.typ() == kind);
    for (i, ns) in list.iter().enumerate() {
        if list[..i].iter().any(|other| other.typ() == ns.typ()) {
            return Err(BundleError::invalid(
                format!("linux.namespaces[{i}]"),
                format!("namespace type {} is given twice", ns.typ()),
            ));
        }
        let field = || format!("linux.namespaces[{i}] ({})", ns.typ());
        match (ns.typ(), ns.path()) {
            (LinuxNamespaceType::Time, _) => {
                return Err(BundleError::unsupported(field(), "time namespaces"))
            }
            (LinuxNamespaceType::Pid, Some(_)) => {
                return Err(BundleError::unsupported(
                    field(),
                    "joining a pid namespace by path (each container has its own)",
                ))
            }
            (
                LinuxNamespaceType::Mount | LinuxNamespaceType::Cgroup | LinuxNamespaceType::User,
                Some(_),
            ) => {
                return Err(BundleError::unsupported(
                    field(),
                    "joining this namespace type by path",
                ))
            }
            _ => {}
        }
    }
    for (kind, name) in [
        (LinuxNamespaceType::Pid, "pid"),
        (LinuxNamespaceType::Mount, "mount"),
    ] {
        if find(kind).is_none() {
            return Err(BundleError::unsupported(
                "linux.namespaces",
                format!("sharing the host's {name} namespace (every container gets its own)"),
            ));
        }
    }
    let network = match find(LinuxNamespaceType::Network) {
        None => NetworkMode::Host,
        Some(ns) => match ns.path() {
            Some(path) => NetworkMode::Namespace(absolute("network", path)?),
            None => NetworkMode::None,
        },
    };
    let mut join = Vec::new();
    for (typ, kind, name) in [
        (LinuxNamespaceType::Ipc, NamespaceKind::Ipc, "ipc"),
        (LinuxNamespaceType::Uts, NamespaceKind::Uts, "uts"),
    ] {
        let path = match find(typ) {
            Some(ns) => match ns.path() {
                Some(path) => absolute(name, path)?,
                None => PathBuf::from(format!("/proc/{relay_pid}/ns/{name}")),
            },
            // The host's: the runtime's own, which the container then keeps (the path is opened by
            // the runtime, on the host).
            None => PathBuf::from(format!("/proc/self/ns/{name}")),
        };
        join.push(NamespacePath { kind, path });
    }
    let userns = userns(linux, find(LinuxNamespaceType::User).is_some())?;
    Ok(Namespaces {
        network,
        join,
        userns,
    })
}

fn absolute(name: &str, path: &std::path::Path) -> Result<PathBuf, BundleError> {
    if !path.is_absolute() {
        return Err(BundleError::invalid(
            format!("linux.namespaces ({name}).path"),
            format!("{} is not absolute", path.display()),
        ));
    }
    Ok(path.to_path_buf())
}

/// A user namespace maps container ids `0..size` to one contiguous host range, the same size for uids
/// and gids: the one mapping the runtime writes.
fn userns(linux: Option<&Linux>, new_userns: bool) -> Result<Option<IdMap>, BundleError> {
    let uids = linux.and_then(|l| l.uid_mappings().as_ref());
    let gids = linux.and_then(|l| l.gid_mappings().as_ref());
    let given = uids.is_some_and(|m| !m.is_empty()) || gids.is_some_and(|m| !m.is_empty());
    if !new_userns {
        if given {
            return Err(BundleError::invalid(
                "linux.uidMappings",
                "id mappings without a user namespace in linux.namespaces",
            ));
        }
        return Ok(None);
    }
    let one =
        |field: &str, m: Option<&Vec<LinuxIdMapping>>| -> Result<LinuxIdMapping, BundleError> {
            match m.map(Vec::as_slice).unwrap_or_default() {
                [one] if one.container_id() == 0 && one.size() > 0 => Ok(*one),
                [] => Err(BundleError::invalid(
                    field,
                    "a user namespace needs one mapping",
                )),
                _ => Err(BundleError::unsupported(
                    field,
                    "only one mapping, of container ids from 0, is supported",
                )),
            }
        };
    let uid = one("linux.uidMappings", uids)?;
    let gid = one("linux.gidMappings", gids)?;
    if uid.size() != gid.size() {
        return Err(BundleError::unsupported(
            "linux.gidMappings",
            format!(
                "a gid range of {} ids and a uid range of {}: both must have the same size",
                gid.size(),
                uid.size()
            ),
        ));
    }
    Ok(Some(IdMap {
        host_uid: uid.host_id(),
        host_gid: gid.host_id(),
        size: uid.size(),
    }))
}
