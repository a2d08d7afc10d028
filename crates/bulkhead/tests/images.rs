//! End-to-end tests of the image commands through the CLI: import, tag, inspect, rmi while in use, export
//! and re-import, prune, and a pull from a real `docker-registry` (Debian's distribution 2.8) that was
//! filled by `skopeo copy` from bulkhead's own export.

mod common;

use common::{stderr, stdout, Root, IMAGE};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A real registry on 127.0.0.1 with a free port, killed on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian package docker-registry)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "registry did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    let fresh = tempfile::tempdir().unwrap();
    let out = Command::new(common::bin())
        .arg("--root")
        .arg(fresh.path())
        .args(["image", "import", archive.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(
        &Command::new(common::bin())
            .arg("--root")
            .arg(fresh.path())
            .args(["image", "inspect", &id])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(v[0]["Id"], id.as_str());
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
    let registry = Registry::start();
    let root = Root::new();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("demo.oci.tar");
    root.ok(&["image", "export", IMAGE, archive.to_str().unwrap()]);
    let dest = format!("docker://127.0.0.1:{}/team/demo:1.0", registry.port);
    let push = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(&dest)
        .output()
        .expect("skopeo (Debian package skopeo)");
    assert!(push.status.success(), "skopeo: {}", stderr(&push));

    let puller = tempfile::tempdir().unwrap();
    let bh = |args: &[&str]| {
        Command::new(common::bin())
            .arg("--root")
            .arg(puller.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let reference = format!("127.0.0.1:{}/team/demo:1.0", registry.port);
    let pulled = bh(&["pull", &reference]);
    assert!(pulled.status.success(), "{}", stderr(&pulled));
    let run = bh(&["run", "--rm", &reference, "cat", "/etc/motd"]);
    assert!(
        stdout(&run).contains("bulkhead demo image"),
        "{}",
        stderr(&run)
    );
    // A second pull fetches nothing new and is still fine; an unknown tag is a one-line error.
    assert!(bh(&["pull", "-q", &reference]).status.success());
    let missing = bh(&[
        "pull",
        "-q",
        &format!("127.0.0.1:{}/team/demo:nope", registry.port),
    ]);
    assert_ne!(missing.status.code(), Some(0));
    let msg = stderr(&missing);
    assert_eq!(msg.trim().lines().count(), 1, "{msg}");
    assert!(msg.contains("nope"), "{msg}");
    // A registry that is not there: a clear error, and the store is unchanged.
    let images = || image_rows(&stdout(&bh(&["images"])));
    let images_before = images();
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = bh(&["pull", "-q", &format!("127.0.0.1:{dead}/x:1")]);
    assert_ne!(gone.status.code(), Some(0));
    assert_eq!(images(), images_before);
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

/// Every blob in the store is complete: its content hashes to its name.
fn assert_blobs_intact(root: &std::path::Path) {
    let dir = root.join("images/blobs/sha256");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let out = Command::new("sha256sum").arg(&path).output().unwrap();
        let sum = String::from_utf8_lossy(&out.stdout);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            sum.starts_with(&name),
            "corrupt blob {}: {sum}",
            path.display()
        );
    }
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
    let registry = Registry::start();
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
    let push = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("docker://127.0.0.1:{}/big:1", registry.port))
        .output()
        .unwrap();
    assert!(push.status.success(), "skopeo: {}", stderr(&push));

    let puller = tempfile::tempdir().unwrap();
    let reference = format!("127.0.0.1:{}/big:1", registry.port);
    let pull = || {
        let mut cmd = Command::new(common::bin());
        cmd.arg("--root")
            .arg(puller.path())
            .args(["pull", "-q", &reference])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let listing = || {
        let out = Command::new(common::bin())
            .arg("--root")
            .arg(puller.path())
            .arg("images")
            .output()
            .unwrap();
        image_rows(&stdout(&out))
    };
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
                let run = Command::new(common::bin())
                    .arg("--root")
                    .arg(puller.path())
                    .args(["run", "--rm", &reference, "true"])
                    .output()
                    .unwrap();
                assert!(run.status.success(), "{}", stderr(&run));
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
