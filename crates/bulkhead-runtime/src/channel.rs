//! The setup channel between the caller and a container process being set up: a
//! close-on-exec `SOCK_SEQPACKET` pair. The caller sends a go-ahead once the child is in
//! its cgroup (placed there by the caller on v2; on v1 it joins by itself) and the id maps are written; the child reports a pty master, a
//! grandchild pid, or a failure. A successful execve closes the child's end, so EOF
//! without a failure means the user's command is running.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use nix::unistd::Pid;

use crate::error::{ChildFailure, RuntimeError};

const GO: u8 = b'G';
const PTY: u8 = b'P';
const PID: u8 = b'I';
const FAILURE: u8 = b'F';
const MAX_MESSAGE: usize = 64 * 1024;

/// A message from the container process to the caller.
#[derive(Debug)]
pub(crate) enum Message {
    PtyMaster(OwnedFd),
    Pid(Pid),
    Failure(ChildFailure),
}

pub(crate) struct Channel {
    sock: OwnedFd,
}

fn send_on(sock: RawFd, data: &[u8], fds: &[RawFd]) -> Result<(), RuntimeError> {
    let iov = [IoSlice::new(data)];
    let cmsgs = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsgs };
    sendmsg::<()>(sock, &iov, cmsgs, MsgFlags::empty(), None).map_err(|e| chan_err("send", e))?;
    Ok(())
}

fn failure_message(error: &RuntimeError) -> Result<Vec<u8>, RuntimeError> {
    let mut msg = vec![FAILURE];
    let json = serde_json::to_vec(&ChildFailure::from(error))
        .map_err(|e| RuntimeError::Channel(format!("encoding a failure: {e}")))?;
    msg.extend_from_slice(&json[..json.len().min(MAX_MESSAGE - 1)]);
    Ok(msg)
}

/// Creates (caller end, child end).
pub(crate) fn pair() -> Result<(Channel, Channel), RuntimeError> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| RuntimeError::sys("socketpair for the setup channel", e))?;
    Ok((Channel { sock: a }, Channel { sock: b }))
}

fn chan_err(what: &str, e: nix::Error) -> RuntimeError {
    RuntimeError::Channel(format!("{what}: {e}"))
}

impl Channel {
    fn send(&self, data: &[u8], fds: &[RawFd]) -> Result<(), RuntimeError> {
        send_on(self.sock.as_raw_fd(), data, fds)
    }

    pub(crate) fn send_go(&self) -> Result<(), RuntimeError> {
        self.send(&[GO], &[])
    }

    /// Child side: blocks until the caller's go-ahead; EOF means the caller gave up.
    pub(crate) fn wait_go(&self) -> Result<(), RuntimeError> {
        let mut buf = [0u8; 1];
        let n = nix::unistd::read(self.sock.as_raw_fd(), &mut buf)
            .map_err(|e| chan_err("waiting for the go-ahead", e))?;
        if n == 1 && buf[0] == GO {
            Ok(())
        } else {
            Err(RuntimeError::Channel("the caller aborted the setup".into()))
        }
    }

    pub(crate) fn send_pty(&self, master: &OwnedFd) -> Result<(), RuntimeError> {
        self.send(&[PTY], &[master.as_raw_fd()])
    }

    pub(crate) fn send_pid(&self, pid: Pid) -> Result<(), RuntimeError> {
        let mut msg = vec![PID];
        msg.extend_from_slice(&pid.as_raw().to_le_bytes());
        self.send(&msg, &[])
    }

    pub(crate) fn send_failure(&self, error: &RuntimeError) -> Result<(), RuntimeError> {
        self.send(&failure_message(error)?, &[])
    }

    /// Child side: reports a panic of this process as a setup failure. Release builds abort on panic,
    /// so the report comes from the panic hook, before the process ends.
    pub(crate) fn report_panics(&self) {
        let sock = self.sock.as_raw_fd();
        std::panic::set_hook(Box::new(move |info| {
            let error = RuntimeError::Setup {
                stage: "container process".into(),
                reason: format!("panic during setup: {info}"),
            };
            // The socket stays open until the process ends, which the panic is about to do.
            let _ = failure_message(&error).and_then(|msg| send_on(sock, &msg, &[]));
        }));
    }

    /// Caller side: the next message, or `None` at EOF (every child end closed).
    pub(crate) fn recv(&self) -> Result<Option<Message>, RuntimeError> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut cmsg_space = nix::cmsg_space!([RawFd; 1]);
        let (len, fds) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg_space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fds = Vec::new();
                    for cmsg in msg.cmsgs().map_err(|e| chan_err("control message", e))? {
                        if let ControlMessageOwned::ScmRights(received) = cmsg {
                            // SAFETY: SCM_RIGHTS installed these descriptors in our table.
                            fds.extend(
                                received
                                    .into_iter()
                                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                            );
                        }
                    }
                    break (msg.bytes, fds);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                // The child failed and exited with our go-ahead unread: the kernel reports that reset
                // once, ahead of the messages the child queued (its failure among them), which follow.
                Err(nix::errno::Errno::ECONNRESET) => continue,
                Err(e) => return Err(chan_err("receive", e)),
            }
        };
        if len == 0 {
            return Ok(None);
        }
        let message =
            match buf[0] {
                PTY => Message::PtyMaster(fds.into_iter().next().ok_or_else(|| {
                    RuntimeError::Channel("pty message without a descriptor".into())
                })?),
                PID if len == 5 => {
                    let raw = i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]);
                    Message::Pid(Pid::from_raw(raw))
                }
                FAILURE => Message::Failure(
                    serde_json::from_slice(&buf[1..len])
                        .map_err(|e| RuntimeError::Channel(format!("decoding a failure: {e}")))?,
                ),
                other => {
                    return Err(RuntimeError::Channel(format!(
                        "unexpected message tag {other}"
                    )))
                }
            };
        Ok(Some(message))
    }
}
