//! A front end's connection to a container's monitor: protocol frames to and from the main process or an
//! exec session. Relaying them to a terminal or an HTTP connection is the front end's business.

use crate::containers::Container;
use crate::EngineError;
use bulkhead_proto::{handshake, ExitStatus, Message, ProtoError};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

/// A connection to a container's monitor.
pub struct Session {
    stream: UnixStream,
    id: String,
}

impl Session {
    pub fn connect(container: &Container) -> Result<Session, EngineError> {
        let id = container.config.id.clone();
        let path = container.paths.socket();
        // A dead monitor's listening socket can outlive it in its forked agent, where a connection is
        // accepted by the kernel but never served: check the monitor itself first.
        if !container.state.monitor_alive() {
            return Err(EngineError::WrongState {
                id,
                status: container.state.status.to_string(),
                what: "its monitor is not running".into(),
            });
        }
        let stream = UnixStream::connect(&path).map_err(|e| EngineError::WrongState {
            id: id.clone(),
            status: container.state.status.to_string(),
            what: format!("its monitor is not reachable ({e})"),
        })?;
        handshake(&mut &stream, &mut &stream, &[]).map_err(|source| EngineError::Monitor {
            id: id.clone(),
            source,
        })?;
        Ok(Session { stream, id })
    }

    /// A session over a stream whose other end the test plays.
    #[cfg(test)]
    pub(crate) fn over(stream: UnixStream, id: &str) -> Session {
        Session {
            stream,
            id: id.to_string(),
        }
    }

    pub fn send(&mut self, msg: &Message) -> Result<(), EngineError> {
        msg.send(&mut self.stream)
            .map_err(|source| EngineError::Monitor {
                id: self.id.clone(),
                source,
            })
    }

    /// The next message from the monitor.
    pub fn recv(&mut self) -> Result<Message, ProtoError> {
        Message::recv(&mut self.stream)
    }

    /// A second handle on the same connection, so one thread can read the monitor's frames while another
    /// writes (the API server's relays).
    pub fn try_clone(&self) -> Result<Session, EngineError> {
        Ok(Session {
            stream: self
                .stream
                .try_clone()
                .map_err(EngineError::io("monitor socket"))?,
            id: self.id.clone(),
        })
    }

    /// Ends the connection for every handle on it: a thread blocked in [`Session::recv`] sees it closed.
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// The next message, or [`ProtoError::TimedOut`] if none has begun within `wait`.
    pub(crate) fn recv_within(&mut self, wait: std::time::Duration) -> Result<Message, ProtoError> {
        self.stream
            .set_read_timeout(Some(wait))
            .map_err(ProtoError::Io)?;
        Message::recv(&mut self.stream).map_err(|e| match e {
            ProtoError::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                ProtoError::TimedOut
            }
            other => other,
        })
    }

    /// The container this session is connected to.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Asks for an exec session; `Ok(stream)` once it runs, or `Err(status)` if it ended at once.
    pub fn start_exec(
        &mut self,
        process: &bulkhead_runtime::ProcessSpec,
    ) -> Result<Result<u32, ExitStatus>, EngineError> {
        self.send(&Message::Exec {
            stream: 0,
            process: process.clone(),
        })?;
        let mut error = None;
        loop {
            match self.recv() {
                Ok(Message::Started { stream, .. }) => return Ok(Ok(stream)),
                Ok(Message::Error { message, .. }) => error = Some(message),
                Ok(Message::Exited { mut status, .. }) => {
                    status.reason = status.reason.or(error);
                    return Ok(Err(status));
                }
                Ok(_) => {}
                Err(source) => {
                    return Err(EngineError::Monitor {
                        id: self.id.clone(),
                        source,
                    })
                }
            }
        }
    }
}

impl AsFd for Session {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}
