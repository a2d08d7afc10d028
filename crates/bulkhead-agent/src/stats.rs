//! docker stats: one sample of the container's cgroup (where the agent runs it: the host's in process
//! mode, the guest's in a VM), of the machine's CPU time, and of the container's network interfaces.

use bulkhead_proto::introspect::{ContainerStats, InterfaceStats};
use bulkhead_runtime::Container;
use chrono::Utc;
use std::fs;

pub fn sample(container: &Container) -> Result<ContainerStats, String> {
    let usage = container
        .usage()
        .map_err(|e| format!("reading the container's cgroup: {e}"))?;
    let memory_limit = match usage.memory_limit {
        Some(limit) => limit,
        None => machine_memory()?,
    };
    // SAFETY: sysconf only reads a value.
    let online_cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u32;
    Ok(ContainerStats {
        read: Utc::now(),
        cpu_total_ns: usage.cpu_ns,
        system_cpu_ns: system_cpu_ns()?,
        online_cpus,
        memory_usage: usage.memory_bytes,
        memory_limit,
        pids: usage.pids,
        networks: interfaces(
            &fs::read_to_string(format!("/proc/{}/net/dev", container.pid))
                .map_err(|e| format!("reading the container's network counters: {e}"))?,
        ),
    })
}

/// The machine's CPU time as docker counts it: the first eight fields of /proc/stat's `cpu` line (user
/// to steal), in nanoseconds.
fn system_cpu_ns() -> Result<u64, String> {
    let stat = fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    let ticks: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .ok_or("/proc/stat has no cpu line")?
        .split_whitespace()
        .take(8)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(ticks.saturating_mul(1_000_000_000 / hz))
}

/// MemTotal: docker's memory limit for a container without one.
fn machine_memory() -> Result<u64, String> {
    let meminfo = fs::read_to_string("/proc/meminfo").map_err(|e| format!("/proc/meminfo: {e}"))?;
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| "/proc/meminfo has no MemTotal".to_string())
}

/// The interfaces of a `/proc/<pid>/net/dev` table, loopback left out.
fn interfaces(table: &str) -> Vec<InterfaceStats> {
    table
        .lines()
        .skip(2)
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let name = name.trim();
            let c: Vec<u64> = counters
                .split_whitespace()
                .map(|f| f.parse().ok())
                .collect::<Option<_>>()?;
            (name != "lo" && c.len() >= 10).then(|| InterfaceStats {
                name: name.to_string(),
                rx_bytes: c[0],
                rx_packets: c[1],
                tx_bytes: c[8],
                tx_packets: c[9],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_rows_become_counters_without_loopback() {
        let table = "Inter-|   Receive                            |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
             lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n  \
             eth0:    1234      10    0    0    0     0          0         0      567       7    0    0    0     0       0          0\n";
        assert_eq!(
            interfaces(table),
            vec![InterfaceStats {
                name: "eth0".into(),
                rx_bytes: 1234,
                rx_packets: 10,
                tx_bytes: 567,
                tx_packets: 7,
            }]
        );
    }

    #[test]
    fn machine_counters_are_read() {
        assert!(system_cpu_ns().unwrap() > 0);
        assert!(machine_memory().unwrap() > 1 << 20);
    }
}
