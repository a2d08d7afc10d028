//! containerd (Debian's 1.6, started by the test with its own config) running `ctr run --rm
//! --runc-binary` on the `bulkhead-runc` link (process mode) and the `bulkhead-runc-vm` link (VM mode):
//! output, exit codes, nothing left behind. `BULKHEAD_OCI_TEST_RUNTIME=/usr/sbin/runc` runs the same
//! against runc (VM assertions skipped).

use std::path::Path;

use bulkhead_testkit::oci_runtime::{host_kernel, Containerd, RuntimeLinks};
use bulkhead_testkit::{stderr, stdout, vm_lock};

fn links() -> RuntimeLinks {
    RuntimeLinks::for_tests(Path::new(env!("CARGO_BIN_EXE_bulkhead")))
}

/// `ctr run --rm --runc-binary BINARY IMAGE ID sh -c SCRIPT`: its exit code, stdout and stderr.
fn ctr_run(
    containerd: &Containerd,
    binary: &Path,
    id: &str,
    script: &str,
) -> (i32, String, String) {
    let image = containerd.busybox();
    let root = containerd.ctr_runtime_root();
    let binary = binary.to_string_lossy();
    let root = root.to_string_lossy();
    let out = containerd.ctr_out(&[
        "run",
        "--rm",
        "--runc-binary",
        &binary,
        "--runc-root",
        &root,
        &image,
        id,
        "sh",
        "-c",
        script,
    ]);
    (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
}

fn assert_nothing_left(containerd: &Containerd) {
    assert_eq!(containerd.ctr_ok(&["tasks", "ls", "-q"]).trim(), "");
    assert_eq!(containerd.ctr_ok(&["containers", "ls", "-q"]).trim(), "");
}

#[test]
fn ctr_run_rm_process_mode() {
    let links = links();
    let containerd = Containerd::start(&links);
    containerd.pull_busybox();
    let (code, out, err) = ctr_run(
        &containerd,
        &links.process(),
        "one",
        "echo to-out; echo to-err >&2; uname -r; exit 3",
    );
    assert_eq!(code, 3, "stderr: {err}\n{}", containerd.log_tail());
    assert_eq!(out, format!("to-out\n{}\n", host_kernel()));
    assert!(err.contains("to-err"), "{err}");
    let (code, _, err) = ctr_run(&containerd, &links.process(), "two", "true");
    assert_eq!(code, 0, "stderr: {err}");
    assert_nothing_left(&containerd);
}

#[test]
fn vm_ctr_run_rm() {
    let _vm = vm_lock();
    let links = links();
    let containerd = Containerd::start(&links);
    containerd.pull_busybox();
    let (code, out, err) = ctr_run(&containerd, &links.vm(), "guest", "uname -r; exit 4");
    assert_eq!(code, 4, "stderr: {err}\n{}", containerd.log_tail());
    if links.is_bulkhead() {
        assert_ne!(out.trim(), host_kernel(), "the VM runs the guest's kernel");
    }
    assert_nothing_left(&containerd);
}
