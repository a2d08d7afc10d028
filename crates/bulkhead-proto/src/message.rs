//! Typed messages on top of frames: what each kind means and which payload it carries.

use crate::introspect::{ContainerStats, PathStat, ProcessTable};
use crate::nic::GuestNic;
use crate::{Frame, Kind, ProtoError, MAX_PAYLOAD};
use bulkhead_spec::{ContainerSpec, ProcessSpec, Resources};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How a process ended, docker-style: `code` is the exit code or 128+signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    pub code: i32,
    #[serde(default)]
    pub oom_killed: bool,
    /// Why the engine (not the process) ended it, e.g. "guest sent a malformed frame".
    #[serde(default)]
    pub reason: Option<String>,
}

/// One protocol message. `stream` 0 is the main process, others are exec sessions.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// First message in each direction.
    Hello {
        version: u16,
    },
    /// Host to agent: start the container. Boxed: a spec is far larger than every other message.
    /// `nics`: a VM guest's network interfaces, which its PID 1 configures first (empty for a process
    /// agent, which runs in the namespace it was started in).
    Start {
        spec: Box<ContainerSpec>,
        nics: Vec<GuestNic>,
    },
    /// A process of `stream` runs with this pid (in the namespace of whoever reports it).
    Started {
        stream: u32,
        pid: i32,
    },
    Stdin {
        stream: u32,
        data: Vec<u8>,
    },
    StdinClose {
        stream: u32,
    },
    Stdout {
        stream: u32,
        data: Vec<u8>,
    },
    Stderr {
        stream: u32,
        data: Vec<u8>,
    },
    Resize {
        stream: u32,
        rows: u16,
        cols: u16,
    },
    Signal {
        stream: u32,
        signal: i32,
    },
    /// Start an exec session running `process`.
    Exec {
        stream: u32,
        process: ProcessSpec,
    },
    Exited {
        stream: u32,
        status: ExitStatus,
    },
    Error {
        stream: u32,
        message: String,
    },
    /// Change resource limits of the running container.
    Update {
        resources: Resources,
    },
    /// CLI to monitor: send me the main process' output; with `stdin`, I also feed its input.
    Attach {
        stdin: bool,
    },
    /// Host to a VM guest, in place of `Start`: do not run the container; stream the changes on its
    /// writable disk (the overlay upper directory) back as an OCI layer tar, in `ExportData` frames.
    Export,
    /// Guest to host: the next bytes of the exported layer tar.
    ExportData {
        data: Vec<u8>,
    },
    /// Guest to host: the exported layer tar is complete.
    ExportEnd,
    // Introspection of a running container. A front end sends a request with stream 0; the monitor
    // gives it a stream of its own (as for exec) and routes the agent's answers on it to that client
    // only. Every request ends with its answer, `NoSuchPath`, `Error`, or (archives) `ArchiveEnd`.
    /// List the container's processes; answered by `TopResult`.
    Top {
        stream: u32,
    },
    TopResult {
        stream: u32,
        table: ProcessTable,
    },
    /// Sample the container's resource usage; answered by `StatsResult`.
    Stats {
        stream: u32,
    },
    StatsResult {
        stream: u32,
        stats: ContainerStats,
    },
    /// Describe `path` (not following a final symlink); answered by `PathStat`.
    ArchiveStat {
        stream: u32,
        path: String,
    },
    /// Send a tar of `path`: `PathStat`, then `ArchiveData` frames (each acknowledged by the receiver
    /// with `ArchiveAck` before the next is sent), then `ArchiveEnd`.
    ArchiveGet {
        stream: u32,
        path: String,
    },
    /// Extract a tar into the directory `path`: the agent answers `PathStat` (of the directory), then
    /// takes `ArchiveData` frames (acknowledging each with `ArchiveAck`) up to the sender's
    /// `ArchiveEnd`, and answers `ArchiveEnd` once everything is written.
    ArchivePut {
        stream: u32,
        path: String,
    },
    PathStat {
        stream: u32,
        stat: PathStat,
    },
    /// The path of the request on `stream` does not exist in the container.
    NoSuchPath {
        stream: u32,
    },
    ArchiveData {
        stream: u32,
        data: Vec<u8>,
    },
    ArchiveAck {
        stream: u32,
    },
    ArchiveEnd {
        stream: u32,
    },
}

