//! End-to-end tests of VM isolation through the CLI, as root, with real QEMU (TCG on these machines) and
//! the cached guest kernel. Each boot keeps a core busy for a few seconds, so the tests share few VMs and
//! run one at a time (`VM_LOCK`).

mod common;

use common::Root;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One guest at a time: each TCG boot keeps a core busy.
static VM_LOCK: Mutex<()> = Mutex::new(());

fn vm_lock() -> MutexGuard<'static, ()> {
    VM_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn code(root: &Root, args: &[&str]) -> Option<i32> {
    root.bh(args).status.code()
}

/// Polls `logs` until it contains `text` (a hang guard, not a timing assertion).
fn wait_for_log(root: &Root, name: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !root.ok(&["logs", name]).contains(text) {
        assert!(Instant::now() < deadline, "{name} never logged {text:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the CLI with a pseudo-terminal as its stdio (through util-linux `script`), returns what it printed.
fn in_pty(root: &Root, args: &[&str]) -> String {
    let mut line = format!("{} --root {}", common::bin(), root.path().display());
    for a in args {
        line.push_str(&format!(" '{}'", a.replace('\'', "'\\''")));
    }
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("running script(1) from bsdutils");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn vm_runs_its_own_kernel_and_the_same_image() {
    let _vm = vm_lock();
    let root = Root::new();
    let host = root.ok(&["run", "--rm", "demo", "uname", "-r"]);
    let guest = root.ok(&["run", "--rm", "--isolation=vm", "demo", "uname", "-r"]);
    assert_ne!(
        host.trim(),
        guest.trim(),
        "the vm container must run the guest kernel"
    );
    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(host.trim(), host_kernel.trim());
    // Same image, same files, whichever kernel; `hyperv` is an alias of vm. The network is the same
    // too: only `lo`, and it is up (flags 0x9 = IFF_UP | IFF_LOOPBACK).
    let script =
        "cat /etc/motd; ls /bin | wc -l; id; grep -c : /proc/net/dev; cat /sys/class/net/lo/flags";
    let p = root.ok(&["run", "--rm", "demo", "sh", "-c", script]);
    let v = root.ok(&[
        "run",
        "--rm",
        "--isolation=hyperv",
        "demo",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(p, v);
}

#[test]
fn vm_stdin_exit_code_and_memory() {
    let _vm = vm_lock();
    let root = Root::new();
    let mut child = root
        .cmd(&[
            "run",
            "--rm",
            "-i",
            "--isolation=vm",
            "--memory",
            "300m",
            "demo",
            "sh",
            "-c",
            "cat; grep MemTotal /proc/meminfo; exit 7",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through the guest\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{text}");
    assert!(text.starts_with("through the guest\n"), "{text}");
    let kib: u64 = text
        .split_whitespace()
        .skip_while(|w| *w != "MemTotal:")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no MemTotal in {text}"));
    // Guest RAM is what --memory asked for, less what the guest kernel reserves.
    assert!(
        (250_000..=307_200).contains(&kib),
        "MemTotal {kib} kB for --memory 300m"
    );
}

#[test]
fn vm_detached_logs_exec_stop_rm() {
    let _vm = vm_lock();
    let root = Root::new();
    let id = root.ok(&[
        "run",
        "-d",
        "--isolation=vm",
        "--name",
        "v1",
        "demo",
        "sh",
        "-c",
        "echo started; exec sleep 1000",
    ]);
    let id = id.trim().to_string();
    wait_for_log(&root, "v1", "started");
    assert_eq!(
        root.ok(&["exec", "v1", "sh", "-c", "echo $((6*7))"]).trim(),
        "42"
    );
    assert_eq!(code(&root, &["exec", "v1", "sh", "-c", "exit 3"]), Some(3));
    assert_eq!(code(&root, &["exec", "v1", "nosuchcmd"]), Some(127));
    let ps = root.ok(&["ps"]);
    assert!(
        ps.lines().any(|l| l.contains("v1") && l.contains(" vm ")),
        "{ps}"
    );
    let inspect: serde_json::Value = serde_json::from_str(&root.ok(&["inspect", "v1"])).unwrap();
    assert_eq!(inspect[0]["Isolation"], "vm");
    assert_eq!(inspect[0]["State"]["Status"], "running");
    let qemu = inspect[0]["State"]["Pid"].as_i64().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{qemu}")).exists());
    // Isolation cannot change while it runs.
    assert_ne!(
        code(&root, &["update", "--isolation=process", "v1"]),
        Some(0)
    );
    // sleep as PID 1 ignores SIGTERM: stop escalates to SIGKILL.
    root.ok(&["stop", "-t", "1", "v1"]);
    let inspect: serde_json::Value = serde_json::from_str(&root.ok(&["inspect", "v1"])).unwrap();
    assert_eq!(inspect[0]["State"]["ExitCode"], 137);
    root.ok(&["rm", "v1"]);
    assert!(!root.path().join("containers").join(&id).exists());
    assert!(
        !std::path::Path::new(&format!("/proc/{qemu}")).exists(),
        "QEMU must be gone after rm"
    );
}

#[test]
fn vm_signals_are_forwarded() {
    let _vm = vm_lock();
    let root = Root::new();
    let mut child = root
        .cmd(&[
            "run",
            "--rm",
            "--isolation=vm",
            "demo",
            "sh",
            "-c",
            "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.contains("ready") && Instant::now() < deadline {
        let mut buf = [0u8; 256];
        let n = std::io::Read::read(&mut stdout, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("ready"), "{seen}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    std::io::Read::read_to_string(&mut stdout, &mut seen).unwrap();
    let status = child.wait().unwrap();
    assert!(seen.contains("got-term"), "{seen}");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn vm_tty_is_a_real_pty() {
    let _vm = vm_lock();
    let root = Root::new();
    let out = in_pty(
        &root,
        &[
            "run",
            "--rm",
            "-it",
            "--isolation=vm",
            "demo",
            "sh",
            "-c",
            "tty; stty size",
        ],
    );
    assert!(out.contains("/dev/pts/0"), "{out}");
}

#[test]
fn vm_switching_isolation_keeps_files_both_ways() {
    let _vm = vm_lock();
    let root = Root::new();
    let script =
        "ls /state 2>/dev/null | tr '\\n' ' '; echo; mkdir -p /state; touch /state/$(uname -r)";
    root.ok(&["create", "--name", "sw", "demo", "sh", "-c", script]);
    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let host_kernel = host_kernel.trim();
    assert_eq!(root.ok(&["start", "-a", "sw"]).trim(), "");
    root.ok(&["update", "--isolation=vm", "sw"]);
    let in_vm = root.ok(&["start", "-a", "sw"]);
    assert_eq!(
        in_vm.trim(),
        host_kernel,
        "the VM sees what process mode wrote"
    );
    root.ok(&["update", "--isolation=process", "sw"]);
    let back = root.ok(&["start", "-a", "sw"]);
    let files: Vec<&str> = back.split_whitespace().collect();
    assert_eq!(files.len(), 2, "process mode sees both files: {back}");
    assert!(files.contains(&host_kernel), "{back}");
    root.ok(&["rm", "sw"]);
}

#[test]
fn vm_refuses_host_directories() {
    let root = Root::new();
    let out = root.bh(&[
        "run",
        "--rm",
        "--isolation=vm",
        "-v",
        "/tmp:/host",
        "demo",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused with vm isolation"));
}

/// A "QEMU" that opens the agent socket and sends garbage instead of a handshake: the monitor must end
/// the container with a recorded reason, promptly, without panicking.
#[test]
fn vm_garbage_from_the_guest_ends_the_container_cleanly() {
    let _vm = vm_lock();
    let root = Root::new();
    let fake = tempfile::tempdir().unwrap();
    let qemu = fake.path().join("qemu-system-x86_64");
    std::fs::write(
        &qemu,
        r#"#!/usr/bin/env python3
# Stands in for QEMU: listens where QEMU's agent chardev would, then sends garbage and a huge frame header.
import socket, sys, time
path = [p for a in sys.argv for p in a.split(",") if p.startswith("path=")][0][5:]
s = socket.socket(socket.AF_UNIX); s.bind(path); s.listen(1)
c, _ = s.accept()
c.sendall(b"\xff\xff\xff\xff" + b"garbage" * 100)
time.sleep(30)
"#,
    )
    .unwrap();
    std::fs::set_permissions(&qemu, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        fake.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let started = Instant::now();
    let out = root
        .cmd(&["run", "--name", "bad", "--isolation=vm", "demo", "true"])
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the monitor must not wait on a broken guest"
    );
    assert_ne!(out.status.code(), Some(0));
    let inspect: serde_json::Value = serde_json::from_str(&root.ok(&["inspect", "bad"])).unwrap();
    assert_eq!(inspect[0]["State"]["Status"], "exited");
    let error = inspect[0]["State"]["Error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("guest") || error.contains("agent"),
        "{error}"
    );
    root.ok(&["rm", "bad"]);
}
