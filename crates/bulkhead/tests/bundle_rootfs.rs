//! Bundle containers end to end: a container whose root filesystem is a directory its caller prepared
//! (an OCI bundle's rootfs: here the demo image's busybox unpacked into a temp dir), created through the
//! engine's `create_bundle` as the OCI runtime front end does, then started, updated and removed with the
//! real `bulkhead` binary. In both modes the container's writes land in the caller's directory, and `rm`
//! leaves the directory as it is.

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
/// file it wrote is in the caller's directory, isolation cannot change, and `rm` removes the container
/// but leaves every file of the directory, and no mount of it behind.
fn run_and_remove(root: &Root, name: &str, dir: &Path) -> String {
    let out = root.ok(&["start", "-a", name]);
    let written = std::fs::read_to_string(dir.join("written")).expect("the container's file");
    assert_eq!(written.trim(), "from the container", "{out}");
    let refused = root.bh(&["update", "--isolation=vm", name]);
    let why = common::stderr(&refused);
    assert!(
        !refused.status.success() && why.contains("bundle"),
        "update --isolation of a bundle container must be refused: {why}"
    );
    let before = listing(dir);
    root.ok(&["rm", name]);
    assert!(root.all_ids().is_empty());
    assert_eq!(listing(dir), before, "rm must leave the caller's directory");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let ours = root.path().to_string_lossy().to_string();
    assert!(
        !mounts.contains(&ours),
        "a mount below the root is left:\n{mounts}"
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
    let out = run_and_remove(&root, "bundle-p", dir.path());
    let motd = std::fs::read_to_string(dir.path().join("etc/motd")).expect("motd");
    assert_eq!(out, format!("{}\n{motd}", host_kernel()));
}

#[test]
fn a_readonly_directory_rootfs_refuses_writes() {
    let root = Root::empty();
    let dir = unpacked_rootfs();
    let engine = engine(&root);
    let script = "touch /written 2>&1 || echo refused";
    engine
        .create_bundle(&bundle(
            "bundle-ro",
            dir.path(),
            workload(script, true),
            Isolation::Process,
        ))
        .expect("create_bundle");
    let out = root.ok(&["start", "-a", "bundle-ro"]);
    assert!(
        out.contains("Read-only file system") && out.contains("refused"),
        "{out}"
    );
    assert!(!dir.path().join("written").exists());
    root.ok(&["rm", "bundle-ro"]);
    assert!(dir.path().join("bin/busybox").exists());
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
    let out = run_and_remove(&root, "bundle-vm", dir.path());
    let guest = out.lines().next().unwrap_or_default();
    assert!(!guest.is_empty(), "{out}");
    assert_ne!(guest, host_kernel(), "the VM must run the guest kernel");
    assert!(out.contains("bulkhead"), "the image's motd: {out}");
}
