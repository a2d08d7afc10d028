//! The per-container monitor: the parent of a running container (the role of conmon or a containerd
//! shim). It outlives the CLI that started it, brings up the agent (process or VM backend), writes the
//! logs, serves CLI clients on a unix socket (attach, exec, signals, resize, update, and top, stats and
//! archive requests, which it passes to the agent and whose answers go back to the asker only), records the exit,
//! cleans up, and removes the container when it was created with `--rm`.
//!
//! In VM mode the agent's bytes come from a guest we assume hostile: a malformed frame, a frame that makes
//! no sense, or a guest that dies ends the container with a recorded reason. The monitor never panics on
//! them and never waits on the guest without a bound.

mod clients;
pub mod launch;
mod network;
mod socket;

use crate::config::ContainerConfig;
use crate::containers::Container;
use crate::isolation::{self, Endpoint, Mode, RootSource};
use crate::layout::Layout;
use crate::logs::{self, Stream};
use crate::networks::attach::{self, Attached};
use crate::state::{start_time, Status};
use crate::{events, fsutil, spec, EngineError};
use bulkhead_proto::{handshake, ExitStatus, Message, ProtoError};
use chrono::Utc;
use clients::Clients;
use launch::Ready;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a monitor started for an attached run waits for its client.
const ATTACH_WAIT: Duration = Duration::from_secs(30);
/// How long the agent has to answer the handshake (a TCG VM boot takes a few seconds).
const AGENT_HELLO_WAIT: Duration = Duration::from_secs(60);

/// Runs the monitor for container `id` until the container has ended and is cleaned up.
/// `ready` gets one line, `ok` or `error: ...`, once the caller may proceed.
fn run(
    root: &Path,
    max_unpacked_bytes: Option<u64>,
    id: &str,
    attach_first: bool,
    mut ready: Ready,
) -> i32 {
    let mut report = |line: &str| ready.report(line);
    let layout = &Layout::new(root);
    let mut container = match Container::load(layout, id) {
        Ok(c) => c,
        Err(e) => {
            report(&format!("error: {e}"));
            return 1;
        }
    };
    match Monitor::new(layout, max_unpacked_bytes, &mut container, attach_first) {
        Ok(mut m) => m.run(&mut report),
        Err(e) => {
            events::container(
                layout,
                &container.config,
                "die",
                &[("exitCode", "125".into())],
            );
            record_exit(&mut container, 125, false, Some(e.to_string()));
            report(&format!("error: {e}"));
            1
        }
    }
}

struct Monitor<'a> {
    layout: &'a Layout,
    max_unpacked_bytes: Option<u64>,
    mode: &'static dyn Mode,
    container: &'a mut Container,
    listener: UnixListener,
    clients: Clients,
    log: logs::Writer,
    attach_first: bool,
    /// Client messages that arrived before the agent was up.
    pending: Vec<Message>,
    /// The container's networks while it runs (held: published ports stay reserved).
    network: Option<Attached>,
}

impl<'a> Monitor<'a> {
    fn new(
        layout: &'a Layout,
        max_unpacked_bytes: Option<u64>,
        container: &'a mut Container,
        attach_first: bool,
    ) -> Result<Self, EngineError> {
        let run = container.paths.run.clone();
        let listener = socket::listen(&run, &container.paths.socket())?;
        let log = logs::Writer::open(&container.paths.log())?;
        Ok(Monitor {
            layout,
            max_unpacked_bytes,
            mode: isolation::mode(container.config.isolation),
            container,
            listener,
            clients: Clients::default(),
            log,
            attach_first,
            pending: Vec::new(),
            network: None,
        })
    }

