//! Waking a waiter (`wait`, `stop`, `rm -f`) as soon as a container's record changes, rather than after a
//! blind sleep: the monitor replaces `state.json` by a rename into the container's directory, and a
//! removal renames the directory away, both of which inotify reports. Without inotify (or on a spurious
//! wake-up) the caller's loop simply reads the record again after at most the given time.

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

pub struct StateWatch {
    inotify: Option<Inotify>,
}

impl StateWatch {
    /// Watches the container directory `dir`; a failure to watch leaves plain timed waits.
    pub fn new(dir: &Path) -> StateWatch {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .ok()
            .filter(|i| {
                i.add_watch(
                    dir,
                    AddWatchFlags::IN_MOVED_TO
                        | AddWatchFlags::IN_MOVE_SELF
                        | AddWatchFlags::IN_DELETE_SELF,
                )
                .is_ok()
            });
        StateWatch { inotify }
    }

    /// Returns when the directory changed or after `max`, whichever is first.
    pub fn wait(&self, max: Duration) {
        let Some(inotify) = &self.inotify else {
            std::thread::sleep(max);
            return;
        };
        let timeout = PollTimeout::try_from(max).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
        if let Ok(n) = poll(&mut fds, timeout) {
            if n > 0 {
                // Drained: the caller reads the record itself; the events only woke it.
                while inotify.read_events().is_ok_and(|e| !e.is_empty()) {}
            }
        }
    }
}
