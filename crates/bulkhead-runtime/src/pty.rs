//! Pseudo-terminals for `terminal: true` processes. The pty is allocated from the
//! container's own devpts instance, so inside the container the slave is `/dev/pts/N`.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

use crate::error::RuntimeError;

/// Unlocks the pty `master` and opens its slave with `TIOCGPTPEER` (no path lookup).
pub(crate) fn open_slave(master: &OwnedFd) -> Result<OwnedFd, RuntimeError> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int from the pointer, which is valid for the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(RuntimeError::sys("unlocking the pty", Errno::last()));
    }
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new descriptor.
    let fd = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(RuntimeError::sys("opening the pty slave", Errno::last()));
    }
    // SAFETY: the ioctl returned a fresh descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes `slave` the controlling terminal of the calling session leader.
pub(crate) fn make_controlling(slave: &OwnedFd) -> Result<(), RuntimeError> {
    // SAFETY: TIOCSCTTY takes an int argument by value.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(RuntimeError::sys(
            "setting the controlling terminal",
            Errno::last(),
        ));
    }
    Ok(())
}

/// Sets the window size of the terminal behind `master`.
pub fn resize_pty(master: BorrowedFd, rows: u16, cols: u16) -> Result<(), RuntimeError> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer, valid for the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) } != 0 {
        return Err(RuntimeError::sys("resizing the pty", Errno::last()));
    }
    Ok(())
}
