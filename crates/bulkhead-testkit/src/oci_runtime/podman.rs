//! Debian's podman 4.3 as root with every directory of its own in a scratch dir (storage root, run root,
//! temp dir, containers.conf), the `vfs` storage driver (no overlay mounts to leak), cgroupfs as the
//! cgroup manager and a file as its event log (no systemd here). Containers get `--network none`: podman's
//! default bridge network would add a host bridge and firewall rules outside the scratch dir. The
//! runtime keeps its default root (podman passes no `--root`; `--runtime-flag root=...` is lost on
//! podman 4.3's cleanup path, which then never deletes the runtime's containers).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

use crate::busybox::demo_rootfs_tar;
use crate::output::{stderr, stdout, wait_output};

/// The demo image's name in every podman store made here.
pub const BUSYBOX: &str = "localhost/busybox:test";

/// `run`/`create` flags every container gets: no network, and explicit nofile/nproc limits, since podman
/// otherwise asks the runtime for its own hard limits (1048576), which root without CAP_SYS_RESOURCE
/// (as in this machine's sandbox) cannot set.
pub const RUN_FLAGS: &[&str] = &[
    "--network",
    "none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

pub struct Podman {
    dir: TempDir,
    runtime: PathBuf,
}

impl Podman {
    /// A podman store using `runtime` (a path) for every container, with the demo image imported as
    /// [`BUSYBOX`] (`/bin/sh` as command, PATH=/bin).
    pub fn new(runtime: &Path) -> Podman {
        let dir = tempfile::tempdir().expect("podman scratch dir");
        // Podman passes `--log-format=json` only to runtimes it knows speak it; ours do (as runc).
        let name = runtime
            .file_name()
            .expect("runtime file name")
            .to_string_lossy();
        std::fs::write(
            dir.path().join("containers.conf"),
            format!("[engine]\nruntime_supports_json = [\"{name}\"]\n"),
        )
        .expect("containers.conf");
        let podman = Podman {
            dir,
            runtime: runtime.to_path_buf(),
        };
        let tar = demo_rootfs_tar().to_string_lossy().into_owned();
        podman.ok(&[
            "import",
            "--change",
            r#"CMD ["/bin/sh"]"#,
            "--change",
            "ENV PATH=/bin",
            &tar,
            BUSYBOX,
        ]);
        podman
    }

    /// `podman` with this store's global flags and `args`, stdin closed, not yet started.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"])
            .arg("--runtime")
            .arg(&self.runtime)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// `podman run` with [`RUN_FLAGS`] and `args`, not yet started.
    pub fn run_cmd(&self, args: &[&str]) -> Command {
        let mut all = vec!["run"];
        all.extend(RUN_FLAGS);
        all.extend(args);
        self.cmd(&all)
    }

    /// Runs podman to completion (hang-guarded), whatever its exit code.
    pub fn out(&self, args: &[&str]) -> Output {
        spawn_wait(self.cmd(args), args)
    }

    /// `podman run` ([`Podman::run_cmd`]) to completion, whatever its exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        spawn_wait(self.run_cmd(args), args)
    }

    /// Runs podman, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.out(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed with {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }
}

fn spawn_wait(mut cmd: Command, args: &[&str]) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("podman (Debian package podman)");
    wait_output(child, &format!("podman {args:?}"))
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.out(&["rm", "--all", "--force", "--time", "0"]);
        // conmon and the runtime's processes of a container podman lost track of name the scratch dir.
        super::kill_processes_naming(&self.dir.path().to_string_lossy());
        super::unmount_below(self.dir.path());
    }
}
