//! Why the guest could not serve its container. The message reaches the host as an `Error` frame and
//! the user as the container's error, so each variant says what the guest was doing.

use bulkhead_proto::vm::AGENT_PORT;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub(crate) enum GuestError {
    #[error("mounting {fstype} on {target}: {source}")]
    Mount {
        fstype: &'static str,
        target: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("mounting the host's shared directory {tag} on {target}: {source}")]
    Share {
        tag: String,
        target: String,
        #[source]
        source: nix::Error,
    },
    #[error("bind source {0} is not in a shared directory of the host")]
    NotShared(PathBuf),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("switching from the initramfs to a tmpfs root: {0}")]
    SwitchRoot(#[source] nix::Error),
    #[error("no virtio-serial port named {AGENT_PORT} appeared within {0:?}")]
    NoAgentPort(Duration),
    #[error("the host did not connect to the agent port within {0:?}")]
    HostAbsent(Duration),
    #[error("polling the agent port: {0}")]
    Poll(#[source] nix::Error),
    #[error("bringing up the loopback interface: {0}")]
    Loopback(#[source] bulkhead_runtime::RuntimeError),
    #[error("invalid network interface from the host: {0}")]
    BadNic(#[source] bulkhead_proto::nic::NicError),
    #[error("no network device with MAC {0} (the host's interface it stands for)")]
    NoDevice(String),
    #[error("configuring the network: {0}")]
    Nic(#[source] bulkhead_runtime::netlink::NetlinkError),
    #[error("assembling the container rootfs: {0}")]
    Rootfs(#[source] bulkhead_runtime::RuntimeError),
    #[error("talking to the host: {0}")]
    Proto(#[source] bulkhead_proto::ProtoError),
    #[error("the host asked for neither Start nor Export: {0}")]
    UnknownRequest(String),
    #[error("{0} on the writable disk is not a directory")]
    NotADirectory(PathBuf),
    #[error("serving the container: {0}")]
    Agent(#[source] bulkhead_agent::AgentError),
}

/// Wraps an I/O error with what was being done to which path.
pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> GuestError {
    let path = path.to_path_buf();
    move |source| GuestError::Io { op, path, source }
}
