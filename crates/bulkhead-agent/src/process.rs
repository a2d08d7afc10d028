//! One process the agent watches (the container's main process or an exec session): its stdio fds and
//! its exit, via a pidfd so exits wake `poll` without touching the signal mask the container inherits.

use bulkhead_runtime::Stdio;
use nix::unistd::{pipe, Pid};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Our ends of a process' stdio before the process exists.
pub struct Ends {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Creates the stdio the runtime should give a process, and the ends we keep.
pub fn stdio(terminal: bool) -> nix::Result<(Stdio, Ends)> {
    if terminal {
        let ends = Ends {
            stdin: None,
            stdout: None,
            stderr: None,
        };
        return Ok((Stdio::Pty, ends));
    }
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    for fd in [&in_w, &out_r, &err_r] {
        set_cloexec(fd);
    }
    let stdio = Stdio::Pipes {
        stdin: Some(in_r),
        stdout: out_w,
        stderr: err_w,
    };
    let ends = Ends {
        stdin: Some(in_w),
        stdout: Some(out_r),
        stderr: Some(err_r),
    };
    Ok((stdio, ends))
}

fn set_cloexec(fd: &OwnedFd) {
    // SAFETY: fcntl on an fd we own; failure only leaves the fd inheritable, which the runtime closes anyway.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
}

/// A running (or finished but not yet drained) process.
pub struct Proc {
    pub pid: Pid,
    pub pidfd: Option<OwnedFd>,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// Docker-style exit code, once reaped.
    pub exit: Option<i32>,
    /// stdin and stdout are both the pty master.
    pub terminal: bool,
}

impl Proc {
    pub fn new(pid: Pid, ends: Ends, pty_master: Option<OwnedFd>) -> Proc {
        let terminal = pty_master.is_some();
        let (stdin, stdout) = match pty_master {
            Some(master) => (master.try_clone().ok(), Some(master)),
            None => (ends.stdin, ends.stdout),
        };
        Proc {
            pid,
            pidfd: pidfd_open(pid),
            stdin,
            stdout,
            stderr: ends.stderr,
            exit: None,
            terminal,
        }
    }

    /// Finished: reaped and both output streams drained.
    pub fn done(&self) -> bool {
        self.exit.is_some() && self.stdout.is_none() && self.stderr.is_none()
    }
}

fn pidfd_open(pid: Pid) -> Option<OwnedFd> {
    // SAFETY: plain syscall; on success it returns a new fd that we take ownership of.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), libc::PIDFD_NONBLOCK) };
    if fd < 0 {
        None
    } else {
        // SAFETY: the kernel just returned this fd to us.
        Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}
