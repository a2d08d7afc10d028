//! runc's view of a container (`state`, `list`, and what `kill`, `delete`, `exec` accept), from the
//! engine's record and the relay: the relay is the process the caller waits on, so the container is
//! stopped for the caller once it has ended.

use crate::record::{Record, RelayInfo};
use bulkhead_engine::{Container, Status as EngineStatus};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// `container` is `None` for a pod's sandbox, which the relay alone makes.
pub fn of(record: &Record, relay: &RelayInfo, container: Option<&Container>) -> Status {
    if !relay.alive() {
        return Status::Stopped;
    }
    let engine = container.map(|c| c.state.status);
    match engine {
        None if record.started() => Status::Running,
        None | Some(EngineStatus::Created) => Status::Created,
        Some(EngineStatus::Running) if container.is_some_and(|c| c.state.paused) => Status::Paused,
        Some(EngineStatus::Running) => Status::Running,
        Some(EngineStatus::Exited) => Status::Stopped,
    }
}

/// runc's `state` JSON (the runtime spec's state, plus runc's `rootfs`, `created` and `owner`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: &'static str,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

pub const OCI_VERSION: &str = "1.0.2";

pub fn state(record: &Record, relay: &RelayInfo, container: Option<&Container>) -> State {
    let status = of(record, relay, container);
    State {
        oci_version: OCI_VERSION,
        id: record.id().to_string(),
        pid: if status == Status::Stopped {
            0
        } else {
            relay.pid
        },
        status,
        bundle: relay.bundle.clone(),
        rootfs: relay.rootfs.clone(),
        created: relay
            .created
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        owner: "",
        annotations: relay.annotations.clone(),
    }
}