    fn run(&mut self, report: &mut dyn FnMut(&str)) -> i32 {
        if self.attach_first {
            report("ok");
        }
        let outcome = self.start_backend();
        let (mut backend, mut agent) = match outcome {
            Ok(pair) => pair,
            Err(e) => {
                // Whoever started us says which container failed to start; the reason is enough here.
                let msg = match &e {
                    EngineError::StartFailed { message, .. } => message.clone(),
                    e => e.to_string(),
                };
                if let Err(e) = self.release_network() {
                    tracing::warn!("releasing the network of a failed start: {e}");
                }
                self.record_die(e.exit_code());
                record_exit(self.container, e.exit_code(), false, Some(msg.clone()));
                report(&format!("error: {msg}"));
                self.clients.broadcast(&Message::Error {
                    stream: 0,
                    message: msg,
                });
                self.finish(125);
                return 1;
            }
        };
        // Held until the container ends: dropping a handle closes its sockets.
        let own = self.network.as_ref().and_then(|n| n.state.as_ref());
        let _name_responders =
            network::start_name_responders(self.layout, &self.container.config, own);
        let refill = self.refill_disk_pool();
        // The monitor lives as long as the container: hand back what starting it took from the heap.
        // SAFETY: malloc_trim only releases free heap memory.
        unsafe { libc::malloc_trim(0) };
        let (status, reason) = self.relay(&mut agent, report);
        if reason.is_some() {
            backend.kill();
        } else if self.container.config.auto_remove {
            backend.discard();
        }
        drop(agent);
        let teardown = backend.teardown().and_then(|()| self.release_network());
        let reason = reason.or_else(|| teardown.err().map(|e| format!("cleanup failed: {e}")));
        let code = status
            .as_ref()
            .map(|s| s.code)
            .unwrap_or(crate::state::LOST_EXIT_CODE);
        let oom = status.as_ref().is_some_and(|s| s.oom_killed);
        self.record_die(code);
        record_exit(self.container, code, oom, reason.clone());
        report(&match &reason {
            Some(r) if status.is_none() => format!("error: {r}"),
            _ => "ok".to_string(),
        });
        if let Some(r) = reason {
            self.clients.broadcast(&Message::Error {
                stream: 0,
                message: r,
            });
        }
        self.finish(code);
        // After the clients heard the exit: a refill still running delays nobody.
        if let Some(Ok(Err(e))) = refill.map(|r| r.join()) {
            tracing::warn!("refilling the disk pool: {e}");
        }
        0
    }

    /// Makes, on a thread, the ready disk that replaces the one this container's `create` may have
    /// taken from the pool (`disk.rs`), while the container starts and runs.
    fn refill_disk_pool(&self) -> Option<std::thread::JoinHandle<Result<(), EngineError>>> {
        let config = &self.container.config;
        // A bundle container has no disk.
        if config.rootfs_dir.is_some() {
            return None;
        }
        let (root, size) = (self.layout.root().to_path_buf(), config.disk_size);
        Some(std::thread::spawn(move || {
            crate::disk::refill_pool(&root, size)
        }))
    }

