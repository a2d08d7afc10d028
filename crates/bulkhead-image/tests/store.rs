//! Blob ingestion, registration, name resolution, tagging, removal and pruning.

mod common;

use std::io::Write;

use bulkhead_image::{Digest, ImageDeletion, ImageError, Store};
use bulkhead_testkit::oci::{OCI_GZIP, OCI_TAR};
use bulkhead_testkit::{busybox_layer, Layer, LayerBuilder, ManifestFormat, Platform};
use common::{ingest, snapshot};

#[test]
fn blob_writer_verifies_before_publishing() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let good = Digest::of_bytes(b"hello");
    let mut w = store.blob_writer(&good, Some(5)).unwrap();
    w.write_all(b"hello").unwrap();
    w.commit().unwrap();
    assert!(store.has_blob(&good));
    assert_eq!(
        std::fs::read(store.blob_path(&good).unwrap()).unwrap(),
        b"hello"
    );

    let before = snapshot(store.dir());
    let wanted = Digest::of_bytes(b"other");
    let mut w = store.blob_writer(&wanted, None).unwrap();
    w.write_all(b"tampered").unwrap();
    let err = w.commit().unwrap_err().to_string();
    assert!(
        err.contains(&wanted.to_string())
            && err.contains(&Digest::of_bytes(b"tampered").to_string()),
        "{err}"
    );
    assert!(!store.has_blob(&wanted));

    let mut w = store.blob_writer(&good, Some(4)).unwrap();
    assert!(
        w.write_all(b"hello").is_err(),
        "writing past the expected size must fail"
    );
    drop(w);
    let mut w = store.blob_writer(&good, Some(6)).unwrap();
    w.write_all(b"hello").unwrap();
    assert!(matches!(
        w.commit(),
        Err(ImageError::SizeMismatch {
            expected: 6,
            actual: 5,
            ..
        })
    ));
    assert_eq!(
        snapshot(store.dir()),
        before,
        "failed writes must leave the store unchanged"
    );

    assert!(matches!(
        store.put_blob_bytes(b"x", Some(&good)),
        Err(ImageError::DigestMismatch { .. })
    ));
    assert_eq!(store.put_blob_bytes(b"hello", Some(&good)).unwrap(), good);
}

#[test]
fn register_resolve_list_tag_remove() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let layers = [Layer::new(&busybox_layer(), OCI_GZIP)];
    let image = ingest(&store, "busybox", &layers, ManifestFormat::Oci);
    assert_eq!(
        image.names,
        vec!["docker.io/library/busybox:latest".to_string()]
    );
    assert_eq!(image.layers.len(), 1);
    assert_eq!(image.created.as_deref(), Some("2024-01-02T03:04:05Z"));

    let id = image.id.to_string();
    for reference in [
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox",
        &id,
        &id[7..],
        &id[7..13],
        &format!("busybox@{}", image.manifest_digest),
    ] {
        assert_eq!(
            store.resolve(reference).unwrap().id,
            image.id,
            "{reference}"
        );
    }
    assert!(matches!(
        store.resolve("nothere"),
        Err(ImageError::NotFound { .. })
    ));
    assert!(matches!(
        store.resolve("busybox:other"),
        Err(ImageError::NotFound { .. })
    ));

    store.tag("busybox", "localhost:5000/mine:v1").unwrap();
    let rows = store.list().unwrap();
    let names: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.repository.clone(), r.tag.clone()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("busybox".into(), "latest".into()),
            ("localhost:5000/mine".into(), "v1".into())
        ]
    );
    let record = store.inspect("localhost:5000/mine:v1").unwrap();
    assert_eq!(record.id, image.id);
    assert_eq!(
        record.repo_tags,
        ["busybox:latest", "localhost:5000/mine:v1"]
    );
    // Docker's field names.
    let inspect = serde_json::to_value(&record).unwrap();
    assert_eq!(inspect["Id"], id);
    assert_eq!(inspect["Metadata"]["Added"], record.metadata.added);
    assert_eq!(inspect["Layers"][0]["MediaType"], OCI_GZIP);
    assert_eq!(inspect["Config"]["Cmd"][0], "/bin/sh");
    assert_eq!(inspect["RootFS"]["Layers"][0], layers[0].diff_id);

    // By id with two tags: refused without force.
    let never = |_: &bulkhead_image::ImageId| false;
    assert!(matches!(
        store.remove(&id, false, &never),
        Err(ImageError::MultipleTags { .. })
    ));
    // By tag with two tags: untag only.
    assert_eq!(
        store.remove("busybox", false, &never).unwrap(),
        [ImageDeletion::Untagged("busybox:latest".into())]
    );
    assert!(store.resolve("busybox").is_err());
    // Last tag while in use: refused, then forced.
    let used = |i: &bulkhead_image::ImageId| *i == image.id;
    assert!(matches!(
        store.remove("localhost:5000/mine:v1", false, &used),
        Err(ImageError::InUse { .. })
    ));
    let deletions = store.remove("localhost:5000/mine:v1", true, &used).unwrap();
    assert_eq!(
        deletions.first(),
        Some(&ImageDeletion::Untagged("localhost:5000/mine:v1".into()))
    );
    assert_eq!(
        deletions.last(),
        Some(&ImageDeletion::Deleted(image.id.clone()))
    );
    assert!(store.resolve(&id).is_err());
    assert!(store.list().unwrap().is_empty());
    // Its blobs went with it.
    assert!(!store.has_blob(&Digest::of_bytes(&layers[0].blob)));
}

