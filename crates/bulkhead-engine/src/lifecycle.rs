//! The container half of the facade: create, start, attach, exec, stop, kill, restart, wait, rm, update,
//! list, inspect, logs. Every operation reads reconciled state and changes it under the container's lock.

use crate::config::{CreateOptions, Isolation};
use crate::containers::{self, Container};
use crate::images::{PullEvent, PullEvents};
use crate::isolation::{self, VmSizing};
use crate::session::Session;
use crate::state::{ContainerState, Status};
use crate::state_watch::StateWatch;
use crate::volumes::{self, MountPlan};
use crate::{env, events, fsutil, monitor, spec, Engine, EngineError};
use bulkhead_proto::Message;
use bulkhead_runtime::{ProcessSpec, Resources};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The longest a waiter goes without reading the record again (a change wakes it at once, see
/// [`StateWatch`]); also how often `wait_for` asks whether its caller still waits.
const RECHECK: Duration = Duration::from_millis(100);

/// How long `rm -f` and `stop` wait for a SIGKILLed container to be recorded as exited.
const KILL_WAIT: Duration = Duration::from_secs(15);

/// Whether `start` lets the process run at once or waits for the caller to attach first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    Detached,
    /// The monitor holds the process until a client attaches, so no early output is lost.
    AttachFirst,
}

/// What `exec` runs; unset fields default to the container's.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub args: Vec<String>,
    /// `KEY=VALUE` entries over the container's environment (a bare `KEY` removes it).
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub tty: bool,
    /// `(rows, cols)` of the client's terminal, set on the pty before the process starts (with `tty`).
    pub console_size: Option<(u16, u16)>,
}

/// Everything known about one container, for `inspect` and the API's container JSON.
#[derive(Debug, Clone)]
pub struct ContainerDetails {
    pub container: Container,
    pub log_path: PathBuf,
    /// The guest's size, for VM isolation.
    pub vm: Option<VmSizing>,
}

/// What [`Engine::wait_for`] waits for, as docker's `condition` of `POST /containers/{id}/wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

/// How the awaited run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOutcome {
    pub exit_code: i32,
    /// Why the engine (not the process) ended or could not start the run.
    pub error: Option<String>,
}

/// How much of the log `logs` gives, and whether it follows.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogOptions {
    /// Only the last N records.
    pub tail: Option<usize>,
    pub follow: bool,
}

impl Engine {
    pub fn find(&self, key: &str) -> Result<Container, EngineError> {
        containers::find(&self.layout, key)
    }

    /// Containers, newest first; only running ones unless `all`.
    pub fn list(&self, all: bool) -> Result<Vec<Container>, EngineError> {
        let mut list = containers::list(&self.layout)?;
        if !all {
            list.retain(|c| c.state.status == Status::Running);
        }
        Ok(list)
    }

    /// Creates a container: its record, its writable disk, and the image's root filesystem artifact. With
    /// `opts.pull` set, an image that is not in the store is pulled first (progress goes to `progress`).
    /// The isolation is what the policy decides for the image and the requested isolation.
    pub fn create(
        &self,
        opts: &CreateOptions,
        progress: PullEvents,
    ) -> Result<Container, EngineError> {
        let image = match (self.store.resolve(&opts.image), &opts.pull) {
            (Ok(image), _) => image,
            (Err(bulkhead_image::ImageError::NotFound { .. }), Some(settings)) => {
                progress(&PullEvent::NotFoundLocally {
                    reference: opts.image.clone(),
                });
                self.pull(&opts.image, settings, progress)?;
                self.store.resolve(&opts.image)?
            }
            (Err(e), _) => return Err(e.into()),
        };
        let isolation = self.config.policy.decide(
            &opts.image,
            || self.policy_names(&opts.image, &image.names),
            opts.isolation,
        )?;
        let id = containers::new_id()?;
        let name = match &opts.name {
            Some(n) => {
                validate_name(n)?;
                n.clone()
            }
            None => containers::generated_name(&id),
        };
        let plan = MountPlan::parse(
            &self.layout,
            &opts.volumes,
            &opts.mounts,
            spec::tmpfs_mounts(opts)?,
            image
                .config
                .config()
                .as_ref()
                .and_then(|c| c.volumes().as_deref())
                .unwrap_or_default(),
        )?;
        let mut config = spec::container_config(
            &id,
            name,
            opts,
            isolation,
            &image.id.to_string(),
            &image.config,
            &plan,
        )?;
        self.resolve_network(&mut config, opts)?;
        // Built now so `start` does not pay for it; cached per image. Copy-up reads it too.
        let artifact = self.store.rootfs_artifact(&image)?;
        // Everything is made in a directory `list` does not see and renamed into place last: a create
        // killed at any point leaves no container (a later `list` sweeps the directory).
        let staged = containers::stage(&self.layout, &id)?;
        crate::disk::create(self.layout.root(), &staged.paths.disk(), config.disk_size)?;
        // Held until the record names the volumes, so `volume rm` cannot slip in between.
        let guard = MountPlan::lock(&self.layout)?;
        let made = plan.realize(&self.layout, &artifact, &guard)?;
        let container = staged.commit(&self.layout, config).inspect_err(|_| {
            plan.undo(&self.layout, &made);
        })?;
        drop(guard);
        events::container(&self.layout, &container.config, "create", &[]);
        Ok(container)
    }

