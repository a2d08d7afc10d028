//! `mounts`: binds and tmpfs become the workload's mounts; the standard filesystems (proc, sysfs, devpts,
//! mqueue, /dev, /dev/shm, cgroup) are accepted at their standard targets, where the runtime mounts its
//! own; anything else is refused.
//!
//! A bind is always recursive and `nodev`, read-only with `ro`; its `nosuid`/`noexec` are not applied
//! (the runtime has no per-bind flags for them). Propagation is private (`slave` is accepted as such, as
//! for the rootfs); `shared` is refused.

use std::path::PathBuf;

use bulkhead_engine::MountSpec;
use oci_spec::runtime::Mount;

use super::BundleError;

/// Filesystems the runtime mounts itself (type, target). `/sys/fs/cgroup` is not mounted by the runtime:
/// the container's processes see the cgroup through /proc only.
const STANDARD: [(&str, &str); 8] = [
    ("proc", "/proc"),
    ("sysfs", "/sys"),
    ("devpts", "/dev/pts"),
    ("mqueue", "/dev/mqueue"),
    ("tmpfs", "/dev"),
    ("tmpfs", "/dev/shm"),
    ("cgroup", "/sys/fs/cgroup"),
    ("cgroup2", "/sys/fs/cgroup"),
];

/// Options of a bind that change nothing bulkhead does (or that the runtime always applies).
const BIND_ACCEPTED: [&str; 19] = [
    "bind",
    "rbind",
    "ro",
    "rw",
    "nosuid",
    "nodev",
    "noexec",
    "suid",
    "dev",
    "exec",
    "private",
    "rprivate",
    "slave",
    "rslave",
    "relatime",
    "norelatime",
    "noatime",
    "strictatime",
    "nodiratime",
];

/// Tmpfs flags the runtime's tmpfs options understand (`tmpcopyup`, podman's, fills the tmpfs with
/// the directory it covers); others must be `key=value` filesystem data.
const TMPFS_FLAGS: [&str; 14] = [
    "ro",
    "rw",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "sync",
    "noatime",
    "relatime",
    "strictatime",
    "tmpcopyup",
    "notmpcopyup",
];

pub(super) fn mounts(list: Option<&Vec<Mount>>) -> Result<Vec<MountSpec>, BundleError> {
    let mut out = Vec::new();
    for (i, m) in list.into_iter().flatten().enumerate() {
        let field = format!("mounts[{i}]");
        let target = m.destination().to_str().unwrap_or_default().to_string();
        if !target.starts_with('/') {
            return Err(BundleError::invalid(
                format!("{field}.destination"),
                format!("{:?} is not an absolute path", m.destination()),
            ));
        }
        let options = m.options().clone().unwrap_or_default();
        let kind = m.typ().as_deref().unwrap_or("");
        let is_bind = kind == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
        if is_bind {
            out.push(bind(&field, m, target, &options)?);
        } else if STANDARD
            .iter()
            .any(|(t, d)| *t == kind && *d == normalized(&target))
        {
            continue;
        } else if kind == "tmpfs" {
            out.push(MountSpec::Tmpfs {
                target,
                options: tmpfs_options(&field, &options)?,
            });
        } else {
            return Err(BundleError::unsupported(
                field,
                format!("a mount of type {kind:?} on {target}"),
            ));
        }
    }
    Ok(out)
}

/// The target without trailing slashes (`/dev/shm/` is `/dev/shm`).
fn normalized(target: &str) -> &str {
    let trimmed = target.trim_end_matches('/');
    if trimmed.is_empty() {
        "/"
    } else {
        trimmed
    }
}

fn bind(
    field: &str,
    m: &Mount,
    target: String,
    options: &[String],
) -> Result<MountSpec, BundleError> {
    let source: PathBuf = m
        .source()
        .clone()
        .ok_or_else(|| BundleError::invalid(format!("{field}.source"), "a bind needs a source"))?;
    if !source.is_absolute() {
        return Err(BundleError::invalid(
            format!("{field}.source"),
            format!("{} is not an absolute path", source.display()),
        ));
    }
    let mut readonly = false;
    for o in options {
        match o.as_str() {
            "ro" => readonly = true,
            "rw" => readonly = false,
            o if BIND_ACCEPTED.contains(&o) => {}
            "shared" | "rshared" | "unbindable" | "runbindable" => {
                return Err(BundleError::unsupported(
                    format!("{field}.options"),
                    format!("mount propagation {o:?} on {target} (binds are private)"),
                ))
            }
            other => {
                return Err(BundleError::unsupported(
                    format!("{field}.options"),
                    format!("bind option {other:?} on {target}"),
                ))
            }
        }
    }
    Ok(MountSpec::Bind {
        source,
        target,
        readonly,
    })
}

/// The options in the runtime's tmpfs syntax (docker's `--tmpfs`). Its defaults are docker's
/// (nosuid, nodev, noexec), OCI's are none of them, so a flag the spec leaves out is cleared explicitly.
fn tmpfs_options(field: &str, options: &[String]) -> Result<String, BundleError> {
    let mut out = Vec::new();
    for o in options {
        if o.contains('=') {
            out.push(o.clone());
        } else if ["private", "rprivate", "slave", "rslave"].contains(&o.as_str()) {
            continue;
        } else if TMPFS_FLAGS.contains(&o.as_str()) {
            out.push(o.clone());
        } else {
            return Err(BundleError::unsupported(
                format!("{field}.options"),
                format!("tmpfs option {o:?}"),
            ));
        }
    }
    for (set, clear) in [("nosuid", "suid"), ("nodev", "dev"), ("noexec", "exec")] {
        if !options.iter().any(|o| o == set) {
            out.push(clear.to_string());
        }
    }
    Ok(out.join(","))
}
