//! End-to-end tests of the image commands through the CLI: import, tag, inspect, rmi while in use, export
//! and re-import, prune, and a pull from a real `docker-registry` (Debian's distribution 2.8) that was
//! filled by `skopeo copy` from bulkhead's own export.

mod common;

use bulkhead_testkit::{assert_blobs_intact, free_port, Auth, Registry};
use common::{stderr, stdout, Root, IMAGE};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Repository, tag and id of every listed image (the CREATED column moves with the clock).
fn image_rows(listing: &str) -> Vec<String> {
    listing
        .lines()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect()
}

fn image_id(root: &Root, reference: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&root.ok(&["image", "inspect", reference])).unwrap();
    v[0]["Id"].as_str().unwrap().to_string()
}

#[test]
fn tag_inspect_rmi_and_in_use_protection() {
    let root = Root::new();
    let listing = root.ok(&["images"]);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("demo ") && l.contains("latest")),
        "{listing}"
    );
    root.ok(&["tag", IMAGE, "other:v1"]);
    assert_eq!(image_id(&root, "other:v1"), image_id(&root, IMAGE));
    root.ok(&["create", "--name", "user", IMAGE, "true"]);
    // Untagging one of two names is fine; removing the image a container uses is refused.
    root.ok(&["rmi", "other:v1"]);
    let refused = root.bh(&["rmi", IMAGE]);
    assert_ne!(refused.status.code(), Some(0));
    assert!(stderr(&refused).lines().count() >= 1);
    assert!(root.ok(&["images"]).contains("demo"));
    root.ok(&["rm", "user"]);
    root.ok(&["rmi", IMAGE]);
    assert!(!root.ok(&["images"]).contains("demo"));
    let bad = root.bh(&["run", "--rm", "nosuch-image-here", "true"]);
    assert_eq!(bad.status.code(), Some(125));
}

#[test]
fn export_import_round_trip_keeps_the_image_id() {
    let root = Root::new();
    let id = image_id(&root, IMAGE);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("demo.oci.tar");
    root.ok(&["image", "export", IMAGE, archive.to_str().unwrap()]);
    let fresh = Root::empty();
    fresh.ok(&["image", "import", archive.to_str().unwrap()]);
    assert_eq!(image_id(&fresh, &id), id);
    // A truncated archive is refused with one line, and the store keeps what it had.
    let truncated = dir.path().join("cut.tar");
    let bytes = std::fs::read(&archive).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let before = image_rows(&root.ok(&["images"]));
    let bad = root.bh(&["image", "import", truncated.to_str().unwrap()]);
    assert_ne!(bad.status.code(), Some(0));
    assert_eq!(stderr(&bad).trim().lines().count(), 1, "{}", stderr(&bad));
    assert_eq!(image_rows(&root.ok(&["images"])), before);
}

#[test]
fn pull_from_a_real_registry_and_run_it() {
    let registry = Registry::start(Auth::Anonymous);
    let root = Root::new();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("demo.oci.tar");
    root.ok(&["image", "export", IMAGE, archive.to_str().unwrap()]);
    registry.push_archive(&archive, "team/demo:1.0");

    let puller = Root::empty();
    let reference = format!("{}/team/demo:1.0", registry.host());
    puller.ok(&["pull", &reference]);
    let run = puller.bh(&["run", "--rm", &reference, "cat", "/etc/motd"]);
    assert!(
        stdout(&run).contains("bulkhead demo image"),
        "{}",
        stderr(&run)
    );
    // A second pull fetches nothing new and is still fine; an unknown tag is a one-line error.
    puller.ok(&["pull", "-q", &reference]);
    let missing = puller.bh(&["pull", "-q", &format!("{}/team/demo:nope", registry.host())]);
    assert_ne!(missing.status.code(), Some(0));
    let msg = stderr(&missing);
    assert_eq!(msg.trim().lines().count(), 1, "{msg}");
    assert!(msg.contains("nope"), "{msg}");
    // A registry that is not there: a clear error, and the store is unchanged.
    let images_before = image_rows(&puller.ok(&["images"]));
    let gone = puller.bh(&["pull", "-q", &format!("127.0.0.1:{}/x:1", free_port())]);
    assert_ne!(gone.status.code(), Some(0));
    assert_eq!(image_rows(&puller.ok(&["images"])), images_before);
}

#[test]
fn prune_keeps_what_images_use() {
    let root = Root::new();
    root.ok(&["image", "prune"]);
    root.ok(&["run", "--rm", IMAGE, "true"]);
    root.ok(&["rmi", IMAGE]);
    let report = root.ok(&["image", "prune"]);
    assert!(report.contains("Total reclaimed space"), "{report}");
    let info = root.ok(&["info"]);
    assert!(info.contains("Images: 0"), "{info}");
}

