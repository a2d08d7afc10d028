//! The host side of one VM: starts QEMU in its jail ([`crate::jail`]) with the disks, the agent's socket,
//! the log pipes and the taps of its network namespace ([`crate::network`]) as descriptors, and owns the QEMU process until it exits. The stream it returns
//! carries `bulkhead-proto` frames from a hostile guest and is not interpreted here: the caller opens the
//! session with `bulkhead_proto::handshake`, bounded by a read timeout on the stream, like every other
//! session.

use crate::accel::AccelKind;
use crate::io_error::{io_err, IoError};
use crate::jail::{self, Confinement, JailError, JailSpec, Jailed};
use crate::log_pump::LogPump;
use crate::network::{self, NetworkError};
use crate::qemu;
use bulkhead_proto::nic::GuestNic;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// Bytes of `qemu.log` quoted in errors.
const LOG_TAIL: u64 = 2048;
const REAP_POLL: Duration = Duration::from_millis(10);

/// Everything needed to boot one container's VM.
#[derive(Debug, Clone, PartialEq)]
pub struct VmConfig {
    /// Uncompressed guest kernel (PVH entry).
    pub kernel: PathBuf,
    /// The initramfs whose `/init` is the agent.
    pub initramfs: PathBuf,
    /// What the guest's container root is made of.
    pub root: VmRoot,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub accel: AccelKind,
    /// Per-container directory for `console.log`, `qemu.log` and the jail's mount point.
    pub run_dir: PathBuf,
    /// QEMU's cgroup (relative to the hierarchy roots).
    pub cgroup: String,
    /// The CPU quota of QEMU's cgroup, in CPUs.
    pub cpus: Option<f64>,
    /// The container's network namespace, whose interfaces the VM takes over; `None`: no NIC.
    pub netns: Option<PathBuf>,
    /// Host directories shared with the guest over virtio-9p, in order (share `i` is the guest's
    /// `bulkhead_proto::vm::share_path(i)`).
    pub shares: Vec<Share>,
}

/// The container root a VM gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmRoot {
    /// The image's erofs `artifact`, attached read-only (guest `bulkhead_proto::vm::IMAGE_DISK`), and the
    /// container's `writable` ext4 image (guest `bulkhead_proto::vm::WRITABLE_DISK`).
    Disks {
        artifact: PathBuf,
        writable: PathBuf,
    },
    /// A host directory the guest mounts as the root, over virtio-9p with the mount tag
    /// `bulkhead_proto::vm::ROOT_SHARE_TAG` (a bundle container's rootfs, which its caller prepared).
    Share(Share),
}

impl VmRoot {
    /// The virtio devices it takes.
    pub fn devices(&self) -> usize {
        match self {
            VmRoot::Disks { .. } => 2,
            VmRoot::Share(_) => 1,
        }
    }
}

impl VmConfig {
    /// Every directory QEMU serves over 9p, as the jail shows them at `files::jail_share_path(i)`: the
    /// shares in order, then the root's if it is one.
    pub fn served_directories(&self) -> Vec<Share> {
        let root = match &self.root {
            VmRoot::Share(share) => Some(share.clone()),
            VmRoot::Disks { .. } => None,
        };
        self.shares.iter().cloned().chain(root).collect()
    }
}

/// A host directory the guest sees (a volume's data, a bind source, or a bundle's root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub host: PathBuf,
    /// Read-only for QEMU's 9p server and for QEMU's own view of it (a read-only bind in the jail), so
    /// no guest, whatever its kernel does, writes it.
    pub readonly: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Jail(#[from] JailError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("QEMU exited ({status}) before the VM started; qemu.log ends with: {log}")]
    EarlyExit { status: String, log: String },
    #[error(
        "{shares} shared directories and {nics} network interfaces are more than a VM takes: QEMU's \
         microvm has {} virtio-mmio slots, and the root ({root} devices) and the agent's port use the \
         rest",
        qemu::VIRTIO_MMIO_SLOTS
    )]
    TooManyDevices {
        shares: usize,
        nics: usize,
        root: usize,
    },
}

/// A running QEMU process and the stream to its guest agent. Dropping it kills QEMU.
#[derive(Debug)]
pub struct Vm {
    jailed: Option<Jailed>,
    stream: UnixStream,
    logs: Option<LogPump>,
    run_dir: PathBuf,
    status: Option<ExitStatus>,
    nics: Vec<GuestNic>,
    /// The namespace whose mirrors to remove once QEMU is gone.
    netns: Option<PathBuf>,
}

/// The guest's serial console, as the host keeps it (capped, see [`crate::log_pump`]).
pub fn console_log(run_dir: &Path) -> PathBuf {
    run_dir.join("console.log")
}

