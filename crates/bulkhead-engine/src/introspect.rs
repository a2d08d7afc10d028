//! Looking into a running container and copying files in and out of it (docker top, stats, cp), the
//! same in both isolation modes: the request goes through the container's monitor to its agent (forked
//! on the host, or the VM guest's PID 1), which answers from the container's own /proc, cgroup and
//! mount namespace. The monitor routes the answers back to this connection only.
//!
//! In VM mode the answers come from a guest assumed hostile: every frame is bounded by the protocol,
//! every wait has a deadline, anything out of place is an error naming what came, and text that ends up
//! on terminals (process rows, names) has its control characters escaped. A tar from a guest is passed
//! to the caller as it came: whoever unpacks it must treat it as hostile (the CLI does).

use crate::containers::Container;
use crate::session::Session;
use crate::state::Status;
use crate::{Engine, EngineError};
use bulkhead_proto::introspect::{ContainerStats, PathStat, ProcessTable, ARCHIVE_CHUNK};
use bulkhead_proto::{Message, ProtoError};
use chrono::Utc;
use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

/// How long an answer to top, stats or a path's stat may take (a guest under binary translation is
/// slow, but not this slow).
const ANSWER_WAIT: Duration = Duration::from_secs(30);
/// How long an archive transfer may go without a frame.
const ARCHIVE_SILENCE: Duration = Duration::from_secs(60);

impl Engine {
    /// docker top: the container's processes, in `ps -ef` columns (pids as the agent sees them: the
    /// host's in process mode, the guest's in a VM).
    pub fn top(&self, key: &str) -> Result<ProcessTable, EngineError> {
        let mut q = Query::open(self.find(key)?, "top", "")?;
        q.send(&Message::Top { stream: 0 })?;
        match q.next(ANSWER_WAIT)? {
            Message::TopResult { table, .. } => Ok(ProcessTable {
                titles: table.titles.iter().map(|t| escaped(t)).collect(),
                processes: table
                    .processes
                    .iter()
                    .map(|row| row.iter().map(|cell| escaped(cell)).collect())
                    .collect(),
            }),
            other => Err(q.unexpected(&other)),
        }
    }

    /// One sample of docker stats; `read` is the host's time of the answer.
    pub fn stats(&self, key: &str) -> Result<ContainerStats, EngineError> {
        let mut q = Query::open(self.find(key)?, "stats", "")?;
        q.send(&Message::Stats { stream: 0 })?;
        match q.next(ANSWER_WAIT)? {
            Message::StatsResult { mut stats, .. } => {
                stats.read = Utc::now();
                for n in &mut stats.networks {
                    n.name = escaped(&n.name);
                }
                Ok(stats)
            }
            other => Err(q.unexpected(&other)),
        }
    }

    /// What `path` is in the container (a final symlink is described, not followed).
    pub fn archive_stat(&self, key: &str, path: &str) -> Result<PathStat, EngineError> {
        let mut q = Query::open(self.find(key)?, "stat", path)?;
        q.send(&Message::ArchiveStat {
            stream: 0,
            path: path.to_string(),
        })?;
        q.path_stat(ANSWER_WAIT)
    }

    /// Writes a tar of `path` (its base name as the top member, as docker) to `out`.
    pub fn archive_get(
        &self,
        key: &str,
        path: &str,
        out: &mut dyn Write,
    ) -> Result<PathStat, EngineError> {
        let mut q = Query::open(self.find(key)?, "copy from", path)?;
        q.send(&Message::ArchiveGet {
            stream: 0,
            path: path.to_string(),
        })?;
        let stat = q.path_stat(ARCHIVE_SILENCE)?;
        loop {
            match q.next(ARCHIVE_SILENCE)? {
                Message::ArchiveData { stream, data } => {
                    out.write_all(&data)
                        .map_err(EngineError::io("the archive's destination"))?;
                    q.send(&Message::ArchiveAck { stream })?;
                }
                Message::ArchiveEnd { .. } => break,
                other => return Err(q.unexpected(&other)),
            }
        }
        out.flush()
            .map_err(EngineError::io("the archive's destination"))?;
        Ok(stat)
    }

    /// Extracts `tar` into the directory `path` inside the container.
    pub fn archive_put(
        &self,
        key: &str,
        path: &str,
        tar: &mut dyn Read,
    ) -> Result<(), EngineError> {
        let mut q = Query::open(self.find(key)?, "copy to", path)?;
        q.send(&Message::ArchivePut {
            stream: 0,
            path: path.to_string(),
        })?;
        q.path_stat(ARCHIVE_SILENCE)?;
        let stream = q.stream;
        let mut chunk = vec![0u8; ARCHIVE_CHUNK];
        loop {
            let n = fill(tar, &mut chunk).map_err(EngineError::io("the archive to copy"))?;
            if n == 0 {
                break;
            }
            q.send(&Message::ArchiveData {
                stream,
                data: chunk[..n].to_vec(),
            })?;
            match q.next(ARCHIVE_SILENCE)? {
                Message::ArchiveAck { .. } => {}
                other => return Err(q.unexpected(&other)),
            }
        }
        q.send(&Message::ArchiveEnd { stream })?;
        match q.next(ARCHIVE_SILENCE)? {
            Message::ArchiveEnd { .. } => Ok(()),
            other => Err(q.unexpected(&other)),
        }
    }
}

