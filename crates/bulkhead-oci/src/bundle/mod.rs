//! An OCI bundle: its config.json read and checked ([`load`]), and translated into the engine's
//! workload ([`workload`]), with its annotations and hooks for the caller.
//!
//! Every field of the runtime spec is either translated, refused with a [`BundleError`] naming it, or
//! (where applying it is not bulkhead's business or has no effect on what the container can do) accepted
//! and not applied: `process.apparmorProfile`, `process.selinuxLabel`, `linux.mountLabel` (bulkhead
//! confines with namespaces, capabilities and seccomp), `process.oomScoreAdj`, `linux.cgroupsPath` (the
//! engine names the cgroup), the resources listed in [`resources`], and `linux.rootfsPropagation`
//! `private`/`rprivate`/`slave`/`rslave` (the rootfs is always private). `process.noNewPrivileges` false
//! still gets no_new_privs: the runtime sets it for every unprivileged container.
//!
//! Under VM isolation the guest kernel is the container's own: the namespaces to join (IPC, UTS) are the
//! host's and are left out by the VM backend.

mod error;
mod load;
mod mounts;
mod namespaces;
mod process;
mod resources;
mod seccomp;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use bulkhead_engine::{SecuritySpec, Workload};
use oci_spec::runtime::{Hooks, Linux, Spec};

pub use error::BundleError;
pub use load::{load, parse, Bundle};
pub use process::process;

/// The engine's workload for the bundle's `spec`. `relay_pid` is the relay process, whose IPC and UTS
/// namespaces a container asking for new ones joins.
pub fn workload(spec: &Spec, relay_pid: i32) -> Result<Workload, BundleError> {
    let p = spec
        .process()
        .as_ref()
        .ok_or(BundleError::MissingField("process"))?;
    let linux = spec.linux().as_ref();
    check_linux(linux)?;
    let ns = namespaces::namespaces(linux, relay_pid)?;
    let (cap_drop, cap_add) = process::capabilities(p)?;
    resources::devices(linux)?;
    Ok(Workload {
        process: process::process(p)?,
        hostname: spec.hostname().clone().unwrap_or_default(),
        readonly_rootfs: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        mounts: mounts::mounts(spec.mounts().as_ref())?,
        network: ns.network,
        userns: ns.userns,
        security: SecuritySpec {
            privileged: false,
            cap_add,
            cap_drop,
            seccomp: seccomp::seccomp(linux.and_then(|l| l.seccomp().as_ref()))?,
            no_new_privileges: p.no_new_privileges().unwrap_or(false),
            // Absent lists mask nothing, as with runc.
            masked_paths: Some(
                linux
                    .and_then(|l| l.masked_paths().clone())
                    .unwrap_or_default(),
            ),
            readonly_paths: Some(
                linux
                    .and_then(|l| l.readonly_paths().clone())
                    .unwrap_or_default(),
            ),
        },
        resources: resources::resources(linux)?,
        sysctls: sysctls(spec)?,
        join_namespaces: ns.join,
    })
}

/// The bundle's annotations (the isolation request, CRI's container type and sandbox id...).
pub fn annotations(spec: &Spec) -> BTreeMap<String, String> {
    spec.annotations()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The bundle's hooks, for the caller to run at their points of the lifecycle.
pub fn hooks(spec: &Spec) -> Hooks {
    spec.hooks().clone().unwrap_or_default()
}

/// `linux.sysctl`, with `domainname` as the `kernel.domainname` it sets. Which keys are allowed is the
/// runtime's decision (namespaced ones only), made when the container starts.
fn sysctls(spec: &Spec) -> Result<BTreeMap<String, String>, BundleError> {
    let mut out: BTreeMap<String, String> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(domain) = spec.domainname().as_ref().filter(|d| !d.is_empty()) {
        match out.get("kernel.domainname") {
            Some(other) if other != domain => {
                return Err(BundleError::invalid(
                    "domainname",
                    format!("{domain:?} and linux.sysctl kernel.domainname {other:?} disagree"),
                ))
            }
            _ => {
                out.insert("kernel.domainname".into(), domain.clone());
            }
        }
    }
    Ok(out)
}

/// Fields of `linux` that have no translation.
fn check_linux(linux: Option<&Linux>) -> Result<(), BundleError> {
    let Some(l) = linux else {
        return Ok(());
    };
    if l.intel_rdt().is_some() {
        return Err(BundleError::unsupported("linux.intelRdt", "Intel RDT"));
    }
    if l.personality().is_some() {
        return Err(BundleError::unsupported(
            "linux.personality",
            "execution domains",
        ));
    }
    if l.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(BundleError::unsupported(
            "linux.timeOffsets",
            "time namespaces",
        ));
    }
    match l.rootfs_propagation().as_deref() {
        None | Some("" | "private" | "rprivate" | "slave" | "rslave") => Ok(()),
        Some(other) => Err(BundleError::unsupported(
            "linux.rootfsPropagation",
            format!("{other:?} (the rootfs is private)"),
        )),
    }
}
