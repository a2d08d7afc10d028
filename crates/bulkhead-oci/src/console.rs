//! `--console-socket`: the caller (conmon, containerd's shim) listens on a unix socket for the master of
//! the container's terminal. The container's own terminal is inside the agent (in a VM, inside the
//! guest), so the runtime gives the caller the master of a host pty whose slave the relay process takes
//! as its controlling terminal and stdio; the relay moves bytes, resizes (SIGWINCH) and raw mode across.

use anyhow::{Context, Result};
use nix::pty::openpty;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Opens a pty, sends its master to `socket` and returns the slave.
pub fn hand_over(socket: &Path) -> Result<OwnedFd> {
    let pty = openpty(None, None).context("opening a pty")?;
    let name = nix::unistd::ttyname(&pty.slave).context("naming the pty")?;
    let stream = UnixStream::connect(socket)
        .with_context(|| format!("connecting to the console socket {}", socket.display()))?;
    let fds = [pty.master.as_raw_fd()];
    let name = name.to_string_lossy().into_owned();
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(name.as_bytes())],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .with_context(|| format!("sending the pty to {}", socket.display()))?;
    Ok(pty.slave)
}

/// Makes `slave` this process's controlling terminal (the process must lead a new session) and its
/// stdin, stdout and stderr.
pub fn take(slave: OwnedFd) -> Result<()> {
    // SAFETY: TIOCSCTTY on a terminal fd we own; dup2 onto the standard fds.
    unsafe {
        if libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) < 0 {
            return Err(std::io::Error::last_os_error()).context("TIOCSCTTY");
        }
        for fd in 0..3 {
            if libc::dup2(slave.as_raw_fd(), fd) < 0 {
                return Err(std::io::Error::last_os_error()).context("dup2");
            }
        }
    }
    Ok(())
}
