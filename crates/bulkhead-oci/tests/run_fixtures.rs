//! The captured podman and containerd configs (tests/fixtures/) run as real process containers: each
//! translated by `bundle::workload` and started with the runtime on a busybox directory rootfs, with
//! its bind sources replaced by files of the test (the callers' are gone), the network namespace podman
//! made replaced by a new one, and a namespace holder as the relay. The container prints what the
//! translation promised.
//!
//! The runtime needs a single-threaded caller: this file has its own runner (`harness = false`).

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use bulkhead_engine::MountSpec;
use bulkhead_oci::bundle;
use bulkhead_runtime::{exit_code, spawn, ContainerSpec, Stdio};
use serde_json::{json, Value};

/// A process holding new IPC and UTS namespaces, as the relay does; killed on drop.
struct Relay(std::process::Child);

impl Relay {
    fn new() -> Relay {
        let child = Command::new("unshare")
            .args(["--ipc", "--uts", "sleep", "60"])
            .spawn()
            .expect("unshare (util-linux)");
        let relay = Relay(child);
        for _ in 0..200 {
            if fs::read_to_string(format!("/proc/{}/comm", relay.0.id())).unwrap() == "sleep\n" {
                return relay;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the relay never started");
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "root"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static is installed");
    for applet in [
        "sh", "cat", "id", "hostname", "grep", "test", "echo", "readlink",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\nwheel:x:10:root\n").unwrap();
    root
}

/// The fixture with its binds' sources in `dir` (files under /etc and /run/.containerenv, directories
/// elsewhere, each holding the target's name), the network namespace path removed and `script` as the
/// command.
fn adapted(name: &str, dir: &Path, script: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let mut config: Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    config["process"]["args"] = json!(["sh", "-c", script]);
    config["process"]["terminal"] = json!(false);
    for ns in config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "network" {
            ns.as_object_mut().unwrap().remove("path");
        }
    }
    for (i, m) in config["mounts"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        if m["type"] != "bind" {
            continue;
        }
        let target = m["destination"].as_str().unwrap().to_string();
        let source = dir.join(format!("bind{i}"));
        if target.starts_with("/etc/") || target == "/run/.containerenv" {
            fs::write(&source, format!("{target}\n")).unwrap();
        } else {
            fs::create_dir(&source).unwrap();
            fs::write(source.join("content"), format!("{target}\n")).unwrap();
        }
        m["source"] = json!(source);
    }
    config
}

fn run(name: &str, script: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(dir.path());
    let config = adapted(name, dir.path(), script);
    let spec = bundle::parse(config.to_string().as_bytes()).unwrap();
    let relay = Relay::new();
    let workload = bundle::workload(&spec, relay.0.id() as i32).unwrap();
    assert!(workload
        .mounts
        .iter()
        .all(|m| !matches!(m, MountSpec::Bind { source, .. } if !source.starts_with(dir.path()))));
    let id = format!("oci-fixture-{}", std::process::id());
    let spec = ContainerSpec {
        id: id.clone(),
        rootfs,
        workload,
        cgroup_name: format!("bulkhead-test/{id}"),
        etc_hosts: "generated hosts\n".into(),
        resolv_conf: "generated resolv.conf\n".into(),
        root_share: false,
    };
    let (out_r, out_w) = nix::unistd::pipe().unwrap();
    let (err_r, err_w) = nix::unistd::pipe().unwrap();
    let stdio = Stdio::Pipes {
        stdin: None,
        stdout: out_w,
        stderr: err_w,
    };
    let container = spawn(&spec, stdio).unwrap_or_else(|e| panic!("{name}: {e}"));
    let read = |fd: OwnedFd| {
        let mut s = String::new();
        fs::File::from(fd).read_to_string(&mut s).unwrap();
        s
    };
    let (stdout, stderr) = (read(out_r), read(err_r));
    let status = nix::sys::wait::waitpid(container.pid, None).unwrap();
    container.destroy().unwrap();
    (exit_code(status), stdout, stderr)
}

fn podman_run() {
    let script = "cat /etc/hosts /etc/resolv.conf /etc/hostname /run/.containerenv; hostname; \
                  id; cat /proc/sys/net/ipv4/ping_group_range; echo $container; \
                  grep -c ' /dev/shm ' /proc/self/mountinfo; grep -c ' /proc/keys ' /proc/self/mountinfo; \
                  grep Seccomp: /proc/self/status";
    let (code, stdout, stderr) = run("podman-run.json", script);
    let id = stdout.contains("uid=0(root) gid=0(root) groups=0(root),10(wheel)");
    assert!(id, "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..5],
        [
            "/etc/hosts",
            "/etc/resolv.conf",
            "/etc/hostname",
            "/run/.containerenv",
            "2fa7206a9996"
        ],
        "{stderr}"
    );
    // /dev/shm: podman's bind over the runtime's own tmpfs.
    assert_eq!(
        lines[6..],
        ["0\t0", "podman", "2", "1", "Seccomp:\t2"],
        "{stderr}"
    );
    assert_eq!(code, 0);
}

fn ctr_run_with_seccomp_and_the_host_network() {
    let host_net = fs::read_link("/proc/self/ns/net").unwrap();
    let (code, stdout, stderr) = run(
        "ctr-run-seccomp-net-host.json",
        "readlink /proc/self/ns/net; cat /etc/hosts; grep Seccomp: /proc/self/status; touch /x && echo rw",
    );
    assert_eq!(
        stdout,
        format!("{}\n/etc/hosts\nSeccomp:\t2\nrw\n", host_net.display()),
        "{stderr}"
    );
    assert_eq!(code, 0);
}

fn podman_run_as_a_user_with_limits() {
    let (code, stdout, stderr) = run(
        "podman-run-user-tty-limits.json",
        "id -u; id -g; grep CapEff: /proc/self/status; cat /data/content; \
         echo x > /data/new 2>/dev/null || echo ro",
    );
    assert_eq!(
        stdout, "1000\n1000\nCapEff:\t0000000000000000\n/data\nro\n",
        "{stderr}"
    );
    assert_eq!(code, 0);
}

fn ctr_run() {
    let (code, stdout, stderr) = run(
        "ctr-run.json",
        "grep -c ' /run ' /proc/self/mountinfo; grep CapEff: /proc/self/status; \
         grep Seccomp: /proc/self/status",
    );
    assert_eq!(
        stdout, "1\nCapEff:\t00000000a80425fb\nSeccomp:\t0\n",
        "{stderr}"
    );
    assert_eq!(code, 0);
}

fn main() {
    let tests: &[(&str, fn())] = &[
        ("podman_run", podman_run),
        (
            "podman_run_as_a_user_with_limits",
            podman_run_as_a_user_with_limits,
        ),
        ("ctr_run", ctr_run),
        (
            "ctr_run_with_seccomp_and_the_host_network",
            ctr_run_with_seccomp_and_the_host_network,
        ),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = Vec::new();
    let mut passed = 0;
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let ok = std::panic::catch_unwind(test).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if ok {
            passed += 1;
        } else {
            failed.push(*name);
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len()
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
