//! Running a command on a pseudo-terminal of our own, as if typed in an interactive shell: the pty is
//! its controlling terminal, so resizing it signals the command with SIGWINCH.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use nix::pty::{openpty, Winsize};

use crate::output::HANG_LIMIT;

/// A command running with a pty as stdin, stdout and stderr.
pub struct Terminal {
    child: Child,
    master: File,
    chunks: Receiver<String>,
    seen: String,
}

fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl Terminal {
    /// Starts `cmd` on a new `rows`x`cols` terminal.
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Terminal {
        let pty = openpty(Some(&winsize(rows, cols)), None).expect("openpty");
        let slave = File::from(pty.slave);
        cmd.stdin(slave.try_clone().expect("dup pty"))
            .stdout(slave.try_clone().expect("dup pty"))
            .stderr(slave);
        // SAFETY: only async-signal-safe calls between fork and exec: a new session whose controlling
        // terminal is the pty (stdin by now).
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawning on a pty");
        // Only the child may keep the slave open, or the master never sees the end of output.
        drop(cmd);
        let master = File::from(pty.master);
        let (tx, chunks) = channel();
        let mut reading = master.try_clone().expect("dup pty master");
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            // EIO once the last slave closes.
            while let Ok(n) = std::io::Read::read(&mut reading, &mut buf) {
                let chunk = String::from_utf8_lossy(&buf[..n]).into_owned();
                if n == 0 || tx.send(chunk).is_err() {
                    break;
                }
            }
        });
        Terminal {
            child,
            master,
            chunks,
            seen: String::new(),
        }
    }

    /// Reads until the output shows `text` (hang-guarded); returns everything shown so far.
    pub fn wait_for(&mut self, text: &str) -> &str {
        let deadline = Instant::now() + HANG_LIMIT;
        while !self.seen.contains(text) {
            assert!(
                Instant::now() < deadline,
                "{text:?} never shown: {:?}",
                self.seen
            );
            if let Ok(chunk) = self.chunks.recv_timeout(Duration::from_millis(100)) {
                self.seen.push_str(&chunk);
            }
        }
        &self.seen
    }

    /// Resizes the terminal, as a terminal emulator does when its window changes.
    pub fn resize(&self, rows: u16, cols: u16) {
        let size = winsize(rows, cols);
        // SAFETY: TIOCSWINSZ reads a winsize from the pointer we pass; the master fd is open.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(rc, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// Waits for the command to end (hang-guarded): its exit code and all it printed.
    pub fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + HANG_LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("command on a pty hung: {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // What the command printed last may still be on its way through the pty.
        while let Ok(chunk) = self.chunks.recv_timeout(Duration::from_millis(500)) {
            self.seen.push_str(&chunk);
        }
        (status.code(), self.seen)
    }
}
