//! The agent's virtio-serial port: found by the name the host gave it, opened once the host is there.

use crate::error::{io_err, GuestError};
use bulkhead_proto::vm::AGENT_PORT;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PORT_POLL: Duration = Duration::from_millis(5);

/// Finds the virtio-serial port named [`AGENT_PORT`], opens it, and waits until the host side is
/// connected (before that, reads would return end of file at once).
pub(crate) fn open_agent_port(timeout: Duration) -> Result<File, GuestError> {
    let deadline = Instant::now() + timeout;
    let device = loop {
        if let Some(device) = find_port(Path::new("/sys/class/virtio-ports"))? {
            break device;
        }
        if Instant::now() >= deadline {
            return Err(GuestError::NoAgentPort(timeout));
        }
        std::thread::sleep(PORT_POLL);
    };
    let port = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&device)
        .map_err(io_err("opening", &device))?;
    // virtio_console reports POLLHUP while no host is connected to the port.
    loop {
        let mut fds = [PollFd::new(port.as_fd(), PollFlags::POLLOUT)];
        poll(&mut fds, PollTimeout::ZERO).map_err(GuestError::Poll)?;
        let hup = fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP));
        if !hup {
            return Ok(port);
        }
        if Instant::now() >= deadline {
            return Err(GuestError::HostAbsent(timeout));
        }
        std::thread::sleep(PORT_POLL);
    }
}

/// `/dev/<vportNpM>` of the port whose sysfs `name` is [`AGENT_PORT`].
fn find_port(class_dir: &Path) -> Result<Option<PathBuf>, GuestError> {
    let entries = match fs::read_dir(class_dir) {
        Ok(entries) => entries,
        // The class appears with the first port; until then there is nothing to find.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("listing", class_dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("listing", class_dir))?;
        let name = fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        if name.trim_end() == AGENT_PORT {
            return Ok(Some(Path::new("/dev").join(entry.file_name())));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_port_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for (port, name) in [("vport0p0", "other\n"), ("vport0p1", "bulkhead.agent\n")] {
            fs::create_dir(dir.path().join(port)).unwrap();
            fs::write(dir.path().join(port).join("name"), name).unwrap();
        }
        assert_eq!(
            find_port(dir.path()).unwrap(),
            Some(PathBuf::from("/dev/vport0p1"))
        );
        assert_eq!(find_port(&dir.path().join("absent")).unwrap(), None);
    }
}
