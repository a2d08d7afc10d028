//! The jail QEMU runs in (VM isolation), checked from the host as an attacker who took QEMU over would
//! find it: its credentials, namespaces, mounts, descriptors, rlimits and cgroup in `/proc`, what
//! `inspect` reports, QEMU's death and its cgroup's removal when the monitor is killed, and a guest that
//! floods its serial console.

mod common;

use bulkhead_testkit::vm_lock;
use common::host::{alive, monitor_pids, run_dir};
use common::Root;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The jail's uid range (`bulkhead_vm::jail::uid`).
const FIRST_UID: u64 = 0x7000_0000;
const UID_COUNT: u64 = 65536;
/// What one console log file may hold (`bulkhead_vm::log_pump::LOG_CAP`).
const LOG_CAP: u64 = 256 << 10;

fn inspect(root: &Root, name: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(&root.ok(&["inspect", name])).unwrap()[0].clone()
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in\n{status}"))
        .trim()
        .to_string()
}

/// The VM's cgroup directory under one v1 controller, or the v2 one.
fn cgroup_dir(controller: &str, id: &str) -> PathBuf {
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let base = if v2 {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        Path::new("/sys/fs/cgroup").join(controller)
    };
    base.join("bulkhead-vm").join(id)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn vm_qemu_runs_unprivileged_and_confined() {
    let _vm = vm_lock();
    let root = Root::new();
    root.ok(&[
        "run",
        "-d",
        "--name",
        "j",
        "--isolation=vm",
        "--cpus",
        "1.5",
        "--memory",
        "300m",
        "demo",
        "sleep",
        "1000",
    ]);
    let c = inspect(&root, "j");
    let id = c["Id"].as_str().unwrap().to_string();
    let jail = &c["State"]["Qemu"];
    let pid = jail["Pid"].as_i64().expect("inspect shows QEMU's pid");
    assert_eq!(c["State"]["Pid"].as_i64(), Some(pid));
    let uid = jail["Uid"].as_u64().unwrap();
    assert!((FIRST_UID..FIRST_UID + UID_COUNT).contains(&uid), "{jail}");
    assert_eq!(jail["Gid"].as_u64(), Some(uid));
    for check in [
        "capabilities",
        "seccomp",
        "no_new_privs",
        "namespaces",
        "cgroup",
        "mount namespace",
    ] {
        assert!(
            jail["Checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == check),
            "{jail}"
        );
    }

    let proc = PathBuf::from(format!("/proc/{pid}"));
    let status = std::fs::read_to_string(proc.join("status")).unwrap();
    for key in ["Uid", "Gid"] {
        let ids = status_field(&status, key);
        assert!(
            ids.split_whitespace().all(|i| i == uid.to_string()),
            "{key}: {ids}"
        );
    }
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&status, key), "0000000000000000", "{key}");
    }
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    assert_eq!(status_field(&status, "Seccomp"), "2");
    // Ours under QEMU's own `-sandbox on`.
    let filters: u32 = status_field(&status, "Seccomp_filters").parse().unwrap();
    assert!(filters >= 2, "{filters} seccomp filters");
    assert_eq!(std::fs::read(proc.join("environ")).unwrap(), b"");

    for ns in ["mnt", "pid", "net", "ipc", "uts"] {
        let theirs = std::fs::read_link(proc.join("ns").join(ns)).unwrap();
        let ours = std::fs::read_link(Path::new("/proc/self/ns").join(ns)).unwrap();
        assert_ne!(theirs, ours, "QEMU shares our {ns} namespace");
    }
    // QEMU is PID 1 of its pid namespace.
    let nspid = status_field(&status, "NSpid");
    assert_eq!(nspid.split_whitespace().last(), Some("1"), "NSpid: {nspid}");

    // Its root is the jail's tmpfs; everything else is a read-only, nosuid file bind: QEMU, its
    // libraries, firmware, kernel, initramfs and two character devices. No /proc, /sys, /run, /tmp.
    let mountinfo = std::fs::read_to_string(proc.join("mountinfo")).unwrap();
    let mut points = Vec::new();
    for line in mountinfo.lines() {
        let (left, right) = line.split_once(" - ").unwrap();
        let fields: Vec<&str> = left.split_whitespace().collect();
        let (point, options) = (fields[4], fields[5]);
        if point == "/" {
            assert!(right.starts_with("tmpfs bulkhead-jail "), "{line}");
        }
        assert!(
            options.split(',').any(|o| o == "ro"),
            "writable mount {line}"
        );
        assert!(
            options.split(',').any(|o| o == "nosuid"),
            "suid mount {line}"
        );
        points.push(point.to_string());
    }
    let allowed = |p: &str| {
        p == "/"
            || ["/vmlinux", "/initramfs", "/dev/null", "/dev/urandom"].contains(&p)
            || p.ends_with("/qemu-system-x86_64")
            || p.starts_with("/lib/")
            || p.starts_with("/lib64/")
            || p.starts_with("/usr/lib/")
            || p.starts_with("/usr/share/qemu/")
    };
    let unexpected: Vec<&String> = points.iter().filter(|p| !allowed(p)).collect();
    assert!(
        unexpected.is_empty(),
        "unexpected mounts in the jail: {unexpected:?}"
    );
    assert!(points.len() < 100, "{} mounts", points.len());

    // Only the descriptors passed on purpose: /dev/null, log pipes, the agent's socket, the two disks, and
    // the tap of the NIC on the default bridge (opened by the host inside the container's namespace).
    let disk_dir = root.path().to_string_lossy().into_owned();
    for fd in std::fs::read_dir(proc.join("fd")).unwrap().flatten() {
        let target = std::fs::read_link(fd.path())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let ok = target == "/dev/null"
            || target == "/dev/net/tun"
            || target.starts_with("pipe:")
            || target.starts_with("socket:")
            || target.starts_with("anon_inode:")
            || (target.starts_with(&disk_dir)
                && (target.ends_with("/rw.img") || target.ends_with(".erofs")));
        assert!(ok, "QEMU holds {target}");
    }

    let limits = std::fs::read_to_string(proc.join("limits")).unwrap();
    let limit = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| {
                l[name.len()..]
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap()
    };
    assert_eq!(limit("Max open files"), "1024 1024");
    assert_eq!(limit("Max core file size"), "0 0");
    assert_ne!(limit("Max file size"), "unlimited unlimited");

    // The cgroup: guest RAM plus overhead (bulkhead_vm::jail::MEMORY_OVERHEAD_MIB), and --cpus.
    let cgroups = std::fs::read_to_string(proc.join("cgroup")).unwrap();
    assert!(cgroups.contains(&format!("/bulkhead-vm/{id}")), "{cgroups}");
    let mem = cgroup_dir("memory", &id);
    let cpu = cgroup_dir("cpu", &id);
    let expected_mem = ((300 + 128) << 20).to_string();
    match std::fs::read_to_string(mem.join("memory.max")) {
        Ok(max) => assert_eq!(max.trim(), expected_mem),
        Err(_) => {
            let v1 = std::fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap();
            assert_eq!(v1.trim(), expected_mem);
        }
    }
    match std::fs::read_to_string(cpu.join("cpu.max")) {
        Ok(max) => assert_eq!(max.trim(), "150000 100000"),
        Err(_) => {
            let quota = std::fs::read_to_string(cpu.join("cpu.cfs_quota_us")).unwrap();
            assert_eq!(quota.trim(), "150000");
        }
    }

    // A monitor killed outright takes QEMU with it; removal then clears the cgroup.
    let monitors = monitor_pids(root.path());
    assert_eq!(monitors.len(), 1, "{monitors:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitors[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("QEMU died with its monitor", || !alive(pid));
    root.ok(&["rm", "-f", "j"]);
    assert!(
        !mem.exists() && !cpu.exists(),
        "the VM's cgroup outlived its removal"
    );
}

/// A privileged guest writes its serial port as fast as it can: the host keeps at most two capped files.
#[test]
fn vm_console_flood_stays_capped_on_the_host() {
    let _vm = vm_lock();
    let root = Root::new();
    let flood = 3 * LOG_CAP;
    let script = format!(
        "mkdir /d && mount -t devtmpfs dev /d && head -c {flood} /dev/zero | tr '\\0' x > /d/ttyS0"
    );
    root.ok(&[
        "run",
        "--name",
        "flood",
        "--privileged",
        "--isolation=vm",
        "demo",
        "sh",
        "-c",
        &script,
    ]);
    let id = inspect(&root, "flood")["Id"].as_str().unwrap().to_string();
    let dir = run_dir(&id);
    let live = std::fs::metadata(dir.join("console.log")).unwrap().len();
    let rotated = std::fs::metadata(dir.join("console.log.1")).unwrap().len();
    assert!(live <= LOG_CAP, "console.log has {live} bytes");
    assert_eq!(rotated, LOG_CAP);
    let older = std::fs::read(dir.join("console.log.1")).unwrap();
    assert!(
        older.windows(64).any(|w| w.iter().all(|b| *b == b'x')),
        "the flood reached the log"
    );
    root.ok(&["rm", "flood"]);
}