    /// Starts a created or exited container under a new monitor.
    pub fn start(&self, key: &str, mode: StartMode) -> Result<Container, EngineError> {
        let c = self.find(key)?;
        // The policy may have changed since the container was made.
        self.check_policy(&c, c.config.isolation)?;
        let lock = c.lock()?;
        let mut state: ContainerState = fsutil::read_json(&c.paths.state())?;
        crate::state::reconcile(&mut state);
        if state.status == Status::Running {
            return Err(wrong_state(&c, "it is already running"));
        }
        let launch = monitor::launch::spawn(&self.config, &c, mode == StartMode::AttachFirst)?;
        state = ContainerState {
            status: Status::Running,
            monitor_pid: Some(launch.pid),
            monitor_start: crate::state::start_time(launch.pid),
            started_at: Some(chrono::Utc::now()),
            restart_count: state.restart_count + u32::from(state.started_at.is_some()),
            disk_vm_written: state.disk_vm_written,
            ..ContainerState::default()
        };
        fsutil::write_json(&c.paths.state(), &state)?;
        drop(lock);
        let report = launch.wait_ready();
        let c = self.find(c.id())?;
        report.map_err(|message| EngineError::StartFailed {
            id: c.config.id.clone(),
            message,
        })?;
        Ok(c)
    }

    /// Connects to a running container's main process; with `stdin` the caller also feeds its input.
    pub fn attach(&self, key: &str, stdin: bool) -> Result<Session, EngineError> {
        let c = self.find(key)?;
        let mut session = Session::connect(&c)?;
        session.send(&Message::Attach { stdin })?;
        Ok(session)
    }

    /// Connects for an exec session in a running container, and the process it is to run (start it
    /// with [`Session::start_exec`]).
    pub fn exec(
        &self,
        key: &str,
        opts: &ExecOptions,
    ) -> Result<(Session, ProcessSpec), EngineError> {
        let c = self.find(key)?;
        if c.state.status != Status::Running {
            return Err(wrong_state(&c, "exec needs a running container"));
        }
        let process = ProcessSpec {
            args: opts.args.clone(),
            env: env::merge(&c.config.workload.process.env, &opts.env)?,
            cwd: opts
                .workdir
                .clone()
                .unwrap_or_else(|| c.config.workload.process.cwd.clone()),
            user: opts
                .user
                .clone()
                .unwrap_or_else(|| c.config.workload.process.user.clone()),
            terminal: opts.tty,
            rlimits: c.config.workload.process.rlimits.clone(),
            console_size: opts.console_size.filter(|_| opts.tty),
        };
        Ok((Session::connect(&c)?, process))
    }

    /// Sends `signal` to the container's main process.
    pub fn kill(&self, key: &str, signal: Signal) -> Result<(), EngineError> {
        let c = self.find(key)?;
        if c.state.status != Status::Running {
            return Err(wrong_state(&c, "cannot be signalled"));
        }
        refuse_paused(&c)?;
        signal_container(&self.layout, &c, signal)
    }

