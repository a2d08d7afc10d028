//! Bounded logs for what QEMU writes: the guest's serial console and QEMU's stderr reach the host through
//! pipes, and a thread of the monitor appends them to files of at most [`LOG_CAP`] bytes each, rotating the
//! full one to `<name>.1`. A guest that floods its console thus keeps at most twice the cap on the host,
//! and QEMU itself writes no file (an `RLIMIT_FSIZE` for such logs would also cap its writable disk).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// Bytes kept per log file before it is rotated.
pub const LOG_CAP: u64 = 256 << 10;
const CHUNK: usize = 16 << 10;

/// A log file that rotates to `<name>.1` when it would grow past [`LOG_CAP`].
struct CappedLog {
    path: PathBuf,
    file: File,
    len: u64,
}

impl CappedLog {
    fn create(path: &Path) -> io::Result<CappedLog> {
        Ok(CappedLog {
            path: path.to_path_buf(),
            file: open_new(path)?,
            len: 0,
        })
    }

    fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.len >= LOG_CAP {
                let mut old = self.path.clone().into_os_string();
                old.push(".1");
                fs::rename(&self.path, old)?;
                self.file = open_new(&self.path)?;
                self.len = 0;
            }
            let n = data.len().min((LOG_CAP - self.len) as usize);
            self.file.write_all(&data[..n])?;
            self.len += n as u64;
            data = &data[n..];
        }
        Ok(())
    }
}

fn open_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(path)
}

/// Copies each pipe to its capped file until every pipe reaches end of file (QEMU exited).
#[derive(Debug)]
pub struct LogPump(JoinHandle<()>);

impl LogPump {
    /// Creates the files (truncating old ones) and starts the thread.
    pub fn start(sources: Vec<(OwnedFd, PathBuf)>) -> io::Result<LogPump> {
        let mut pipes = Vec::new();
        for (fd, path) in sources {
            pipes.push((File::from(fd), CappedLog::create(&path)?));
        }
        let thread = std::thread::Builder::new()
            .name("qemu-logs".into())
            .stack_size(64 << 10)
            .spawn(move || pump(pipes))?;
        Ok(LogPump(thread))
    }

    /// Waits until everything QEMU wrote is in the files.
    pub fn finish(self) {
        // The thread does not panic on I/O errors; a panic would only lose log lines.
        let _ = self.0.join();
    }
}

fn pump(mut pipes: Vec<(File, CappedLog)>) {
    let mut buf = vec![0u8; CHUNK];
    while !pipes.is_empty() {
        let mut fds: Vec<nix::poll::PollFd> = pipes
            .iter()
            .map(|(p, _)| nix::poll::PollFd::new(p.as_fd(), nix::poll::PollFlags::POLLIN))
            .collect();
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE).is_err() {
            continue;
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut i = 0;
        pipes.retain_mut(|(pipe, log)| {
            let keep = !ready[i]
                || match pipe.read(&mut buf) {
                    Ok(0) => false,
                    // A full disk loses log bytes, never the VM: keep draining the pipe.
                    Ok(n) => {
                        let _ = log.write(&buf[..n]);
                        true
                    }
                    Err(e) => e.kind() == io::ErrorKind::Interrupted,
                };
            i += 1;
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_keeps_two_capped_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let (r, w) = nix::unistd::pipe().unwrap();
        let pump = LogPump::start(vec![(r, path.clone())]).unwrap();
        let mut w = File::from(w);
        let chunk = vec![b'x'; 100_000];
        for _ in 0..(3 * LOG_CAP as usize / chunk.len() + 1) {
            w.write_all(&chunk).unwrap();
        }
        w.write_all(b"END").unwrap();
        drop(w);
        pump.finish();
        let live = fs::read(&path).unwrap();
        let rotated = fs::metadata(dir.path().join("console.log.1"))
            .unwrap()
            .len();
        assert!(live.len() as u64 <= LOG_CAP && rotated == LOG_CAP);
        assert!(live.ends_with(b"END"));
    }
}
