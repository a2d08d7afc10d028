//! Hijacked connections: attach and exec start take over the HTTP connection and carry a process's
//! stdin one way and its output the other, as dockerd does.
//!
//! A request with `Connection: Upgrade` / `Upgrade: tcp` is answered `101 UPGRADED` and the raw
//! connection is relayed; one without (older SDKs) is answered 200 with the output as the body (it
//! cannot carry stdin). The relay between the client and the container's monitor ([`Session`], a
//! blocking socket) runs on three legs:
//! - a thread reads the session and queues the framed output (bounded by bytes): the monitor is never
//!   kept waiting by a slow client, and a client that falls [`OUTPUT_QUEUE_LIMIT`] behind is dropped;
//! - an async task writes the queue to the client;
//! - an async task reads the client's stdin into a bounded channel (so early stdin, sent before the
//!   container starts, waits there), which another task forwards to the session. The client's
//!   half-close becomes `StdinClose`; output keeps flowing until the process exits, then the server
//!   closes the connection.

use crate::http::{self, Body};
use crate::stdcopy::{Framing, Output};
use bulkhead_engine::{ExitStatus, Message, Session};
use bytes::{Bytes, BytesMut};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, UPGRADE};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, Notify};

/// How much output may wait for a slow client before it is disconnected.
pub const OUTPUT_QUEUE_LIMIT: usize = 16 << 20;
/// Queued output up to this size goes to the client in one write.
const COALESCE: usize = 256 * 1024;
/// The largest stdin chunk read from the client in one go.
const STDIN_CHUNK: usize = 32 * 1024;
/// Input messages held for the container before the client's stdin is no longer read (backpressure).
const INPUT_QUEUE: usize = 64;

/// What a client sends a process: stdin, its end, and terminal sizes (exec resize).
#[derive(Debug)]
pub enum Input {
    Data(Vec<u8>),
    Close,
    Resize { rows: u16, cols: u16 },
}

pub type InputSender = mpsc::Sender<Input>;

pub fn input_channel() -> (InputSender, mpsc::Receiver<Input>) {
    mpsc::channel(INPUT_QUEUE)
}

type Conn = TokioIo<Upgraded>;

/// The client's side of a hijack: the upgraded connection, or the body of a 200 answer.
pub enum Client {
    Upgraded(Conn),
    Body(mpsc::Sender<Bytes>),
}

/// A request about to be hijacked. Taken from the request before its body is read, since reading the
/// body consumes the request.
pub struct Hijack {
    upgrade: Option<OnUpgrade>,
}

impl Hijack {
    pub fn take(req: &mut Request<Incoming>) -> Hijack {
        let asks = req
            .headers()
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
            && req.headers().contains_key(UPGRADE);
        Hijack {
            upgrade: asks.then(|| hyper::upgrade::on(req)),
        }
    }

    /// The answer to send; `run` gets the client once the connection is handed over.
    pub fn answer<F, Fut>(self, framing: Framing, run: F) -> Response<Body>
    where
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        match self.upgrade {
            Some(upgrade) => {
                tokio::spawn(async move {
                    match upgrade.await {
                        Ok(upgraded) => run(Client::Upgraded(TokioIo::new(upgraded))).await,
                        Err(e) => tracing::debug!("connection upgrade failed: {e}"),
                    }
                });
                let mut response = http::with_type(
                    StatusCode::SWITCHING_PROTOCOLS,
                    http::full(Bytes::new()),
                    framing.content_type(),
                );
                let headers = response.headers_mut();
                headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
                headers.insert(UPGRADE, HeaderValue::from_static("tcp"));
                response
                    .extensions_mut()
                    .insert(hyper::ext::ReasonPhrase::from_static(b"UPGRADED"));
                response
            }
            None => {
                let (tx, body) = http::stream(8);
                tokio::spawn(run(Client::Body(tx)));
                http::with_type(StatusCode::OK, body, framing.content_type())
            }
        }
    }
}

/// A session to relay: the monitor connection and the stream (0: the main process, else an exec).
pub struct Connected {
    pub session: Session,
    pub stream: u32,
}

/// Why there is no session to relay: the process already ended (its status, if known), with a
/// message for the client's stderr, if any.
#[derive(Debug, Default)]
pub struct Ended {
    pub status: Option<ExitStatus>,
    pub message: Option<String>,
}

/// Output sent before the session's (attach with `logs=1`): calls `emit` per chunk until it says stop.
pub type Replay = Box<dyn FnOnce(&mut dyn FnMut(Output, &[u8]) -> bool) + Send>;
/// Told the process's exit status (None if the relay ended first) before the client's connection is
/// closed, so a client that asks right after (exec inspect) sees it.
pub type OnExit = Box<dyn FnOnce(Option<&ExitStatus>) + Send>;

pub struct Relay {
    pub framing: Framing,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub replay: Option<Replay>,
    pub on_exit: Option<OnExit>,
    input: (InputSender, mpsc::Receiver<Input>),
}

