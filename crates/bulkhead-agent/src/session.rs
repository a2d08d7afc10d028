//! The serve loop: one container, its exec sessions, and the frames that drive them.

use crate::archive::Request;
use crate::archive_op::{self, ArchiveOp};
use crate::process::{self, Proc};
use crate::{stats, sys, top, AgentError};
use bulkhead_proto::{handshake, ExitStatus, Message, ProtoError};
use bulkhead_runtime::{exit_code, resize_pty, Container, ContainerSpec, ProcessSpec};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long output may stay open after its process exited (a background child holding the pipe).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
const READ_CHUNK: usize = 64 * 1024;

/// Serves one container on `conn`: handshake, `Start`, run, relay, `Exited`. Returns the main exit status.
///
/// If the monitor goes away mid-run the container keeps running to its end with output discarded, so a
/// killed monitor never kills a container; the host reconciles its state later.
pub fn serve(conn: OwnedFd, rootfs: &Path) -> Result<ExitStatus, AgentError> {
    let file = File::from(conn);
    handshake(&mut &file, &mut &file, &[])?;
    let spec: ContainerSpec = match Message::recv(&mut &file)? {
        // A process agent already runs in the container's network namespace: there are no NICs to set.
        Message::Start { spec, .. } => *spec,
        other => return Err(AgentError::NoStart(format!("{other:?}"))),
    };
    serve_started(file.into(), spec, rootfs)
}

/// Serves the container of a session that is already open and whose `Start` carried `spec` (the VM
/// guest reads the request itself: it must know whether it is to run a container or export a disk).
pub fn serve_started(
    conn: OwnedFd,
    mut spec: ContainerSpec,
    rootfs: &Path,
) -> Result<ExitStatus, AgentError> {
    let mut conn = Conn::new(File::from(conn));
    spec.rootfs = rootfs.to_path_buf();
    // Exec sessions are forked grandchildren; as subreaper we can still reap them.
    // SAFETY: prctl with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };

    let (stdio, ends) =
        process::stdio(spec.workload.process.terminal).map_err(sys("creating stdio pipes"))?;
    let mut container = match bulkhead_runtime::spawn(&spec, stdio) {
        Ok(c) => c,
        Err(e) => {
            let status = ExitStatus {
                code: e.exit_code_hint(),
                oom_killed: false,
                reason: Some(e.to_string()),
            };
            conn.send(&Message::Error {
                stream: 0,
                message: e.to_string(),
            });
            conn.send(&Message::Exited {
                stream: 0,
                status: status.clone(),
            });
            return Ok(status);
        }
    };
    let pty = container.pty_master.take();
    let main = Proc::new(container.pid, ends, pty);
    conn.send(&Message::Started {
        stream: 0,
        pid: main.pid.as_raw(),
    });
    let mut session = Session {
        conn,
        spec,
        container,
        procs: BTreeMap::from([(0, main)]),
        exited_at: BTreeMap::new(),
        ops: BTreeMap::new(),
    };
    let status = session.run()?;
    let Session { container, ops, .. } = session;
    for op in ops.values() {
        op.kill();
    }
    if let Err(e) = container.destroy() {
        tracing::warn!("cleaning up the container: {e}");
    }
    Ok(status)
}

/// The monitor link; once it fails we stop writing to it but keep the container going.
struct Conn {
    file: File,
    alive: bool,
}

impl Conn {
    fn new(file: File) -> Conn {
        Conn { file, alive: true }
    }

    fn send(&mut self, msg: &Message) {
        if self.alive && msg.send(&mut &self.file).is_err() {
            self.alive = false;
        }
    }
}

struct Session {
    conn: Conn,
    spec: ContainerSpec,
    container: Container,
    procs: BTreeMap<u32, Proc>,
    exited_at: BTreeMap<u32, Instant>,
    /// Running archive requests, by stream.
    ops: BTreeMap<u32, ArchiveOp>,
}

