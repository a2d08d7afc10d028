//! Rootfs artifacts: layers applied in order with whiteouts, ownership, modes, links, xattrs and
//! special files, checked by loop-mounting the erofs artifact; hostile layers rejected.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use bulkhead_image::{ImageError, Limits, Store};
use bulkhead_testkit::oci::{OCI_GZIP, OCI_TAR, OCI_ZSTD};
use bulkhead_testkit::{busybox_layer, layer, Layer, LayerBuilder, ManifestFormat};
use common::{ingest, snapshot, ErofsMount};

fn layered_image(store: &Store) -> bulkhead_image::Image {
    let base = busybox_layer();
    let mut l2 = LayerBuilder::new();
    l2.dir("data/", 0o755)
        .file("data/keep", b"keep", 0o644)
        .file("data/gone", b"gone", 0o644)
        .dir("opaque/", 0o755)
        .file("opaque/old", b"old", 0o644)
        .file_owned("home/user/owned", b"mine", 0o640, 1000, 1000)
        .file("bin/suid", b"#!/bin/sh\n", 0o4755)
        .file_with_xattr("data/xattr", b"x", "user.bulkhead", b"yes")
        .fifo("data/fifo")
        .chardev("dev-null", 1, 3)
        .symlink("data/abs-link", "/etc/passwd");
    let l2 = l2.finish();
    let mut l3 = LayerBuilder::new();
    l3.file("data/.wh.gone", b"", 0o644)
        .dir("opaque/", 0o755)
        .file("opaque/.wh..wh..opq", b"", 0o644)
        .file("opaque/new", b"new", 0o644)
        .hardlink("data/hard", "data/keep")
        // A member below an absolute symlink that stays inside the rootfs.
        .symlink("etclink", "/etc")
        .file("etclink/hostname", b"box\n", 0o644);
    let l3 = l3.finish();
    ingest(
        store,
        "layered:1",
        &[
            Layer::new(&base, OCI_GZIP),
            Layer::new(&l2, OCI_ZSTD),
            Layer::new(&l3, OCI_TAR),
        ],
        ManifestFormat::Oci,
    )
}

