//! Capability sets of container processes: docker's default set adjusted by
//! `cap_add`/`cap_drop`, or everything for privileged containers.

use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};

use crate::error::RuntimeError;
use bulkhead_spec::SecuritySpec;

/// Docker's default capability set.
const DEFAULT_CAPS: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

fn all_supported() -> CapsHashSet {
    caps::runtime::thread_all_supported()
}

/// What the caller can hand out: it cannot grant capabilities it does not hold itself.
fn grantable() -> CapsHashSet {
    caps::read(None, CapSet::Permitted).unwrap_or_else(|_| all_supported())
}

fn parse(name: &str) -> Result<Capability, RuntimeError> {
    let upper = name.trim().to_ascii_uppercase();
    let canonical = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    Capability::from_str(&canonical).map_err(|_| RuntimeError::UnknownCapability(name.into()))
}

/// The capability set of the container's processes.
pub(crate) fn resolve(security: &SecuritySpec) -> Result<CapsHashSet, RuntimeError> {
    if security.privileged {
        return Ok(grantable());
    }
    let mut set: CapsHashSet = DEFAULT_CAPS.into_iter().collect();
    let is_all = |n: &String| n.trim().eq_ignore_ascii_case("ALL");
    if security.cap_drop.iter().any(is_all) {
        set.clear();
    }
    if security.cap_add.iter().any(is_all) {
        set = all_supported();
    }
    for name in security.cap_add.iter().filter(|n| !is_all(n)) {
        set.insert(parse(name)?);
    }
    for name in security.cap_drop.iter().filter(|n| !is_all(n)) {
        set.remove(&parse(name)?);
    }
    Ok(set.intersection(&grantable()).copied().collect())
}

fn caps_err(what: &str, e: caps::errors::CapsError) -> RuntimeError {
    RuntimeError::Capabilities(format!("{what}: {e}"))
}

/// Drops everything outside `set` from the bounding set. Needs CAP_SETPCAP, so it runs
/// before the user switch.
pub(crate) fn limit_bounding(set: &CapsHashSet) -> Result<(), RuntimeError> {
    for cap in all_supported().difference(set) {
        caps::drop(None, CapSet::Bounding, *cap)
            .map_err(|e| caps_err(&format!("dropping {cap} from the bounding set"), e))?;
    }
    Ok(())
}

/// Sets permitted and effective to `set`, and clears inheritable and ambient (docker
/// behaviour since CVE-2022-24769: a non-root user gets no capabilities through execve
/// unless a file grants them). Runs after the user switch, with PR_SET_KEEPCAPS held.
pub(crate) fn apply(set: &CapsHashSet) -> Result<(), RuntimeError> {
    caps::clear(None, CapSet::Ambient).map_err(|e| caps_err("clearing ambient", e))?;
    caps::clear(None, CapSet::Inheritable).map_err(|e| caps_err("clearing inheritable", e))?;
    // Effective first: it must stay a subset of permitted at every step.
    caps::set(None, CapSet::Effective, set).map_err(|e| caps_err("setting effective", e))?;
    caps::set(None, CapSet::Permitted, set).map_err(|e| caps_err("setting permitted", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_add_drop_all() {
        let mut spec = SecuritySpec::default();
        assert_eq!(resolve(&spec).unwrap().len(), DEFAULT_CAPS.len());
        spec.cap_add = vec!["net_admin".into(), "CAP_SYS_PTRACE".into()];
        spec.cap_drop = vec!["MKNOD".into()];
        let set = resolve(&spec).unwrap();
        assert!(set.contains(&Capability::CAP_NET_ADMIN));
        assert!(set.contains(&Capability::CAP_SYS_PTRACE));
        assert!(!set.contains(&Capability::CAP_MKNOD));
        spec.cap_drop = vec!["ALL".into()];
        spec.cap_add = vec!["CHOWN".into()];
        assert_eq!(
            resolve(&spec).unwrap(),
            [Capability::CAP_CHOWN].into_iter().collect()
        );
        spec.cap_add = vec!["BOGUS".into()];
        assert!(matches!(
            resolve(&spec),
            Err(RuntimeError::UnknownCapability(_))
        ));
    }
}