impl Relay {
    pub fn new(framing: Framing) -> Relay {
        Relay::with_input(framing, input_channel())
    }

    /// A relay whose input channel the caller also holds a sender of (exec resize).
    pub fn with_input(framing: Framing, input: (InputSender, mpsc::Receiver<Input>)) -> Relay {
        Relay {
            framing,
            stdin: false,
            stdout: true,
            stderr: true,
            replay: None,
            on_exit: None,
            input,
        }
    }

    /// Relays until the process exits or the client goes. `connect` yields the session; the client's
    /// stdin is read (and held) meanwhile.
    pub async fn run<C>(self, client: Client, connect: C)
    where
        C: Future<Output = Result<Connected, Ended>> + Send,
    {
        let Relay {
            framing,
            stdin,
            stdout,
            stderr,
            replay,
            on_exit,
            input: (input_tx, input_rx),
        } = self;
        let (reader, mut sink) = match client {
            Client::Upgraded(conn) => {
                let (r, w) = tokio::io::split(conn);
                (Some(r), Sink::Conn(w))
            }
            Client::Body(tx) => (None, Sink::Body(tx)),
        };
        let stdin_task = reader.map(|r| tokio::spawn(read_client(r, stdin.then_some(input_tx))));
        let (queue, drain) = output_queue();
        let output = OutputReader {
            framing,
            stdout,
            stderr,
            replay,
            on_exit,
            queue,
        };
        let mut closer = None;
        let mut forward_task = None;
        match connect.await {
            Ok(Connected { session, stream }) => match (session.try_clone(), session.try_clone()) {
                (Ok(writer), Ok(close)) => {
                    closer = Some(close);
                    forward_task = Some(tokio::spawn(forward_input(input_rx, writer, stream)));
                    output.spawn(Ok(session));
                }
                (Err(e), _) | (_, Err(e)) => output.spawn(Err(Ended {
                    status: None,
                    message: Some(e.to_string()),
                })),
            },
            Err(ended) => output.spawn(Err(ended)),
        }
        drain.to(&mut sink).await;
        // The client is done or gone: end the session (waking the reading thread) and the stdin legs.
        if let Some(session) = closer {
            session.shutdown();
        }
        for task in [stdin_task, forward_task].into_iter().flatten() {
            task.abort();
        }
    }
}

