//! The monitor's listening socket: only root and the monitor's own user may drive a container.
//!
//! The socket is mode 0600 in a 0700 directory, so the kernel already refuses other users' `connect`;
//! the peer-credential check on every accepted connection also holds if a mode is loosened by hand or
//! a descriptor leaks.

use crate::EngineError;
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// Binds the container's socket `sock` in its run directory `run`, both owner-only.
pub(super) fn listen(run: &Path, sock: &Path) -> Result<UnixListener, EngineError> {
    if let Some(parent) = run.parent() {
        bulkhead_fs::private_dir(parent).map_err(EngineError::io(parent))?;
    }
    bulkhead_fs::private_dir(run).map_err(EngineError::io(run))?;
    let _ = std::fs::remove_file(sock);
    let listener = UnixListener::bind(sock).map_err(EngineError::io(sock))?;
    std::fs::set_permissions(sock, std::fs::Permissions::from_mode(0o600))
        .map_err(EngineError::io(sock))?;
    Ok(listener)
}

/// `Ok` if the peer of `stream` is root or runs as the monitor's user; otherwise the message the
/// client is sent before it is dropped.
pub(super) fn check_peer(stream: &UnixStream) -> Result<(), String> {
    let own = nix::unistd::geteuid().as_raw();
    let creds = getsockopt(stream, PeerCredentials)
        .map_err(|e| format!("refused a client whose credentials cannot be read: {e}"))?;
    if creds.uid() == 0 || creds.uid() == own {
        return Ok(());
    }
    Err(format!(
        "permission denied: uid {} (pid {}) may not use this container's monitor (only root or uid {own})",
        creds.uid(),
        creds.pid()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_user_is_accepted() {
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(check_peer(&a), Ok(()));
    }
}