    /// Stop signal, then SIGKILL after `timeout` seconds; returns once the exit is recorded.
    pub fn stop(&self, key: &str, timeout: Option<u64>) -> Result<Container, EngineError> {
        let c = self.find(key)?;
        if c.state.status != Status::Running {
            return Ok(c);
        }
        refuse_paused(&c)?;
        let signal = spec::parse_signal(&c.config.stop_signal)?;
        let grace = Duration::from_secs(timeout.unwrap_or(c.config.stop_timeout));
        let stopped = |done: Container| {
            events::container(&self.layout, &done.config, "stop", &[]);
            done
        };
        let exited = |timeout| match self.wait_exit(c.id(), timeout) {
            // `--rm`: its monitor removed it once it had exited; it is stopped.
            Err(EngineError::NoSuchContainer(_)) => Ok(Some(c.clone())),
            other => other,
        };
        if signal_container(&self.layout, &c, signal).is_ok() {
            if let Some(done) = exited(grace)? {
                return Ok(stopped(done));
            }
        }
        signal_container(&self.layout, &c, Signal::SIGKILL)?;
        exited(KILL_WAIT)?
            .map(stopped)
            .ok_or_else(|| wrong_state(&c, "did not exit after SIGKILL"))
    }

    pub fn restart(&self, key: &str, timeout: Option<u64>) -> Result<Container, EngineError> {
        let c = self.stop(key, timeout)?;
        let c = self.start(c.id(), StartMode::Detached)?;
        events::container(&self.layout, &c.config, "restart", &[]);
        Ok(c)
    }

    /// Waits until the container is no longer running and returns its exit code (`bulkhead wait`).
    pub fn wait(&self, key: &str) -> Result<i32, EngineError> {
        Ok(self
            .wait_for(key, WaitCondition::NotRunning, &|| true)?
            .exit_code)
    }

    /// docker's wait conditions. NotRunning: returns at once if not running. NextExit: waits for the exit
    /// after now (a created container: its first run's exit). Removed: waits until the container is gone
    /// (--rm) and still reports its exit code (from the die event). `keep_waiting` is polled (~25 ms);
    /// when it returns false, the wait ends with EngineError::Cancelled (new variant).
    pub fn wait_for(
        &self,
        key: &str,
        condition: WaitCondition,
        keep_waiting: &dyn Fn() -> bool,
    ) -> Result<WaitOutcome, EngineError> {
        let first = self.find(key)?;
        let id = first.config.id.clone();
        // A run ends by recording its finish time; a start clears it. A finish time other than the one
        // seen now is an exit after now.
        let seen_finish = first.state.finished_at;
        // Gone (`--rm`, or removed by someone): its last run's exit is in the event log.
        let gone = || -> Result<WaitOutcome, EngineError> {
            Ok(WaitOutcome {
                exit_code: events::last_exit_code(&self.layout, &id)?.unwrap_or(0),
                error: None,
            })
        };
        let watch = StateWatch::new(&self.layout.container(&id).dir);
        loop {
            if condition == WaitCondition::Removed {
                // Only its existence matters: a stat per poll, for many `run --rm` clients at once.
                if !self.layout.container(&id).config().exists() {
                    return gone();
                }
            } else {
                let c = match Container::load(&self.layout, &id) {
                    Ok(c) => c,
                    Err(EngineError::NoSuchContainer(_)) => return gone(),
                    Err(e) => return Err(e),
                };
                let ended = c.state.status != Status::Running
                    && (condition == WaitCondition::NotRunning
                        || (c.state.finished_at.is_some() && c.state.finished_at != seen_finish));
                if ended {
                    return Ok(WaitOutcome {
                        exit_code: c.state.exit_code.unwrap_or(0),
                        error: c.state.error,
                    });
                }
            }
            if !keep_waiting() {
                return Err(EngineError::Cancelled);
            }
            watch.wait(RECHECK);
        }
    }

