//! runc's semantics where callers depend on them, through the real binary called as `bulkhead-runc`
//! (process isolation; the callers' own tests, oci_podman/oci_containerd/oci_cri, cover VM isolation):
//! the states through the lifecycle, the pid file written before `create` returns, `kill` of a created
//! container, `delete` of a running one refused without `--force`, `exec` into a stopped one refused,
//! the console socket receiving the pty master, pause/resume, and bad bundles failing with runc's error
//! contract (exit 1, a JSON `"level":"error"` line in `--log`) and leaving nothing behind.

mod common;

use serde_json::Value;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A scratch `--root`, a `bulkhead-runc` link and a bundle of the demo busybox rootfs.
struct Runtime {
    dir: tempfile::TempDir,
}

impl Runtime {
    fn new() -> Runtime {
        let dir = tempfile::Builder::new()
            .prefix("bh-runc-")
            .tempdir()
            .unwrap();
        std::os::unix::fs::symlink(common::bin(), dir.path().join("bulkhead-runc")).unwrap();
        Runtime { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("runtime.log")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.dir.path().join("bulkhead-runc"));
        cmd.arg("--root")
            .arg(self.root())
            .arg("--log")
            .arg(self.log())
            .arg("--log-format")
            .arg("json")
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a command with its output in files, not pipes: as with runc, a container created or run
    /// detached keeps the runtime's stdout and stderr (its relay holds them), so a pipe never ends.
    fn run(&self, args: &[&str]) -> Output {
        let out = tempfile::tempfile().unwrap();
        let err = tempfile::tempfile().unwrap();
        let status = self
            .cmd(args)
            .stdout(out.try_clone().unwrap())
            .stderr(err.try_clone().unwrap())
            .status()
            .expect("running bulkhead-runc");
        let read = |mut f: std::fs::File| {
            use std::io::Seek;
            let mut bytes = Vec::new();
            f.rewind().unwrap();
            f.read_to_end(&mut bytes).unwrap();
            bytes
        };
        Output {
            status,
            stdout: read(out),
            stderr: read(err),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "bulkhead-runc {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Fails as runc does: exit 1, the message on stderr and as a JSON error line in the log.
    fn fails(&self, args: &[&str], needle: &str) {
        let _ = std::fs::remove_file(self.log());
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} lacks {needle:?}"
        );
        let log = std::fs::read_to_string(self.log()).expect("the --log file");
        let line: Value = serde_json::from_str(log.lines().last().unwrap()).expect("a JSON line");
        assert_eq!(line["level"], "error", "{log}");
        assert!(line["msg"].as_str().unwrap().contains(needle), "{log}");
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.status(id) != want {
            assert!(Instant::now() < deadline, "{id} never became {want}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A bundle whose process runs `script` with sh; `edit` changes its config.json further.
    fn bundle(&self, name: &str, script: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
        let dir = self.dir.path().join(name);
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).unwrap();
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-xpf")
            .arg(common::image_tar())
            .status()
            .unwrap();
        assert!(tar.success());
        self.ok(&["spec", "--bundle", dir.to_str().unwrap()]);
        let path = dir.join("config.json");
        let mut spec: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        spec["process"]["terminal"] = Value::Bool(false);
        spec["process"]["args"] = serde_json::json!(["sh", "-c", script]);
        spec["root"]["readonly"] = Value::Bool(false);
        edit(&mut spec);
        std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
        dir
    }

    /// Nothing of `id` is left: no record, no engine container.
    fn assert_gone(&self, id: &str) {
        assert!(self.ok(&["list", "-q"]).lines().all(|l| l != id));
        let engine = Command::new(common::bin())
            .arg("--root")
            .arg(self.root())
            .args(["ps", "-a", "--format", "{{.Names}}"])
            .output()
            .unwrap();
        let names = String::from_utf8_lossy(&engine.stdout);
        assert!(
            names.lines().all(|l| l != id),
            "engine still has {id}: {names}"
        );
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let ids = self.run(&["list", "-q"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = self.run(&["delete", "--force", id]);
        }
    }
}

const FOREVER: &str = "trap 'exit 7' TERM; while :; do sleep 0.05; done";

#[test]
fn states_follow_the_lifecycle() {
    let rt = Runtime::new();
    let bundle = rt.bundle("b", FOREVER, |_| {});
    let pid_file = rt.dir.path().join("pid");
    rt.ok(&[
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "life",
    ]);
    // Written before create returned, and the process it names is what state reports.
    let pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let state = rt.state("life");
    assert_eq!(state["status"], "created");
    assert_eq!(state["pid"], pid);
    assert_eq!(state["id"], "life");
    assert_eq!(state["bundle"], bundle.to_str().unwrap());
    assert!(common::host::alive(pid));
    rt.fails(
        &["create", "--bundle", bundle.to_str().unwrap(), "life"],
        "exists",
    );

    rt.ok(&["start", "life"]);
    assert_eq!(rt.status("life"), "running");
    rt.fails(&["start", "life"], "already running");
    let pids: Vec<i64> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", "life"])).unwrap();
    assert!(!pids.is_empty(), "ps lists the container's processes");

    rt.ok(&["pause", "life"]);
    assert_eq!(rt.status("life"), "paused");
    rt.ok(&["resume", "life"]);
    assert_eq!(rt.status("life"), "running");

    rt.ok(&["kill", "life", "TERM"]);
    rt.wait_status("life", "stopped");
    assert_eq!(rt.state("life")["pid"], 0);
    rt.fails(&["kill", "life", "KILL"], "not running");
    rt.ok(&["delete", "life"]);
    rt.fails(&["state", "life"], "does not exist");
    rt.assert_gone("life");
}

#[test]
fn a_created_container_can_be_killed_and_a_running_one_deleted_only_with_force() {
    let rt = Runtime::new();
    let bundle = rt.bundle("b", FOREVER, |_| {});
    let b = bundle.to_str().unwrap();
    rt.ok(&["create", "--bundle", b, "early"]);
    rt.ok(&["kill", "early", "KILL"]);
    rt.wait_status("early", "stopped");
    rt.fails(&["start", "early"], "stopped");
    rt.ok(&["delete", "early"]);
    rt.assert_gone("early");

    rt.ok(&["run", "--detach", "--bundle", b, "busy"]);
    assert_eq!(rt.status("busy"), "running");
    rt.fails(&["delete", "busy"], "not stopped");
    assert_eq!(rt.status("busy"), "running");
    rt.ok(&["delete", "--force", "busy"]);
    rt.assert_gone("busy");
    // As runc: deleting what does not exist succeeds with --force only.
    rt.ok(&["delete", "--force", "busy"]);
    rt.fails(&["delete", "busy"], "does not exist");
}

#[test]
fn run_exits_with_the_containers_code_and_exec_runs_only_in_a_running_one() {
    let rt = Runtime::new();
    let once = rt.bundle("once", "echo out; echo err >&2; exit 3", |_| {});
    let out = rt.run(&["run", "--bundle", once.to_str().unwrap(), "once"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    rt.assert_gone("once");

    let bundle = rt.bundle("b", FOREVER, |s| {
        s["process"]["env"] = serde_json::json!(["PATH=/bin:/usr/bin", "WHO=container"])
    });
    rt.ok(&[
        "run",
        "--detach",
        "--bundle",
        bundle.to_str().unwrap(),
        "ex",
    ]);
    let out = rt.run(&["exec", "ex", "sh", "-c", "echo $WHO; exit 5"]);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "container\n");
    // containerd's way: the process as runtime-spec JSON, detached, the pid file naming the exec relay.
    let process = rt.dir.path().join("process.json");
    let marker = "/tmp/exec-ran";
    std::fs::write(
        &process,
        serde_json::json!({
            "args": ["sh", "-c", format!("echo $EXTRA > {marker}")],
            "env": ["PATH=/bin", "EXTRA=from-process-json"],
            "cwd": "/",
            "user": { "uid": 0, "gid": 0 },
            "terminal": false
        })
        .to_string(),
    )
    .unwrap();
    let pid_file = rt.dir.path().join("exec.pid");
    rt.ok(&[
        "exec",
        "--process",
        process.to_str().unwrap(),
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "ex",
    ]);
    assert!(pid_file.exists());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = rt.run(&["exec", "ex", "cat", marker]);
        if String::from_utf8_lossy(&out.stdout) == "from-process-json\n" {
            break;
        }
        assert!(Instant::now() < deadline, "the detached exec never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    rt.ok(&["kill", "ex", "KILL"]);
    rt.wait_status("ex", "stopped");
    rt.fails(&["exec", "ex", "true"], "stopped");
    rt.ok(&["delete", "ex"]);
}

/// Receives one fd passed with SCM_RIGHTS on `stream`.
fn receive_fd(stream: &std::os::unix::net::UnixStream) -> OwnedFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    for cmsg in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            // SAFETY: the fd was just received and is ours.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd on the console socket");
}

#[test]
fn the_console_socket_receives_the_terminals_master() {
    let rt = Runtime::new();
    let bundle = rt.bundle("tty", "test -t 0 && echo is-a-tty; stty size", |s| {
        s["process"]["terminal"] = Value::Bool(true);
        s["process"]["consoleSize"] = serde_json::json!({ "height": 30, "width": 100 });
    });
    let socket = rt.dir.path().join("console.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    rt.ok(&[
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        "--console-socket",
        socket.to_str().unwrap(),
        "tty",
    ]);
    let (stream, _) = listener.accept().unwrap();
    let master = std::fs::File::from(receive_fd(&stream));
    rt.ok(&["start", "tty"]);
    let mut out = Vec::new();
    let mut master = master;
    let mut buf = [0u8; 1024];
    // EIO once the slave side is closed: the container and its relay have ended.
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("is-a-tty"), "{text:?}");
    rt.wait_status("tty", "stopped");
    rt.ok(&["delete", "tty"]);
}

#[test]
fn bad_bundles_fail_with_runcs_error_contract_and_leave_nothing() {
    let rt = Runtime::new();
    let empty = rt.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    rt.fails(
        &["create", "--bundle", empty.to_str().unwrap(), "c1"],
        "config.json",
    );
    rt.assert_gone("c1");

    let malformed = rt.bundle("malformed", "true", |_| {});
    std::fs::write(malformed.join("config.json"), b"{ \"ociVersion\": ").unwrap();
    rt.fails(
        &["create", "--bundle", malformed.to_str().unwrap(), "c2"],
        "config.json",
    );
    rt.assert_gone("c2");

    let namespace = rt.bundle("ns", "true", |s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({ "type": "timewarp" }));
    });
    rt.fails(
        &["create", "--bundle", namespace.to_str().unwrap(), "c3"],
        "timewarp",
    );
    rt.assert_gone("c3");

    let outside = rt.bundle("outside", "true", |s| s["root"]["path"] = "../../..".into());
    rt.fails(
        &["create", "--bundle", outside.to_str().unwrap(), "c4"],
        "root",
    );
    rt.assert_gone("c4");

    let hook = rt.bundle("hook", "true", |s| {
        s["hooks"] = serde_json::json!({
            "createRuntime": [{ "path": "/bin/sh", "args": ["sh", "-c", "echo refused >&2; exit 9"] }]
        });
    });
    rt.fails(
        &["create", "--bundle", hook.to_str().unwrap(), "c5"],
        "createRuntime hook #0 failed",
    );
    rt.assert_gone("c5");
    rt.fails(
        &["create", "--bundle", hook.to_str().unwrap(), "../escape"],
        "invalid container id",
    );
    rt.fails(&["kill", "nothing-here", "KILL"], "does not exist");
    // What a create killed half-way leaves (a record without its relay.json) holds the id until a
    // forced delete clears it.
    std::fs::create_dir_all(rt.root().join("oci").join("half")).unwrap();
    let good = rt.bundle("good", "true", |_| {});
    rt.fails(
        &["create", "--bundle", good.to_str().unwrap(), "half"],
        "exists",
    );
    rt.ok(&["delete", "--force", "half"]);
    rt.ok(&["run", "--bundle", good.to_str().unwrap(), "half"]);
    assert!(
        std::fs::read_dir(rt.root().join("oci"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
}

#[test]
fn hooks_get_the_state_and_features_describe_the_runtime() {
    let rt = Runtime::new();
    let seen = rt.dir.path().join("hook-state.json");
    let bundle = rt.bundle("hooks", "true", |s| {
        s["hooks"] = serde_json::json!({
            "poststop": [{ "path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", seen.display())] }]
        });
    });
    rt.ok(&["run", "--bundle", bundle.to_str().unwrap(), "hooked"]);
    let state: Value = serde_json::from_slice(&std::fs::read(&seen).unwrap()).unwrap();
    assert_eq!(state["id"], "hooked");
    assert_eq!(state["bundle"], bundle.to_str().unwrap());

    let features: Value = serde_json::from_str(&rt.ok(&["features"])).unwrap();
    assert!(features["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&"network".into()));
    assert!(features["annotations"]["io.bulkhead.isolation"].is_string());
    rt.fails(&["spec", "--bundle", bundle.to_str().unwrap()], "exists");
    rt.fails(&["checkpoint", "hooked"], "not supported");
}

#[test]
fn a_read_only_root_gets_its_missing_working_directory() {
    let rt = Runtime::new();
    let bundle = rt.bundle("ro", "pwd; touch /x 2>/dev/null || echo read-only", |s| {
        s["root"]["readonly"] = Value::Bool(true);
        s["process"]["cwd"] = "/work/sub".into();
    });
    let out = rt.run(&["run", "--bundle", bundle.to_str().unwrap(), "ro"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "/work/sub\nread-only\n"
    );
}
