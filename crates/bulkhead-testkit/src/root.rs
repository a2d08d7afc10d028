//! A scratch bulkhead root: a temporary directory that the real `bulkhead` binary uses as `--root`.
//! Dropping it force-removes every container in it, so a failing test leaks no mounts, monitors or VMs
//! into the next one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::busybox::demo_rootfs_tar;
use crate::output::{stdout, wait_output, HANG_LIMIT};

pub struct Root {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Root {
    /// An empty root driven by the binary at `bin` (the test's `env!("CARGO_BIN_EXE_bulkhead")`).
    pub fn empty(bin: impl Into<PathBuf>) -> Root {
        let dir = tempfile::Builder::new()
            .prefix("bh-test-")
            .tempdir()
            .expect("temp root");
        Root {
            dir,
            bin: bin.into(),
        }
    }

    /// A root with the busybox demo image imported as `tag`.
    pub fn with_demo_image(bin: impl Into<PathBuf>, tag: &str) -> Root {
        let root = Root::empty(bin);
        let tar = demo_rootfs_tar().to_str().expect("utf-8 path");
        root.ok(&["image", "import-rootfs", tar, "--tag", tag]);
        root
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The `bulkhead` binary this root is driven by.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// `bulkhead --root ROOT ARGS...` with stdin closed, not yet started.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root")
            .arg(self.path())
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs to completion (hang-guarded) and returns the output, whatever the exit code.
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
        stdout(&out)
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