#[derive(Serialize)]
struct StartRef<'a> {
    spec: &'a ContainerSpec,
    nics: &'a [GuestNic],
}
#[derive(Deserialize)]
struct StartBody {
    spec: Box<ContainerSpec>,
    nics: Vec<GuestNic>,
}
#[derive(Serialize, Deserialize)]
struct HelloBody {
    version: u16,
}
#[derive(Serialize, Deserialize)]
struct PidBody {
    pid: i32,
}
#[derive(Serialize, Deserialize)]
struct ResizeBody {
    rows: u16,
    cols: u16,
}
#[derive(Serialize, Deserialize)]
struct SignalBody {
    signal: i32,
}
#[derive(Serialize, Deserialize)]
struct ErrorBody {
    message: String,
}
#[derive(Serialize, Deserialize)]
struct AttachBody {
    stdin: bool,
}
#[derive(Serialize, Deserialize)]
struct PathBody {
    path: String,
}

fn json<T: Serialize>(kind: Kind, stream: u32, body: &T) -> Result<Frame, ProtoError> {
    let payload = serde_json::to_vec(body).map_err(|e| ProtoError::Malformed {
        kind,
        reason: e.to_string(),
    })?;
    Ok(Frame {
        kind,
        stream,
        payload,
    })
}

fn parse<T: DeserializeOwned>(f: &Frame) -> Result<T, ProtoError> {
    serde_json::from_slice(&f.payload).map_err(|e| ProtoError::Malformed {
        kind: f.kind,
        reason: e.to_string(),
    })
}

/// A frame of `kind` without payload.
fn bare(kind: Kind) -> Frame {
    on(kind, 0)
}

/// A frame of `kind` on `stream`, without payload.
fn on(kind: Kind, stream: u32) -> Frame {
    Frame {
        kind,
        stream,
        payload: Vec::new(),
    }
}

fn empty(f: &Frame) -> Result<(), ProtoError> {
    if f.payload.is_empty() {
        Ok(())
    } else {
        Err(ProtoError::Malformed {
            kind: f.kind,
            reason: format!("{} unexpected payload bytes", f.payload.len()),
        })
    }
}

