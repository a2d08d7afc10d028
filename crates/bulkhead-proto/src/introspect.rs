//! What a front end can learn about a running container through its agent (the same in both isolation
//! modes, since the agent is the same code on the host and in a VM guest): its processes, its resource
//! usage, and the type of a path in its filesystem. These are the payloads of the introspection frames
//! and, re-exported, the engine facade's return types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// docker top's table: `titles` (UID PID PPID C STIME TTY TIME CMD) and one row per process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessTable {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// One sample of a container's resource usage, as docker stats reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStats {
    /// When the sample was taken (set by the host engine: a guest's clock is not trusted).
    pub read: DateTime<Utc>,
    /// CPU time of the container's cgroup, in nanoseconds.
    pub cpu_total_ns: u64,
    /// CPU time of the whole machine (host, or the VM), in nanoseconds, from /proc/stat.
    pub system_cpu_ns: u64,
    pub online_cpus: u32,
    /// Memory in use, less the inactive page cache (what docker stats shows).
    pub memory_usage: u64,
    /// The cgroup's limit, or the machine's memory when there is none (as docker).
    pub memory_limit: u64,
    pub pids: u64,
    pub networks: Vec<InterfaceStats>,
}

/// Counters of one of the container's network interfaces (loopback excluded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStats {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

/// A path in the container's filesystem, as docker's archive endpoints describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStat {
    /// The path's base name.
    pub name: String,
    pub size: i64,
    /// `st_mode`: file type and permission bits.
    pub mode: u32,
    pub mtime: DateTime<Utc>,
    /// For a symlink, the path it resolves to inside the container; empty otherwise.
    pub link_target: String,
}

/// Largest `ArchiveData` payload. Each chunk waits for its `ArchiveAck`, so this is all a link ever
/// holds of an archive: small enough to sit in a socket buffer, so that a chunk on its way never blocks
/// the monitor or the agent, which serve the container's output on the same thread.
pub const ARCHIVE_CHUNK: usize = 64 * 1024;
