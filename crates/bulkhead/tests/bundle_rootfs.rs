//! Bundle containers end to end: a container whose root filesystem is a directory its caller prepared
//! (an OCI bundle's rootfs: here the demo image's busybox unpacked into a temp dir), created through the
//! engine's `create_bundle` as the OCI runtime front end does, then started, updated and removed with the
//! real `bulkhead` binary. In both modes the container's writes land in the caller's directory, and `rm`
//! leaves the directory as it is. VM mode also takes binds of single files (as OCI callers send them),
//! as copies.

mod common;

use bulkhead_engine::{BundleCreate, Engine, EngineConfig, EngineError, Isolation, Workload};
use bulkhead_testkit::vm_lock;
use common::Root;
use std::path::Path;
use std::process::Command;

/// The demo image's rootfs unpacked into a fresh directory, as a caller prepares a bundle's rootfs.
fn unpacked_rootfs() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("bh-bundle-")
        .tempdir()
        .expect("temp dir");
    let out = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .arg("-xpf")
        .arg(common::image_tar())
        .output()
        .expect("running tar");
    assert!(
        out.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// A workload running `script` with sh, as the bundle's config.json would say. Built from JSON so that
/// fields other crates add (with serde defaults) need nothing here.
fn workload(script: &str, readonly_rootfs: bool) -> Workload {
    serde_json::from_value(serde_json::json!({
        "process": {
            "args": ["/bin/sh", "-c", script],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "user": "",
            "terminal": false,
            "rlimits": [],
        },
        "hostname": "bundle",
        "readonly_rootfs": readonly_rootfs,
        "mounts": [],
        "network": "None",
        "userns": null,
        "security": {
            "privileged": false,
            "cap_add": [],
            "cap_drop": [],
            "seccomp": "Default",
            "no_new_privileges": false,
        },
        "resources": { "memory_bytes": null, "cpus": null, "pids_limit": null },
    }))
    .expect("a workload")
}

fn engine(root: &Root) -> Engine {
    Engine::open(EngineConfig::load(root.path()).expect("engine config")).expect("engine")
}

fn bundle(name: &str, rootfs: &Path, workload: Workload, isolation: Isolation) -> BundleCreate {
    BundleCreate {
        name: name.into(),
        rootfs: rootfs.to_path_buf(),
        workload,
        isolation: Some(isolation),
        image_name: None,
        labels: [("io.example.bundle".to_string(), name.to_string())].into(),
        open_stdin: false,
    }
}

fn host_kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .expect("osrelease")
        .trim()
        .to_string()
}

/// Runs the bundle container `name` (created in `dir`) once, then checks what every mode must do: the
/// file it wrote is in the caller's directory, its isolation cannot change (to `other`), and `rm`
/// removes the container but leaves every file of the directory, and no mount of it behind.
fn run_and_remove(root: &Root, name: &str, dir: &Path, other: &str) -> String {
    let out = root.ok(&["start", "-a", name]);
    let written = std::fs::read_to_string(dir.join("written")).expect("the container's file");
    assert_eq!(written.trim(), "from the container", "{out}");
    let refused = root.bh(&["update", "--isolation", other, name]);
    let why = common::stderr(&refused);
    assert!(
        !refused.status.success() && why.contains("bundle"),
        "update --isolation of a bundle container must be refused: {why}"
    );
    let before = listing(dir);
    root.ok(&["rm", name]);
    assert!(root.all_ids().is_empty());
    assert_eq!(listing(dir), before, "rm must leave the caller's directory");
    assert_eq!(
        common::host::host_mounts_mentioning(root.path()),
        Vec::<String>::new()
    );
    out
}

/// Every path below `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let out = Command::new("find")
        .arg(dir)
        .output()
        .expect("running find");
    let mut paths: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    paths.sort();
    assert!(paths.len() > 10, "{paths:?}");
    paths
}

const SCRIPT: &str = "echo from the container > /written; uname -r; cat /etc/motd";

#[test]
fn a_directory_rootfs_runs_in_process_mode_and_stays_the_callers() {
    let root = Root::empty();
    let dir = unpacked_rootfs();
    let engine = engine(&root);
    let c = engine
        .create_bundle(&bundle(
            "bundle-p",
            dir.path(),
            workload(SCRIPT, false),
            Isolation::Process,
        ))
        .expect("create_bundle");
    assert_eq!(c.config.rootfs_dir.as_deref(), Some(dir.path()));
    assert!(c.config.image_id.is_empty());
    assert!(
        !c.paths.disk().exists(),
        "a bundle container has no writable disk"
    );
    let out = run_and_remove(&root, "bundle-p", dir.path(), "vm");
    let motd = std::fs::read_to_string(dir.path().join("etc/motd")).expect("motd");
    assert_eq!(out, format!("{}\n{motd}", host_kernel()));
}

