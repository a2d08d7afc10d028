//! The host side of one VM: spawns QEMU, connects to the agent's virtio-serial socket and owns the QEMU
//! process until it exits. The stream it returns carries `bulkhead-proto` frames from a hostile guest and
//! is not interpreted here: the caller opens the session with `bulkhead_proto::handshake`, bounded by a
//! read timeout on the stream, like every other session.

use crate::accel::AccelKind;
use crate::io_error::{io_err, IoError};
use crate::qemu;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long QEMU may take to create the agent socket.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);
const SOCKET_POLL: Duration = Duration::from_millis(5);
/// Bytes of `qemu.log` quoted in errors.
const LOG_TAIL: u64 = 2048;

/// Everything needed to boot one container's VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    /// Uncompressed guest kernel (PVH entry).
    pub kernel: PathBuf,
    /// The initramfs whose `/init` is the agent.
    pub initramfs: PathBuf,
    /// The image's erofs artifact, attached read-only (guest `bulkhead_proto::vm::IMAGE_DISK`).
    pub rootfs_artifact: PathBuf,
    /// The container's writable ext4 image (guest `bulkhead_proto::vm::WRITABLE_DISK`).
    pub writable_disk: PathBuf,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub accel: AccelKind,
    /// Per-container directory for `agent.sock`, `console.log` and `qemu.log`.
    pub run_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(
        "starting {}: {source} (install the Debian package qemu-system-x86)",
        qemu::QEMU
    )]
    Spawn {
        #[source]
        source: io::Error,
    },
    #[error(
        "QEMU exited ({status}) before the agent socket was ready; qemu.log ends with:\n{log}"
    )]
    EarlyExit { status: String, log: String },
    #[error("QEMU did not create the agent socket {path} within {timeout:?}")]
    SocketTimeout { path: PathBuf, timeout: Duration },
}

/// A running QEMU process and the stream to its guest agent. Dropping it kills QEMU.
#[derive(Debug)]
pub struct Vm {
    child: Child,
    stream: UnixStream,
    run_dir: PathBuf,
    status: Option<ExitStatus>,
}

impl Vm {
    /// Spawns QEMU for `cfg` in its own process group and connects to the agent socket. Does not wait for
    /// the guest to boot: the agent answers the handshake once it is up.
    pub fn launch(cfg: &VmConfig) -> Result<Vm, VmError> {
        fs::create_dir_all(&cfg.run_dir).map_err(io_err("creating", &cfg.run_dir))?;
        let socket = qemu::agent_socket(&cfg.run_dir);
        match fs::remove_file(&socket) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err("removing stale", &socket)(e).into())
            }
            _ => {}
        }
        let log_path = qemu::qemu_log(&cfg.run_dir);
        let log = File::create(&log_path).map_err(io_err("creating", &log_path))?;
        let mut child = qemu::command(cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|source| VmError::Spawn { source })?;
        let stream = match connect_agent(&socket, SOCKET_TIMEOUT, || child.try_wait()) {
            Ok(stream) => stream,
            Err(e) => {
                kill_group(&child);
                // Reaping can only fail if the child was already reaped; the original error matters more.
                let _ = child.wait();
                return Err(e.with_log(&log_path));
            }
        };
        Ok(Vm {
            child,
            stream,
            run_dir: cfg.run_dir.clone(),
            status: None,
        })
    }

    /// The agent stream. Clone it (`try_clone`) for a reader and a writer half. It reaches end of file
    /// when the guest powers off or QEMU dies.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// QEMU's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The run directory holding `console.log` and `qemu.log`.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Kills QEMU's whole process group (idempotent).
    pub fn kill(&mut self) {
        if self.status.is_none() {
            kill_group(&self.child);
        }
    }

    /// Waits for QEMU to exit. A guest power-off (`reboot=t` + `-no-reboot`) is a successful exit.
    pub fn wait(&mut self) -> Result<ExitStatus, VmError> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self
            .child
            .wait()
            .map_err(io_err("waiting for QEMU in", &self.run_dir))?;
        self.status = Some(status);
        Ok(status)
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
        // Drop cannot report; a failed wait means the child is already gone.
        let _ = self.wait();
    }
}

fn kill_group(child: &Child) {
    // The group may already be gone (ESRCH), which is the goal anyway.
    let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
}

impl VmError {
    fn with_log(self, log_path: &Path) -> VmError {
        match self {
            VmError::EarlyExit { status, .. } => VmError::EarlyExit {
                status,
                log: log_tail(log_path),
            },
            other => other,
        }
    }
}

fn log_tail(path: &Path) -> String {
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL)))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).trim_end().to_string())
    };
    read().unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
}

/// Connects to the agent socket QEMU is about to create, retrying until `timeout`. `exited` reports
/// whether the server process died meanwhile, which ends the wait early.
pub fn connect_agent(
    socket: &Path,
    timeout: Duration,
    mut exited: impl FnMut() -> io::Result<Option<ExitStatus>>,
) -> Result<UnixStream, VmError> {
    let deadline = Instant::now() + timeout;
    loop {
        match UnixStream::connect(socket) {
            Ok(stream) => return Ok(stream),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) => {}
            Err(e) => return Err(io_err("connecting to", socket)(e).into()),
        }
        if let Some(status) = exited().map_err(io_err("checking QEMU for", socket))? {
            return Err(VmError::EarlyExit {
                status: status.to_string(),
                log: String::new(),
            });
        }
        if Instant::now() >= deadline {
            return Err(VmError::SocketTimeout {
                path: socket.to_path_buf(),
                timeout,
            });
        }
        std::thread::sleep(SOCKET_POLL);
    }
}