impl Message {
    /// Encodes into one frame; stdio data larger than a frame must be chunked with [`Message::chunks`].
    pub fn to_frame(&self) -> Result<Frame, ProtoError> {
        use Message::*;
        let raw = |kind, stream: &u32, data: &Vec<u8>| Frame {
            kind,
            stream: *stream,
            payload: data.clone(),
        };
        let frame = match self {
            Hello { version } => json(Kind::Hello, 0, &HelloBody { version: *version })?,
            Start { spec, nics } => json(Kind::Start, 0, &StartRef { spec, nics })?,
            Started { stream, pid } => json(Kind::Started, *stream, &PidBody { pid: *pid })?,
            Stdin { stream, data } => raw(Kind::Stdin, stream, data),
            StdinClose { stream } => Frame {
                stream: *stream,
                ..bare(Kind::StdinClose)
            },
            Stdout { stream, data } => raw(Kind::Stdout, stream, data),
            Stderr { stream, data } => raw(Kind::Stderr, stream, data),
            Resize { stream, rows, cols } => json(
                Kind::Resize,
                *stream,
                &ResizeBody {
                    rows: *rows,
                    cols: *cols,
                },
            )?,
            Signal { stream, signal } => {
                json(Kind::Signal, *stream, &SignalBody { signal: *signal })?
            }
            Exec { stream, process } => json(Kind::Exec, *stream, process)?,
            Exited { stream, status } => json(Kind::Exited, *stream, status)?,
            Error { stream, message } => json(
                Kind::Error,
                *stream,
                &ErrorBody {
                    message: message.clone(),
                },
            )?,
            Update { resources } => json(Kind::Update, 0, resources)?,
            Attach { stdin } => json(Kind::Attach, 0, &AttachBody { stdin: *stdin })?,
            Export => bare(Kind::Export),
            ExportData { data } => raw(Kind::ExportData, &0, data),
            ExportEnd => bare(Kind::ExportEnd),
            Top { stream } => on(Kind::Top, *stream),
            TopResult { stream, table } => json(Kind::TopResult, *stream, table)?,
            Stats { stream } => on(Kind::Stats, *stream),
            StatsResult { stream, stats } => json(Kind::StatsResult, *stream, stats)?,
            ArchiveStat { stream, path } => {
                json(Kind::ArchiveStat, *stream, &PathBody { path: path.clone() })?
            }
            ArchiveGet { stream, path } => {
                json(Kind::ArchiveGet, *stream, &PathBody { path: path.clone() })?
            }
            ArchivePut { stream, path } => {
                json(Kind::ArchivePut, *stream, &PathBody { path: path.clone() })?
            }
            PathStat { stream, stat } => json(Kind::PathStat, *stream, stat)?,
            NoSuchPath { stream } => on(Kind::NoSuchPath, *stream),
            ArchiveData { stream, data } => raw(Kind::ArchiveData, stream, data),
            ArchiveAck { stream } => on(Kind::ArchiveAck, *stream),
            ArchiveEnd { stream } => on(Kind::ArchiveEnd, *stream),
        };
        if frame.payload.len() > MAX_PAYLOAD {
            return Err(ProtoError::Oversized {
                len: frame.payload.len(),
                max: MAX_PAYLOAD,
            });
        }
        Ok(frame)
    }

    /// Decodes a frame; any payload that does not fit its kind is an error, never a panic.
    pub fn from_frame(f: &Frame) -> Result<Message, ProtoError> {
        let s = f.stream;
        Ok(match f.kind {
            Kind::Hello => {
                let b: HelloBody = parse(f)?;
                Message::Hello { version: b.version }
            }
            Kind::Start => {
                let b: StartBody = parse(f)?;
                Message::Start {
                    spec: b.spec,
                    nics: b.nics,
                }
            }
            Kind::Started => Message::Started {
                stream: s,
                pid: parse::<PidBody>(f)?.pid,
            },
            Kind::Stdin => Message::Stdin {
                stream: s,
                data: f.payload.clone(),
            },
            Kind::StdinClose => {
                empty(f)?;
                Message::StdinClose { stream: s }
            }
            Kind::Stdout => Message::Stdout {
                stream: s,
                data: f.payload.clone(),
            },
            Kind::Stderr => Message::Stderr {
                stream: s,
                data: f.payload.clone(),
            },
            Kind::Resize => {
                let b: ResizeBody = parse(f)?;
                Message::Resize {
                    stream: s,
                    rows: b.rows,
                    cols: b.cols,
                }
            }
            Kind::Signal => Message::Signal {
                stream: s,
                signal: parse::<SignalBody>(f)?.signal,
            },
            Kind::Exec => Message::Exec {
                stream: s,
                process: parse(f)?,
            },
            Kind::Exited => Message::Exited {
                stream: s,
                status: parse(f)?,
            },
            Kind::Error => Message::Error {
                stream: s,
                message: parse::<ErrorBody>(f)?.message,
            },
            Kind::Update => Message::Update {
                resources: parse(f)?,
            },
            Kind::Attach => Message::Attach {
                stdin: parse::<AttachBody>(f)?.stdin,
            },
            Kind::Export => {
                empty(f)?;
                Message::Export
            }
            Kind::ExportData => Message::ExportData {
                data: f.payload.clone(),
            },
            Kind::ExportEnd => {
                empty(f)?;
                Message::ExportEnd
            }
            Kind::Top => {
                empty(f)?;
                Message::Top { stream: s }
            }
            Kind::TopResult => Message::TopResult {
                stream: s,
                table: parse(f)?,
            },
            Kind::Stats => {
                empty(f)?;
                Message::Stats { stream: s }
            }
            Kind::StatsResult => Message::StatsResult {
                stream: s,
                stats: parse(f)?,
            },
            Kind::ArchiveStat => Message::ArchiveStat {
                stream: s,
                path: parse::<PathBody>(f)?.path,
            },
            Kind::ArchiveGet => Message::ArchiveGet {
                stream: s,
                path: parse::<PathBody>(f)?.path,
            },
            Kind::ArchivePut => Message::ArchivePut {
                stream: s,
                path: parse::<PathBody>(f)?.path,
            },
            Kind::PathStat => Message::PathStat {
                stream: s,
                stat: parse(f)?,
            },
            Kind::NoSuchPath => {
                empty(f)?;
                Message::NoSuchPath { stream: s }
            }
            Kind::ArchiveData => Message::ArchiveData {
                stream: s,
                data: f.payload.clone(),
            },
            Kind::ArchiveAck => {
                empty(f)?;
                Message::ArchiveAck { stream: s }
            }
            Kind::ArchiveEnd => {
                empty(f)?;
                Message::ArchiveEnd { stream: s }
            }
        })
    }