/// A root filesystem tarball big enough that importing it takes a while: busybox plus random data.
fn big_rootfs_tar(dir: &std::path::Path) -> std::path::PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(common::image_tar())
        .arg("-C")
        .arg(&tree)
        .status()
        .unwrap();
    assert!(untar.success());
    let dd = Command::new("dd")
        .args(["if=/dev/urandom", "bs=1M", "count=96", "status=none"])
        .arg(format!("of={}", tree.join("payload").display()))
        .status()
        .unwrap();
    assert!(dd.success());
    let tar = dir.join("big.tar");
    let pack = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&tree)
        .arg(".")
        .status()
        .unwrap();
    assert!(pack.success());
    tar
}

/// `kill -9` of an import at several points: the store never shows a half-made image or a corrupt blob,
/// and the next attempt completes.
#[test]
fn killed_import_leaves_no_trace_and_the_next_attempt_completes() {
    let root = Root::new();
    let dir = tempfile::tempdir().unwrap();
    let tar = big_rootfs_tar(dir.path());
    let tar = tar.to_str().unwrap();
    let before = image_rows(&root.ok(&["images"]));
    let mut interrupted = 0;
    for delay_ms in [20, 150, 400] {
        let mut child = root
            .cmd(&["image", "import-rootfs", tar, "--tag", "big:1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let finished = child.wait().unwrap().success();
        let now = image_rows(&root.ok(&["images"]));
        if !finished {
            interrupted += 1;
            // Killed before the image was registered: nothing shows. Killed while its root filesystem
            // artifact was being built: the image is complete, and the artifact is rebuilt on first use.
            if now != before {
                root.ok(&["run", "--rm", "big:1", "true"]);
            }
        }
        assert_blobs_intact(root.path());
    }
    assert!(
        interrupted > 0,
        "no import was interrupted: the test proved nothing"
    );
    root.ok(&["image", "import-rootfs", tar, "--tag", "big:1"]);
    assert_blobs_intact(root.path());
    let out = root.ok(&["run", "--rm", "big:1", "sh", "-c", "wc -c < /payload"]);
    assert_eq!(out.trim(), (96 * 1024 * 1024).to_string());
}

/// `kill -9` of a pull midway: nothing registered, no corrupt blob, and the next pull completes.
#[test]
fn killed_pull_leaves_no_trace_and_the_next_attempt_completes() {
    let registry = Registry::start(Auth::Anonymous);
    let root = Root::new();
    let dir = tempfile::tempdir().unwrap();
    let tar = big_rootfs_tar(dir.path());
    root.ok(&[
        "image",
        "import-rootfs",
        tar.to_str().unwrap(),
        "--tag",
        "big:1",
    ]);
    let archive = dir.path().join("big.oci.tar");
    root.ok(&["image", "export", "big:1", archive.to_str().unwrap()]);
    registry.push_archive(&archive, "big:1");

    let puller = Root::empty();
    let reference = format!("{}/big:1", registry.host());
    let pull = || {
        let mut cmd = puller.cmd(&["pull", "-q", &reference]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        cmd
    };
    let listing = || image_rows(&puller.ok(&["images"]));
    let mut interrupted = 0;
    for delay_ms in [30, 200] {
        let mut child = pull().spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        if !child.wait().unwrap().success() {
            interrupted += 1;
            // Either nothing registered (only the header line), or the pull had registered the complete
            // image and was building its artifact, which the next use rebuilds.
            if listing().len() > 1 {
                puller.ok(&["run", "--rm", &reference, "true"]);
            }
        }
        assert_blobs_intact(puller.path());
    }
    assert!(
        interrupted > 0,
        "no pull was interrupted: the test proved nothing"
    );
    assert!(pull().status().unwrap().success());
    assert_eq!(listing().len(), 2);
    assert_blobs_intact(puller.path());
}

/// The unpack cap is configurable; an image over it is refused with one line and leaves nothing behind.
#[test]
fn unpacked_size_cap_refuses_big_images() {
    let root = Root::new();
    let before = image_rows(&root.ok(&["images"]));
    let tar = common::image_tar().to_str().unwrap();
    let refused = root.bh(&[
        "--max-unpacked-size",
        "512k",
        "image",
        "import-rootfs",
        tar,
        "--tag",
        "capped:1",
    ]);
    assert_ne!(refused.status.code(), Some(0));
    let msg = stderr(&refused);
    assert_eq!(msg.trim().lines().count(), 1, "{msg}");
    assert_eq!(image_rows(&root.ok(&["images"])), before);
    assert_blobs_intact(root.path());
    root.ok(&[
        "--max-unpacked-size",
        "64m",
        "image",
        "import-rootfs",
        tar,
        "--tag",
        "capped:1",
    ]);
}
