//! Import (OCI layout dir, OCI archive, docker save, rootfs tarball) and export, including a
//! round trip through real skopeo, and rejection of bad archives without store changes.

mod common;

use std::path::Path;
use std::process::Command;

use bulkhead_image::{Digest, ImageError, Store};
use bulkhead_testkit::oci::{OCI_GZIP, OCI_TAR, OCI_ZSTD};
use bulkhead_testkit::{
    busybox_layer, gzip, write_layout, zstd, Layer, LayerBuilder, ManifestFormat, Platform,
};
use common::{ingest, snapshot};
use serde_json::json;

fn layers() -> Vec<Layer> {
    let extra = LayerBuilder::new()
        .file("etc/motd", b"hi\n", 0o644)
        .finish();
    vec![
        Layer::new(&busybox_layer(), OCI_GZIP),
        Layer::new(&extra, OCI_ZSTD),
    ]
}

/// Tars up a directory (paths relative to it), like an OCI archive.
fn tar_dir(dir: &Path, out: &Path) {
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn oci_layout_dir_and_archive_import() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let config = write_layout(
        &layout,
        Some("example.com/app:1.0"),
        &[Platform::amd64(&layers())],
    )
    .images[0]
        .config
        .parse::<Digest>()
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let images = store.import(&layout).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].id.0, config);
    assert_eq!(images[0].names, vec!["example.com/app:1.0".to_string()]);

    let archive = work.path().join("app.tar");
    tar_dir(&layout, &archive);
    let root2 = tempfile::tempdir().unwrap();
    let store2 = Store::open(root2.path()).unwrap();
    let images = store2.import(&archive).unwrap();
    assert_eq!(images[0].id.0, config);
    assert_eq!(store2.resolve("example.com/app:1.0").unwrap().id.0, config);
    assert_eq!(
        std::fs::read_dir(store2.dir().join("tmp")).unwrap().count(),
        0
    );
}

#[test]
fn docker_save_import() {
    let work = tempfile::tempdir().unwrap();
    let layers = [Layer::new(&busybox_layer(), OCI_TAR)];
    let config = Platform::amd64(&layers).config_json();
    let config_name = format!("{}.json", Digest::of_bytes(&config).hex());
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    add("abc123/layer.tar", &layers[0].blob);
    add("abc123/VERSION", b"1.0");
    add(&config_name, &config);
    let manifest = json!([{ "Config": config_name, "RepoTags": ["busybox:saved"], "Layers": ["abc123/layer.tar"] }]);
    add("manifest.json", manifest.to_string().as_bytes());
    let path = work.path().join("saved.tar");
    std::fs::write(&path, b.into_inner().unwrap()).unwrap();

    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let images = store.import(&path).unwrap();
    assert_eq!(images[0].id.0, Digest::of_bytes(&config));
    assert_eq!(store.resolve("busybox:saved").unwrap().id, images[0].id);
    // Gzipped `docker save | gzip` works too.
    let gz = work.path().join("saved.tar.gz");
    std::fs::write(&gz, gzip(&std::fs::read(&path).unwrap())).unwrap();
    let root2 = tempfile::tempdir().unwrap();
    assert_eq!(
        Store::open(root2.path()).unwrap().import(&gz).unwrap()[0].id,
        images[0].id
    );
}

