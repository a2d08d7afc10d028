//! The agent's side of an archive request: the helper child (module `archive`) it forks into the
//! container's mount namespace, and the flow of frames between it and the monitor. Nothing here
//! blocks the agent's loop: the helper's answers are read only while the peer has acknowledged the
//! last chunk, and a put's chunks are written to the helper without blocking, acknowledged once they
//! are all in its pipe.

use crate::archive::{self, Request};
use crate::idmap::IdMaps;
use bulkhead_proto::introspect::ARCHIVE_CHUNK;
use bulkhead_proto::{Message, ProtoError};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{fork, pipe2, ForkResult, Pid};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// One running archive request.
pub struct ArchiveOp {
    stream: u32,
    pid: Pid,
    /// The helper's frames; `None` once its last frame is in.
    reply: Option<File>,
    /// A put's tar on its way to the helper; `None` once closed.
    input: Option<OwnedFd>,
    /// Bytes of the last chunk not yet in the helper's pipe.
    pending: Vec<u8>,
    /// The sender has sent `ArchiveEnd`: close `input` once `pending` is written.
    input_ends: bool,
    /// A chunk went to the peer and its `ArchiveAck` has not come back.
    awaiting_ack: bool,
    is_stat: bool,
    /// The helper's exit code, once reaped.
    pub exit: Option<i32>,
}

/// What happened on an op's fd, for the agent to pass on.
pub enum Event {
    /// Forward this to the peer.
    Send(Message),
    /// Forward this; the op is over.
    Last(Message),
    Nothing,
}

impl ArchiveOp {
    /// Forks the helper into the mount namespace of the container whose init is `init`.
    pub fn spawn(init: Pid, stream: u32, request: Request) -> Result<ArchiveOp, String> {
        let mnt = File::open(format!("/proc/{init}/ns/mnt"))
            .map_err(|e| format!("opening the container's mount namespace: {e}"))?;
        // Read here: in the container's mount namespace, /proc is the container's.
        let ids = IdMaps::of(init)?;
        let (reply_r, reply_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        let (input_r, input_w) = if matches!(request, Request::Put(_)) {
            let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
            (Some(r), Some(w))
        } else {
            (None, None)
        };
        // SAFETY: the agent is single-threaded; the child runs only the helper and leaves with _exit.
        match unsafe { fork() }.map_err(|e| format!("forking the archive helper: {e}"))? {
            ForkResult::Child => {
                drop((reply_r, input_w));
                let keep = [
                    reply_w.as_raw_fd(),
                    mnt.as_raw_fd(),
                    input_r.as_ref().map_or(-1, |f| f.as_raw_fd()),
                ];
                helper(
                    stream,
                    &request,
                    &ids,
                    mnt,
                    File::from(reply_w),
                    input_r,
                    &keep,
                )
            }
            ForkResult::Parent { child } => {
                if let Some(w) = &input_w {
                    // Chunks are written without blocking the agent's loop.
                    let _ = nix::fcntl::fcntl(
                        w.as_raw_fd(),
                        nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
                    );
                }
                Ok(ArchiveOp {
                    stream,
                    pid: child,
                    reply: Some(File::from(reply_r)),
                    input: input_w,
                    pending: Vec::new(),
                    input_ends: false,
                    awaiting_ack: false,
                    is_stat: matches!(request, Request::Stat(_)),
                    exit: None,
                })
            }
        }
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The helper's pipe, while its next frame may be read.
    pub fn readable(&self) -> Option<BorrowedFd<'_>> {
        self.reply
            .as_ref()
            .filter(|_| !self.awaiting_ack)
            .map(|f| f.as_fd())
    }

    /// The put pipe, while bytes wait for it.
    pub fn writable(&self) -> Option<BorrowedFd<'_>> {
        self.input
            .as_ref()
            .filter(|_| !self.pending.is_empty())
            .map(|f| f.as_fd())
    }

