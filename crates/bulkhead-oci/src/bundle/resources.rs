//! `linux.resources`: memory limit, CPU quota and pids limit become the workload's; the device rules
//! and device nodes must stay within the runtime's default set. CPU shares, weights, swap, block I/O,
//! hugepages, network classes, RDMA and `unified` are accepted and not applied.

use bulkhead_engine::Resources;
use oci_spec::runtime::{Linux, LinuxDeviceCgroup, LinuxDeviceType};

use super::BundleError;

/// The CFS period the kernel (and runc) uses when only a quota is given.
const DEFAULT_CPU_PERIOD: u64 = 100_000;

/// Character devices a default container may open (the runtime's cgroup rules) and finds in its /dev:
/// (path, major, minor), a minor of `None` matching any.
const DEFAULT_DEVICES: [(&str, i64, Option<i64>); 9] = [
    ("/dev/null", 1, Some(3)),
    ("/dev/zero", 1, Some(5)),
    ("/dev/full", 1, Some(7)),
    ("/dev/random", 1, Some(8)),
    ("/dev/urandom", 1, Some(9)),
    ("/dev/tty", 5, Some(0)),
    ("/dev/console", 5, Some(1)),
    ("/dev/ptmx", 5, Some(2)),
    ("/dev/pts/*", 136, None),
];

/// `c 10:200` (/dev/net/tun) is in containerd's default allow list; bulkhead's containers do not get
/// it (their /dev has no such node), and the rule is accepted so that every containerd spec runs.
const TUN: (i64, i64) = (10, 200);

pub(super) fn resources(linux: Option<&Linux>) -> Result<Resources, BundleError> {
    let Some(r) = linux.and_then(|l| l.resources().as_ref()) else {
        return Ok(Resources::default());
    };
    let memory_bytes = match r.memory().and_then(|m| m.limit()) {
        Some(limit) if limit > 0 => Some(limit as u64),
        _ => None,
    };
    let cpus = match r
        .cpu()
        .as_ref()
        .and_then(|c| c.quota().map(|q| (q, c.period())))
    {
        Some((quota, period)) if quota > 0 => {
            let period = period.unwrap_or(DEFAULT_CPU_PERIOD);
            if period == 0 {
                return Err(BundleError::invalid(
                    "linux.resources.cpu.period",
                    "a quota with a period of 0",
                ));
            }
            Some(quota as f64 / period as f64)
        }
        _ => None,
    };
    let pids_limit = r.pids().map(|p| p.limit()).filter(|l| *l > 0);
    for (i, rule) in r.devices().iter().flatten().enumerate() {
        device_rule(i, rule)?;
    }
    Ok(Resources {
        memory_bytes,
        cpus,
        pids_limit,
    })
}

/// A deny rule for everything (which the runtime starts from), or an allow rule within its defaults.
fn device_rule(i: usize, rule: &LinuxDeviceCgroup) -> Result<(), BundleError> {
    let field = || format!("linux.resources.devices[{i}]");
    let kind = rule.typ().unwrap_or(LinuxDeviceType::A);
    let access = rule.access().clone().unwrap_or_else(|| "rwm".into());
    if !rule.allow() {
        if kind == LinuxDeviceType::A && rule.major().is_none() && rule.minor().is_none() {
            return Ok(());
        }
        return Err(BundleError::unsupported(
            field(),
            format!("a deny rule other than for every device ({rule})"),
        ));
    }
    let wildcard = |n: Option<i64>| n.is_none_or(|n| n < 0);
    let allowed = match kind {
        // Any node may be created (mknod), none of them opened, as the runtime's rules say.
        LinuxDeviceType::C | LinuxDeviceType::B
            if access == "m" && wildcard(rule.major()) && wildcard(rule.minor()) =>
        {
            true
        }
        LinuxDeviceType::C => match (rule.major(), rule.minor()) {
            (Some(major), Some(minor)) if minor >= 0 => {
                (major, minor) == TUN
                    || DEFAULT_DEVICES
                        .iter()
                        .any(|(_, ma, mi)| *ma == major && mi.is_none_or(|mi| mi == minor))
            }
            (Some(major), minor) if wildcard(minor) => DEFAULT_DEVICES
                .iter()
                .any(|(_, ma, mi)| *ma == major && mi.is_none()),
            _ => false,
        },
        _ => false,
    };
    if !allowed {
        return Err(BundleError::unsupported(
            field(),
            format!("allowing device {rule} (only the default devices are allowed)"),
        ));
    }
    Ok(())
}

/// `linux.devices`: the nodes to create. The runtime's /dev has the default ones already.
pub(super) fn devices(linux: Option<&Linux>) -> Result<(), BundleError> {
    for (i, dev) in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = dev.path().to_str().unwrap_or_default();
        let known = dev.typ() == LinuxDeviceType::C
            && DEFAULT_DEVICES
                .iter()
                .any(|(p, ma, mi)| *p == path && *ma == dev.major() && *mi == Some(dev.minor()));
        if !known {
            return Err(BundleError::unsupported(
                format!("linux.devices[{i}]"),
                format!(
                    "device {path} ({} {}:{}): only the default devices are provided",
                    dev.typ().as_str(),
                    dev.major(),
                    dev.minor()
                ),
            ));
        }
    }
    Ok(())
}