/// What a ready fd in the poll set stands for.
#[derive(Clone, Copy)]
enum Source {
    Conn,
    Out(u32, bool),
    Exit,
    OpReply(u32),
    OpInput(u32),
}

impl Session {
    fn run(&mut self) -> Result<ExitStatus, AgentError> {
        loop {
            let (sources, ready) = self.wait()?;
            for (source, revents) in sources.into_iter().zip(ready) {
                if revents.is_empty() {
                    continue;
                }
                match source {
                    Source::Conn => self.on_conn(),
                    Source::Out(stream, stderr) => self.on_output(stream, stderr),
                    Source::Exit => {}
                    Source::OpReply(stream) => self.on_op_reply(stream),
                    Source::OpInput(stream) => {
                        let ack = self.ops.get_mut(&stream).and_then(|op| op.write_pending());
                        if let Some(ack) = ack {
                            self.conn.send(&ack);
                        }
                    }
                }
            }
            self.reap();
            if let Some(status) = self.finish_streams() {
                return Ok(status);
            }
        }
    }

    /// Polls every fd of interest; returns what each stands for and its events.
    fn wait(&self) -> Result<(Vec<Source>, Vec<PollFlags>), AgentError> {
        let mut sources = Vec::new();
        let mut fds: Vec<(BorrowedFd, PollFlags)> = Vec::new();
        let readable = PollFlags::POLLIN;
        if self.conn.alive {
            sources.push(Source::Conn);
            fds.push((self.conn.file.as_fd(), readable));
        }
        for (&stream, p) in &self.procs {
            if let Some(fd) = &p.stdout {
                sources.push(Source::Out(stream, false));
                fds.push((fd.as_fd(), readable));
            }
            if let Some(fd) = &p.stderr {
                sources.push(Source::Out(stream, true));
                fds.push((fd.as_fd(), readable));
            }
            if let (Some(fd), None) = (&p.pidfd, p.exit) {
                sources.push(Source::Exit);
                fds.push((fd.as_fd(), readable));
            }
        }
        for (&stream, op) in &self.ops {
            if let Some(fd) = op.readable() {
                sources.push(Source::OpReply(stream));
                fds.push((fd, readable));
            }
            if let Some(fd) = op.writable() {
                sources.push(Source::OpInput(stream));
                fds.push((fd, PollFlags::POLLOUT));
            }
        }
        let mut pollfds: Vec<PollFd> = fds
            .iter()
            .map(|(fd, events)| PollFd::new(*fd, *events))
            .collect();
        // A timeout keeps reaping and drain deadlines moving even when nothing is readable.
        match poll(&mut pollfds, PollTimeout::from(250u16)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                return Err(AgentError::Sys {
                    what: "poll",
                    source: e,
                })
            }
        }
        let ready = pollfds
            .iter()
            .map(|p| p.revents().unwrap_or(PollFlags::empty()))
            .collect();
        Ok((sources, ready))
    }

    fn on_conn(&mut self) {
        match Message::recv(&mut &self.conn.file) {
            Ok(msg) => self.handle(msg),
            Err(ProtoError::Closed) => self.conn.alive = false,
            Err(e) => {
                tracing::warn!("dropping the monitor link: {e}");
                self.conn.alive = false;
            }
        }
    }

    fn handle(&mut self, msg: Message) {
        match msg {
            Message::Stdin { stream, data } => {
                let failed = match self.procs.get(&stream).and_then(|p| p.stdin.as_ref()) {
                    Some(fd) => write_all(fd, &data).is_err(),
                    None => false,
                };
                if failed {
                    if let Some(p) = self.procs.get_mut(&stream) {
                        p.stdin = None;
                    }
                }
            }
            Message::StdinClose { stream } => {
                if let Some(p) = self.procs.get_mut(&stream) {
                    // A pty's "stdin" is the master, which must stay open for output; only pipes close.
                    if !p.terminal {
                        p.stdin = None;
                    }
                }
            }
            Message::Resize { stream, rows, cols } => {
                let pty = self.procs.get(&stream).filter(|p| p.terminal);
                if let Some(fd) = pty.and_then(|p| p.stdout.as_ref()) {
                    let _ = resize_pty(fd.as_fd(), rows, cols);
                }
            }
            // The monitor cancels an archive request whose client went away.
            Message::Signal { stream, .. } if self.ops.contains_key(&stream) => {
                if let Some(op) = self.ops.remove(&stream) {
                    op.kill();
                }
            }
            Message::Signal { stream, signal } => {
                if let (Some(p), Ok(sig)) = (self.procs.get(&stream), Signal::try_from(signal)) {
                    if p.exit.is_none() {
                        let _ = nix::sys::signal::kill(p.pid, sig);
                    }
                }
            }
            Message::Exec { stream, process } => self.exec(stream, process),
            Message::Top { stream } => {
                let answer = match top::table(self.container.pid) {
                    Ok(table) => Message::TopResult { stream, table },
                    Err(message) => Message::Error { stream, message },
                };
                self.answer(answer);
            }
            Message::Stats { stream } => {
                let answer = match stats::sample(&self.container) {
                    Ok(stats) => Message::StatsResult { stream, stats },
                    Err(message) => Message::Error { stream, message },
                };
                self.answer(answer);
            }
            Message::ArchiveStat { stream, path } => self.archive(stream, Request::Stat(path)),
            Message::ArchiveGet { stream, path } => self.archive(stream, Request::Get(path)),
            Message::ArchivePut { stream, path } => self.archive(stream, Request::Put(path)),
            Message::ArchiveAck { stream } => {
                if let Some(op) = self.ops.get_mut(&stream) {
                    op.acked();
                }
            }
            Message::ArchiveData { stream, data } => {
                let fed = self.ops.get_mut(&stream).map(|op| op.feed(data));
                match fed {
                    Some(Ok(Some(ack))) => self.conn.send(&ack),
                    Some(Ok(None)) | None => {}
                    Some(Err(message)) => {
                        if let Some(op) = self.ops.remove(&stream) {
                            op.kill();
                        }
                        self.conn.send(&Message::Error { stream, message });
                    }
                }
            }
            Message::ArchiveEnd { stream } => {
                if let Some(op) = self.ops.get_mut(&stream) {
                    op.end_input();
                }
            }
            Message::Update { resources } => {
                if let Err(e) = self.container.update_resources(&resources) {
                    self.conn.send(&Message::Error {
                        stream: 0,
                        message: e.to_string(),
                    });
                }
            }
            other => {
                let message = format!("unexpected message from the monitor: {other:?}");
                self.conn.send(&Message::Error { stream: 0, message });
            }
        }
    }

    /// Sends an answer, or an error in its place if it does not fit a frame (a huge process table).
    fn answer(&mut self, msg: Message) {
        let stream = match &msg {
            Message::TopResult { stream, .. } | Message::StatsResult { stream, .. } => *stream,
            _ => 0,
        };
        match msg.to_frame() {
            Ok(_) => self.conn.send(&msg),
            Err(e) => self.conn.send(&Message::Error {
                stream,
                message: format!("the answer does not fit the protocol: {e}"),
            }),
        }
    }

    /// Starts an archive request in a helper inside the container's mount namespace.
    fn archive(&mut self, stream: u32, request: Request) {
        if stream == 0 || self.ops.contains_key(&stream) || self.procs.contains_key(&stream) {
            let message = format!("archive stream {stream} is already in use");
            return self.conn.send(&Message::Error { stream, message });
        }
        match ArchiveOp::spawn(self.container.pid, stream, request) {
            Ok(op) => {
                self.ops.insert(stream, op);
            }
            Err(message) => self.conn.send(&Message::Error { stream, message }),
        }
    }

    fn on_op_reply(&mut self, stream: u32) {
        let Some(op) = self.ops.get_mut(&stream) else {
            return;
        };
        match op.on_reply() {
            archive_op::Event::Send(msg) => self.conn.send(&msg),
            archive_op::Event::Last(msg) => {
                self.ops.remove(&stream);
                self.conn.send(&msg);
            }
            archive_op::Event::Nothing => {}
        }
    }

    fn exec(&mut self, stream: u32, process: ProcessSpec) {
        let fail = |conn: &mut Conn, code: i32, message: String| {
            conn.send(&Message::Error {
                stream,
                message: message.clone(),
            });
            let status = ExitStatus {
                code,
                oom_killed: false,
                reason: Some(message),
            };
            conn.send(&Message::Exited { stream, status });
        };
        if stream == 0 || self.procs.contains_key(&stream) {
            return fail(
                &mut self.conn,
                125,
                format!("exec stream {stream} is already in use"),
            );
        }
        let (stdio, ends) = match process::stdio(process.terminal) {
            Ok(s) => s,
            Err(e) => return fail(&mut self.conn, 125, format!("creating exec stdio: {e}")),
        };
        match self.container.exec(&self.spec, &process, stdio) {
            Ok(mut child) => {
                let proc = Proc::new(child.pid, ends, child.pty_master.take());
                self.conn.send(&Message::Started {
                    stream,
                    pid: proc.pid.as_raw(),
                });
                self.procs.insert(stream, proc);
            }
            Err(e) => fail(&mut self.conn, e.exit_code_hint(), e.to_string()),
        }
    }

    fn on_output(&mut self, stream: u32, stderr: bool) {
        let Some(p) = self.procs.get_mut(&stream) else {
            return;
        };
        let slot = if stderr { &mut p.stderr } else { &mut p.stdout };
        let Some(fd) = slot.as_ref() else { return };
        let mut buf = vec![0u8; READ_CHUNK];
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) | Err(Errno::EIO) => *slot = None, // EIO: pty master after the last slave closed
            Ok(n) => {
                buf.truncate(n);
                let msg = if stderr {
                    Message::Stderr { stream, data: buf }
                } else {
                    Message::Stdout { stream, data: buf }
                };
                self.conn.send(&msg);
            }
            Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
            Err(_) => *slot = None,
        }
    }

    /// Collects every exited child; exec helpers reparented to us are reaped here too.
    fn reap(&mut self) {
        loop {
            match waitpid(
                Pid::from_raw(-1),
                Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
            ) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    let Some(pid) = status.pid() else { continue };
                    if let Some(op) = self.ops.values_mut().find(|op| op.pid() == pid) {
                        op.exit = Some(exit_code(status));
                    }
                    for (&stream, p) in self.procs.iter_mut() {
                        if p.pid == pid && p.exit.is_none() {
                            p.exit = Some(exit_code(status));
                            p.pidfd = None;
                            self.exited_at.insert(stream, Instant::now());
                        }
                    }
                }
            }
        }
    }

    /// Reports finished processes; returns the main status once the main process is done.
    fn finish_streams(&mut self) -> Option<ExitStatus> {
        let now = Instant::now();
        for (stream, at) in &self.exited_at {
            if now.duration_since(*at) > DRAIN_GRACE {
                if let Some(p) = self.procs.get_mut(stream) {
                    p.stdout = None;
                    p.stderr = None;
                }
            }
        }
        let done: Vec<u32> = self
            .procs
            .iter()
            .filter(|(_, p)| p.done())
            .map(|(s, _)| *s)
            .collect();
        let mut main_status = None;
        for stream in done {
            let Some(p) = self.procs.remove(&stream) else {
                continue;
            };
            self.exited_at.remove(&stream);
            let status = ExitStatus {
                code: p.exit.unwrap_or(-1),
                oom_killed: stream == 0 && self.container.oom_killed(),
                reason: None,
            };
            self.conn.send(&Message::Exited {
                stream,
                status: status.clone(),
            });
            if stream == 0 {
                main_status = Some(status);
            }
        }
        main_status
    }
}

fn write_all(fd: &OwnedFd, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
