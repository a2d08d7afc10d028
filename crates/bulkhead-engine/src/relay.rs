//! The terminal relay, shared by the front ends (the CLI's run/attach/exec, the OCI runtime's relay process):
//! moves a session's frames to and from this process's stdio until the process
//! exits, with the local terminal in raw mode for `-t`, its size sent on start and on SIGWINCH, and
//! docker's signal proxy (signals this process gets are passed on to the container's process).

use crate::{EngineError, Message, Session};
use bulkhead_proto::{ExitStatus, ProtoError};
use bulkhead_runtime::ProcessSpec;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

/// Signals `run`/`start -a`/`exec` pass on to the container (docker's sig-proxy).
const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Relays an attached main process (stream 0) until it exits.
pub fn attached(session: Session, stdin: bool, tty: bool) -> Result<ExitStatus, EngineError> {
    Relay { session }.run(0, stdin, tty)
}

/// Runs `process` as an exec session and relays it until it exits.
pub fn exec(
    mut session: Session,
    process: &ProcessSpec,
    stdin: bool,
) -> Result<ExitStatus, EngineError> {
    let stream = match session.start_exec(process)? {
        Ok(stream) => stream,
        Err(status) => return Ok(status),
    };
    started_exec(session, stream, stdin, process.terminal)
}

/// Relays an exec session that has started (`stream` from [`Session::start_exec`]) until its process
/// exits.
pub fn started_exec(
    mut session: Session,
    stream: u32,
    stdin: bool,
    tty: bool,
) -> Result<ExitStatus, EngineError> {
    if !stdin {
        session.send(&Message::StdinClose { stream })?;
    }
    Relay { session }.run(stream, stdin, tty)
}

/// Starts `process` as an exec session and leaves it running (`exec -d`); its output is dropped.
pub fn exec_detached(mut session: Session, process: &ProcessSpec) -> Result<(), EngineError> {
    if let Ok(stream) = session.start_exec(process)? {
        session.send(&Message::StdinClose { stream })?;
    }
    Ok(())
}

struct Relay {
    session: Session,
}

impl Relay {
    fn run(&mut self, stream: u32, stdin: bool, tty: bool) -> Result<ExitStatus, EngineError> {
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
        mask.thread_block().map_err(sys("blocking signals"))?;
        let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).map_err(sys("signalfd"))?;
        if tty {
            self.send_size(stream)?;
        }
        let stdin_fd = std::io::stdin();
        let mut stdin_open = stdin;
        let mut last_error = None;
        loop {
            let mut fds = vec![
                PollFd::new(self.session.as_fd(), PollFlags::POLLIN),
                PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            ];
            if stdin_open {
                fds.push(PollFd::new(stdin_fd.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(sys("poll")(e)),
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            if ready[0] {
                match self.session.recv() {
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
                            id: self.session.id().to_string(),
                            message: last_error.unwrap_or_else(|| "the monitor went away".into()),
                        })
                    }
                    Err(source) => {
                        return Err(EngineError::Monitor {
                            id: self.session.id().to_string(),
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
                        self.session.send(&Message::Signal { stream, signal })?;
                    }
                }
            }
            if stdin_open && ready[2] {
                let mut buf = [0u8; 32 * 1024];
                match nix::unistd::read(stdin_fd.as_raw_fd(), &mut buf) {
                    Ok(0) | Err(_) => {
                        stdin_open = false;
                        self.session.send(&Message::StdinClose { stream })?;
                    }
                    Ok(n) => self.session.send(&Message::Stdin {
                        stream,
                        data: buf[..n].to_vec(),
                    })?,
                }
            }
        }
    }

    fn send_size(&mut self, stream: u32) -> Result<(), EngineError> {
        if let Some((rows, cols)) = terminal_size(std::io::stdout().as_fd()) {
            self.session.send(&Message::Resize { stream, rows, cols })?;
        }
        Ok(())
    }
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> EngineError {
    move |source| EngineError::Sys {
        what: what.to_string(),
        source,
    }
}

fn write_out(w: &mut impl Write, data: &[u8]) {
    let _ = w.write_all(data);
    let _ = w.flush();
}

pub fn terminal_size(fd: BorrowedFd) -> Option<(u16, u16)> {
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
