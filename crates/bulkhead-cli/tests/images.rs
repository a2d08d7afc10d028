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
