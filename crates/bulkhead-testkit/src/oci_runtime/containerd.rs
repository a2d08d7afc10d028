//! Debian's containerd 1.6 started by the test: root, state, sockets, CNI configuration and IPAM state
//! all in a scratch dir, with two CRI runtime handlers, `bulkhead` (the `bulkhead-runc` link) and
//! `bulkhead-vm` (the `-vm` link), and a registry of its own serving the demo image and the sandbox image.
//! Pods get a bridge of their own (no address on the host, no masquerading, no forwarding: traffic
//! stays in the pods' namespaces). Dropping it removes the pods, kills the daemon and its shims,
//! unmounts what it mounted and deletes the bridge.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::cri::Cri;
use super::RuntimeLinks;
use crate::output::{stderr, stdout, wait_output};
use crate::registry::Registry;

/// The containerd namespace `ctr` commands use (the CRI plugin's is `k8s.io`).
pub const CTR_NAMESPACE: &str = "bulkhead-test";

pub struct Containerd {
    child: Child,
    registry: Registry,
    bridge: String,
    dir: TempDir,
}

impl Containerd {
    /// Starts containerd with both handlers pointing at `links`, and waits until it answers.
    pub fn start(links: &RuntimeLinks) -> Containerd {
        let dir = tempfile::tempdir().expect("containerd scratch dir");
        let registry = super::image_registry();
        let bridge = bridge_name();
        let d = dir.path();
        std::fs::create_dir_all(d.join("cni/conf")).expect("CNI conf dir");
        std::fs::write(
            d.join("cni/conf/10-bulkhead-test.conflist"),
            cni_conflist(&bridge, &d.join("cni/ipam")),
        )
        .expect("CNI conflist");
        std::fs::write(
            d.join("config.toml"),
            config_toml(d, &registry.host(), links),
        )
        .expect("containerd config");
        let log = std::fs::File::create(d.join("containerd.log")).expect("containerd log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("containerd log"))
            .stderr(log)
            .spawn()
            .expect("containerd (Debian package containerd)");
        let mut containerd = Containerd {
            child,
            registry,
            bridge,
            dir,
        };
        containerd.wait_serving();
        containerd
    }

    fn wait_serving(&mut self) {
        // A liveness guard against a daemon that never comes up, not a timing check.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.ctr_out(&["version"]).status.success() {
                return;
            }
            let exited = !matches!(self.child.try_wait(), Ok(None));
            assert!(
                !exited && Instant::now() < deadline,
                "containerd did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The gRPC socket (containerd's API and the CRI services).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// The registry's `HOST:PORT`.
    pub fn registry_host(&self) -> String {
        self.registry.host()
    }

    /// The demo image (`/bin/sh` as command) in the registry.
    pub fn busybox(&self) -> String {
        format!("{}/busybox:1", self.registry.host())
    }

    /// Where the CRI test client puts its pods' log directories.
    pub fn pod_logs(&self) -> PathBuf {
        self.dir.path().join("pods")
    }

    /// `ctr -a SOCKET -n bulkhead-test ARGS`, stdin closed, not yet started.
    pub fn ctr(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a")
            .arg(self.socket())
            .args(["-n", CTR_NAMESPACE])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs ctr to completion (hang-guarded), whatever its exit code.
    pub fn ctr_out(&self, args: &[&str]) -> Output {
        let child = self
            .ctr(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ctr (Debian package containerd)");
        wait_output(child, &format!("ctr {args:?}"))
    }

    /// Runs ctr, asserts success, returns stdout.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr_out(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed with {:?}\nstdout: {}\nstderr: {}\ncontainerd log tail: {}",
            out.status.code(),
            stdout(&out),
            stderr(&out),
            self.log_tail()
        );
        stdout(&out)
    }

    /// The runtime's `--root` for `ctr run` (`--runc-root`), in the scratch dir.
    pub fn ctr_runtime_root(&self) -> PathBuf {
        self.dir.path().join("runc-ctr")
    }

    /// Pulls the demo image into the ctr namespace (plain HTTP: the registry is on loopback); returns
    /// its reference.
    pub fn pull_busybox(&self) -> String {
        let image = self.busybox();
        self.ctr_ok(&["images", "pull", "--plain-http", &image]);
        image
    }

    /// A CRI client on this daemon's socket.
    pub fn cri(&self) -> Cri {
        Cri::connect(&self.socket(), &self.pod_logs())
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// The last lines of the daemon's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Removes what the CRI plugin and ctr made, so that the daemon tears down the pods' networks.
    fn remove_everything(&self) {
        if let Ok(mut cri) = Cri::try_connect(&self.socket(), &self.pod_logs()) {
            cri.remove_all_pods();
        }
        for namespace in [CTR_NAMESPACE, "k8s.io"] {
            let list = |what: &str| {
                let out = Command::new("ctr")
                    .arg("-a")
                    .arg(self.socket())
                    .args(["-n", namespace, what, "ls", "-q"])
                    .stdin(Stdio::null())
                    .output();
                out.map(|o| stdout(&o)).unwrap_or_default()
            };
            let ctr = |args: &[&str]| {
                let _ = Command::new("ctr")
                    .arg("-a")
                    .arg(self.socket())
                    .args(["-n", namespace])
                    .args(args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            };
            for task in list("tasks").lines() {
                ctr(&["tasks", "kill", "-a", "-s", "SIGKILL", task]);
                ctr(&["tasks", "delete", "-f", task]);
            }
            for container in list("containers").lines() {
                ctr(&["containers", "delete", container]);
            }
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.remove_everything();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Shims outlive the daemon (they are reparented); each names the daemon's socket in its argv.
        super::kill_processes_naming(&self.dir.path().to_string_lossy());
        super::unmount_below(self.dir.path());
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

/// A bridge name no other instance (of this or a concurrent test process) uses, within IFNAMSIZ.
fn bridge_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("bhc{:x}x{n}", std::process::id())
}

/// Bridge + host-local + loopback. The bridge has no address on the host (`isGateway` off) and no
/// masquerading, so the plugin neither routes nor touches the firewall; pod addresses are never reached
/// from the host, only inside each pod.
fn cni_conflist(bridge: &str, ipam_dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "0.4.0",
        "name": "bulkhead-test",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": false,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "dataDir": ipam_dir,
                    "ranges": [[{ "subnet": "10.254.77.0/24" }]],
                },
            },
            { "type": "loopback" },
        ],
    })
    .to_string()
}

fn config_toml(dir: &Path, registry: &str, links: &RuntimeLinks) -> String {
    let d = dir.display();
    let handler = |name: &str, binary: &Path| {
        format!(
            r#"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}]
      runtime_type = "io.containerd.runc.v2"
      pod_annotations = ["io.bulkhead.isolation"]
      container_annotations = ["io.bulkhead.isolation"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}.options]
        BinaryName = "{}"
        Root = "{d}/runc"
"#,
            binary.display()
        )
    };
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = "{d}/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{registry}/pause:1"
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "bulkhead"
{process}{vm}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{registry}"]
    endpoint = ["http://{registry}"]
"#,
        process = handler("bulkhead", &links.process()),
        vm = handler("bulkhead-vm", &links.vm()),
    )
}