    /// Splits output bytes into messages that each fit one frame.
    pub fn chunks(stream: u32, data: &[u8], stderr: bool) -> impl Iterator<Item = Message> + '_ {
        data.chunks(MAX_PAYLOAD).map(move |c| {
            if stderr {
                Message::Stderr {
                    stream,
                    data: c.to_vec(),
                }
            } else {
                Message::Stdout {
                    stream,
                    data: c.to_vec(),
                }
            }
        })
    }

    /// Writes this message as one frame.
    pub fn send(&self, w: &mut impl std::io::Write) -> Result<(), ProtoError> {
        crate::write_frame(w, &self.to_frame()?)
    }

    /// Reads and decodes one message.
    pub fn recv(r: &mut impl std::io::Read) -> Result<Message, ProtoError> {
        Message::from_frame(&crate::read_frame(r)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_spec::{NetworkMode, SeccompPolicy, SecuritySpec, Workload};

    fn spec() -> ContainerSpec {
        ContainerSpec {
            id: "x".into(),
            rootfs: "/".into(),
            workload: Workload {
                process: ProcessSpec {
                    args: vec!["sh".into()],
                    env: vec!["PATH=/bin".into()],
                    cwd: "/".into(),
                    user: String::new(),
                    terminal: false,
                    rlimits: Vec::new(),
                    console_size: None,
                },
                hostname: "x".into(),
                readonly_rootfs: false,
                mounts: Vec::new(),
                network: NetworkMode::None,
                userns: None,
                security: SecuritySpec {
                    seccomp: SeccompPolicy::Compiled(vec![1, 2, 3]),
                    ..SecuritySpec::default()
                },
                resources: Resources::default(),
                sysctls: Default::default(),
                join_namespaces: Vec::new(),
            },
            cgroup_name: "bulkhead/x".into(),
            etc_hosts: String::new(),
            resolv_conf: String::new(),
            root_share: false,
        }
    }

    #[test]
    fn every_message_round_trips() {
        let msgs = vec![
            Message::Hello { version: 1 },
            Message::Start {
                spec: Box::new(spec()),
                nics: vec![crate::nic::GuestNic {
                    name: "eth0".into(),
                    mac: [2, 0, 0, 0, 0, 1],
                    mtu: 1400,
                    ipv4: vec![crate::nic::Ipv4Cidr {
                        address: [10, 1, 0, 2].into(),
                        prefix_len: 24,
                    }],
                    gateway: Some([10, 1, 0, 1].into()),
                }],
            },
            Message::Started { stream: 2, pid: 7 },
            Message::Stdin {
                stream: 0,
                data: b"in".to_vec(),
            },
            Message::StdinClose { stream: 0 },
            Message::Stdout {
                stream: 0,
                data: vec![0, 255],
            },
            Message::Stderr {
                stream: 3,
                data: b"e".to_vec(),
            },
            Message::Resize {
                stream: 0,
                rows: 24,
                cols: 80,
            },
            Message::Signal {
                stream: 0,
                signal: 15,
            },
            Message::Exec {
                stream: 4,
                process: spec().workload.process,
            },
            Message::Exited {
                stream: 0,
                status: ExitStatus {
                    code: 137,
                    oom_killed: true,
                    reason: None,
                },
            },
            Message::Error {
                stream: 1,
                message: "no".into(),
            },
            Message::Update {
                resources: Resources {
                    memory_bytes: Some(1 << 30),
                    cpus: Some(1.5),
                    pids_limit: None,
                },
            },
            Message::Attach { stdin: true },
            Message::Export,
            Message::ExportData {
                data: vec![0, 1, 2],
            },
            Message::ExportEnd,
            Message::Top { stream: 3 },
            Message::TopResult {
                stream: 3,
                table: ProcessTable {
                    titles: vec!["PID".into()],
                    processes: vec![vec!["1".into()]],
                },
            },
            Message::Stats { stream: 3 },
            Message::StatsResult {
                stream: 3,
                stats: ContainerStats {
                    read: chrono::DateTime::from_timestamp(1, 2).unwrap(),
                    cpu_total_ns: 1,
                    system_cpu_ns: 2,
                    online_cpus: 3,
                    memory_usage: 4,
                    memory_limit: 5,
                    pids: 6,
                    networks: vec![crate::introspect::InterfaceStats {
                        name: "eth0".into(),
                        rx_bytes: 1,
                        rx_packets: 2,
                        tx_bytes: 3,
                        tx_packets: 4,
                    }],
                },
            },
            Message::ArchiveStat {
                stream: 3,
                path: "/etc".into(),
            },
            Message::ArchiveGet {
                stream: 3,
                path: "/etc".into(),
            },
            Message::ArchivePut {
                stream: 3,
                path: "/tmp".into(),
            },
            Message::PathStat {
                stream: 3,
                stat: PathStat {
                    name: "etc".into(),
                    size: 4096,
                    mode: 0o40755,
                    mtime: chrono::DateTime::from_timestamp(7, 8).unwrap(),
                    link_target: String::new(),
                },
            },
            Message::NoSuchPath { stream: 3 },
            Message::ArchiveData {
                stream: 3,
                data: vec![1, 2],
            },
            Message::ArchiveAck { stream: 3 },
            Message::ArchiveEnd { stream: 3 },
        ];
        for m in msgs {
            let mut buf = Vec::new();
            m.send(&mut buf).unwrap();
            assert_eq!(Message::recv(&mut buf.as_slice()).unwrap(), m);
        }
    }

    #[test]
    fn garbage_payloads_are_errors() {
        for kind in [
            Kind::Hello,
            Kind::Started,
            Kind::Resize,
            Kind::Exited,
            Kind::StdinClose,
            Kind::Export,
            Kind::ExportEnd,
            Kind::Start,
            Kind::Exec,
            Kind::Update,
            Kind::Top,
            Kind::TopResult,
            Kind::StatsResult,
            Kind::ArchiveGet,
            Kind::PathStat,
            Kind::NoSuchPath,
            Kind::ArchiveAck,
            Kind::ArchiveEnd,
        ] {
            let f = Frame {
                kind,
                stream: 0,
                payload: b"\xff{not json".to_vec(),
            };
            assert!(matches!(
                Message::from_frame(&f),
                Err(ProtoError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn json_that_is_not_the_payload_type_is_malformed_naming_the_kind() {
        for (kind, payload) in [
            (Kind::Start, r#"{"not": "a container spec"}"#),
            (Kind::Exec, r#"{"args": "sh"}"#),
            (Kind::Update, r#"{"memory_bytes": -1}"#),
        ] {
            let f = Frame {
                kind,
                stream: 0,
                payload: payload.as_bytes().to_vec(),
            };
            match Message::from_frame(&f) {
                Err(ProtoError::Malformed { kind: got, .. }) => assert_eq!(got, kind),
                other => panic!("{kind:?}: expected Malformed, got {other:?}"),
            }
        }
    }
}
