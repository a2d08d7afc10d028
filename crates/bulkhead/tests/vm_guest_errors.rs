//! A VM guest that fails before it can serve must tell the user why, in its own words, through the
//! production path: the real binary and its monitor, a real QEMU VM, and the guest PID 1's `Error` frame in
//! place of `Hello`. Here the image's rootfs artifact is corrupt, so the guest cannot mount it.

mod common;

use common::Root;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// What the guest's PID 1 sends when it cannot mount the image disk: bulkhead-guest's rootfs error around
/// bulkhead-runtime's mount error (`mount erofs <IMAGE_DISK> on <dir>: <errno>`).
const GUEST_WORDS: &str = "assembling the container rootfs: mount erofs /dev/vda on ";

/// The image's rootfs artifact, `ROOT/images/rootfs/<image id hex>.erofs`.
fn artifact(root: &Root, image: &str) -> PathBuf {
    let inspect: serde_json::Value =
        serde_json::from_str(&root.ok(&["image", "inspect", image])).unwrap();
    let id = inspect[0]["Id"]
        .as_str()
        .expect("image inspect shows an Id");
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    root.path()
        .join("images/rootfs")
        .join(format!("{hex}.erofs"))
}

#[test]
fn vm_guest_that_cannot_mount_its_rootfs_reports_why() {
    let root = Root::new();
    let artifact = artifact(&root, common::IMAGE);
    // erofs keeps its superblock at byte 1024: zeroing the first block leaves the guest kernel nothing to
    // recognise.
    OpenOptions::new()
        .write(true)
        .open(&artifact)
        .unwrap_or_else(|e| panic!("{}: {e}", artifact.display()))
        .write_all_at(&[0u8; 4096], 0)
        .unwrap();

    let out = root.bh(&[
        "run",
        "--name",
        "broken",
        "--isolation=vm",
        common::IMAGE,
        "true",
    ]);
    let stderr = common::stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains(GUEST_WORDS), "{stderr}");

    let state = &root.inspect("broken")["State"];
    assert_eq!(state["Status"], "exited", "{state}");
    let error = state["Error"].as_str().unwrap_or_default();
    assert!(error.contains(GUEST_WORDS), "{error}");
}
