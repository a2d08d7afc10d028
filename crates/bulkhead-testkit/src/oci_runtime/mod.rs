//! Real callers of an OCI runtime (runc's command-line contract), each started in a scratch directory of
//! its own: podman, containerd with `ctr`, and containerd's CRI plugin driven the way the kubelet drives
//! it. The runtime they call is a pair of links named as bulkhead's (`bulkhead-runc`, `bulkhead-runc-vm`),
//! so a test written for bulkhead runs unchanged against runc itself: `BULKHEAD_OCI_TEST_RUNTIME=/usr/sbin/runc`
//! points both links there (the check of the harness, not of bulkhead).

pub mod containerd;
pub mod cri;
pub mod podman;

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::busybox::demo_rootfs_tar;
use crate::oci::{Layer, Platform, OCI_GZIP};
use crate::registry::{Auth, Registry};

pub use containerd::Containerd;
pub use cri::{Cri, ExecResult, Pod, PodSpec};
pub use podman::Podman;

/// The environment variable that points the links at another runtime binary (runc, to check the harness).
pub const RUNTIME_OVERRIDE: &str = "BULKHEAD_OCI_TEST_RUNTIME";

/// The annotation that asks bulkhead for an isolation mode.
pub const ISOLATION_ANNOTATION: &str = "io.bulkhead.isolation";

/// `bulkhead-runc` and `bulkhead-runc-vm` links to one binary, in a scratch directory.
pub struct RuntimeLinks {
    dir: TempDir,
    target: PathBuf,
    overridden: bool,
}

impl RuntimeLinks {
    /// Links to `binary`.
    pub fn new(binary: &Path) -> RuntimeLinks {
        let dir = tempfile::tempdir().expect("runtime links dir");
        for name in ["bulkhead-runc", "bulkhead-runc-vm"] {
            std::os::unix::fs::symlink(binary, dir.path().join(name)).expect("runtime link");
        }
        RuntimeLinks {
            dir,
            target: binary.to_path_buf(),
            overridden: false,
        }
    }

    /// Links to the bulkhead binary, or to the binary `BULKHEAD_OCI_TEST_RUNTIME` names.
    pub fn for_tests(bulkhead: &Path) -> RuntimeLinks {
        match std::env::var_os(RUNTIME_OVERRIDE) {
            Some(other) => {
                eprintln!(
                    "{RUNTIME_OVERRIDE}: the callers run {} instead of bulkhead",
                    Path::new(&other).display()
                );
                RuntimeLinks {
                    overridden: true,
                    ..RuntimeLinks::new(Path::new(&other))
                }
            }
            None => RuntimeLinks::new(bulkhead),
        }
    }

    /// `bulkhead-runc`: the policy decides the isolation (process unless asked otherwise).
    pub fn process(&self) -> PathBuf {
        self.dir.path().join("bulkhead-runc")
    }

    /// `bulkhead-runc-vm`: VM isolation by default.
    pub fn vm(&self) -> PathBuf {
        self.dir.path().join("bulkhead-runc-vm")
    }

    /// Whether the links lead to bulkhead (VM mode exists) rather than an override such as runc.
    pub fn is_bulkhead(&self) -> bool {
        !self.overridden
    }

    pub fn target(&self) -> &Path {
        &self.target
    }
}

/// The demo busybox rootfs as one gzip layer.
fn demo_layer() -> Layer {
    let tar = std::fs::read(demo_rootfs_tar()).expect("reading the demo rootfs");
    Layer::new(&tar, OCI_GZIP)
}

/// An anonymous registry holding `busybox:1` (the demo image, `/bin/sh` as command) and `pause:1` (the
/// same rootfs whose command sleeps until killed: CRI's sandbox image).
pub fn image_registry() -> Registry {
    let registry = Registry::start(Auth::Anonymous);
    let layers = [demo_layer()];
    registry.push("busybox", "1", &[Platform::amd64(&layers)]);
    registry.push(
        "pause",
        "1",
        &[Platform {
            cmd: &["sleep", "inf"],
            ..Platform::amd64(&layers)
        }],
    );
    registry
}

/// The host's kernel release, to tell a VM's guest kernel from it.
pub fn host_kernel() -> String {
    nix::sys::utsname::uname()
        .expect("uname")
        .release()
        .to_string_lossy()
        .into_owned()
}

/// Kills (SIGKILL) every process whose command line contains `marker` (a scratch path only the caller's
/// own processes name), e.g. shims and monitors left behind by a failed test.
fn kill_processes_naming(marker: &str) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let own = std::process::id();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if pid as u32 == own {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Unmounts (lazily, deepest first) everything mounted at or below `dir`.
fn unmount_below(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
    }
}
