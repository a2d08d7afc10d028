//! What a container is doing, and how that is reconciled with reality after a crash.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Exited,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        })
    }
}

/// A container's runtime state, persisted as `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ContainerState {
    pub status: Status,
    /// The monitor process and its start time (guards against pid reuse).
    pub monitor_pid: Option<i32>,
    pub monitor_start: Option<u64>,
    /// Host pid of the container's main process (process mode) or of QEMU (vm mode).
    pub pid: Option<i32>,
    pub pid_start: Option<u64>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
    /// Why the engine (not the process) ended or could not start the container.
    pub error: Option<String>,
    pub restart_count: u32,
    /// The writable disk has been attached writable to a VM since the host last wrote it: its bytes are
    /// the guest's, and the host must not mount it (process mode first takes its content back through
    /// an export VM). Set before QEMU starts, so a crash still counts.
    #[serde(default)]
    pub disk_vm_written: bool,
    /// Frozen by `pause` (its cgroup, or its VM's): running, but not scheduled until `unpause`.
    #[serde(default)]
    pub paused: bool,
    /// VM mode: how QEMU is confined, as the monitor checked it before reporting the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jail: Option<bulkhead_vm::Confinement>,
    /// Bridge networks: the interfaces and published ports of the current run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<crate::networks::attach::NetworkState>,
}

/// The exit code recorded when the monitor vanished without recording one (docker uses 255 likewise).
pub const LOST_EXIT_CODE: i32 = 255;

impl ContainerState {
    pub fn monitor_alive(&self) -> bool {
        alive(self.monitor_pid, self.monitor_start)
    }

    pub fn process_alive(&self) -> bool {
        alive(self.pid, self.pid_start)
    }
}

/// Brings a `running` state in line with reality when its monitor is gone (killed, or the host rebooted).
/// Returns whether anything changed.
pub fn reconcile(state: &mut ContainerState) -> bool {
    if state.status != Status::Running || state.monitor_alive() {
        return false;
    }
    if state.process_alive() {
        let lost = Some("the monitor is gone; the container runs unattended".to_string());
        if state.error != lost {
            state.error = lost;
            return true;
        }
        return false;
    }
    state.status = Status::Exited;
    state.finished_at.get_or_insert_with(Utc::now);
    state.exit_code.get_or_insert(LOST_EXIT_CODE);
    state.error.get_or_insert_with(|| {
        "the monitor ended without recording an exit (killed, or the host restarted)".to_string()
    });
    true
}

/// Whether `pid` runs and is the process that started at `start` (not a reuse of its pid).
pub fn alive(pid: Option<i32>, start: Option<u64>) -> bool {
    match pid {
        Some(pid) if pid > 0 => start_time(pid).is_some_and(|t| start.is_none_or(|s| s == t)),
        _ => false,
    }
}

/// The start time of a process in clock ticks since boot (`/proc/PID/stat` field 22), if it exists and
/// is not a zombie.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_start_time_guards_reuse() {
        let me = std::process::id() as i32;
        let t = start_time(me).unwrap();
        assert!(alive(Some(me), Some(t)));
        assert!(!alive(Some(me), Some(t + 1)));
        assert!(!alive(None, None));
    }

    #[test]
    fn lost_monitor_reads_as_exited() {
        let mut s = ContainerState {
            status: Status::Running,
            monitor_pid: Some(i32::MAX - 1),
            ..Default::default()
        };
        assert!(reconcile(&mut s));
        assert_eq!(s.status, Status::Exited);
        assert_eq!(s.exit_code, Some(LOST_EXIT_CODE));
        assert!(!reconcile(&mut s));
    }
}