#[test]
fn artifact_mount_shows_the_merged_rootfs() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let image = layered_image(&store);
    let artifact = store.rootfs_artifact(&image).unwrap();
    assert_eq!(artifact, store.rootfs_artifact(&image).unwrap(), "cached");
    assert_eq!(
        std::fs::read_dir(store.dir().join("tmp")).unwrap().count(),
        0
    );

    let m = ErofsMount::new(&artifact);
    let busybox = std::fs::metadata(m.path("bin/busybox")).unwrap();
    assert_eq!(busybox.mode() & 0o7777, 0o755);
    assert_eq!(
        std::fs::read_link(m.path("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    assert!(std::fs::read_to_string(m.path("etc/passwd"))
        .unwrap()
        .starts_with("root:x:0:0"));
    assert_eq!(
        std::fs::metadata(m.path("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    assert_eq!(
        std::fs::metadata(m.path("bin")).unwrap().mtime(),
        layer::MTIME as i64
    );

    // Whiteouts.
    assert!(m.path("data/keep").exists());
    assert!(!m.path("data/gone").exists());
    assert!(!m.path("opaque/old").exists());
    assert_eq!(std::fs::read(m.path("opaque/new")).unwrap(), b"new");

    // Ownership, modes, mtimes.
    let owned = std::fs::metadata(m.path("home/user/owned")).unwrap();
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o7777),
        (1000, 1000, 0o640)
    );
    assert_eq!(owned.mtime(), layer::MTIME as i64);
    assert_eq!(
        std::fs::metadata(m.path("bin/suid")).unwrap().mode() & 0o7777,
        0o4755
    );

    // Links.
    let keep = std::fs::metadata(m.path("data/keep")).unwrap();
    let hard = std::fs::metadata(m.path("data/hard")).unwrap();
    assert_eq!(keep.ino(), hard.ino());
    assert_eq!(keep.nlink(), 2);
    assert_eq!(
        std::fs::read_link(m.path("data/abs-link"))
            .unwrap()
            .to_str(),
        Some("/etc/passwd")
    );
    assert_eq!(std::fs::read(m.path("etc/hostname")).unwrap(), b"box\n");

    // Special files and xattrs.
    assert!(std::fs::metadata(m.path("data/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let dev = std::fs::metadata(m.path("dev-null")).unwrap();
    assert!(dev.file_type().is_char_device());
    assert_eq!(dev.rdev(), libc::makedev(1, 3));
    let value = xattr_get(&m.path("data/xattr"), "user.bulkhead");
    assert_eq!(value.as_deref(), Some(&b"yes"[..]));
}

fn xattr_get(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    rustix::fs::getxattr(path, name, &mut buf)
        .ok()
        .map(|n| buf[..n].to_vec())
}

fn assert_rejected(layers: Vec<Vec<u8>>, expect: &str) {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let layers: Vec<Layer> = layers.iter().map(|l| Layer::new(l, OCI_TAR)).collect();
    let image = ingest(&store, "hostile", &layers, ManifestFormat::Oci);
    let before = snapshot(store.dir());
    let err = store.rootfs_artifact(&image).unwrap_err();
    assert!(
        err.to_string().contains(expect),
        "expected {expect:?} in: {err}"
    );
    assert_eq!(snapshot(store.dir()), before, "store changed after: {err}");
}

#[test]
fn hostile_layers_are_rejected() {
    assert_rejected(
        vec![LayerBuilder::new().file("../escape", b"x", 0o644).finish()],
        "\"../escape\"",
    );
    assert_rejected(
        vec![LayerBuilder::new().file("/etc/abs", b"x", 0o644).finish()],
        "\"/etc/abs\": absolute member name",
    );
    assert_rejected(
        vec![LayerBuilder::new()
            .symlink("out", "../../../../../../tmp")
            .file("out/pwned", b"x", 0o644)
            .finish()],
        "\"out/pwned\": path leads outside the rootfs",
    );
    // The escaping symlink can also come from a lower layer.
    assert_rejected(
        vec![
            LayerBuilder::new()
                .dir("a/", 0o755)
                .symlink("a/up", "../..")
                .finish(),
            LayerBuilder::new().file("a/up/pwned", b"x", 0o644).finish(),
        ],
        "\"a/up/pwned\"",
    );
    assert_rejected(
        vec![LayerBuilder::new()
            .hardlink("passwd", "../../etc/passwd")
            .finish()],
        "\"passwd\"",
    );
    assert_rejected(
        vec![LayerBuilder::new()
            .hardlink("passwd", "etc/passwd")
            .finish()],
        "hard link target does not exist",
    );
}

#[test]
fn bombs_and_truncation_are_rejected() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap().with_limits(Limits {
        max_unpacked_bytes: 1 << 20,
        ..Limits::default()
    });
    let big = vec![0u8; 2 << 20];
    let image = ingest(
        &store,
        "bomb",
        &[Layer::new(
            &LayerBuilder::new().file("zeros", &big, 0o644).finish(),
            OCI_GZIP,
        )],
        ManifestFormat::Oci,
    );
    let err = store.rootfs_artifact(&image).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::LimitExceeded {
                what: "unpacked size",
                ..
            }
        ),
        "{err}"
    );

    let mut truncated = LayerBuilder::new()
        .file("data", &[7u8; 4096], 0o644)
        .finish();
    truncated.truncate(1024);
    let layer = Layer::new(&truncated, OCI_TAR);
    let image = ingest(&store, "truncated", &[layer], ManifestFormat::Oci);
    let before = snapshot(store.dir());
    let err = store.rootfs_artifact(&image).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert_eq!(snapshot(store.dir()), before);
}
