//! End-to-end tests of what only `--isolation=process` has, through the real `bulkhead` binary as root:
//! limits in host cgroups, bind mounts and the host network, containers that outlive a killed monitor,
//! and nothing left on the host after many runs. What both modes honour is in `both_modes.rs`.

mod common;

use common::host::{
    alive, cgroup_dirs, host_mounts_mentioning, host_network, loop_devices_backed_by,
    monitor_processes, network_leftovers, run_dir,
};
use common::{stable_interfaces, stderr, stdout, Root, IMAGE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};

// ---- resource limits in the host's cgroups ----

#[test]
fn memory_limit_oom_kills() {
    let r = Root::new();
    let out = r.bh(&[
        "run",
        "--name",
        "hog",
        "--memory",
        "32m",
        "--entrypoint",
        "tail",
        IMAGE,
        "/dev/zero",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    let v = r.inspect("hog");
    assert_eq!(v["State"]["OOMKilled"], true);
    assert_eq!(v["State"]["ExitCode"], 137);
}

fn read_cgroup(id: &str, v1: &str, v2: &str) -> String {
    for dir in cgroup_dirs(id) {
        for file in [v1, v2] {
            if let Ok(s) = std::fs::read_to_string(dir.join(file)) {
                return s.trim().to_string();
            }
        }
    }
    panic!("no {v1} or {v2} for container {id}");
}

#[test]
fn update_resources_live() {
    let r = Root::new();
    let id = r.detached(&[
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        IMAGE,
        "sleep",
        "1000",
    ]);
    assert_eq!(
        read_cgroup(&id, "memory.limit_in_bytes", "memory.max"),
        (64u64 << 20).to_string()
    );
    r.ok(&["update", "--memory", "48m", "--pids-limit", "4", &id]);
    assert_eq!(
        read_cgroup(&id, "memory.limit_in_bytes", "memory.max"),
        (48u64 << 20).to_string()
    );
    assert_eq!(read_cgroup(&id, "pids.max", "pids.max"), "4");
    let out = r.bh(&[
        "exec",
        &id,
        "sh",
        "-c",
        "i=0; while [ $i -lt 10 ]; do sleep 30 & i=$((i+1)); echo $i; done",
    ]);
    let n: u32 = stdout(&out)
        .lines()
        .filter_map(|l| l.parse().ok())
        .max()
        .unwrap_or(0);
    assert!(n < 4, "{n} forks succeeded after update --pids-limit 4");
    assert_eq!(r.inspect(&id)["HostConfig"]["Memory"], 48u64 << 20);
}

// ---- the host's directories and network ----

#[test]
fn bind_mounts_read_only_and_writable() {
    let r = Root::new();
    let host = r.path().join("shared");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("from-host"), "hello").unwrap();
    let ro = format!("{}:/data:ro", host.display());
    let out = r.bh(&[
        "run",
        "--rm",
        "-v",
        &ro,
        IMAGE,
        "sh",
        "-c",
        "cat /data/from-host; touch /data/x",
    ]);
    assert_eq!(stdout(&out), "hello");
    assert_ne!(out.status.code(), Some(0));
    assert!(!host.join("x").exists());
    let rw = format!("{}:/data", host.display());
    r.ok(&[
        "run",
        "--rm",
        "-v",
        &rw,
        IMAGE,
        "sh",
        "-c",
        "echo back > /data/from-container",
    ]);
    assert_eq!(
        std::fs::read_to_string(host.join("from-container")).unwrap(),
        "back\n"
    );
}

#[test]
fn host_network_shares_the_interfaces_but_not_user_namespaces() {
    let r = Root::new();
    let host = r.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        IMAGE,
        "cat",
        "/proc/net/dev",
    ]);
    let ours = stable_interfaces(&std::fs::read_to_string("/proc/net/dev").unwrap());
    assert!(ours.len() > 1, "the host has more than lo: {ours:?}");
    assert_eq!(stable_interfaces(&host), ours);
    let out = r.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        IMAGE,
        "sh",
        "-c",
        "unshare -U true; echo rc=$?",
    ]);
    assert!(out.contains("rc=1"), "unshare -U with host network: {out}");
}