    /// Blocks until the CLI that started us attaches (bounded), so no early output is lost. Messages the
    /// client sends meanwhile (early stdin) are kept for the agent.
    fn wait_for_attach(&mut self) -> Result<(), EngineError> {
        let deadline = Instant::now() + ATTACH_WAIT;
        while !self.clients.any_attached() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(EngineError::StartFailed {
                    id: self.container.config.id.clone(),
                    message: "no client attached in time".into(),
                });
            }
            let client_fds = self.clients.fds();
            let mut fds = vec![PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
            fds.extend(
                client_fds
                    .iter()
                    .map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLIN)),
            );
            let ms = left.as_millis().min(1000) as u16;
            let _ = poll(&mut fds, PollTimeout::from(ms));
            let ready = readable(&fds);
            let keys: Vec<u64> = client_fds.iter().map(|(k, _)| *k).collect();
            drop(fds);
            if ready[0] {
                self.accept();
            }
            for (key, r) in keys.into_iter().zip(&ready[1..]) {
                if *r {
                    let early = self.clients.read(key);
                    self.pending.extend(early);
                }
            }
        }
        Ok(())
    }

    fn start_backend(&mut self) -> Result<(Box<dyn Endpoint>, UnixStream), EngineError> {
        // A bundle container's root is its caller's directory: no image store, no disk.
        let root = RootSource::of(&self.container.config, || {
            let store = crate::engine::open_store(self.layout.root(), self.max_unpacked_bytes)?;
            let image = store.resolve(&self.container.config.image_id)?;
            Ok(store.rootfs_artifact(&image)?)
        })?;
        let t0 = Instant::now();
        let prepared = match &root {
            RootSource::Image(artifact) => {
                self.mode
                    .prepare_disk(self.layout.root(), self.container, artifact)
            }
            RootSource::Directory(_) => Ok(()),
        };
        if let Err(e) = prepared {
            // The client that started us attaches meanwhile; it is to hear why the start failed.
            if self.attach_first {
                let _ = self.wait_for_attach();
            }
            return Err(e);
        }
        let network = match attach::setup(self.layout, &self.container.config) {
            Ok(n) => n,
            Err(e) => {
                // As above: the client that started us is to hear why (a port in use, say).
                if self.attach_first {
                    let _ = self.wait_for_attach();
                }
                return Err(e);
            }
        };
        self.network = Some(network);
        let netns = network::netns(&self.container.config, self.network.as_ref());
        let launched = self.mode.launch(
            &self.container.config,
            &self.container.paths,
            &root,
            netns.as_deref(),
        );
        let (mut backend, mut agent) = match launched {
            Ok(launched) => launched,
            Err(e) => {
                // As above: a namespace that cannot be joined, QEMU that cannot be jailed...
                if self.attach_first {
                    let _ = self.wait_for_attach();
                }
                return Err(e);
            }
        };
        tracing::debug!("backend up in {:?}", t0.elapsed());
        let nics = backend.nics();
        match self.open_agent(&mut agent, backend.host_pid(), backend.jail(), nics, t0) {
            Ok(()) => Ok((backend, agent)),
            Err(e) => {
                let e = match (e, backend.exit_report()) {
                    (EngineError::StartFailed { id, message }, Some(why)) => {
                        EngineError::StartFailed {
                            id,
                            message: format!("{message}: {why}"),
                        }
                    }
                    (e, _) => e,
                };
                backend.kill();
                let _ = backend.teardown();
                Err(e)
            }
        }
    }

    /// Starts the container through a just-launched agent: the spec is built, and the client attaches,
    /// while a VM boots; the container must not start before the client is there, or early output would
    /// be lost.
    fn open_agent(
        &mut self,
        agent: &mut UnixStream,
        host_pid: i32,
        jail: Option<bulkhead_vm::Confinement>,
        nics: Vec<bulkhead_proto::nic::GuestNic>,
        t0: Instant,
    ) -> Result<(), EngineError> {
        let spec = self.start_spec()?;
        if self.attach_first {
            self.wait_for_attach()?;
        }
        let id = self.container.config.id.clone();
        // Start goes out right behind our Hello: the agent reads Hello then Start, so a booting guest
        // does not wait for a round trip to us once it is up. Both fit in the socket buffer; the write
        // timeout only guards against an agent that never reads.
        agent
            .set_read_timeout(Some(AGENT_HELLO_WAIT))
            .and_then(|()| agent.set_write_timeout(Some(AGENT_HELLO_WAIT)))
            .map_err(EngineError::io("agent socket"))?;
        let mut ahead = vec![Message::Start {
            spec: Box::new(spec),
            nics,
        }];
        if !self.container.config.open_stdin {
            ahead.push(Message::StdinClose { stream: 0 });
        }
        handshake(&mut &*agent, &mut &*agent, &ahead).map_err(|e| EngineError::StartFailed {
            id: id.clone(),
            message: match e {
                // The agent's own words on why it cannot serve, e.g. a guest that cannot mount the rootfs.
                ProtoError::Peer(said) => self.agent_gone(&format!("reported: {said}")),
                e => self.agent_gone(&format!("failed the protocol handshake ({e})")),
            },
        })?;
        tracing::debug!("agent handshake done at {:?}", t0.elapsed());
        agent
            .set_read_timeout(None)
            .and_then(|()| agent.set_write_timeout(None))
            .map_err(EngineError::io("agent socket"))?;
        for msg in self.pending.drain(..) {
            msg.send(agent).map_err(|source| EngineError::Monitor {
                id: id.clone(),
                source,
            })?;
        }
        // The networks are recorded with the pid: one state write (and sync) per start, not two.
        let network = self.network.as_ref().and_then(|n| n.state.clone());
        self.container.update_state(|s| {
            s.pid = Some(host_pid);
            s.pid_start = start_time(host_pid);
            s.jail = jail;
            s.network = network;
        })
    }

    /// Moves frames until the main process has exited. Returns its status, or the reason the agent was
    /// given up on.
    fn relay(
        &mut self,
        agent: &mut UnixStream,
        report: &mut dyn FnMut(&str),
    ) -> (Option<ExitStatus>, Option<String>) {
        // A write to an agent that has just ended (its process exited as a client's stdin closed)
        // fails; what it sent before ending, its exit status among it, is still to be read.
        let mut write_failed: Option<String> = None;
        loop {
            let mut fds = vec![
                PollFd::new(agent.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
            ];
            let client_fds = self.clients.fds();
            fds.extend(
                client_fds
                    .iter()
                    .map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLIN)),
            );
            if let Err(e) = poll(&mut fds, PollTimeout::from(1000u16)) {
                if e != nix::errno::Errno::EINTR {
                    return (None, Some(format!("monitor poll failed: {e}")));
                }
            }
            let ready = readable(&fds);
            let ready_clients: Vec<u64> = client_fds
                .iter()
                .zip(&ready[2..])
                .filter(|(_, r)| **r)
                .map(|((key, _), _)| *key)
                .collect();
            drop(fds);
            if ready[0] {
                match Message::recv(agent) {
                    Ok(msg) => match self.on_agent_message(msg, report) {
                        Ok(Some(status)) => return (Some(status), None),
                        Ok(None) => {}
                        Err(reason) => return (None, Some(reason)),
                    },
                    Err(ProtoError::Closed) => {
                        let why = write_failed.as_deref().unwrap_or("closed the connection");
                        return (None, Some(self.agent_gone(why)));
                    }
                    Err(e) => {
                        return (
                            None,
                            Some(self.agent_gone(&format!("sent a bad frame ({e})"))),
                        )
                    }
                }
            }
            if ready[1] {
                self.accept();
            }
            for key in ready_clients {
                for msg in self.clients.read(key) {
                    if write_failed.is_some() {
                        continue;
                    }
                    if let Err(e) = msg.send(agent) {
                        write_failed = Some(format!("stopped accepting frames ({e})"));
                    }
                }
            }
        }
    }

    /// The runtime spec the agent starts the container from. The seccomp filter is compiled here rather
    /// than by the agent (in a VM guest under binary translation libseccomp takes far longer), and
    /// kept for the next start with the same settings.
    fn start_spec(&self) -> Result<bulkhead_runtime::ContainerSpec, EngineError> {
        let netns = network::netns(&self.container.config, self.network.as_ref());
        let own = self.network.as_ref().and_then(|n| n.state.as_ref());
        let attachments: Vec<_> = network::attachments(self.layout, &self.container.config, own)
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        let mut spec = spec::runtime_spec(
            &self.container.config,
            Path::new("/"),
            netns.as_deref(),
            &attachments,
        )?;
        spec.workload.security.seccomp =
            crate::seccomp_cache::compile(self.layout, &spec.workload.security)?;
        Ok(spec)
    }

    /// Ends the container's networks: namespace, veths, lease, rules, endpoint records; then the
    /// reserved ports are let go.
    fn release_network(&mut self) -> Result<(), EngineError> {
        attach::teardown(self.layout, &self.container.config)?;
        self.network = None;
        Ok(())
    }

    fn agent_gone(&self, what: &str) -> String {
        format!("{} {what}", self.mode.agent_name())
    }

    /// Handles one agent message; `Ok(Some)` once the main process has exited, `Err` if the agent broke
    /// the protocol.
    fn on_agent_message(
        &mut self,
        msg: Message,
        report: &mut dyn FnMut(&str),
    ) -> Result<Option<ExitStatus>, String> {
        match msg {
            Message::Started { stream: 0, pid } => {
                tracing::debug!("main process started");
                if self.mode.agent_pids_are_host_pids() {
                    let _ = self.container.update_state(|s| {
                        s.pid = Some(pid);
                        s.pid_start = start_time(pid);
                    });
                }
                events::container(self.layout, &self.current_config(), "start", &[]);
                report("ok");
            }
            Message::Stdout { stream: 0, data } | Message::Stderr { stream: 0, data }
                if data.is_empty() => {}
            Message::Stdout {
                stream: 0,
                ref data,
            } => {
                let _ = self.log.write(Stream::Stdout, data);
                self.clients.broadcast(&msg);
            }
            Message::Stderr {
                stream: 0,
                ref data,
            } => {
                let _ = self.log.write(Stream::Stderr, data);
                self.clients.broadcast(&msg);
            }
            Message::Exited { stream: 0, status } => {
                tracing::debug!("main process exited: {status:?}");
                return Ok(Some(status));
            }
            Message::Error { stream: 0, message } => {
                let _ = self
                    .container
                    .update_state(|s| s.error = Some(message.clone()));
                report(&format!("error: {message}"));
                self.clients
                    .broadcast(&Message::Error { stream: 0, message });
            }
            // Answers to exec sessions and requests go to the client that owns the stream, and
            // nowhere if none does (it left; or a hostile guest made the stream up).
            Message::Started { stream, .. }
            | Message::Stdout { stream, .. }
            | Message::Stderr { stream, .. }
            | Message::Exited { stream, .. }
            | Message::Error { stream, .. }
            | Message::TopResult { stream, .. }
            | Message::StatsResult { stream, .. }
            | Message::PathStat { stream, .. }
            | Message::NoSuchPath { stream }
            | Message::ArchiveData { stream, .. }
            | Message::ArchiveAck { stream }
            | Message::ArchiveEnd { stream } => self.clients.send_to_owner(stream, &msg),
            other => {
                return Err(format!(
                    "{} sent an unexpected {other:?}",
                    self.agent_gone("").trim()
                ))
            }
        }
        Ok(None)
    }

    fn accept(&mut self) {
        if let Ok((stream, _)) = self.listener.accept() {
            match socket::check_peer(&stream) {
                Ok(()) => self.clients.add(stream),
                Err(refusal) => {
                    tracing::warn!("{refusal}");
                    // In place of Hello, so the client's handshake reports it as the monitor's answer.
                    let _ = stream.set_write_timeout(Some(std::time::Duration::from_secs(1)));
                    let _ = Message::Error {
                        stream: 0,
                        message: refusal,
                    }
                    .send(&mut &stream);
                }
            }
        }
    }

    /// The container's definition as it is now: `rename` may have changed it since we loaded it.
    fn current_config(&self) -> ContainerConfig {
        fsutil::read_json(&self.container.paths.config())
            .unwrap_or_else(|_| self.container.config.clone())
    }

    /// The `die` event, just before the exit is recorded in the state (so whoever waits on the state,
    /// `stop` say, records its own event after this one), and so before a `--rm` container is removed
    /// (a waiter for its removal reads its exit code here).
    fn record_die(&self, code: i32) {
        let config = self.current_config();
        events::container(
            self.layout,
            &config,
            "die",
            &[("exitCode", code.to_string())],
        );
    }

    /// After the exit is recorded: remove if `--rm`, tell clients, and go.
    fn finish(&mut self, code: i32) {
        if self.container.config.auto_remove {
            // Its `destroy` event names it as it is called now.
            self.container.config = self.current_config();
            if let Err(e) = crate::lifecycle::remove_files(self.layout, self.container) {
                tracing::warn!("removing {}: {e}", self.container.config.id);
            }
            // As docker's --rm: the anonymous volumes go with the container.
            let volumes = &self.container.config.volumes;
            if let Err(e) = crate::volumes::remove_anonymous(self.layout, volumes) {
                tracing::warn!("removing the volumes of {}: {e}", self.container.config.id);
            }
        }
        self.clients.finish(&ExitStatus {
            code,
            oom_killed: self.container.state.oom_killed,
            reason: None,
        });
        let _ = std::fs::remove_file(self.container.paths.socket());
        let _ = std::fs::remove_dir(&self.container.paths.run);
    }
}

fn readable(fds: &[PollFd]) -> Vec<bool> {
    fds.iter()
        .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
        .collect()
}

/// Records the end of a run in the container's state.
fn record_exit(container: &mut Container, code: i32, oom: bool, reason: Option<String>) {
    let result = container.update_state(|s| {
        s.status = Status::Exited;
        s.exit_code = Some(code);
        s.oom_killed = oom;
        s.finished_at = Some(Utc::now());
        s.jail = None;
        s.network = None;
        s.paused = false;
        if reason.is_some() {
            s.error = reason;
        }
    });
    if let Err(e) = result {
        tracing::error!("recording the exit of {}: {e}", container.config.id);
    }
}
