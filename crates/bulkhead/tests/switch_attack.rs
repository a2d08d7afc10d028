//! The host escape through a switched container (issue 9, item 1), reproduced as it was found: a
//! `--privileged` VM container owns its writable disk, and once the host took that disk for process mode
//! it mounted whatever the guest left there. The engine now takes such a disk back through an export VM
//! and never mounts it, so the attack must leave the host untouched.

mod common;

use bulkhead_testkit::vm_lock;
use common::Root;
use std::collections::BTreeSet;
use std::path::Path;

/// What the guest does with its own disk: `upper` becomes a symlink to the host's /etc, `work` one to
/// /var/tmp (the disk is reached through devtmpfs), so that a host mounting the disk for overlayfs would write into its own /etc.
const ATTACK: &str =
    "set -e; mkdir -p /dv /d; mount -t devtmpfs dev /dv; mount -t ext4 /dv/vdb /d; \
                      rm -rf /d/upper /d/work; ln -s /etc /d/upper; ln -s /var/tmp /d/work; \
                      ls -l /d; umount /d; sync";
const MARKER: &str = "bulkhead-switch-attack-marker";

fn listing(dir: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn vm_switch_attack_does_not_reach_the_host() {
    let _vm = vm_lock();
    let root = Root::new();
    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    // One container, one command: the attack in its VM, then, under the host kernel, the probe that
    // would write into the host's /etc and read its shadow file if the attack had worked.
    let script = format!(
        "if [ \"$(uname -r)\" != {} ]; then {ATTACK}; else \
         echo pwned > /{MARKER}; echo pwned > /etc/{MARKER}; cat /shadow /etc/shadow; fi",
        host_kernel.trim()
    );
    let (etc, var_tmp) = (listing("/etc"), listing("/var/tmp"));
    let guest = root.ok(&[
        "run",
        "--name",
        "attack",
        "--isolation=vm",
        "--privileged",
        "demo",
        "sh",
        "-c",
        &script,
    ]);
    assert!(guest.contains("upper -> /etc"), "the attack ran: {guest}");
    root.ok(&["update", "--isolation", "process", "--force", "attack"]);
    let out = root.bh(&["start", "-a", "attack"]);
    let (stdout, stderr) = (common::stdout(&out), common::stderr(&out));
    assert_ne!(
        out.status.code(),
        Some(0),
        "the start must be refused: {stdout}"
    );
    assert!(
        stderr.contains("a VM wrote its disk") && stderr.contains("not a directory"),
        "the error names the cause: {stderr}"
    );
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap();
    let root_entry = shadow.lines().next().unwrap_or_default();
    assert!(
        root_entry.is_empty() || !stdout.contains(root_entry),
        "the container read the host's shadow file"
    );
    assert!(!Path::new("/etc").join(MARKER).exists());
    assert!(!Path::new("/var/tmp").join(MARKER).exists());
    assert_eq!(listing("/etc"), etc, "the host's /etc changed");
    assert_eq!(listing("/var/tmp"), var_tmp, "the host's /var/tmp changed");
    let id = root.inspect("attack")["Id"].as_str().unwrap().to_string();
    assert_eq!(
        root.state(&id)["disk_vm_written"],
        true,
        "the disk stays marked as the guest's"
    );
    println!("ATTEMPT | MODE | RESULT");
    println!("switch attack | vm->process | blocked");
}