    /// Reads the helper's next frame. It writes each frame whole, so once one has begun the rest
    /// follows without the helper waiting on anyone.
    pub fn on_reply(&mut self) -> Event {
        let Some(reply) = self.reply.as_mut() else {
            return Event::Nothing;
        };
        let stream = self.stream;
        let msg = match Message::recv(reply) {
            Ok(msg) => msg,
            Err(e) => {
                self.reply = None;
                let message = match ended(&e) {
                    // Its pipe closed: it died (between frames, or while writing one).
                    Some(when) => {
                        format!("the archive helper ended {when} ({})", self.describe_exit())
                    }
                    None => {
                        self.kill();
                        format!("the archive helper sent a bad frame: {e}")
                    }
                };
                return Event::Last(Message::Error { stream, message });
            }
        };
        let last = match &msg {
            Message::ArchiveData { .. } => {
                self.awaiting_ack = true;
                false
            }
            Message::PathStat { .. } => self.is_stat,
            _ => true,
        };
        if last {
            self.reply = None;
            Event::Last(msg)
        } else {
            Event::Send(msg)
        }
    }

    /// The peer has taken the last chunk.
    pub fn acked(&mut self) {
        self.awaiting_ack = false;
    }

    /// A chunk of a put's tar from the peer. Returns an error message if the peer broke the
    /// one-chunk-at-a-time rule (or sent data for a request that takes none).
    pub fn feed(&mut self, data: Vec<u8>) -> Result<Option<Message>, String> {
        if self.input.is_none() || self.input_ends || !self.pending.is_empty() {
            return Err("archive data arrived out of turn".into());
        }
        if data.len() > ARCHIVE_CHUNK {
            return Err(format!("an archive chunk of {} bytes", data.len()));
        }
        self.pending = data;
        Ok(self.write_pending())
    }

    /// The peer's tar is complete: the helper sees its end once what is pending is written.
    pub fn end_input(&mut self) {
        self.input_ends = true;
        if self.pending.is_empty() {
            self.input = None;
        }
    }

    /// Writes what it can of the pending chunk; `ArchiveAck` once it is all in the helper's pipe.
    pub fn write_pending(&mut self) -> Option<Message> {
        let fd = self.input.as_ref()?;
        while !self.pending.is_empty() {
            match nix::unistd::write(fd, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return None,
                // The helper stopped reading (it failed, and says why on its reply pipe).
                Err(_) => {
                    self.pending.clear();
                    self.input = None;
                    return None;
                }
            }
        }
        if self.input_ends {
            self.input = None;
        }
        Some(Message::ArchiveAck {
            stream: self.stream,
        })
    }

    pub fn kill(&self) {
        let _ = kill(self.pid, Signal::SIGKILL);
    }

    fn describe_exit(&mut self) -> String {
        if self.exit.is_none() {
            // Its pipe closed: it has exited or is exiting, so this wait is short.
            if let Ok(status) = waitpid(self.pid, Some(WaitPidFlag::__WALL)) {
                self.exit = Some(bulkhead_runtime::exit_code(status));
            }
        }
        match self.exit {
            Some(code) if code > 128 => format!("killed by signal {}", code - 128),
            Some(code) => format!("exit code {code}"),
            None => "its status is unknown".into(),
        }
    }
}

/// When a frame read failed because the helper's pipe closed: before a frame or inside one.
fn ended(e: &ProtoError) -> Option<&'static str> {
    match e {
        ProtoError::Closed => Some("without an answer"),
        ProtoError::Truncated(_) => Some("in the middle of a frame"),
        ProtoError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Some("in the middle of a frame")
        }
        _ => None,
    }
}

/// The forked child: leaves every other fd of the agent behind, joins the container's mount
/// namespace (see `archive` for why that is safe) and serves the request.
fn helper(
    stream: u32,
    request: &Request,
    ids: &IdMaps,
    mnt: File,
    reply: File,
    input: Option<OwnedFd>,
    keep: &[i32],
) -> ! {
    // SAFETY: prctl with constant arguments: the helper dies with the agent.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    close_other_fds(keep);
    let joined = setns(mnt.as_fd(), CloneFlags::CLONE_NEWNS).and_then(|()| nix::unistd::chdir("/"));
    drop(mnt);
    match joined {
        Ok(()) => archive::run(stream, request, ids, &reply, input.map(File::from)),
        Err(e) => {
            let _ = Message::Error {
                stream,
                message: format!("joining the container's mount namespace: {e}"),
            }
            .send(&mut &reply);
        }
    }
    // SAFETY: leaving the forked child without running the agent's destructors.
    unsafe { libc::_exit(0) }
}

/// Closes every fd above stderr but `keep` (the agent's monitor link, the container's pipes...).
fn close_other_fds(keep: &[i32]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2 && !keep.contains(fd))
        .collect();
    for fd in fds {
        // SAFETY: closing fds of this (forked, single-threaded) process that nothing here uses.
        unsafe { libc::close(fd) };
    }
}
