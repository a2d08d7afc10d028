//! A synchronous rtnetlink client: one request at a time, returning what the kernel answered (a dump's
//! messages, or just its acknowledgement). The VM host scans and wires a container's network namespace
//! with it, and the VM guest's PID 1 configures its interfaces. A socket acts on the network namespace
//! of the thread that created it, for its whole life.

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;

/// A route netlink socket of the current thread's network namespace.
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("{op}: {source}")]
    Io {
        op: String,
        #[source]
        source: io::Error,
    },
    #[error("{op}: undecodable answer from the kernel: {reason}")]
    Decode { op: String, reason: String },
}

impl NetlinkError {
    /// The kernel's errno, when it refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Io { source, .. } => source.raw_os_error(),
            NetlinkError::Decode { .. } => None,
        }
    }
}

impl Netlink {
    pub fn open() -> Result<Netlink, NetlinkError> {
        let op = || "opening a route netlink socket".to_string();
        let mut socket =
            Socket::new(NETLINK_ROUTE).map_err(|source| NetlinkError::Io { op: op(), source })?;
        socket
            .bind_auto()
            .and_then(|_| socket.connect(&SocketAddr::new(0, 0)))
            .map_err(|source| NetlinkError::Io { op: op(), source })?;
        Ok(Netlink { socket, seq: 0 })
    }

    /// Every object of a kind (`RTM_GET*` with `NLM_F_DUMP`).
    pub fn dump(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.request(op, msg, NLM_F_DUMP)
    }

    /// A change (`flags` such as `NLM_F_CREATE | NLM_F_EXCL`), acknowledged by the kernel.
    pub fn change(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(), NetlinkError> {
        self.request(op, msg, flags | NLM_F_ACK).map(drop)
    }

    fn request(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let io = |source| NetlinkError::Io {
            op: op.to_string(),
            source,
        };
        let decode = |reason: String| NetlinkError::Decode {
            op: op.to_string(),
            reason,
        };
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(io)?;
        let mut answers = Vec::new();
        loop {
            let (data, _) = self.socket.recv_from_full().map_err(io)?;
            let mut rest = &data[..];
            while !rest.is_empty() {
                let len = NetlinkBuffer::new_checked(rest)
                    .map_err(|e| decode(e.to_string()))?
                    .length() as usize;
                let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(
                    &rest[..len.min(rest.len())],
                )
                .map_err(|e| decode(e.to_string()))?;
                // Netlink messages are 4-byte aligned within a datagram.
                rest = &rest[len.next_multiple_of(4).min(rest.len())..];
                if message.header.sequence_number != self.seq {
                    continue;
                }
                match message.payload {
                    NetlinkPayload::InnerMessage(m) => answers.push(m),
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(answers),
                        Some(_) => return Err(io(e.to_io())),
                    },
                    _ => {}
                }
            }
        }
    }
}