/// A container's own resolver asking a network's name responder: the responder as a monitor runs it,
/// on a loopback address of this test, and a container on the host's network that names that address
/// with `--dns`, so busybox's resolver in the container sends it real queries (A and AAAA).
#[test]
fn a_containers_resolver_is_answered_by_the_network_responder() {
    use bulkhead_engine::network_dns::{start, DnsConfig};
    use std::net::{Ipv4Addr, SocketAddrV4};
    let endpoints = tempfile::tempdir().unwrap();
    let record = r#"{"container_id":"ee","name":"web","aliases":["db"],"ipv4":"10.88.7.2"}"#;
    std::fs::write(endpoints.path().join("ee.json"), record).unwrap();
    // The responder serves only its network's containers: this one asks from the host's 127.0.0.1.
    let asker = r#"{"container_id":"ff","name":"asker","aliases":[],"ipv4":"127.0.0.1"}"#;
    std::fs::write(endpoints.path().join("ff.json"), asker).unwrap();
    let pid_byte = (std::process::id() % 251) as u8;
    let listen = SocketAddrV4::new(Ipv4Addr::new(127, 54, pid_byte, 1), 53);
    let _dns = start(DnsConfig {
        endpoints: endpoints.path().to_path_buf(),
        listen,
        containers: endpoints.path().to_path_buf(),
        // No upstream: an outside name gets SERVFAIL at once.
        upstreams: Vec::new(),
    })
    .unwrap();
    let r = Root::new();
    let server = listen.ip().to_string();
    let out = r.bh(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--dns",
        &server,
        IMAGE,
        "sh",
        "-c",
        "nslookup web; nslookup DB; nslookup outside.test; cat /etc/resolv.conf",
    ]);
    let text = stdout(&out);
    assert_eq!(text.matches("Address: 10.88.7.2").count(), 2, "{text}");
    assert!(text.contains("can't find outside.test: SERVFAIL"), "{text}");
    assert!(text.contains(&format!("nameserver {server}")), "{text}");
}

// ---- durable state ----

fn assert_nothing_left(r: &Root, id: &str) {
    assert!(!r.path().join("containers").join(id).exists());
    assert!(!run_dir(id).exists());
    assert_eq!(cgroup_dirs(id), Vec::<PathBuf>::new());
    assert_eq!(host_mounts_mentioning(r.path()), Vec::<String>::new());
    assert_eq!(network_leftovers(id), Vec::<String>::new());
}

#[test]
fn survives_a_killed_monitor() {
    let r = Root::new();
    // With a published port, so the removal's clean-up also has firewall rules to find.
    let id = r.detached(&["-p", "127.0.0.1::80", IMAGE, "sleep", "1000"]);
    let state = r.state(&id);
    let monitor = state["monitor_pid"].as_i64().unwrap();
    let pid = state["pid"].as_i64().unwrap();
    kill(Pid::from_raw(monitor as i32), Signal::SIGKILL).unwrap();
    while alive(monitor) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(r.ok(&["ps", "-a", "-q", "--no-trunc"]).contains(&id));
    assert_eq!(
        r.inspect(&id)["State"]["Status"],
        "running",
        "the process still runs unattended"
    );
    r.ok(&["stop", "-t", "1", &id]);
    assert!(!alive(pid), "stop reached the unattended process");
    assert_eq!(r.inspect(&id)["State"]["Status"], "exited");
    r.ok(&["rm", "-f", &id]);
    assert_nothing_left(&r, &id);

    // Monitor and process both gone: the container reads as exited, and rm -f cleans up.
    let id = r.detached(&[IMAGE, "sleep", "1000"]);
    let state = r.state(&id);
    let (monitor, pid) = (
        state["monitor_pid"].as_i64().unwrap(),
        state["pid"].as_i64().unwrap(),
    );
    kill(Pid::from_raw(monitor as i32), Signal::SIGKILL).unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let v = r.wait_status(&id, "exited");
    assert_ne!(v["State"]["ExitCode"], 0);
    assert!(!r.ok(&["ps", "-q"]).contains(&id[..12]));
    // Nobody released the image's shared mount: the removal does.
    assert_eq!(erofs_mounts(&r).len(), 1);
    r.ok(&["rm", "-f", &id]);
    assert_nothing_left(&r, &id);
    assert_eq!(loop_devices_backed_by(r.path()), 0);
}

// ---- rm leaves nothing behind ----

