//! The monitor's CLI clients: who is attached to the main process, who owns which exec session or
//! introspection request (top, stats, archives), and which of their messages may reach the agent.

use bulkhead_proto::{ExitStatus, Message, VERSION};
use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// A client that stops reading for this long is dropped rather than stalling the container's output.
const CLIENT_IO_TIMEOUT: Duration = Duration::from_secs(5);

struct Client {
    stream: UnixStream,
    greeted: bool,
    attached: bool,
    stdin: bool,
    /// The agent stream this client owns, and what it is for.
    session: Option<(u32, Role)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Exec,
    /// top, stats, or an archive request.
    Query,
}

#[derive(Default)]
pub struct Clients {
    next_key: u64,
    last_stream: u32,
    map: BTreeMap<u64, Client>,
}

impl Clients {
    pub fn add(&mut self, stream: UnixStream) {
        let _ = stream.set_write_timeout(Some(CLIENT_IO_TIMEOUT));
        let _ = stream.set_read_timeout(Some(CLIENT_IO_TIMEOUT));
        self.next_key += 1;
        self.map.insert(
            self.next_key,
            Client {
                stream,
                greeted: false,
                attached: false,
                stdin: false,
                session: None,
            },
        );
    }

    pub fn fds(&self) -> Vec<(u64, BorrowedFd<'_>)> {
        self.map
            .iter()
            .map(|(k, c)| (*k, c.stream.as_fd()))
            .collect()
    }

    pub fn any_attached(&self) -> bool {
        self.map.values().any(|c| c.attached)
    }

    /// Reads one message from client `key`; returns what must be forwarded to the agent.
    pub fn read(&mut self, key: u64) -> Vec<Message> {
        let Some(client) = self.map.get_mut(&key) else {
            return Vec::new();
        };
        let msg = match Message::recv(&mut client.stream) {
            Ok(m) => m,
            Err(_) => return self.drop_client(key),
        };
        if !client.greeted {
            return match msg {
                Message::Hello { version } if version == VERSION => {
                    client.greeted = true;
                    if (Message::Hello { version: VERSION })
                        .send(&mut client.stream)
                        .is_err()
                    {
                        return self.drop_client(key);
                    }
                    Vec::new()
                }
                _ => self.drop_client(key),
            };
        }
        let forward = match msg {
            Message::Attach { stdin } => {
                client.attached = true;
                client.stdin = stdin;
                None
            }
            Message::Stdin { stream: 0, .. } | Message::StdinClose { stream: 0 }
                if client.stdin =>
            {
                Some(msg)
            }
            Message::Resize { stream: 0, .. } if client.attached => Some(msg),
            Message::Signal { stream: 0, .. } | Message::Update { .. } => Some(msg),
            Message::Exec { process, .. } if client.session.is_none() => {
                self.last_stream += 1;
                client.session = Some((self.last_stream, Role::Exec));
                Some(Message::Exec {
                    stream: self.last_stream,
                    process,
                })
            }
            Message::Top { .. }
            | Message::Stats { .. }
            | Message::ArchiveStat { .. }
            | Message::ArchiveGet { .. }
            | Message::ArchivePut { .. }
                if client.session.is_none() =>
            {
                self.last_stream += 1;
                client.session = Some((self.last_stream, Role::Query));
                Some(on_stream(msg, self.last_stream))
            }
            Message::Stdin { stream, .. }
            | Message::StdinClose { stream }
            | Message::Resize { stream, .. }
            | Message::Signal { stream, .. }
                if stream != 0 && client.session == Some((stream, Role::Exec)) =>
            {
                Some(msg)
            }
            Message::ArchiveData { stream, .. }
            | Message::ArchiveAck { stream }
            | Message::ArchiveEnd { stream }
                if client.session == Some((stream, Role::Query)) =>
            {
                Some(msg)
            }
            _ => return self.drop_client(key),
        };
        forward.into_iter().collect()
    }

    /// Drops a client; if it fed the main process' stdin, that stdin ends, as in docker; a request of
    /// its that may still run in the agent is cancelled (a no-op for one that has ended).
    fn drop_client(&mut self, key: u64) -> Vec<Message> {
        match self.map.remove(&key) {
            Some(c) if c.stdin => vec![Message::StdinClose { stream: 0 }],
            Some(Client {
                session: Some((stream, Role::Query)),
                ..
            }) => vec![Message::Signal {
                stream,
                signal: libc::SIGKILL,
            }],
            _ => Vec::new(),
        }
    }

    /// Sends main-process output to every attached client.
    pub fn broadcast(&mut self, msg: &Message) {
        let failed: Vec<u64> = self
            .map
            .iter_mut()
            .filter(|(_, c)| c.attached)
            .filter_map(|(k, c)| msg.send(&mut c.stream).err().map(|_| *k))
            .collect();
        for k in failed {
            self.map.remove(&k);
        }
    }

    /// Sends an agent message of an exec session or request to the client that owns it.
    pub fn send_to_owner(&mut self, stream: u32, msg: &Message) {
        let owner = self
            .map
            .iter_mut()
            .find(|(_, c)| c.session.is_some_and(|(s, _)| s == stream));
        if let Some((k, c)) = owner {
            let key = *k;
            if msg.send(&mut c.stream).is_err() {
                self.map.remove(&key);
            }
        }
    }

    /// The container is gone: attached clients get its exit, exec clients learn their session ended.
    pub fn finish(&mut self, status: &ExitStatus) {
        for c in self.map.values_mut() {
            if c.attached {
                let _ = Message::Exited {
                    stream: 0,
                    status: status.clone(),
                }
                .send(&mut c.stream);
            }
            match c.session {
                Some((stream, Role::Exec)) => {
                    let ended = ExitStatus {
                        code: 137,
                        oom_killed: false,
                        reason: Some("the container exited".into()),
                    };
                    let _ = Message::Exited {
                        stream,
                        status: ended,
                    }
                    .send(&mut c.stream);
                }
                Some((stream, Role::Query)) => {
                    let _ = Message::Error {
                        stream,
                        message: "the container exited".into(),
                    }
                    .send(&mut c.stream);
                }
                None => {}
            }
        }
        self.map.clear();
    }
}

/// An introspection request, on the stream the monitor gave it.
fn on_stream(msg: Message, stream: u32) -> Message {
    match msg {
        Message::Top { .. } => Message::Top { stream },
        Message::Stats { .. } => Message::Stats { stream },
        Message::ArchiveStat { path, .. } => Message::ArchiveStat { stream, path },
        Message::ArchiveGet { path, .. } => Message::ArchiveGet { stream, path },
        Message::ArchivePut { path, .. } => Message::ArchivePut { stream, path },
        other => other,
    }
}