    /// Renames a container, running or not: docker's name rules, and the name must be free. A running
    /// container's endpoint records take the new name, so its networks' name responders answer it.
    pub fn rename(&self, key: &str, new_name: &str) -> Result<(), EngineError> {
        validate_name(new_name)?;
        let mut c = self.find(key)?;
        let old_name = c.config.name.clone();
        if old_name == new_name {
            return Err(EngineError::InvalidOption(format!(
                "renaming a container with the same name as its current name ({new_name})"
            )));
        }
        // The names lock, then the container's: no create or other rename takes the name meanwhile.
        let _names = fsutil::lock(&self.layout.containers_lock())?;
        if containers::configs(&self.layout)?
            .iter()
            .any(|other| other.name == new_name)
        {
            return Err(EngineError::NameInUse(new_name.to_string()));
        }
        let _lock = c.lock()?;
        c.config = fsutil::read_json(&c.paths.config())?;
        c.config.name = new_name.to_string();
        c.save_config()?;
        crate::networks::rename_endpoints(&self.layout, &c.config)?;
        events::container(
            &self.layout,
            &c.config,
            "rename",
            &[("oldName", format!("/{old_name}"))],
        );
        Ok(())
    }

    /// Polls until not running; `None` on timeout. A container removed meanwhile (`--rm`) is an error.
    fn wait_exit(&self, id: &str, timeout: Duration) -> Result<Option<Container>, EngineError> {
        let deadline = Instant::now() + timeout;
        let watch = StateWatch::new(&self.layout.container(id).dir);
        loop {
            let c = Container::load(&self.layout, id)?;
            if c.state.status != Status::Running {
                return Ok(Some(c));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            watch.wait(RECHECK);
        }
    }

    /// Removes a container; a running one only with `force` (it is killed first), and with
    /// `anonymous_volumes` its anonymous volumes no other container uses (`rm -v`). Returns its id.
    pub fn remove(
        &self,
        key: &str,
        force: bool,
        anonymous_volumes: bool,
    ) -> Result<String, EngineError> {
        let c = self.find(key)?;
        if c.state.status == Status::Running {
            if !force {
                return Err(wrong_state(&c, "stop it first or force the removal"));
            }
            if c.state.paused {
                // A frozen process cannot die.
                crate::pause::freeze(&c, false)?;
            }
            let _ = signal_container(&self.layout, &c, Signal::SIGKILL);
            match self.wait_exit(c.id(), KILL_WAIT) {
                Ok(Some(_)) | Err(EngineError::NoSuchContainer(_)) => {}
                Ok(None) => return Err(wrong_state(&c, "did not exit after SIGKILL")),
                Err(e) => return Err(e),
            }
        }
        let c = match Container::load(&self.layout, c.id()) {
            Ok(c) => c,
            Err(EngineError::NoSuchContainer(_)) => return Ok(c.config.id), // removed by its own --rm
            Err(e) => return Err(e),
        };
        self.remove_files(&c)?;
        if anonymous_volumes {
            volumes::remove_anonymous(&self.layout, &c.config.volumes)?;
        }
        Ok(c.config.id)
    }

    /// Changes resources (live if running) and, while stopped, the isolation level (within the policy).
    /// A switch that would turn settings the old mode confined into host privileges is refused unless
    /// `allow_host_privileges`.
    pub fn update(
        &self,
        key: &str,
        resources: Resources,
        isolation: Option<Isolation>,
        allow_host_privileges: bool,
    ) -> Result<Container, EngineError> {
        let mut c = self.find(key)?;
        let lock = c.lock()?;
        let mut state: ContainerState = fsutil::read_json(&c.paths.state())?;
        crate::state::reconcile(&mut state);
        if let Some(iso) = isolation {
            if c.config.rootfs_dir.is_some() && iso != c.config.isolation {
                return Err(EngineError::InvalidOption(format!(
                    "container {} runs on its caller's root filesystem directory (an OCI bundle), \
                     whose isolation is fixed when it is created: create it again with {iso} isolation",
                    c.config.name
                )));
            }
            if state.status == Status::Running {
                return Err(wrong_state(
                    &c,
                    "isolation can only change while it is stopped",
                ));
            }
            self.check_policy(&c, iso)?;
            let carried = isolation::mode(c.config.isolation).confined_privileges(&c.config);
            if iso != c.config.isolation && !carried.is_empty() && !allow_host_privileges {
                return Err(EngineError::WouldWidenPrivileges {
                    id: c.config.id.clone(),
                    target: iso,
                    settings: carried,
                });
            }
            c.config.isolation = iso;
        }
        let mut merged = c.config.workload.resources;
        merged.memory_bytes = resources.memory_bytes.or(merged.memory_bytes);
        merged.cpus = resources.cpus.or(merged.cpus);
        merged.pids_limit = resources.pids_limit.or(merged.pids_limit);
        spec::validate_resources(&merged)?;
        c.config.workload.resources = merged;
        isolation::mode(c.config.isolation).check(&c.config)?;
        c.save_config()?;
        drop(lock);
        let live = resources != Resources::default() && state.status == Status::Running;
        if live {
            Session::connect(&c)?.send(&Message::Update { resources: merged })?;
        }
        Ok(c)
    }

    pub fn inspect(&self, key: &str) -> Result<ContainerDetails, EngineError> {
        let container = self.find(key)?;
        Ok(ContainerDetails {
            log_path: container.paths.log(),
            vm: isolation::mode(container.config.isolation).sizing(&container.config),
            container,
        })
    }

    /// Passes the container's log records to `sink`; with `follow`, also those written until it stops.
    pub fn logs(
        &self,
        key: &str,
        opts: LogOptions,
        sink: impl FnMut(&crate::logs::Record) -> std::io::Result<()>,
    ) -> Result<(), EngineError> {
        self.logs_while(key, opts, || true, sink)
    }

    /// As [`Engine::logs`], and a follow also ends once `keep_following()` turns false: a server's
    /// client that went away while the container printed nothing.
    pub fn logs_while(
        &self,
        key: &str,
        opts: LogOptions,
        keep_following: impl Fn() -> bool,
        sink: impl FnMut(&crate::logs::Record) -> std::io::Result<()>,
    ) -> Result<(), EngineError> {
        let c = self.find(key)?;
        let id = c.config.id.clone();
        let running = || {
            keep_following()
                && Container::load(&self.layout, &id)
                    .map(|c| c.state.status == Status::Running)
                    .unwrap_or(false)
        };
        crate::logs::read(&c.paths.log(), opts.tail, opts.follow, running, sink)
    }

    /// Refuses `isolation` for `c` when the policy requires a VM for its image.
    fn check_policy(&self, c: &Container, isolation: Isolation) -> Result<(), EngineError> {
        if c.config.rootfs_dir.is_some() {
            let (subject, names) = crate::bundle::policy_subject(&c.config.image);
            self.config
                .policy
                .decide(subject, || names, Some(isolation))?;
            return Ok(());
        }
        let names = || {
            let known = self
                .store
                .resolve(&c.config.image_id)
                .map(|image| image.names)
                .unwrap_or_default();
            self.policy_names(&c.config.image, &known)
        };
        self.config
            .policy
            .decide(&c.config.image, names, Some(isolation))?;
        Ok(())
    }

    /// The names the policy matches an image by, as `REGISTRY/REPOSITORY`: the name the caller used when
    /// the store knows the image by it; otherwise (an image id, a digest) every name the store has for it.
    fn policy_names(&self, reference: &str, store_names: &[String]) -> Vec<String> {
        let name_of = |r: &str| {
            r.parse::<bulkhead_image::Reference>()
                .ok()
                .map(|r| r.name())
        };
        let known: Vec<String> = store_names.iter().filter_map(|n| name_of(n)).collect();
        match name_of(reference) {
            Some(given) if known.contains(&given) => vec![given],
            given => known.into_iter().chain(given).collect(),
        }
    }

    /// Fills in the container's networks from `--network`, `--network-alias` and `-p`, by the records of
    /// this root (the default `bridge` network is made on first use).
    fn resolve_network(
        &self,
        config: &mut crate::ContainerConfig,
        opts: &CreateOptions,
    ) -> Result<(), EngineError> {
        use crate::networks::{self, NetworkAttachment, DEFAULT_NETWORK};
        use crate::spec::NetworkRequest;
        let request = spec::parse_network(opts.network.as_deref())?;
        if !opts.network_aliases.is_empty()
            && !matches!(&request, NetworkRequest::Network(n) if n != DEFAULT_NETWORK)
        {
            return Err(EngineError::InvalidOption(
                "network-scoped aliases are supported only on user-defined networks".into(),
            ));
        }
        config.network_mode = match request {
            NetworkRequest::None => "none".into(),
            NetworkRequest::Host => "host".into(),
            NetworkRequest::Namespace(path) => format!("ns:{}", path.display()),
            NetworkRequest::Container(other) => {
                format!(
                    "container:{}",
                    containers::find(&self.layout, &other)?.config.id
                )
            }
            NetworkRequest::Network(name) => {
                let record = networks::find(&self.layout, &name, self.config.bridge_subnet)?;
                config.networks = vec![NetworkAttachment {
                    network_id: record.id.clone(),
                    aliases: opts.network_aliases.clone(),
                }];
                record.name
            }
        };
        isolation::mode(config.isolation).check(config)
    }

    /// Removes everything a container has on the host: mounts, cgroup, sockets, files. Idempotent.
    pub(crate) fn remove_files(&self, c: &Container) -> Result<(), EngineError> {
        remove_files(&self.layout, c)
    }
}

/// See [`Engine::remove_files`]; the monitor of a `--rm` container calls this too.
pub(crate) fn remove_files(
    layout: &crate::layout::Layout,
    c: &Container,
) -> Result<(), EngineError> {
    crate::networks::attach::teardown(layout, &c.config)?;
    for mode in isolation::all_modes() {
        mode.remove_leftovers(&c.config, &c.paths)?;
    }
    let _ = std::fs::remove_dir_all(&c.paths.run);
    let _guard = fsutil::lock(&layout.containers_lock())?;
    // Renamed first so a crash mid-delete never leaves a half-readable container.
    let doomed = layout.containers().join(format!(".rm-{}", c.config.id));
    match std::fs::rename(&c.paths.dir, &doomed) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(EngineError::io(&c.paths.dir)(e)),
    }
    events::container(layout, &c.config, "destroy", &[]);
    match std::fs::remove_dir_all(&doomed) {
        // `list` sweeps a `.rm-` directory a crashed removal left; it may have just taken this one.
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(EngineError::io(&doomed)(e)),
        _ => Ok(()),
    }
}

