//! The container lifecycle behind the CLI: create, start, stop, kill, restart, rm, wait, update, inspect.
//! Every operation reads reconciled state and changes it under the container's lock.

use crate::client::Session;
use crate::config::{CreateOptions, Isolation};
use crate::containers::{self, Container};
use crate::layout::Layout;
pub use crate::spec::parse_signal;
use crate::state::{start_time, ContainerState, Status};
use crate::{fsutil, spec, EngineError};
use bulkhead_image::{ImageId, Store};
use bulkhead_proto::Message;
use bulkhead_runtime::{ProcessSpec, Resources};
use chrono::Utc;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `rm -f` and `stop` wait for a SIGKILLed container to be recorded as exited.
const KILL_WAIT: Duration = Duration::from_secs(15);

/// The engine: containers plus the image store under one root.
pub struct Engine {
    layout: Layout,
    store: Store,
}

impl Engine {
    pub fn open(root: &Path) -> Result<Engine, EngineError> {
        std::fs::create_dir_all(root).map_err(EngineError::io(root))?;
        Ok(Engine {
            layout: Layout::new(root),
            store: open_store(root)?,
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn find(&self, key: &str) -> Result<Container, EngineError> {
        containers::find(&self.layout, key)
    }

    pub fn list(&self, all: bool) -> Result<Vec<Container>, EngineError> {
        let mut list = containers::list(&self.layout)?;
        if !all {
            list.retain(|c| c.state.status == Status::Running);
        }
        Ok(list)
    }

    /// Whether any container (in any state) was created from image `id`.
    pub fn image_in_use(&self, id: &ImageId) -> bool {
        let id = id.to_string();
        containers::configs(&self.layout)
            .map(|l| l.iter().any(|c| c.image_id == id))
            .unwrap_or(true)
    }

    /// Creates a container: its record, its writable disk, and the image's root filesystem artifact.
    pub fn create(&self, opts: &CreateOptions) -> Result<Container, EngineError> {
        let image = self.store.resolve(&opts.image)?;
        let id = containers::new_id()?;
        let name = match &opts.name {
            Some(n) => {
                validate_name(n)?;
                n.clone()
            }
            None => containers::generated_name(&id),
        };
        let config = spec::container_config(&id, name, opts, &image.id.to_string(), &image.config)?;
        // Built now so `start` does not pay for it; cached per image.
        self.store.rootfs_artifact(&image)?;
        let container = containers::create(&self.layout, config)?;
        if let Err(e) = crate::disk::create(
            self.layout.root(),
            &container.paths.disk(),
            container.config.disk_size,
        ) {
            let _ = remove_files(&self.layout, &container);
            return Err(e);
        }
        Ok(container)
    }

    /// Starts a created or exited container under a new monitor. With `attach_first` the monitor waits for
    /// the caller to attach before the process starts, so no output is lost.
    pub fn start(&self, key: &str, attach_first: bool) -> Result<Container, EngineError> {
        let mut c = self.find(key)?;
        let lock = c.lock()?;
        let mut state: ContainerState = fsutil::read_json(&c.paths.state())?;
        crate::state::reconcile(&mut state);
        if state.status == Status::Running {
            return Err(wrong_state(&c, "it is already running"));
        }
        let exe = std::env::current_exe().map_err(EngineError::io("/proc/self/exe"))?;
        let (ready_r, ready_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(EngineError::sys("pipe"))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(c.paths.monitor_log())
            .map_err(EngineError::io(c.paths.monitor_log()))?;
        let mut cmd = Command::new(exe);
        cmd.arg("--root")
            .arg(self.layout.root())
            .arg("__monitor")
            .arg(c.id())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if attach_first {
            cmd.arg("--attach-first");
        }
        let ready_raw = std::os::fd::AsRawFd::as_raw_fd(&ready_w);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                // dup2 clears close-on-exec on fd 3 only.
                if libc::dup2(ready_raw, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(EngineError::io("spawning the monitor"))?;
        drop(ready_w);
        let pid = child.id() as i32;
        state = ContainerState {
            status: Status::Running,
            monitor_pid: Some(pid),
            monitor_start: start_time(pid),
            started_at: Some(Utc::now()),
            restart_count: state.restart_count + u32::from(state.started_at.is_some()),
            ..ContainerState::default()
        };
        fsutil::write_json(&c.paths.state(), &state)?;
        drop(lock);
        // The monitor is reparented to init when we exit; it is never waited on here.
        drop(child);
        let mut line = String::new();
        let _ = std::io::BufReader::new(std::fs::File::from(ready_r)).read_line(&mut line);
        let line = line.trim();
        c = self.find(c.id())?;
        match line {
            "ok" => Ok(c),
            "" => Err(EngineError::StartFailed {
                id: c.config.id.clone(),
                message: format!(
                    "the monitor exited without reporting (see {})",
                    c.paths.monitor_log().display()
                ),
            }),
            other => Err(EngineError::StartFailed {
                id: c.config.id.clone(),
                message: other.trim_start_matches("error: ").to_string(),
            }),
        }
    }

    /// Sends `signal` to the container's main process.
    pub fn kill(&self, key: &str, signal: Signal) -> Result<(), EngineError> {
        let c = self.find(key)?;
        if c.state.status != Status::Running {
            return Err(wrong_state(&c, "cannot be signalled"));
        }
        signal_container(&c, signal)
    }

    /// Stop signal, then SIGKILL after `timeout` seconds; returns once the exit is recorded.
    pub fn stop(&self, key: &str, timeout: Option<u64>) -> Result<Container, EngineError> {
        let c = self.find(key)?;
        if c.state.status != Status::Running {
            return Ok(c);
        }
        let signal = spec::parse_signal(&c.config.stop_signal)?;
        let grace = Duration::from_secs(timeout.unwrap_or(c.config.stop_timeout));
        if signal_container(&c, signal).is_ok() {
            if let Some(done) = self.wait_exit(c.id(), grace)? {
                return Ok(done);
            }
        }
        signal_container(&c, Signal::SIGKILL)?;
        self.wait_exit(c.id(), KILL_WAIT)?
            .ok_or_else(|| wrong_state(&c, "did not exit after SIGKILL"))
    }

    pub fn restart(&self, key: &str, timeout: Option<u64>) -> Result<Container, EngineError> {
        let c = self.stop(key, timeout)?;
        self.start(c.id(), false)
    }

    /// Waits until the container is no longer running and returns its exit code.
    pub fn wait(&self, key: &str) -> Result<i32, EngineError> {
        let c = self.find(key)?;
        loop {
            match self.wait_exit(c.id(), Duration::from_secs(3600))? {
                Some(done) => return Ok(done.state.exit_code.unwrap_or(0)),
                None => continue,
            }
        }
    }

    /// Polls until not running; `None` on timeout. A container removed meanwhile (`--rm`) counts as exited.
    fn wait_exit(&self, id: &str, timeout: Duration) -> Result<Option<Container>, EngineError> {
        let deadline = Instant::now() + timeout;
        loop {
            match Container::load(&self.layout, id) {
                Ok(c) if c.state.status != Status::Running => return Ok(Some(c)),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Removes a container; a running one only with `force` (it is killed first).
    pub fn remove(&self, key: &str, force: bool) -> Result<String, EngineError> {
        let c = self.find(key)?;
        if c.state.status == Status::Running {
            if !force {
                return Err(wrong_state(&c, "stop it first or use rm -f"));
            }
            let _ = signal_container(&c, Signal::SIGKILL);
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
        remove_files(&self.layout, &c)?;
        Ok(c.config.id)
    }

    /// Changes resources (live if running) and, while stopped, the isolation level.
    pub fn update(
        &self,
        key: &str,
        resources: Resources,
        isolation: Option<Isolation>,
    ) -> Result<Container, EngineError> {
        let mut c = self.find(key)?;
        let lock = c.lock()?;
        let mut state: ContainerState = fsutil::read_json(&c.paths.state())?;
        crate::state::reconcile(&mut state);
        if let Some(iso) = isolation {
            if state.status == Status::Running {
                return Err(wrong_state(
                    &c,
                    "isolation can only change while it is stopped",
                ));
            }
            spec::check_isolation(&c.config, iso)?;
            c.config.isolation = iso;
        }
        let mut merged = c.config.resources;
        merged.memory_bytes = resources.memory_bytes.or(merged.memory_bytes);
        merged.cpus = resources.cpus.or(merged.cpus);
        merged.pids_limit = resources.pids_limit.or(merged.pids_limit);
        spec::validate_resources(&merged)?;
        c.config.resources = merged;
        if resources.memory_bytes.is_some() {
            c.config.vm.memory_mib = spec::vm_memory_mib(merged.memory_bytes);
        }
        if resources.cpus.is_some() {
            c.config.vm.vcpus = spec::vm_vcpus(merged.cpus);
        }
        c.save_config()?;
        drop(lock);
        let live = resources != Resources::default() && state.status == Status::Running;
        if live {
            Session::connect(&c)?.send(&Message::Update { resources: merged })?;
        }
        Ok(c)
    }

    /// The process an `exec` runs: the container's env, user and cwd unless overridden.
    pub fn exec_process(
        &self,
        c: &Container,
        args: Vec<String>,
        env: &[String],
        workdir: Option<String>,
        user: Option<String>,
        tty: bool,
    ) -> ProcessSpec {
        let mut merged = c.config.process.env.clone();
        for e in env {
            let key = e.split('=').next().unwrap_or_default();
            merged.retain(|x| x.split('=').next() != Some(key));
            merged.push(e.clone());
        }
        ProcessSpec {
            args,
            env: merged,
            cwd: workdir.unwrap_or_else(|| c.config.process.cwd.clone()),
            user: user.unwrap_or_else(|| c.config.process.user.clone()),
            terminal: tty,
            rlimits: c.config.process.rlimits.clone(),
        }
    }

    /// Docker-shaped `inspect` output.
    pub fn inspect(&self, key: &str) -> Result<serde_json::Value, EngineError> {
        let c = self.find(key)?;
        let (cfg, st) = (&c.config, &c.state);
        let time = |t: Option<chrono::DateTime<Utc>>| {
            t.map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
        };
        Ok(json!({
            "Id": cfg.id,
            "Name": format!("/{}", cfg.name),
            "Created": cfg.created.to_rfc3339(),
            "Path": cfg.process.args.first(),
            "Args": cfg.process.args.get(1..).unwrap_or_default(),
            "State": {
                "Status": st.status.to_string(),
                "Running": st.status == Status::Running,
                "Pid": if st.status == Status::Running { st.pid.unwrap_or(0) } else { 0 },
                "ExitCode": st.exit_code.unwrap_or(0),
                "OOMKilled": st.oom_killed,
                "Error": st.error.clone().unwrap_or_default(),
                "StartedAt": time(st.started_at),
                "FinishedAt": time(st.finished_at),
            },
            "Image": cfg.image_id,
            "ImageName": cfg.image,
            "Isolation": cfg.isolation.to_string(),
            "RestartCount": st.restart_count,
            "LogPath": c.paths.log(),
            "HostConfig": {
                "Isolation": cfg.isolation.to_string(),
                "AutoRemove": cfg.auto_remove,
                "Privileged": cfg.security.privileged,
                "ReadonlyRootfs": cfg.readonly_rootfs,
                "CapAdd": cfg.security.cap_add,
                "CapDrop": cfg.security.cap_drop,
                "NetworkMode": format!("{:?}", cfg.network).to_lowercase(),
                "Memory": cfg.resources.memory_bytes.unwrap_or(0),
                "NanoCpus": cfg.resources.cpus.map(|c| (c * 1e9) as u64).unwrap_or(0),
                "PidsLimit": cfg.resources.pids_limit,
                "Mounts": cfg.mounts,
                "UsernsMode": cfg.userns,
                "VmMemoryMiB": cfg.vm.memory_mib,
                "VmVcpus": cfg.vm.vcpus,
                "VmAccel": cfg.vm.accel,
            },
            "Config": {
                "Hostname": cfg.hostname,
                "User": cfg.process.user,
                "Env": cfg.process.env,
                "Cmd": cfg.process.args,
                "WorkingDir": cfg.process.cwd,
                "Tty": cfg.process.terminal,
                "OpenStdin": cfg.open_stdin,
                "StopSignal": cfg.stop_signal,
                "StopTimeout": cfg.stop_timeout,
                "Image": cfg.image,
            },
        }))
    }
}

/// Environment variable that caps the bytes unpacked from one image (zip-bomb guard); docker-style size.
/// The CLI's `--max-unpacked-size` sets it, so monitors it starts inherit the same limit.
pub const MAX_UNPACKED_ENV: &str = "BULKHEAD_MAX_UNPACKED_SIZE";

/// Opens the image store under `root` with the limits configured for this process.
pub(crate) fn open_store(root: &Path) -> Result<Store, EngineError> {
    let store = Store::open(root)?;
    match std::env::var(MAX_UNPACKED_ENV) {
        Ok(v) => {
            let bytes = v.parse::<u64>().map_err(|_| {
                EngineError::InvalidOption(format!(
                    "{MAX_UNPACKED_ENV}={v} is not a number of bytes"
                ))
            })?;
            let limits = bulkhead_image::Limits {
                max_unpacked_bytes: bytes,
                ..store.limits().clone()
            };
            Ok(store.with_limits(limits))
        }
        Err(_) => Ok(store),
    }
}

/// Signals the main process through the monitor; if the monitor is gone, signals the host pid directly.
fn signal_container(c: &Container, signal: Signal) -> Result<(), EngineError> {
    match Session::connect(c) {
        Ok(mut s) => s.send(&Message::Signal {
            stream: 0,
            signal: signal as i32,
        }),
        Err(e) => match c.state.pid {
            Some(pid) if c.state.process_alive() => kill(Pid::from_raw(pid), signal)
                .map_err(EngineError::sys(format!("signalling {pid}"))),
            _ => Err(e),
        },
    }
}

fn wrong_state(c: &Container, what: &str) -> EngineError {
    EngineError::WrongState {
        id: c.config.id.clone(),
        status: c.state.status.to_string(),
        what: what.to_string(),
    }
}

fn validate_name(name: &str) -> Result<(), EngineError> {
    let ok = name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok && !(name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit())) {
        Ok(())
    } else {
        Err(EngineError::InvalidOption(format!(
            "invalid container name \"{name}\": use [a-zA-Z0-9][a-zA-Z0-9_.-]*"
        )))
    }
}

/// Removes everything a container has on the host: mounts, cgroup, sockets, files. Idempotent.
pub(crate) fn remove_files(layout: &Layout, c: &Container) -> Result<(), EngineError> {
    bulkhead_runtime::rootfs::disassemble(&c.paths.mnt())?;
    let _ = bulkhead_runtime::cgroups::cleanup(&spec::host_cgroup_name(&c.config.id));
    let _ = std::fs::remove_dir_all(&c.paths.run);
    let _guard = fsutil::lock(&layout.containers_lock())?;
    // Renamed first so a crash mid-delete never leaves a half-readable container.
    let doomed = layout.containers().join(format!(".rm-{}", c.config.id));
    match std::fs::rename(&c.paths.dir, &doomed) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(EngineError::io(&c.paths.dir)(e)),
    }
    std::fs::remove_dir_all(&doomed).map_err(EngineError::io(&doomed))
}
