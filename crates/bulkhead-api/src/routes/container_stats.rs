//! docker's stats JSON (`GET /containers/{id}/stats`), which the Engine API models of bollard-stubs
//! 1.47 do not define: the fields the docker CLI and the SDKs read, from the engine's samples. CPU use
//! is a difference, so each object carries the previous sample as `precpu_stats`.

use bulkhead_engine::ContainerStats;
use chrono::SecondsFormat;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Serialize, Default)]
pub struct StatsJson {
    read: String,
    preread: String,
    id: String,
    name: String,
    pids_stats: PidsStats,
    num_procs: u32,
    cpu_stats: CpuStats,
    precpu_stats: CpuStats,
    memory_stats: MemoryStats,
    networks: BTreeMap<String, NetworkStats>,
    blkio_stats: BlkioStats,
    storage_stats: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize, Default)]
struct PidsStats {
    current: u64,
}

#[derive(Debug, Serialize, Default)]
struct CpuStats {
    cpu_usage: CpuUsage,
    system_cpu_usage: u64,
    online_cpus: u32,
    throttling_data: ThrottlingData,
}

#[derive(Debug, Serialize, Default)]
struct CpuUsage {
    total_usage: u64,
    usage_in_kernelmode: u64,
    usage_in_usermode: u64,
}

#[derive(Debug, Serialize, Default)]
struct ThrottlingData {
    periods: u64,
    throttled_periods: u64,
    throttled_time: u64,
}

/// `usage` already leaves out the inactive page cache, so `stats` (from which the CLI would subtract
/// it) stays empty.
#[derive(Debug, Serialize, Default)]
struct MemoryStats {
    usage: u64,
    limit: u64,
    stats: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize, Default)]
struct NetworkStats {
    rx_bytes: u64,
    rx_packets: u64,
    rx_errors: u64,
    rx_dropped: u64,
    tx_bytes: u64,
    tx_packets: u64,
    tx_errors: u64,
    tx_dropped: u64,
}

/// Block I/O is not sampled: docker's shape with empty lists.
#[derive(Debug, Serialize, Default)]
struct BlkioStats {
    io_service_bytes_recursive: Option<Vec<()>>,
    io_serviced_recursive: Option<Vec<()>>,
}

/// Go's zero time, for the `preread` of a first sample.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn cpu(s: &ContainerStats) -> CpuStats {
    CpuStats {
        cpu_usage: CpuUsage {
            total_usage: s.cpu_total_ns,
            ..CpuUsage::default()
        },
        system_cpu_usage: s.system_cpu_ns,
        online_cpus: s.online_cpus,
        throttling_data: ThrottlingData::default(),
    }
}

/// What dockerd answers for a container that is not running: zeros, read at Go's zero time.
pub fn not_running(id: &str, name: &str) -> StatsJson {
    StatsJson {
        read: ZERO_TIME.into(),
        preread: ZERO_TIME.into(),
        id: id.to_string(),
        name: format!("/{name}"),
        ..StatsJson::default()
    }
}

/// The stats object of sample `now` of container `id` (`name` without its `/`), after `previous`.
pub fn render(
    id: &str,
    name: &str,
    now: &ContainerStats,
    previous: Option<&ContainerStats>,
) -> StatsJson {
    let time = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    StatsJson {
        read: time(now.read),
        preread: previous
            .map(|p| time(p.read))
            .unwrap_or_else(|| ZERO_TIME.into()),
        id: id.to_string(),
        name: format!("/{name}"),
        pids_stats: PidsStats { current: now.pids },
        num_procs: 0,
        cpu_stats: cpu(now),
        precpu_stats: previous.map(cpu).unwrap_or_default(),
        memory_stats: MemoryStats {
            usage: now.memory_usage,
            limit: now.memory_limit,
            stats: BTreeMap::new(),
        },
        networks: now
            .networks
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    NetworkStats {
                        rx_bytes: n.rx_bytes,
                        rx_packets: n.rx_packets,
                        tx_bytes: n.tx_bytes,
                        tx_packets: n.tx_packets,
                        ..NetworkStats::default()
                    },
                )
            })
            .collect(),
        blkio_stats: BlkioStats::default(),
        storage_stats: BTreeMap::new(),
    }
}