/// Reads the client's stdin into the input channel; its end (half-close or a dropped connection) closes
/// the process's stdin. Without stdin the bytes are read and dropped: the monitor refuses stdin from a
/// client that did not ask to feed it.
async fn read_client(mut reader: ReadHalf<Conn>, input: Option<InputSender>) {
    let mut buf = vec![0u8; STDIN_CHUNK];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(tx) = &input {
                    if tx.send(Input::Data(buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
    if let Some(tx) = input {
        let _ = tx.send(Input::Close).await;
    }
}

/// Moves input messages to the session, each blocking write off the async workers.
async fn forward_input(mut input: mpsc::Receiver<Input>, mut session: Session, stream: u32) {
    while let Some(item) = input.recv().await {
        let msg = match item {
            Input::Data(data) => Message::Stdin { stream, data },
            Input::Close => Message::StdinClose { stream },
            Input::Resize { rows, cols } => Message::Resize { stream, rows, cols },
        };
        let sent = tokio::task::spawn_blocking(move || {
            let result = session.send(&msg);
            (session, result)
        })
        .await;
        match sent {
            Ok((s, Ok(()))) => session = s,
            _ => return,
        }
    }
}

/// The output side of the session, run on a thread of its own.
struct OutputReader {
    framing: Framing,
    stdout: bool,
    stderr: bool,
    replay: Option<Replay>,
    on_exit: Option<OnExit>,
    queue: OutputQueue,
}

impl OutputReader {
    fn spawn(self, source: Result<Session, Ended>) {
        let spawned = std::thread::Builder::new()
            .name("bulkhead-relay".into())
            .spawn(move || self.run(source));
        if let Err(e) = spawned {
            // The queue's sender went with the closure: the client's connection ends at once.
            tracing::warn!("starting a relay thread: {e}");
        }
    }

    fn run(mut self, source: Result<Session, Ended>) {
        let (framing, stdout, stderr, queue) =
            (self.framing, self.stdout, self.stderr, &self.queue);
        let mut emit = |output: Output, data: &[u8]| -> bool {
            let wanted = match output {
                Output::Stdout => stdout,
                Output::Stderr => stderr,
            };
            !wanted || data.is_empty() || queue.push(framing.encode(output, data))
        };
        let mut going = true;
        if let Some(replay) = self.replay.take() {
            replay(&mut |output, data| {
                going = emit(output, data);
                going
            });
        }
        let status = match source {
            Ok(session) if going => pump(session, &mut emit),
            Ok(session) => {
                session.shutdown();
                None
            }
            Err(ended) => {
                if let Some(message) = ended.message {
                    emit(Output::Stderr, format!("{message}\n").as_bytes());
                }
                ended.status
            }
        };
        if let Some(on_exit) = self.on_exit.take() {
            on_exit(status.as_ref());
        }
        self.queue.end();
    }
}

/// Reads the session until the process exits (its status) or the relay must stop (None).
fn pump(mut session: Session, emit: &mut dyn FnMut(Output, &[u8]) -> bool) -> Option<ExitStatus> {
    let mut error = None;
    loop {
        let going = match session.recv() {
            Ok(Message::Stdout { data, .. }) => emit(Output::Stdout, &data),
            Ok(Message::Stderr { data, .. }) => emit(Output::Stderr, &data),
            Ok(Message::Exited { mut status, .. }) => {
                status.reason = status.reason.or(error);
                return Some(status);
            }
            Ok(Message::Error { message, .. }) => {
                error = Some(message);
                true
            }
            Ok(_) => true,
            Err(_) => return None,
        };
        if !going {
            // Too far behind: the monitor is told we are gone rather than kept waiting.
            session.shutdown();
            return None;
        }
    }
}

enum Queued {
    Data(Bytes),
    End,
}

/// The reading thread's side of the output queue.
struct OutputQueue {
    tx: mpsc::UnboundedSender<Queued>,
    queued: Arc<AtomicUsize>,
    overflow: Arc<Notify>,
}

/// The client writer's side.
struct OutputDrain {
    rx: mpsc::UnboundedReceiver<Queued>,
    queued: Arc<AtomicUsize>,
    overflow: Arc<Notify>,
}

fn output_queue() -> (OutputQueue, OutputDrain) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let overflow = Arc::new(Notify::new());
    (
        OutputQueue {
            tx,
            queued: queued.clone(),
            overflow: overflow.clone(),
        },
        OutputDrain {
            rx,
            queued,
            overflow,
        },
    )
}

/// What a queued chunk costs against the limit: its bytes and its place in the queue, so a flood of
/// tiny chunks is bounded too.
fn charge(chunk: &Bytes) -> usize {
    chunk.len() + 64
}

impl OutputQueue {
    /// Queues a chunk; false once the client is gone or too far behind (the writer is told to drop it).
    fn push(&self, chunk: Bytes) -> bool {
        let len = charge(&chunk);
        if self.queued.fetch_add(len, Ordering::AcqRel) + len > OUTPUT_QUEUE_LIMIT {
            self.overflow.notify_one();
            return false;
        }
        self.tx.send(Queued::Data(chunk)).is_ok()
    }

    fn end(&self) {
        let _ = self.tx.send(Queued::End);
    }
}

impl OutputDrain {
    /// Writes queued output to the client until the end (then closes its connection), a failed write,
    /// or an overflow.
    async fn to(mut self, sink: &mut Sink) {
        loop {
            let first = tokio::select! {
                biased;
                _ = self.overflow.notified() => {
                    tracing::warn!("a client fell {OUTPUT_QUEUE_LIMIT} bytes behind; disconnected");
                    return;
                }
                item = self.rx.recv() => item,
            };
            let (chunk, ended) = match first {
                Some(Queued::Data(chunk)) => self.with_queued(chunk),
                Some(Queued::End) | None => (Bytes::new(), true),
            };
            if !chunk.is_empty() {
                let written = tokio::select! {
                    written = sink.write(chunk) => written,
                    _ = self.overflow.notified() => false,
                };
                if !written {
                    return;
                }
            }
            if ended {
                sink.close().await;
                return;
            }
        }
    }

    /// `chunk` and what else is queued already (up to [`COALESCE`] bytes), as one write; and whether
    /// the end came with it.
    fn with_queued(&mut self, chunk: Bytes) -> (Bytes, bool) {
        self.queued.fetch_sub(charge(&chunk), Ordering::AcqRel);
        let mut joined: Option<BytesMut> = None;
        let mut len = chunk.len();
        while len < COALESCE {
            match self.rx.try_recv() {
                Ok(Queued::Data(more)) => {
                    self.queued.fetch_sub(charge(&more), Ordering::AcqRel);
                    len += more.len();
                    joined
                        .get_or_insert_with(|| BytesMut::from(&chunk[..]))
                        .extend_from_slice(&more);
                }
                Ok(Queued::End) => {
                    return (joined.map_or(chunk, BytesMut::freeze), true);
                }
                Err(_) => break,
            }
        }
        (joined.map_or(chunk, BytesMut::freeze), false)
    }
}

enum Sink {
    Conn(WriteHalf<Conn>),
    Body(mpsc::Sender<Bytes>),
}

impl Sink {
    async fn write(&mut self, chunk: Bytes) -> bool {
        match self {
            Sink::Conn(w) => w.write_all(&chunk).await.is_ok() && w.flush().await.is_ok(),
            Sink::Body(tx) => tx.send(chunk).await.is_ok(),
        }
    }

    /// The end of output: the connection's write side is shut (the client reads EOF).
    async fn close(&mut self) {
        if let Sink::Conn(w) = self {
            let _ = w.shutdown().await;
        }
    }
}
