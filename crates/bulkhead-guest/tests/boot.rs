//! Boots a real VM: the cached guest kernel, an initramfs whose `/init` is this very test binary (static,
//! like `bulkhead`), an erofs image disk and an ext4 writable disk. As PID 1 the binary runs the real
//! `bulkhead_guest::main()`: it mounts, finds the agent port, assembles the rootfs from both disks
//! with bulkhead-runtime and serves with bulkhead-agent. The host (bulkhead-vm) launches the VM and
//! handshakes with a `Start` whose command does not exist in the image (which holds one file), so the
//! container fails in a known way: the guest must report its exit, unmount, and power off, making QEMU
//! exit and the stream end. Running a real container over this path is the engine's end-to-end test.

use bulkhead_proto::{handshake, Message, ProtoError};
use bulkhead_runtime::{
    ContainerSpec, NetworkMode, ProcessSpec, Resources, SecuritySpec, Workload,
};
use bulkhead_vm::accel::{detect, AccelChoice};
use bulkhead_vm::{initramfs, kernel, Vm, VmConfig};
use std::fs;
use std::process::Command;
use std::time::Duration;

/// Generous: a TCG boot takes about a second on an idle core, much more on a loaded one.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

fn main() {
    if std::process::id() == 1 {
        bulkhead_guest::main();
    }
    boots_serves_reports_and_powers_off();
    println!("test boots_serves_reports_and_powers_off ... ok");
    // The closing line libtest would print (a failure panics before it, and the process exits non-zero).
    println!("\ntest result: ok. 1 passed; 0 failed");
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn boots_serves_reports_and_powers_off() {
    let kernel = kernel::build(&bulkhead_vm::default_cache_dir(), |_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let initramfs = initramfs::for_current_exe(dir.path()).unwrap();

    let image_dir = dir.path().join("image");
    fs::create_dir(&image_dir).unwrap();
    fs::write(image_dir.join("marker"), b"from the image").unwrap();
    let erofs = dir.path().join("image.erofs");
    run(Command::new("mkfs.erofs")
        .arg("--quiet")
        .arg(&erofs)
        .arg(&image_dir));
    let ext4 = dir.path().join("writable.ext4");
    bulkhead_runtime::rootfs::create_writable_disk(&ext4, 64 << 20).unwrap();

    let accel = detect(AccelChoice::Auto).unwrap();
    let run_dir = dir.path().join("run");
    let mut vm = Vm::launch(&VmConfig {
        netns: None,
        kernel: kernel.vmlinux,
        initramfs,
        root: bulkhead_vm::VmRoot::Disks {
            artifact: erofs,
            writable: ext4.clone(),
        },
        memory_mib: 256,
        vcpus: 1,
        accel: accel.kind,
        run_dir: run_dir.clone(),
        cgroup: format!("bulkhead-vm/boot-test-{}", std::process::id()),
        cpus: None,
        shares: Vec::new(),
    })
    .unwrap();
    let console = || fs::read_to_string(run_dir.join("console.log")).unwrap_or_default();

    let mut stream = vm.stream();
    stream.set_read_timeout(Some(BOOT_TIMEOUT)).unwrap();
    let start = Message::Start {
        spec: Box::new(missing_command()),
        nics: Vec::new(),
    };
    if let Err(e) = handshake(&mut vm.stream(), &mut vm.stream(), &[start]) {
        panic!("handshake: {e}\nconsole:\n{}", console());
    }
    loop {
        match Message::recv(&mut stream) {
            Ok(Message::Exited { stream: 0, status }) => {
                assert_ne!(status.code, 0, "{status:?}");
                break;
            }
            Ok(Message::Error { .. } | Message::Stderr { .. } | Message::Started { .. }) => {}
            other => panic!(
                "expected the container's exit, got {other:?}\nconsole:\n{}",
                console()
            ),
        }
    }
    assert!(matches!(
        Message::recv(&mut stream),
        Err(ProtoError::Closed)
    ));
    let status = vm.wait().unwrap();
    assert!(
        status.success(),
        "QEMU exited with {status}\nconsole:\n{}",
        console()
    );

    // The guest mounted the writable disk (overlay's work dir gained its `work` subdirectory) and
    // unmounted it cleanly before powering off.
    run(Command::new("e2fsck").args(["-n", "-f"]).arg(&ext4));
    let out = Command::new("debugfs")
        .args(["-R", "ls -p /work"])
        .arg(&ext4)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("/work/"),
        "overlay never used the writable disk: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A container whose command is not in the image.
fn missing_command() -> ContainerSpec {
    ContainerSpec {
        id: "boot".into(),
        rootfs: "/".into(),
        workload: Workload {
            process: ProcessSpec {
                args: vec!["/bin/missing".into()],
                env: vec!["PATH=/bin".into()],
                cwd: "/".into(),
                user: String::new(),
                terminal: false,
                rlimits: Vec::new(),
                console_size: None,
            },
            hostname: "boot".into(),
            readonly_rootfs: false,
            mounts: Vec::new(),
            network: NetworkMode::Host,
            userns: None,
            security: SecuritySpec::default(),
            resources: Resources::default(),
            sysctls: Default::default(),
            join_namespaces: Vec::new(),
        },
        cgroup_name: "container".into(),
        etc_hosts: String::new(),
        resolv_conf: String::new(),
        root_share: false,
    }
}
