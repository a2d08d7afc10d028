//! End-to-end tests of what only VM isolation has, through the CLI as root with real QEMU (TCG on these
//! machines) and the cached guest kernel: the guest's own kernel and RAM, switching a container between
//! modes, what the VM mode refuses, and a broken guest. What both modes honour is in `both_modes.rs`.

mod common;

use bulkhead_testkit::vm_lock;
use common::Root;
use std::time::{Duration, Instant};

/// The last two lines apart: everything before them, then the two.
fn split_last_two(out: &str) -> (Vec<&str>, &str, &str) {
    let mut lines: Vec<&str> = out.lines().collect();
    let last = lines.pop().unwrap_or_default();
    let before_last = lines.pop().unwrap_or_default();
    (lines, before_last, last)
}

#[test]
fn vm_runs_its_own_kernel_and_the_same_image() {
    let _vm = vm_lock();
    let root = Root::new();
    // Same image, same files, whichever kernel; `hyperv` is an alias of vm. The network is the same
    // too: only `lo`, and it is up (flags 0x9 = IFF_UP | IFF_LOOPBACK). Kernel and RAM differ.
    let script = "cat /etc/motd; ls /bin | wc -l; id; grep -c : /proc/net/dev; \
                  cat /sys/class/net/lo/flags; uname -r; grep MemTotal /proc/meminfo";
    let p = root.ok(&["run", "--rm", "demo", "sh", "-c", script]);
    let v = root.ok(&[
        "run",
        "--rm",
        "--isolation=hyperv",
        "--memory",
        "300m",
        "demo",
        "sh",
        "-c",
        script,
    ]);
    let (p_same, host, _) = split_last_two(&p);
    let (v_same, guest, guest_mem) = split_last_two(&v);
    assert_eq!(p_same, v_same);
    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(host, host_kernel.trim());
    assert_ne!(host, guest, "the vm container must run the guest kernel");
    let kib: u64 = guest_mem
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no MemTotal in {v}"));
    // Guest RAM is what --memory asked for, less what the guest kernel reserves.
    assert!(
        (250_000..=307_200).contains(&kib),
        "MemTotal {kib} kB for --memory 300m"
    );
}

/// A switch moves no files one way; the other way, the changes a VM made come back through the export VM
/// (the host never mounts a disk a guest wrote) with what overlayfs records: a deleted image file stays
/// deleted (whiteout), a replaced image directory stays replaced (opaque), and modes, links and symlinks
/// are kept.
#[test]
fn vm_switching_isolation_keeps_files_both_ways() {
    let _vm = vm_lock();
    let root = Root::new();
    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let host_kernel = host_kernel.trim();
    let script = format!(
        "ls /state 2>/dev/null | tr '\\n' ' '; echo; mkdir -p /state; touch /state/$(uname -r); \
         if [ \"$(uname -r)\" != {host_kernel} ]; then \
           rm /etc/motd; rm -rf /home; mkdir -p /home/new; \
           cp /bin/busybox /state/suid; chmod 4755 /state/suid; ln -s /etc/passwd /state/link; \
           echo x > /state/a; ln /state/a /state/b; fi; \
         [ -e /etc/motd ] && echo motd is back; ls /home | tr '\\n' ' '; echo; \
         stat -c '%n %a %h %F' /state/suid /state/a /state/link; stat -c %i /state/a /state/b; true"
    );
    root.ok(&["create", "--name", "sw", "demo", "sh", "-c", &script]);
    let first = root.ok(&["start", "-a", "sw"]);
    assert_eq!(first.lines().next(), Some(""), "{first}");
    root.ok(&["update", "--isolation=vm", "sw"]);
    let in_vm = root.ok(&["start", "-a", "sw"]);
    assert_eq!(
        in_vm.lines().next().map(str::trim),
        Some(host_kernel),
        "the VM sees what process mode wrote: {in_vm}"
    );
    let id = root.inspect("sw")["Id"].as_str().unwrap().to_string();
    assert_eq!(root.state(&id)["disk_vm_written"], true);
    root.ok(&["update", "--isolation=process", "sw"]);
    let back = root.ok(&["start", "-a", "sw"]);
    assert_eq!(
        root.state(&id)["disk_vm_written"],
        false,
        "the disk is the host's again"
    );
    let lines: Vec<&str> = back.lines().collect();
    let files: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(files.len(), 6, "process mode sees what both wrote: {back}");
    for name in [host_kernel, "a", "b", "link", "suid"] {
        assert!(files.contains(&name), "{name}: {back}");
    }
    assert_eq!(
        &lines[1..],
        [
            "new ",
            "/state/suid 4755 1 regular file",
            "/state/a 644 2 regular file",
            "/state/link 777 1 symbolic link",
            lines[5],
            lines[5],
        ],
        "whiteout, opaque directory, setuid mode, hard link and symlink survive: {back}"
    );
    root.ok(&["rm", "sw"]);
}