/// QEMU's own stderr (capped likewise).
pub fn qemu_log(run_dir: &Path) -> PathBuf {
    run_dir.join("qemu.log")
}

impl Vm {
    /// Starts QEMU for `cfg` in its jail, checks the jail, and returns with the agent's stream. Does not
    /// wait for the guest to boot: the agent answers the handshake once it is up.
    pub fn launch(cfg: &VmConfig) -> Result<Vm, VmError> {
        fs::create_dir_all(&cfg.run_dir).map_err(io_err("creating", &cfg.run_dir))?;
        let null = || File::open("/dev/null").map_err(io_err("opening", Path::new("/dev/null")));
        let disks = match &cfg.root {
            VmRoot::Disks { artifact, writable } => RootFiles::open(artifact, writable)?,
            // The descriptors keep their numbers; QEMU is given none of these.
            VmRoot::Share(_) => RootFiles {
                image: null()?,
                writable: null()?,
                writable_ro: null()?,
                // No disk bounds what QEMU writes in the caller's directory: its filesystem does, as
                // for a process container on it.
                max_file_bytes: libc::RLIM_INFINITY,
            },
        };
        let (stream, guest_end) =
            UnixStream::pair().map_err(io_err("creating the agent socket for", &cfg.run_dir))?;
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| io_err("creating a log pipe for", &cfg.run_dir)(e.into()))
        };
        let (console_r, console_w) = pipe()?;
        let (stderr_r, stderr_w) = pipe()?;
        let logs = LogPump::start(vec![
            (console_r, console_log(&cfg.run_dir)),
            (stderr_r, qemu_log(&cfg.run_dir)),
        ])
        .map_err(io_err("starting the log thread for", &cfg.run_dir))?;
        let mut fds: Vec<OwnedFd> = vec![null()?.into(), null()?.into(), stderr_w];
        fds.extend([
            disks.image.into(),
            disks.writable.into(),
            guest_end.into(),
            console_w,
        ]);
        fds.push(disks.writable_ro.into());
        debug_assert_eq!(fds.len(), qemu::FIRST_TAP_FD);
        let wiring = match &cfg.netns {
            Some(netns) => network::wire(netns),
            None => Ok(network::Wiring {
                nics: Vec::new(),
                taps: Vec::new(),
            }),
        };
        let wiring = match wiring {
            Ok(wiring) => wiring,
            Err(e) => {
                // `wire` removed what it made. The log pipes' write ends close first, so the
                // thread ends.
                drop(fds);
                logs.finish();
                return Err(e.into());
            }
        };
        let devices = cfg.root.devices() + qemu::AGENT_DEVICES + cfg.shares.len();
        if devices + wiring.nics.len() > qemu::VIRTIO_MMIO_SLOTS {
            let nics = wiring.nics.len();
            drop(wiring);
            if let Some(netns) = &cfg.netns {
                // Ours: the taps just closed.
                let _ = network::unwire(netns);
            }
            drop(fds);
            logs.finish();
            return Err(VmError::TooManyDevices {
                shares: cfg.shares.len(),
                nics,
                root: cfg.root.devices(),
            });
        }
        let args = qemu::args(cfg, &wiring.nics);
        fds.extend(wiring.taps);
        let served = cfg.served_directories();
        let spawned = jail::spawn(JailSpec {
            args,
            fds,
            kernel: &cfg.kernel,
            initramfs: &cfg.initramfs,
            accel: cfg.accel,
            run_dir: &cfg.run_dir,
            cgroup: &cfg.cgroup,
            memory_mib: cfg.memory_mib.into(),
            cpus: cfg.cpus,
            max_file_bytes: disks.max_file_bytes,
            shares: &served,
        });
        match spawned {
            Ok(jailed) => Ok(Vm {
                jailed: Some(jailed),
                stream,
                logs: Some(logs),
                run_dir: cfg.run_dir.clone(),
                status: None,
                nics: wiring.nics,
                netns: cfg.netns.clone(),
            }),
            Err(e) => {
                // Every write end is closed: the thread ends.
                logs.finish();
                if let Some(netns) = &cfg.netns {
                    // The taps closed with the jail's descriptors.
                    let _ = network::unwire(netns);
                }
                Err(match e {
                    JailError::Exited(status) => VmError::EarlyExit {
                        status,
                        log: log_tail(&qemu_log(&cfg.run_dir)),
                    },
                    e => e.into(),
                })
            }
        }
    }

    /// The agent stream. Clone it (`try_clone`) for a reader and a writer half. It reaches end of file
    /// when the guest powers off or QEMU dies.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// QEMU's pid (host view; it is PID 1 of its own pid namespace).
    pub fn pid(&self) -> u32 {
        self.jailed.as_ref().map_or(0, |j| j.pid().as_raw() as u32)
    }

    /// How QEMU is confined, as checked at launch.
    pub fn confinement(&self) -> Option<&Confinement> {
        self.jailed.as_ref().map(Jailed::confinement)
    }

    /// The interfaces the guest is to configure, found in the VM's network namespace.
    pub fn nics(&self) -> &[GuestNic] {
        &self.nics
    }

    /// The run directory holding `console.log` and `qemu.log`.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Kills QEMU, and with it its pid namespace (idempotent).
    pub fn kill(&mut self) {
        if let (None, Some(j)) = (self.status, &self.jailed) {
            // Already gone (ESRCH) is the goal anyway.
            let _ = kill(j.pid(), Signal::SIGKILL);
        }
    }

    /// Waits for QEMU to exit, then removes its jail. A guest power-off (`reboot=t` + `-no-reboot`) is a
    /// successful exit.
    pub fn wait(&mut self) -> Result<ExitStatus, VmError> {
        let status = match self.status {
            Some(status) => status,
            None => match self.reap(None)? {
                Some(status) => status,
                None => return Ok(ExitStatus::from_raw(0)),
            },
        };
        if let Some(logs) = self.logs.take() {
            logs.finish();
        }
        let removed = self.jailed.take().map(Jailed::remove).transpose();
        // QEMU held the taps' last descriptors: they are gone, and their mirrors go now.
        let unwired = self.netns.take().map(|n| network::unwire(&n)).transpose();
        removed?;
        unwired?;
        Ok(status)
    }

    /// Why the guest went away, if QEMU has exited or exits within `grace`: its status and the end of
    /// `qemu.log` (for example an option this QEMU does not know).
    pub fn exit_report(&mut self, grace: Duration) -> Option<String> {
        let deadline = Instant::now() + grace;
        let status = loop {
            match self.reap(Some(WaitPidFlag::WNOHANG)) {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(REAP_POLL),
                _ => return None,
            }
        };
        // Everything QEMU wrote is in the file once the pipe is drained.
        if let Some(logs) = self.logs.take() {
            logs.finish();
        }
        Some(format!(
            "QEMU exited ({status}); qemu.log ends with: {}",
            log_tail(&qemu_log(&self.run_dir))
        ))
    }

    /// Reaps QEMU (`WNOHANG`: only if it has exited) and records its status.
    fn reap(&mut self, flags: Option<WaitPidFlag>) -> Result<Option<ExitStatus>, VmError> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let Some(pid) = self.jailed.as_ref().map(Jailed::pid) else {
            return Ok(None);
        };
        let status = loop {
            match waitpid(pid, flags) {
                Ok(WaitStatus::Exited(_, code)) => break ExitStatus::from_raw(code << 8),
                Ok(WaitStatus::Signaled(_, signal, _)) => {
                    break ExitStatus::from_raw(signal as i32)
                }
                Ok(WaitStatus::StillAlive) => return Ok(None),
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(io_err("waiting for QEMU in", &self.run_dir)(e.into()).into()),
            }
        };
        self.status = Some(status);
        Ok(Some(status))
    }
}