/// One request on its own connection to the monitor. Dropping it ends the connection, and with it
/// the request (the monitor cancels it in the agent).
struct Query {
    session: Session,
    id: String,
    what: &'static str,
    path: String,
    /// The stream the monitor gave the request (learnt from its first answer).
    stream: u32,
}

impl Query {
    fn open(c: Container, what: &'static str, path: &str) -> Result<Query, EngineError> {
        if c.state.status != Status::Running {
            return Err(EngineError::WrongState {
                id: c.config.id.clone(),
                status: c.state.status.to_string(),
                what: format!("{what} needs a running container"),
            });
        }
        Ok(Query {
            session: Session::connect(&c)?,
            id: c.config.id,
            what,
            path: path.to_string(),
            stream: 0,
        })
    }

    fn send(&mut self, msg: &Message) -> Result<(), EngineError> {
        self.session.send(msg)
    }

    /// The next answer; `NoSuchPath` and `Error` become errors.
    fn next(&mut self, wait: Duration) -> Result<Message, EngineError> {
        let msg = self.session.recv_within(wait).map_err(|e| match e {
            ProtoError::TimedOut => self.failed(format!(
                "no answer from the container's agent within {wait:?}"
            )),
            source => EngineError::Monitor {
                id: self.id.clone(),
                source,
            },
        })?;
        match msg {
            Message::Error { message, .. } => {
                Err(self.failed(bulkhead_proto::bounded_peer_message(&message)))
            }
            Message::NoSuchPath { .. } => Err(EngineError::NoSuchPath {
                id: self.id.clone(),
                path: self.path.clone(),
            }),
            msg => Ok(msg),
        }
    }

    /// The `PathStat` that opens every archive answer.
    fn path_stat(&mut self, wait: Duration) -> Result<PathStat, EngineError> {
        match self.next(wait)? {
            Message::PathStat { stream, stat } => {
                self.stream = stream;
                Ok(PathStat {
                    name: escaped(&stat.name),
                    link_target: escaped(&stat.link_target),
                    ..stat
                })
            }
            other => Err(self.unexpected(&other)),
        }
    }

    fn failed(&self, message: String) -> EngineError {
        EngineError::Introspection {
            id: self.id.clone(),
            what: self.what,
            message,
        }
    }

    fn unexpected(&self, msg: &Message) -> EngineError {
        let kind = msg
            .to_frame()
            .map(|f| format!("{:?}", f.kind))
            .unwrap_or_else(|_| "oversized".into());
        self.failed(format!("the agent answered out of turn (a {kind} frame)"))
    }
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Text from the agent with control characters escaped: it ends up on terminals.
fn escaped(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            esc
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escaped("sleep 1"), "sleep 1");
        assert_eq!(escaped("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
    }

    /// A query whose monitor (and agent, or guest) the test plays on the other end.
    fn query() -> (Query, std::os::unix::net::UnixStream) {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let q = Query {
            session: Session::over(ours, "c1"),
            id: "c1".into(),
            what: "copy from",
            path: "/x".into(),
            stream: 0,
        };
        (q, theirs)
    }

    #[test]
    fn out_of_turn_garbage_and_silence_are_named_errors() {
        let wait = Duration::from_millis(300);
        let (mut q, mut peer) = query();
        Message::ArchiveData {
            stream: 1,
            data: vec![1],
        }
        .send(&mut peer)
        .unwrap();
        let err = q.path_stat(wait).unwrap_err().to_string();
        assert!(
            err.contains("copy from failed: the agent answered out of turn (a ArchiveData frame)"),
            "{err}"
        );

        peer.write_all(&[0, 0, 0, 6, 250, 0, 0, 0, 1, 0]).unwrap();
        let err = q.next(wait).unwrap_err().to_string();
        assert!(err.contains("unknown frame kind 250"), "{err}");

        let (mut q, mut peer) = query();
        Message::NoSuchPath { stream: 1 }.send(&mut peer).unwrap();
        assert!(matches!(q.next(wait), Err(EngineError::NoSuchPath { path, .. }) if path == "/x"));
        let err = q.next(wait).unwrap_err().to_string();
        assert!(
            err.contains("no answer from the container's agent within 300ms"),
            "{err}"
        );
    }

    #[test]
    fn a_guests_names_reach_the_caller_escaped() {
        let (mut q, mut peer) = query();
        Message::PathStat {
            stream: 4,
            stat: PathStat {
                name: "x\u{1b}]0;pwned\u{7}".into(),
                size: 1,
                mode: 0o100644,
                mtime: Utc::now(),
                link_target: String::new(),
            },
        }
        .send(&mut peer)
        .unwrap();
        let stat = q.path_stat(Duration::from_secs(1)).unwrap();
        assert_eq!(stat.name, "x\\u{1b}]0;pwned\\u{7}");
        assert_eq!(q.stream, 4);
    }

    #[test]
    fn fill_reads_across_short_reads() {
        let mut r = std::io::Read::chain(&b"ab"[..], &b"cde"[..]);
        let mut buf = [0u8; 4];
        assert_eq!(fill(&mut r, &mut buf).unwrap(), 4);
        assert_eq!(&buf, b"abcd");
    }
}