/// Settings only a VM made acceptable do not silently become host privileges: switching such a container
/// to process isolation is refused, naming them, unless forced. No VM boots here.
#[test]
fn vm_only_privileges_need_force_to_reach_the_host() {
    let root = Root::new();
    let cases: [(&[&str], &str); 4] = [
        (&["--privileged"], "privileged"),
        (&["--cap-add", "SYS_ADMIN"], "added capabilities SYS_ADMIN"),
        (
            &["--security-opt", "seccomp=unconfined"],
            "seccomp unconfined",
        ),
        (&["--tmpfs", "/x:rw,dev"], "tmpfs /x with device nodes"),
    ];
    for (flags, named) in cases {
        let mut args = vec!["create", "--isolation", "vm"];
        args.extend_from_slice(flags);
        args.extend(["demo", "true"]);
        let id = root.ok(&args).trim().to_string();
        let out = root.bh(&["update", "--isolation", "process", &id]);
        let msg = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{flags:?}");
        assert!(
            msg.contains(named) && msg.contains("--force") && msg.contains("on the host"),
            "{flags:?}: {msg}"
        );
        assert_eq!(root.inspect(&id)["HostConfig"]["Isolation"], "vm");
        root.ok(&["update", "--isolation", "process", "--force", &id]);
        assert_eq!(root.inspect(&id)["HostConfig"]["Isolation"], "process");
    }
    // Without such settings, and for a tmpfs whose last word is nodev, the switch needs no force.
    let plain = root.ok(&[
        "create",
        "--isolation",
        "vm",
        "--tmpfs",
        "/y:dev,nodev",
        "demo",
        "true",
    ]);
    root.ok(&["update", "--isolation", "process", plain.trim()]);
}

/// Writes a stand-in for QEMU: a script for the static busybox, which the jail binds as its interpreter.
fn fake_qemu(dir: &std::path::Path, script: &str) -> String {
    let qemu = dir.join("qemu-system-x86_64");
    std::fs::write(&qemu, format!("#!/bin/busybox sh\n{script}")).unwrap();
    std::fs::set_permissions(&qemu, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A QEMU that cannot start the VM: the start fails with QEMU's own words from `qemu.log`.
#[test]
fn vm_qemu_that_cannot_start_explains_why() {
    let _vm = vm_lock();
    let root = Root::new();
    let fake = tempfile::tempdir().unwrap();
    let path = fake_qemu(
        fake.path(),
        "echo 'qemu: this option is unknown here' >&2; exit 1\n",
    );
    // Not attached: `start` reads the monitor's ready line, whatever becomes of its socket.
    root.ok(&[
        "create",
        "--name",
        "nostart",
        "--isolation=vm",
        "demo",
        "true",
    ]);
    let out = root
        .cmd(&["start", "nostart"])
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("this option is unknown here"), "{err}");
    let inspect: serde_json::Value =
        serde_json::from_str(&root.ok(&["inspect", "nostart"])).unwrap();
    let recorded = inspect[0]["State"]["Error"].as_str().unwrap_or_default();
    assert!(
        recorded.contains("this option is unknown here"),
        "{recorded}"
    );
    root.ok(&["rm", "nostart"]);
}

/// A "QEMU" that sends garbage instead of a handshake on the agent's socket: the monitor must end the
/// container with a recorded reason, promptly, without panicking.
#[test]
fn vm_garbage_from_the_guest_ends_the_container_cleanly() {
    let _vm = vm_lock();
    let root = Root::new();
    let fake = tempfile::tempdir().unwrap();
    // fd 5 is QEMU's end of the agent's socket (bulkhead_vm::qemu::AGENT_FD).
    let path = fake_qemu(
        fake.path(),
        r#"printf '\377\377\377\377' >&5
i=0; while [ $i -lt 100 ]; do printf garbage >&5; i=$((i + 1)); done
exec /bin/busybox sleep 30
"#,
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
