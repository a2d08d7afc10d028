//! The CLI side of a monitor socket: connect, attach to the main process or an exec session, and relay
//! the terminal (raw mode, resize, signal forwarding) until the process exits.

use crate::containers::Container;
use crate::EngineError;
use bulkhead_proto::{handshake, ExitStatus, Message, ProtoError};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;

/// Signals `run`/`start -a`/`exec` pass on to the container (docker's sig-proxy).
const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

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

    pub fn send(&mut self, msg: &Message) -> Result<(), EngineError> {
        msg.send(&mut self.stream)
            .map_err(|source| EngineError::Monitor {
                id: self.id.clone(),
                source,
            })
    }

    fn recv(&mut self) -> Result<Message, ProtoError> {
        Message::recv(&mut self.stream)
    }

    /// Attaches to the main process and relays until it exits; returns its status.
    pub fn attach(mut self, stdin: bool, tty: bool) -> Result<ExitStatus, EngineError> {
        self.send(&Message::Attach { stdin })?;
        self.relay(0, stdin, tty)
    }

    /// Runs an exec session and relays until it exits.
    pub fn exec(
        mut self,
        process: &bulkhead_runtime::ProcessSpec,
        stdin: bool,
    ) -> Result<ExitStatus, EngineError> {
        let stream = match self.start_exec(process)? {
            Ok(stream) => stream,
            Err(status) => return Ok(status),
        };
        if !stdin {
            self.send(&Message::StdinClose { stream })?;
        }
        self.relay(stream, stdin, process.terminal)
    }

    /// Starts an exec session and leaves it running in the background (`exec -d`); its output is dropped.
    pub fn exec_detached(
        mut self,
        process: &bulkhead_runtime::ProcessSpec,
    ) -> Result<(), EngineError> {
        if let Ok(stream) = self.start_exec(process)? {
            self.send(&Message::StdinClose { stream })?;
        }
        Ok(())
    }

    /// Asks for an exec session; `Ok(stream)` once it runs, or `Err(status)` if it ended at once.
    fn start_exec(
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

    fn relay(&mut self, stream: u32, stdin: bool, tty: bool) -> Result<ExitStatus, EngineError> {
        let _raw = if tty { RawMode::enter() } else { None };
        let mut mask = SigSet::empty();
        let forwarded: &[Signal] = if tty {
            &[Signal::SIGTERM, Signal::SIGHUP]
        } else {
            &FORWARDED
        };
        for s in forwarded {
            mask.add(*s);
        }
        mask.add(Signal::SIGWINCH);
        mask.thread_block()
            .map_err(EngineError::sys("blocking signals"))?;
        let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)
            .map_err(EngineError::sys("signalfd"))?;
        if tty {
            self.send_size(stream)?;
        }
        let stdin_fd = std::io::stdin();
        let mut stdin_open = stdin;
        let mut last_error = None;
        loop {
            let mut fds = vec![
                PollFd::new(self.stream.as_fd(), PollFlags::POLLIN),
                PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            ];
            if stdin_open {
                fds.push(PollFd::new(stdin_fd.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(EngineError::sys("poll")(e)),
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            if ready[0] {
                match self.recv() {
                    Ok(Message::Stdout { data, .. }) => write_out(&mut std::io::stdout(), &data),
                    Ok(Message::Stderr { data, .. }) => write_out(&mut std::io::stderr(), &data),
                    Ok(Message::Exited { mut status, .. }) => {
                        status.reason = status.reason.or(last_error);
                        return Ok(status);
                    }
                    Ok(Message::Error { message, .. }) => last_error = Some(message),
                    Ok(_) => {}
                    Err(ProtoError::Closed) => {
                        return Err(EngineError::StartFailed {
                            id: self.id.clone(),
                            message: last_error.unwrap_or_else(|| "the monitor went away".into()),
                        })
                    }
                    Err(source) => {
                        return Err(EngineError::Monitor {
                            id: self.id.clone(),
                            source,
                        })
                    }
                }
            }
            if ready[1] {
                if let Ok(Some(info)) = sfd.read_signal() {
                    let signal = info.ssi_signo as i32;
                    if signal == Signal::SIGWINCH as i32 {
                        if tty {
                            self.send_size(stream)?;
                        }
                    } else {
                        self.send(&Message::Signal { stream, signal })?;
                    }
                }
            }
            if stdin_open && ready[2] {
                let mut buf = [0u8; 32 * 1024];
                match nix::unistd::read(stdin_fd.as_raw_fd(), &mut buf) {
                    Ok(0) | Err(_) => {
                        stdin_open = false;
                        self.send(&Message::StdinClose { stream })?;
                    }
                    Ok(n) => self.send(&Message::Stdin {
                        stream,
                        data: buf[..n].to_vec(),
                    })?,
                }
            }
        }
    }

    fn send_size(&mut self, stream: u32) -> Result<(), EngineError> {
        if let Some((rows, cols)) = terminal_size(std::io::stdout().as_fd()) {
            self.send(&Message::Resize { stream, rows, cols })?;
        }
        Ok(())
    }
}

fn write_out(w: &mut impl Write, data: &[u8]) {
    let _ = w.write_all(data);
    let _ = w.flush();
}

fn terminal_size(fd: BorrowedFd) -> Option<(u16, u16)> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// The local terminal in raw mode for `-t`, restored on drop.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}
