//! The one framed, versioned protocol bulkhead speaks on its session streams: CLI <-> container monitor
//! (a unix socket) and host monitor <-> VM agent (a virtio-serial port).
//!
//! Threat model: on the VM link the peer is a guest kernel we assume compromised. Every frame is therefore
//! bounded before it is read ([`MAX_PAYLOAD`]), every unknown kind or malformed payload is an error (never a
//! panic), and the reader never allocates more than one bounded frame. A caller that gets an error treats the
//! peer as broken and closes the stream.
//!
//! Wire format, big-endian: `u32 len | u8 kind | u32 stream | payload[len - 5]`. Data frames (stdio) carry raw
//! bytes; control frames carry a JSON object, typed on both ends: `Start`, `Exec` and `Update` carry the
//! `bulkhead-spec` types the runtime executes, and a payload that does not decode as its kind's type is
//! [`ProtoError::Malformed`]. `stream` 0 is the container's main process, other values name `exec`
//! sessions. Every session opens with [`handshake`]. A VM guest is asked either to `Start` the container
//! or to `Export` its writable layer, which it streams back as a tar in `ExportData` frames closed by
//! `ExportEnd`. Front ends may also ask a running container's agent, through the monitor, for its
//! processes (`Top`), its resource usage (`Stats`) and tars of its files (`ArchiveGet`, `ArchivePut`;
//! [`introspect`]), which stream in `ArchiveData` frames acknowledged one at a time, so no link in
//! between ever holds more than one chunk.
//!
//! This crate is the host<->guest contract, so it also holds what the VM host (`bulkhead-vm`) and the
//! guest's PID 1 (`bulkhead-guest`) must agree on outside frames ([`vm`]): both depend on it, neither on
//! the other.

mod chunked;
mod frame;
mod handshake;
pub mod introspect;
mod message;
pub mod nic;
pub mod vm;

pub use chunked::ChunkWriter;
pub use frame::{read_frame, write_frame, Frame, Kind, MAX_PAYLOAD};
pub use handshake::{bounded_peer_message, handshake, MAX_PEER_MESSAGE};
pub use message::{ExitStatus, Message};

/// Protocol version carried in `Hello`; peers with another version are refused.
pub const VERSION: u16 = 1;

/// Everything that can go wrong decoding or moving frames.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("peer closed the stream")]
    Closed,
    #[error("i/o error on the session stream: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    Oversized { len: usize, max: usize },
    #[error("frame shorter than its header ({0} bytes)")]
    Truncated(usize),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("malformed {kind:?} frame: {reason}")]
    Malformed { kind: Kind, reason: String },
    #[error("peer speaks protocol version {0}, this bulkhead speaks {VERSION}")]
    Version(u16),
    #[error("expected {expected}, got a {got:?} frame")]
    Unexpected { expected: &'static str, got: Kind },
    /// The peer sent an `Error` instead of opening the session: its own message, at most
    /// [`MAX_PEER_MESSAGE`] bytes, control characters escaped.
    #[error("peer reported an error: {0}")]
    Peer(String),
    #[error("timed out waiting for the peer")]
    TimedOut,
}