#[test]
fn export_is_accepted_by_skopeo_and_reimports_to_the_same_id() {
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    // Docker schema 2 manifest in the store: export rewrites it with OCI media types.
    let image = ingest(&store, "busybox:exp", &layers(), ManifestFormat::Docker);
    let out = work.path().join("export.tar");
    store.export("busybox:exp", &out).unwrap();

    let oci_dir = work.path().join("oci");
    let output = Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci-archive:{}", out.display()))
        .arg(format!("oci:{}:copied", oci_dir.display()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let root2 = tempfile::tempdir().unwrap();
    let store2 = Store::open(root2.path()).unwrap();
    let images = store2.import(&out).unwrap();
    assert_eq!(images[0].id, image.id);
    assert_eq!(
        images[0].names,
        vec!["docker.io/library/busybox:exp".to_string()]
    );
    // And the layout skopeo wrote is importable too (bare tag ref name: untagged image).
    let root3 = tempfile::tempdir().unwrap();
    let images = Store::open(root3.path()).unwrap().import(&oci_dir).unwrap();
    assert_eq!(images[0].id, image.id);
}

#[test]
fn rootfs_tarball_import() {
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_layer();
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    for (name, data) in [
        ("plain.tar", tar.clone()),
        ("gz.tar.gz", gzip(&tar)),
        ("zst.tar.zst", zstd(&tar)),
    ] {
        let path = work.path().join(name);
        std::fs::write(&path, &data).unwrap();
        let image = store
            .import_rootfs(&path, &format!("rootfs:{}", name.replace('.', "-")))
            .unwrap();
        assert_eq!(image.layers.len(), 1);
        assert_eq!(image.layers[0].diff_id, Digest::of_bytes(&tar));
        assert_eq!(image.layers[0].digest, Digest::of_bytes(&data));
        let config = image.config.config().as_ref().unwrap();
        assert_eq!(config.cmd().as_deref(), Some(&["/bin/sh".to_string()][..]));
        assert!(config.env().as_ref().unwrap()[0].starts_with("PATH="));
        assert_eq!(image.config.architecture().to_string(), "amd64");
    }
}

fn assert_import_fails(store: &Store, path: &Path, expect: &str) {
    let before = snapshot(store.dir());
    let err = store.import(path).unwrap_err().to_string();
    assert!(err.contains(expect), "expected {expect:?} in: {err}");
    assert!(
        err.contains(&path.display().to_string()),
        "error must name the input: {err}"
    );
    assert!(!err.contains('\n'), "one-line error: {err}");
    assert_eq!(snapshot(store.dir()), before, "store changed after: {err}");
}

#[test]
fn bad_archives_leave_the_store_unchanged() {
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    store
        .import(&{
            let dir = work.path().join("good");
            write_layout(
                &dir,
                Some("docker.io/library/good:1"),
                &[Platform::amd64(&[Layer::new(&busybox_layer(), OCI_TAR)])],
            );
            dir
        })
        .unwrap();

    // Digest mismatch: a blob whose content does not match its name.
    let dir = work.path().join("mismatch");
    let layers = [Layer::new(
        &LayerBuilder::new().file("a", b"a", 0o644).finish(),
        OCI_TAR,
    )];
    write_layout(&dir, None, &[Platform::amd64(&layers)]);
    let blob = dir
        .join("blobs/sha256")
        .join(Digest::of_bytes(&layers[0].blob).hex());
    let mut data = std::fs::read(&blob).unwrap();
    data[600] ^= 1;
    std::fs::write(&blob, data).unwrap();
    assert_import_fails(&store, &dir, "digest mismatch");

    // Truncated archive.
    let dir = work.path().join("trunc");
    write_layout(
        &dir,
        Some("docker.io/library/t:1"),
        &[Platform::amd64(&[Layer::new(&busybox_layer(), OCI_TAR)])],
    );
    let archive = work.path().join("trunc.tar");
    tar_dir(&dir, &archive);
    let data = std::fs::read(&archive).unwrap();
    std::fs::write(&archive, &data[..data.len() / 2]).unwrap();
    assert_import_fails(&store, &archive, "truncated");

    // Malicious layer: `..` member.
    let dir = work.path().join("evil");
    write_layout(
        &dir,
        None,
        &[Platform::amd64(&[Layer::new(
            &LayerBuilder::new().file("../../evil", b"x", 0o644).finish(),
            OCI_TAR,
        )])],
    );
    assert_import_fails(&store, &dir, "member \"../../evil\"");

    // Unknown media type.
    let dir = work.path().join("weird");
    write_layout(
        &dir,
        None,
        &[Platform::amd64(&[Layer::new(
            &LayerBuilder::new().file("a", b"a", 0o644).finish(),
            "application/x-weird",
        )])],
    );
    assert_import_fails(&store, &dir, "unknown media type \"application/x-weird\"");

    // Oversized manifest.
    let dir = work.path().join("big");
    write_layout(
        &dir,
        None,
        &[Platform::amd64(&[Layer::new(&busybox_layer(), OCI_TAR)])],
    );
    let mut big = b"{\"schemaVersion\":2,\"pad\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 5 << 20));
    big.extend(b"\"}");
    std::fs::write(
        dir.join("blobs/sha256").join(Digest::of_bytes(&big).hex()),
        &big,
    )
    .unwrap();
    std::fs::write(
        dir.join("index.json"),
        json!({ "schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": Digest::of_bytes(&big).to_string(), "size": big.len() }] })
        .to_string(),
    )
    .unwrap();
    assert_import_fails(&store, &dir, "oversized manifest");

    // Not an image archive at all.
    let junk = work.path().join("junk.tar");
    std::fs::write(
        &junk,
        LayerBuilder::new().file("hello", b"x", 0o644).finish(),
    )
    .unwrap();
    assert_import_fails(&store, &junk, "neither index.json");
    assert!(matches!(
        store.import(&junk),
        Err(ImageError::Import { .. })
    ));
}
