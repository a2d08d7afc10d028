//! Serves one container over a bulkhead-proto stream.
//!
//! The same loop runs in two places: as the VM guest's PID 1 (behind a virtio-serial port) and on the host
//! in process mode (behind a socketpair to the container monitor). It owns the container's processes: it
//! starts them with `bulkhead-runtime`, turns their stdio into frames, applies stdin, signals, resizes and
//! exec requests from the peer, and reports each exit. It also answers front ends' questions about the
//! running container: its processes (`top`), its resource usage (`stats`), and tars of its files, made
//! and extracted by a helper it forks into the container's mount namespace (`archive`,
//! `archive_op`). Everything is one thread with `poll`, because the runtime forks and must be called
//! from a single-threaded process.
//!
//! The peer (the host monitor) is trusted by the agent; the reverse is not true and is handled on the host.

mod archive;
mod archive_op;
mod idmap;
mod process;
mod session;
mod stats;
mod top;

pub use session::{serve, serve_started};

use bulkhead_proto::ProtoError;

/// Why serving a container failed before it could report an exit.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("protocol error talking to the monitor: {0}")]
    Proto(#[from] ProtoError),
    #[error("expected a Start message first, got {0}")]
    NoStart(String),
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        source: nix::Error,
    },
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> AgentError {
    move |source| AgentError::Sys { what, source }
}