/// A read-only root refuses the container's writes. The root need not have the files the generated
/// /etc files are bound over (the demo rootfs has no /etc/hosts): they are made empty, on the host, in
/// both modes (a VM's guest could not, on a share QEMU serves read-only).
fn readonly_root_refuses_writes(isolation: Isolation) {
    let root = Root::empty();
    let dir = unpacked_rootfs();
    let engine = engine(&root);
    let script = "touch /written 2>&1 || echo refused; cat /etc/hostname";
    engine
        .create_bundle(&bundle(
            "bundle-ro",
            dir.path(),
            workload(script, true),
            isolation,
        ))
        .expect("create_bundle");
    let out = root.ok(&["start", "-a", "bundle-ro"]);
    assert!(
        out.contains("Read-only file system") && out.contains("refused\nbundle\n"),
        "{out}"
    );
    assert!(!dir.path().join("written").exists());
    root.ok(&["rm", "bundle-ro"]);
    assert!(dir.path().join("bin/busybox").exists());
    assert_eq!(std::fs::read(dir.path().join("etc/hosts")).unwrap(), b"");
}

#[test]
fn a_readonly_directory_rootfs_refuses_writes() {
    readonly_root_refuses_writes(Isolation::Process);
}

#[test]
fn vm_a_readonly_directory_rootfs_refuses_writes() {
    let _vm = vm_lock();
    readonly_root_refuses_writes(Isolation::Vm);
}

/// `rm -f` of a running bundle container whose monitor was killed (so nothing unmounted its root):
/// the bind goes, and not one file of the caller's directory with it.
#[test]
fn rm_after_a_killed_monitor_leaves_the_directory() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let root = Root::empty();
    let dir = unpacked_rootfs();
    let engine = engine(&root);
    let c = engine
        .create_bundle(&bundle(
            "bundle-k",
            dir.path(),
            workload("sleep 1000", false),
            Isolation::Process,
        ))
        .expect("create_bundle");
    root.ok(&["start", "bundle-k"]);
    let monitor = root.state(c.id())["monitor_pid"].as_i64().unwrap() as i32;
    kill(Pid::from_raw(monitor), Signal::SIGKILL).unwrap();
    while common::host::alive(monitor.into()) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let before = listing(dir.path());
    assert!(!common::host::host_mounts_mentioning(root.path()).is_empty());
    root.ok(&["rm", "-f", "bundle-k"]);
    assert_eq!(listing(dir.path()), before);
    assert_eq!(
        common::host::host_mounts_mentioning(root.path()),
        Vec::<String>::new()
    );
}

/// A network namespace made with `ip netns add`, holding a veth pair; deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("bh-bundle-{}", std::process::id());
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("running ip");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                common::stderr(&out)
            );
        };
        ip(&["netns", "add", &name]);
        let ns = Netns(name);
        ip(&[
            "-n", &ns.0, "link", "add", "bundle0", "type", "veth", "peer", "name", "bundle1",
        ]);
        ns
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// The network a bundle names is joined as it is (as CRI hands over a pod's): no bridge, no veth.
#[test]
fn a_bundle_joins_the_network_namespace_it_names() {
    let root = Root::empty();
    let dir = unpacked_rootfs();
    let netns = Netns::new();
    let engine = engine(&root);
    let mut w = workload("cat /proc/net/dev", false);
    w.network = bulkhead_engine::NetworkMode::Namespace(netns.path().into());
    let c = engine
        .create_bundle(&bundle("bundle-net", dir.path(), w, Isolation::Process))
        .expect("create_bundle");
    assert!(c.config.networks.is_empty() && c.config.ports.is_empty());
    let out = root.ok(&["start", "-a", "bundle-net"]);
    assert_eq!(
        common::interfaces(&out),
        ["bundle0", "bundle1", "lo"],
        "{out}"
    );
    root.ok(&["rm", "bundle-net"]);
}