/// The files of a disk root, opened by the host for QEMU (which opens nothing of the host by path).
struct RootFiles {
    image: File,
    writable: File,
    /// The writable disk again, read-only (see `qemu::WRITABLE_RO_FD`).
    writable_ro: File,
    /// The largest file QEMU may write: the writable disk.
    max_file_bytes: u64,
}

impl RootFiles {
    fn open(artifact: &Path, disk: &Path) -> Result<RootFiles, VmError> {
        let image = File::open(artifact).map_err(io_err("opening", artifact))?;
        let writable = OpenOptions::new()
            .read(true)
            .write(true)
            .open(disk)
            .map_err(io_err("opening", disk))?;
        let writable_ro = File::open(disk).map_err(io_err("opening", disk))?;
        let max_file_bytes = writable.metadata().map_err(io_err("reading", disk))?.len();
        Ok(RootFiles {
            image,
            writable,
            writable_ro,
            max_file_bytes,
        })
    }
}

/// The last [`LOG_TAIL`] bytes of a log on one line (errors travel as one line), for an error message.
fn log_tail(path: &Path) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL)))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        let text = String::from_utf8_lossy(&buf);
        Ok(text.trim_end().lines().collect::<Vec<_>>().join(" | "))
    };
    read().unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
        // Drop cannot report; a failed wait means the child is already gone.
        let _ = self.wait();
    }
}