/// Signals the main process through the monitor; if the monitor is gone, signals the host pid directly.
/// A signal sent is a `kill` event, as docker records it (`stop` and `rm -f` included).
fn signal_container(
    layout: &crate::layout::Layout,
    c: &Container,
    signal: Signal,
) -> Result<(), EngineError> {
    let sent = match Session::connect(c) {
        Ok(mut s) => s.send(&Message::Signal {
            stream: 0,
            signal: signal as i32,
        }),
        Err(e) => match c.state.pid {
            Some(pid) if c.state.process_alive() => kill(Pid::from_raw(pid), signal)
                .map_err(EngineError::sys(format!("signalling {pid}"))),
            _ => Err(e),
        },
    };
    if sent.is_ok() {
        let number = (signal as i32).to_string();
        events::container(layout, &c.config, "kill", &[("signal", number)]);
    }
    sent
}

/// docker's rule: a paused container is unpaused before it is stopped or killed.
fn refuse_paused(c: &Container) -> Result<(), EngineError> {
    if c.state.paused {
        return Err(wrong_state(
            c,
            "it is paused: unpause it before stop or kill",
        ));
    }
    Ok(())
}

pub(crate) fn wrong_state(c: &Container, what: &str) -> EngineError {
    EngineError::WrongState {
        id: c.config.id.clone(),
        status: c.state.status.to_string(),
        what: what.to_string(),
    }
}

pub(crate) fn validate_name(name: &str) -> Result<(), EngineError> {
    if crate::docker_names::is_valid(name, 128)
        && !(name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()))
    {
        Ok(())
    } else {
        Err(EngineError::InvalidOption(format!(
            "invalid container name \"{name}\": use [a-zA-Z0-9][a-zA-Z0-9_.-]*"
        )))
    }
}
