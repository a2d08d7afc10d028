//! Shared fixtures for the CLI end-to-end tests: a private bulkhead root per test with the busybox demo
//! image imported, and helpers that run the real `bulkhead` binary against it. Every root force-removes
//! its containers when dropped, so a failing test does not leak mounts or processes into the next one.

#![allow(dead_code)] // each test binary (process, vm, images) uses its own subset of these helpers

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The demo image's name inside every test root.
pub const IMAGE: &str = "demo";

/// Hang guard for commands that must end by themselves (not a performance assertion).
const HANG_LIMIT: Duration = Duration::from_secs(120);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bulkhead")
}

/// The busybox rootfs tarball, built once per test binary by `scripts/busybox-rootfs.sh`.
pub fn image_tar() -> &'static Path {
    static TAR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, tar) = TAR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir for the image tarball");
        let tar = dir.path().join("busybox.tar");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(&tar)
            .output()
            .expect("running busybox-rootfs.sh");
        assert!(
            out.status.success(),
            "busybox-rootfs.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (dir, tar)
    });
    tar
}

/// A private bulkhead root with the demo image imported.
pub struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    pub fn new() -> Root {
        let dir = tempfile::Builder::new()
            .prefix("bh-test-")
            .tempdir()
            .expect("temp root");
        let root = Root { dir };
        root.ok(&[
            "image",
            "import-rootfs",
            image_tar().to_str().expect("utf-8 path"),
            "--tag",
            IMAGE,
        ]);
        root
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `bulkhead --root ROOT ARGS...` with stdin closed, not yet started.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--root")
            .arg(self.path())
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs to completion and returns the output, whatever the exit code.
    pub fn bh(&self, args: &[&str]) -> Output {
        let child = self
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning bulkhead");
        wait_output(child, &format!("bulkhead {args:?}"))
    }

    /// Runs, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.bh(args);
        assert!(
            out.status.success(),
            "bulkhead {args:?} failed with {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `run -d ARGS...`, returning the full container id.
    pub fn detached(&self, args: &[&str]) -> String {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(args);
        self.ok(&all).trim().to_string()
    }

    /// The container's `inspect` object.
    pub fn inspect(&self, key: &str) -> serde_json::Value {
        let text = self.ok(&["inspect", key]);
        let mut list: Vec<serde_json::Value> =
            serde_json::from_str(&text).expect("inspect prints JSON");
        assert_eq!(list.len(), 1, "inspect {key}: {text}");
        list.remove(0)
    }

    /// The container's persisted `state.json`.
    pub fn state(&self, id: &str) -> serde_json::Value {
        let path = self.path().join("containers").join(id).join("state.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).expect("state.json is JSON")
    }

    /// Polls `inspect` until the container has the status (hang-guarded).
    pub fn wait_status(&self, key: &str, status: &str) -> serde_json::Value {
        let deadline = Instant::now() + HANG_LIMIT;
        loop {
            let v = self.inspect(key);
            if v["State"]["Status"] == status {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{key} never became {status}: {v}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ids of all containers in this root.
    pub fn all_ids(&self) -> Vec<String> {
        self.ok(&["ps", "-a", "-q", "--no-trunc"])
            .lines()
            .map(String::from)
            .collect()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let Ok(out) = self.cmd(&["ps", "-a", "-q", "--no-trunc"]).output() else {
            return;
        };
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = self.cmd(&["rm", "-f", id]).output();
        }
    }
}

/// Waits for a spawned child with piped stdout/stderr, failing the test if it hangs.
pub fn wait_output(mut child: Child, what: &str) -> Output {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let deadline = Instant::now() + HANG_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