#[test]
fn dangling_images_and_prune() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let first = ingest(
        &store,
        "app:v1",
        &[Layer::new(&busybox_layer(), OCI_TAR)],
        ManifestFormat::Oci,
    );
    let extra = LayerBuilder::new().file("hello", b"hi", 0o644).finish();
    let second = ingest(
        &store,
        "app:v1",
        &[
            Layer::new(&busybox_layer(), OCI_TAR),
            Layer::new(&extra, OCI_TAR),
        ],
        ManifestFormat::Oci,
    );
    assert_ne!(first.id, second.id);
    let rows = store.list().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .any(|r| r.repository == "<none>" && r.id == first.id));

    let orphan = store.put_blob_bytes(b"orphan", None).unwrap();
    let report = store.prune().unwrap();
    assert_eq!(report.blobs_removed, vec![orphan.clone()]);
    assert!(!store.has_blob(&orphan));
    assert!(
        store.resolve(&first.id.to_string()).is_ok(),
        "dangling images survive prune"
    );
    assert!(store.total_size().unwrap() > 0);
}

#[test]
fn register_rejects_bad_manifests_without_changes() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    ingest(
        &store,
        "base",
        &[Layer::new(&busybox_layer(), OCI_TAR)],
        ManifestFormat::Oci,
    );
    let name = "bad:1".parse().unwrap();

    // Unknown layer media type.
    let layer = Layer::new(
        &LayerBuilder::new().file("a", b"a", 0o644).finish(),
        "application/x-weird",
    );
    let platform = Platform::amd64(std::slice::from_ref(&layer));
    let config = platform.config_json();
    store.put_blob_bytes(&layer.blob, None).unwrap();
    store.put_blob_bytes(&config, None).unwrap();
    let manifest = store
        .put_blob_bytes(&platform.manifest_json(&config, ManifestFormat::Oci), None)
        .unwrap();
    let before = snapshot(store.dir());
    let err = store.register_image(&name, &manifest).unwrap_err();
    assert!(matches!(err, ImageError::UnknownMediaType { .. }), "{err}");
    assert!(
        err.to_string().contains("application/x-weird") && err.to_string().contains("bad:1"),
        "{err}"
    );
    assert_eq!(snapshot(store.dir()), before);

    // Oversized manifest.
    let mut big = b"{\"schemaVersion\":2,\"x\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'a', 5 << 20));
    big.extend(b"\"}");
    let big = store.put_blob_bytes(&big, None).unwrap();
    let before_big = snapshot(store.dir());
    let err = store.register_image(&name, &big).unwrap_err();
    assert!(err.to_string().contains("oversized manifest"), "{err}");
    assert_eq!(snapshot(store.dir()), before_big);

    // Missing blob.
    let missing = Digest::of_bytes(b"never stored");
    assert!(matches!(
        store.register_image(&name, &missing),
        Err(ImageError::BlobMissing { .. })
    ));
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn docker_schema2_manifests_are_accepted() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let image = ingest(
        &store,
        "quay.io/x/y:2",
        &[Layer::new(&busybox_layer(), OCI_GZIP)],
        ManifestFormat::Docker,
    );
    assert_eq!(image.layers[0].media_type, OCI_GZIP);
    assert_eq!(store.resolve("quay.io/x/y:2").unwrap().id, image.id);
}

#[test]
fn concurrent_ingest_of_the_same_image() {
    let root = tempfile::tempdir().unwrap();
    let layers = [Layer::new(&busybox_layer(), OCI_GZIP)];
    let ids: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let root = root.path();
                let layers = &layers;
                s.spawn(move || {
                    let store = Store::open(root).unwrap();
                    ingest(&store, &format!("same:{i}"), layers, ManifestFormat::Oci).id
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
    let store = Store::open(root.path()).unwrap();
    assert_eq!(store.list().unwrap().len(), 4);
    assert_eq!(
        std::fs::read_dir(store.dir().join("tmp")).unwrap().count(),
        0
    );
}