/// With `process_allowed` in force, a bundle with no image name matches no pattern: it gets a VM, and an
/// explicit process request is refused. Bad input is refused before anything is made.
#[test]
fn bundle_policy_and_bad_input() {
    let root = Root::empty();
    std::fs::write(
        root.path().join("policy.json"),
        r#"{"process_allowed": ["docker.io/library/*"]}"#,
    )
    .unwrap();
    let dir = unpacked_rootfs();
    let engine = engine(&root);
    let mut b = bundle(
        "pol",
        dir.path(),
        workload("true", false),
        Isolation::Process,
    );
    match engine.create_bundle(&b) {
        Err(EngineError::PolicyRefused { .. }) => {}
        other => panic!("process without an image name must be refused: {other:?}"),
    }
    b.isolation = None;
    assert_eq!(
        engine.create_bundle(&b).unwrap().config.isolation,
        Isolation::Vm
    );
    b.name = "pol-named".into();
    b.image_name = Some("busybox:latest".into());
    assert_eq!(
        engine.create_bundle(&b).unwrap().config.isolation,
        Isolation::Process
    );
    // `start` checks the policy again, by the same name.
    root.ok(&["start", "-a", "pol-named"]);
    b.name = "bad name!".into();
    assert!(matches!(
        engine.create_bundle(&b),
        Err(EngineError::InvalidOption(_))
    ));
    b.name = "rel".into();
    b.rootfs = "relative/rootfs".into();
    assert!(engine.create_bundle(&b).is_err());
    b.rootfs = dir.path().join("etc/motd");
    assert!(engine.create_bundle(&b).is_err());
    b.rootfs = dir.path().to_path_buf();
    b.name = "pol".into();
    assert!(matches!(
        engine.create_bundle(&b),
        Err(EngineError::NameInUse(_))
    ));
    assert_eq!(root.all_ids().len(), 2);
}

#[test]
fn vm_a_directory_rootfs_is_the_guests_root_share() {
    let _vm = vm_lock();
    let root = Root::empty();
    let dir = unpacked_rootfs();
    let engine = engine(&root);
    engine
        .create_bundle(&bundle(
            "bundle-vm",
            dir.path(),
            workload(SCRIPT, false),
            Isolation::Vm,
        ))
        .expect("create_bundle");
    let out = run_and_remove(&root, "bundle-vm", dir.path(), "process");
    let guest = out.lines().next().unwrap_or_default();
    assert!(!guest.is_empty(), "{out}");
    assert_ne!(guest, host_kernel(), "the VM must run the guest kernel");
    assert!(out.contains("bulkhead"), "the image's motd: {out}");
}

/// VM mode: bound files reach the guest as copies taken at start (a read-only one refuses writes, a
/// writable one takes them without changing the host's file), next to a bound directory (a share,
/// whose writes do reach the host). The root is read-only and lacks the working directory and the
/// mount points: the host makes them before the VM starts, as the guest cannot. One VM boot.
#[test]
fn vm_bound_files_are_copies_and_a_read_only_root_gets_its_mount_points() {
    let _vm = vm_lock();
    let root = Root::empty();
    let dir = unpacked_rootfs();
    let host = tempfile::tempdir().expect("temp dir");
    let (files, shared) = (host.path().join("files"), host.path().join("shared"));
    std::fs::create_dir_all(&files).unwrap();
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(files.join("ro.txt"), "ro content\n").unwrap();
    std::fs::write(files.join("rw.txt"), "rw content\n").unwrap();
    std::fs::write(shared.join("inside"), "dir content\n").unwrap();
    let script = "pwd; cat /ro-file /rw-file /dir/inside; \
                  echo guest >> /rw-file && cat /rw-file; \
                  echo x 2>/dev/null > /ro-file || echo ro refused; \
                  echo from the guest > /dir/written";
    let mut workload = workload(script, true);
    workload.process.cwd = "/work/sub".into();
    let bind = |source: &Path, target: &str, readonly| bulkhead_engine::MountSpec::Bind {
        source: source.to_path_buf(),
        target: target.into(),
        readonly,
    };
    workload.mounts = vec![
        bind(&files.join("ro.txt"), "/ro-file", true),
        bind(&shared, "/dir", false),
        bind(&files.join("rw.txt"), "/rw-file", false),
    ];
    let c = engine(&root)
        .create_bundle(&bundle("bundle-files", dir.path(), workload, Isolation::Vm))
        .expect("create_bundle");
    let out = root.ok(&["start", "-a", "bundle-files"]);
    assert_eq!(
        out,
        "/work/sub\nro content\nrw content\ndir content\nrw content\nguest\nro refused\n"
    );
    assert_eq!(
        std::fs::read_to_string(files.join("rw.txt")).unwrap(),
        "rw content\n",
        "the guest wrote a copy"
    );
    assert_eq!(
        std::fs::read_to_string(shared.join("written")).unwrap(),
        "from the guest\n"
    );
    // The copies go with the run.
    let staging = c.paths.run.join("file-binds");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while staging.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!staging.exists(), "{} stayed", staging.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(staging.to_str().unwrap()), "{mounts}");
    root.ok(&["rm", "bundle-files"]);
    assert!(dir.path().join("work/sub").is_dir());
}