fn open_fds() -> Vec<String> {
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    fds.sort();
    fds
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            out.push(e.path());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(files_under(&e.path()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn rm_leaves_nothing_after_many_cycles() {
    let r = Root::new();
    let containers = r.path().join("containers");
    // Under cargo-nextest every test is its own process, so all of our fds must be back; under the
    // plain harness other tests share the process, so only fds into our root count.
    let own_process = std::env::var_os("NEXTEST_RUN_ID").is_some();
    let our_fds = || -> Vec<String> {
        let root = r.path().to_string_lossy().into_owned();
        open_fds()
            .into_iter()
            .filter(|f| own_process || f.contains(&root))
            .collect()
    };
    // One cycle first: the first create makes the root's lock file, which is no leak.
    let warm = r.ok(&["create", IMAGE, "true"]).trim().to_string();
    r.ok(&["rm", &warm]);
    let net_before = host_network();
    let mounts_before = host_mounts_mentioning(r.path());
    let fds_before = our_fds();
    let files_before = files_under(&containers);
    let mut ids = Vec::new();
    for i in 0..200 {
        let id = r.ok(&["create", IMAGE, "true"]).trim().to_string();
        let out = r.bh(&["start", "-a", &id]);
        assert_eq!(out.status.code(), Some(0), "cycle {i}: {}", stderr(&out));
        r.ok(&["rm", &id]);
        ids.push(id);
    }
    assert_eq!(host_mounts_mentioning(r.path()), mounts_before);
    assert_eq!(loop_devices_backed_by(r.path()), 0);
    // First (it waits for the kernel's background deletion of dead namespaces' veths).
    for id in &ids {
        assert_eq!(network_leftovers(id), Vec::<String>::new(), "{id}");
    }
    // Containers are on the default bridge: the host's links, routes and ruleset have nothing new that
    // is the bridge's or one of ours (other tests may be changing the host meanwhile).
    let ours = |line: &String| {
        line.contains("bulkhead0")
            || ids
                .iter()
                .any(|id| line.contains(&id[..10]) || line.contains(id.as_str()))
    };
    let added: Vec<String> = host_network()
        .difference(&net_before)
        .filter(|l| ours(l))
        .cloned()
        .collect();
    assert_eq!(added, Vec::<String>::new());

    for id in &ids {
        assert_eq!(cgroup_dirs(id), Vec::<PathBuf>::new(), "cgroup of {id}");
        assert!(!run_dir(id).exists(), "run dir of {id}");
    }
    assert_eq!(monitor_processes(r.path()), Vec::<(u32, u32)>::new());
    assert_eq!(our_fds(), fds_before);
    assert_eq!(files_under(&containers), files_before);
    assert!(r.all_ids().is_empty());
}

// ---- one shared erofs mount per image ----

/// The host's erofs mounts below the root (the shared lower layers of its images).
fn erofs_mounts(r: &Root) -> Vec<String> {
    host_mounts_mentioning(r.path())
        .into_iter()
        .filter(|l| l.contains(" - erofs "))
        .collect()
}

#[test]
fn containers_of_one_image_share_one_erofs_mount() {
    let r = Root::new();
    let a = r.detached(&["--network", "none", IMAGE, "sleep", "1000"]);
    let b = r.detached(&["--network", "none", IMAGE, "sleep", "1000"]);
    let mounts = erofs_mounts(&r);
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert!(
        mounts[0].contains("nosuid") && mounts[0].contains("nodev") && mounts[0].contains(" ro,"),
        "{}",
        mounts[0]
    );
    // One loop device for the image, one per container's disk.
    assert_eq!(loop_devices_backed_by(r.path()), 3);
    // What one container writes stays its own; the image's files are both's.
    r.ok(&["exec", &a, "sh", "-c", "echo mine > /etc/hostname.a"]);
    let out = r.bh(&["exec", &b, "cat", "/etc/hostname.a"]);
    assert_ne!(out.status.code(), Some(0), "b sees a's file");

    r.ok(&["rm", "-f", &a]);
    assert_eq!(erofs_mounts(&r).len(), 1, "b still uses the image's mount");
    assert_eq!(
        r.ok(&["exec", &b, "ls", "/bin/busybox"]).trim(),
        "/bin/busybox"
    );
    r.ok(&["rm", "-f", &b]);
    assert_eq!(erofs_mounts(&r), Vec::<String>::new());
    assert_eq!(loop_devices_backed_by(r.path()), 0);
}

#[test]
fn concurrent_runs_of_one_image_share_its_mount_and_leave_nothing() {
    let r = Root::new();
    let runs: Vec<_> = (0..8)
        .map(|i| {
            r.cmd(&[
                "run",
                "--rm",
                "--network",
                "none",
                IMAGE,
                "echo",
                &format!("run {i}"),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for (i, run) in runs.into_iter().enumerate() {
        let out = run.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "run {i}: {}", stderr(&out));
        assert_eq!(stdout(&out).trim(), format!("run {i}"));
    }
    assert_eq!(host_mounts_mentioning(r.path()), Vec::<String>::new());
    assert_eq!(loop_devices_backed_by(r.path()), 0);
}

#[test]
fn image_removal_unmounts_its_shared_mount() {
    let r = Root::new();
    let lowers = r.path().join("lowers");
    // Removed after its containers: nothing of the image's mount is left.
    let id = r.detached(&["--network", "none", IMAGE, "sleep", "1000"]);
    r.ok(&["rm", "-f", &id]);
    r.ok(&["image", "rm", IMAGE]);
    assert_eq!(host_mounts_mentioning(r.path()), Vec::<String>::new());
    assert_eq!(files_under(&lowers), Vec::<PathBuf>::new());

    // Forced while a container runs on it: the mount goes, the container keeps its files.
    let r = Root::new();
    let id = r.detached(&["--network", "none", IMAGE, "sleep", "1000"]);
    assert_eq!(erofs_mounts(&r).len(), 1);
    r.ok(&["image", "rm", "-f", IMAGE]);
    assert_eq!(erofs_mounts(&r), Vec::<String>::new());
    assert_eq!(
        r.ok(&["exec", &id, "echo", "still here"]).trim(),
        "still here"
    );
    r.ok(&["rm", "-f", &id]);
    assert_nothing_left(&r, &id);
    assert_eq!(loop_devices_backed_by(r.path()), 0);
}
