//! The checks the monitor makes on a jailed QEMU before the container counts as started, read from
//! `/proc/<pid>` after `exec`: a failed one names itself, and the caller kills the VM.

use super::JailError;
use std::fs;
use std::path::Path;

/// The namespaces QEMU must not share with us.
pub const NAMESPACES: [&str; 5] = ["mnt", "pid", "net", "ipc", "uts"];

/// Every check [`verify`] makes, by the name a failure reports.
pub const CHECKS: [&str; 7] = [
    "uid/gid",
    "capabilities",
    "no_new_privs",
    "seccomp",
    "namespaces",
    "cgroup",
    "mount namespace",
];

/// A running VM's QEMU in its jail, as checked; the engine keeps it in the container's state for
/// `inspect`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Confinement {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    /// The cgroup, relative to the hierarchy roots.
    pub cgroup: String,
    pub namespaces: Vec<String>,
    /// Mount points in QEMU's mount namespace (its root is the jail's tmpfs).
    pub mounts: Vec<String>,
    /// Every check that passed ([`CHECKS`]).
    pub checks: Vec<String>,
    /// The capabilities QEMU holds: none, or with shared directories its 9p server's.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// What QEMU's process must look like.
pub struct Expected<'a> {
    pub pid: u32,
    pub uid: u32,
    /// The cgroup name and the hierarchies (v1 controllers, or "" for v2) it must be in.
    pub cgroup: &'a str,
    pub controllers: &'a [&'a str],
    /// The jail's mount points.
    pub mounts: &'a [String],
    /// Those that are writable (the writable shares); every other one must be read-only.
    pub writable: &'a [String],
    /// The capabilities QEMU holds (every set, bounding included): none, or those of a 9p server.
    pub capabilities: &'a [(u32, &'a str)],
}

fn fail(check: &'static str, detail: String) -> JailError {
    JailError::Check { check, detail }
}

/// Runs every check on `/proc/<pid>`.
pub fn verify(e: &Expected) -> Result<Confinement, JailError> {
    let proc = Path::new("/proc").join(e.pid.to_string());
    let read = |name: &str| {
        fs::read_to_string(proc.join(name))
            .map_err(|err| JailError::io("reading", &proc.join(name), err))
    };
    let status = read("status")?;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or("")
            .to_string()
    };
    for key in ["Uid", "Gid"] {
        let ids = field(key);
        if ids.split_whitespace().any(|id| id != e.uid.to_string()) || ids.is_empty() {
            return Err(fail(
                "uid/gid",
                format!("{key}: {ids}, expected {} everywhere", e.uid),
            ));
        }
    }
    let expected: u64 = e.capabilities.iter().map(|(c, _)| 1u64 << c).sum();
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let caps = field(key);
        if u64::from_str_radix(&caps, 16) != Ok(expected) {
            return Err(fail(
                "capabilities",
                format!("{key}: {caps}, expected {expected:016x}"),
            ));
        }
    }
    if field("NoNewPrivs") != "1" {
        return Err(fail(
            "no_new_privs",
            format!("NoNewPrivs: {}", field("NoNewPrivs")),
        ));
    }
    if field("Seccomp") != "2" {
        return Err(fail("seccomp", format!("Seccomp: {}", field("Seccomp"))));
    }
    for ns in NAMESPACES {
        let theirs = fs::read_link(proc.join("ns").join(ns));
        let ours = fs::read_link(Path::new("/proc/self/ns").join(ns));
        match (theirs, ours) {
            (Ok(t), Ok(o)) if t != o => {}
            (t, o) => {
                return Err(fail(
                    "namespaces",
                    format!("{ns}: QEMU {t:?}, monitor {o:?}"),
                ))
            }
        }
    }
    let cgroups = read("cgroup")?;
    for controller in e.controllers {
        let member = cgroups.lines().any(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrls, path) = (
                parts.next(),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let in_hierarchy = if controller.is_empty() {
                ctrls.is_empty()
            } else {
                ctrls.split(',').any(|c| c == *controller)
            };
            in_hierarchy && path.trim_start_matches('/') == e.cgroup
        });
        if !member {
            return Err(fail(
                "cgroup",
                format!("not in {}:{} but\n{cgroups}", controller, e.cgroup),
            ));
        }
    }
    let mountinfo = read("mountinfo")?;
    let mounts = mount_points(&mountinfo);
    let root_is_jail = mountinfo.lines().any(|l| {
        let (left, right) = l.split_once(" - ").unwrap_or((l, ""));
        left.split_whitespace().nth(4) == Some("/") && right.starts_with("tmpfs bulkhead-jail ")
    });
    let unexpected: Vec<&String> = mounts.iter().filter(|m| !e.mounts.contains(m)).collect();
    if !root_is_jail || !unexpected.is_empty() {
        return Err(fail(
            "mount namespace",
            format!("root is the jail: {root_is_jail}; unexpected mounts: {unexpected:?}"),
        ));
    }
    if let Some(line) = mountinfo.lines().find(|l| !flags_hold(l, e.writable)) {
        return Err(fail(
            "mount namespace",
            format!("a mount without its flags: {line}"),
        ));
    }
    Ok(Confinement {
        pid: e.pid,
        uid: e.uid,
        gid: e.uid,
        cgroup: e.cgroup.to_string(),
        namespaces: NAMESPACES.iter().map(|n| n.to_string()).collect(),
        mounts,
        checks: CHECKS.iter().map(|c| c.to_string()).collect(),
        capabilities: e.capabilities.iter().map(|(_, n)| n.to_string()).collect(),
    })
}

/// Whether one `mountinfo` line has the jail's flags: nosuid everywhere, read-only unless it is one of
/// the `writable` shares, and those nodev and noexec.
fn flags_hold(line: &str, writable: &[String]) -> bool {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (Some(point), Some(options)) = (fields.get(4), fields.get(5)) else {
        return false;
    };
    let has = |flag: &str| options.split(',').any(|o| o == flag);
    if writable.iter().any(|w| w == point) {
        has("rw") && has("nosuid") && has("nodev") && has("noexec")
    } else {
        has("ro") && has("nosuid")
    }
}

/// The mount points listed in a `mountinfo` file.
pub fn mount_points(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_flags_are_checked_per_mount() {
        let line = |point: &str, options: &str| {
            format!("40 39 0:5 / {point} {options} - tmpfs bulkhead-jail rw")
        };
        let writable = vec!["/shares/1".to_string()];
        assert!(flags_hold(&line("/usr/bin/qemu", "ro,nosuid"), &writable));
        assert!(!flags_hold(&line("/usr/bin/qemu", "rw,nosuid"), &writable));
        assert!(!flags_hold(&line("/shares/0", "ro,nodev"), &writable));
        assert!(flags_hold(
            &line("/shares/1", "rw,nosuid,nodev,noexec"),
            &writable
        ));
        assert!(!flags_hold(
            &line("/shares/1", "rw,nosuid,nodev"),
            &writable
        ));
    }
}
