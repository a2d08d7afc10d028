//! Test input builders: layer tars (including hostile ones), OCI layouts, store snapshots and
//! erofs mounts. Everything is built from scratch; the busybox rootfs uses /bin/busybox.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bulkhead_image::{Digest, Store};
use serde_json::json;

pub const OCI_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// Builds a layer tar in memory with full control over headers.
pub struct LayerBuilder {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    pub fn new() -> Self {
        LayerBuilder {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_600_000_000);
        h.set_size(0);
        h
    }

    /// Writes a header whose name (and link name) bytes are used verbatim, bypassing the tar
    /// crate's path sanitising, so hostile names can be produced.
    fn raw(
        &mut self,
        mut h: tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        data: &[u8],
    ) -> &mut Self {
        {
            let gnu = h.as_gnu_mut().expect("gnu header");
            gnu.name = [0; 100];
            gnu.name[..name.len()].copy_from_slice(name);
            if let Some(link) = link {
                gnu.linkname = [0; 100];
                gnu.linkname[..link.len()].copy_from_slice(link);
            }
        }
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.builder.append(&h, data).expect("append");
        self
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let h = Self::header(tar::EntryType::Directory, mode, 0, 0);
        self.raw(h, path.as_bytes(), None, b"")
    }

    pub fn file(&mut self, path: &str, data: &[u8], mode: u32) -> &mut Self {
        self.file_owned(path, data, mode, 0, 0)
    }

    pub fn file_owned(
        &mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let h = Self::header(tar::EntryType::Regular, mode, uid, gid);
        self.raw(h, path.as_bytes(), None, data)
    }

    pub fn file_with_xattr(
        &mut self,
        path: &str,
        data: &[u8],
        xattr: &str,
        value: &[u8],
    ) -> &mut Self {
        let key = format!("SCHILY.xattr.{xattr}");
        self.builder
            .append_pax_extensions([(key.as_str(), value)])
            .expect("pax");
        self.file(path, data, 0o644)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let h = Self::header(tar::EntryType::Symlink, 0o777, 0, 0);
        self.raw(h, path.as_bytes(), Some(target.as_bytes()), b"")
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let h = Self::header(tar::EntryType::Link, 0o644, 0, 0);
        self.raw(h, path.as_bytes(), Some(target.as_bytes()), b"")
    }

    pub fn fifo(&mut self, path: &str) -> &mut Self {
        let h = Self::header(tar::EntryType::Fifo, 0o600, 0, 0);
        self.raw(h, path.as_bytes(), None, b"")
    }

    pub fn chardev(&mut self, path: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Char, 0o666, 0, 0);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        self.raw(h, path.as_bytes(), None, b"")
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let builder = std::mem::replace(&mut self.builder, tar::Builder::new(Vec::new()));
        builder.into_inner().expect("finish tar")
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).unwrap()
}

/// A busybox rootfs layer: /bin/busybox with applet symlinks, /etc/passwd and /etc/group.
pub fn busybox_layer() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static is installed");
    let mut b = LayerBuilder::new();
    b.dir("bin/", 0o755).file("bin/busybox", &busybox, 0o755);
    for applet in ["sh", "ls", "cat", "echo", "id", "stat", "true"] {
        b.symlink(&format!("bin/{applet}"), "busybox");
    }
    b.dir("etc/", 0o755)
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
            0o644,
        )
        .file("etc/group", b"root:x:0:\nuser:x:1000:\n", 0o644)
        .dir("tmp/", 0o1777);
    b.finish()
}

/// One layer to put in a layout: blob bytes, media type and uncompressed tar.
pub struct Layer {
    pub blob: Vec<u8>,
    pub media_type: String,
    pub diff_id: Digest,
}

impl Layer {
    pub fn new(tar: &[u8], media_type: &str) -> Layer {
        let blob = match media_type {
            OCI_GZIP => gzip(tar),
            OCI_ZSTD => zstd(tar),
            _ => tar.to_vec(),
        };
        Layer {
            blob,
            media_type: media_type.to_string(),
            diff_id: Digest::of_bytes(tar),
        }
    }
}

pub fn config_json(layers: &[Layer]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "created": "2024-01-02T03:04:05Z",
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/" },
        "rootfs": { "type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>() },
    }))
    .unwrap()
}

pub fn manifest_json(config: &[u8], layers: &[Layer], docker: bool) -> Vec<u8> {
    let (mt, config_mt) = if docker {
        (
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
        )
    } else {
        (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
        )
    };
    let layer_mt = |l: &Layer| {
        if docker && l.media_type == OCI_GZIP {
            "application/vnd.docker.image.rootfs.diff.tar.gzip".to_string()
        } else {
            l.media_type.clone()
        }
    };
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": mt,
        "config": { "mediaType": config_mt, "digest": Digest::of_bytes(config).to_string(), "size": config.len() },
        "layers": layers.iter().map(|l| json!({
            "mediaType": layer_mt(l), "digest": Digest::of_bytes(&l.blob).to_string(), "size": l.blob.len()
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// Writes an OCI image layout directory; returns (manifest digest, image id digest).
pub fn write_layout(dir: &Path, layers: &[Layer], ref_name: Option<&str>) -> (Digest, Digest) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let config = config_json(layers);
    let manifest = manifest_json(&config, layers, false);
    for blob in layers.iter().map(|l| &l.blob).chain([&config, &manifest]) {
        std::fs::write(blobs.join(Digest::of_bytes(blob).hex()), blob).unwrap();
    }
    let mut desc = json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": Digest::of_bytes(&manifest).to_string(),
        "size": manifest.len(),
    });
    if let Some(name) = ref_name {
        desc["annotations"] = json!({ "org.opencontainers.image.ref.name": name });
    }
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({ "schemaVersion": 2, "manifests": [desc] })).unwrap(),
    )
    .unwrap();
    (Digest::of_bytes(&manifest), Digest::of_bytes(&config))
}

/// Puts a whole image into the store the way the registry client does.
pub fn ingest(store: &Store, name: &str, layers: &[Layer], docker: bool) -> bulkhead_image::Image {
    let config = config_json(layers);
    for layer in layers {
        let digest = Digest::of_bytes(&layer.blob);
        let mut w = store
            .blob_writer(&digest, Some(layer.blob.len() as u64))
            .unwrap();
        w.write_all(&layer.blob).unwrap();
        w.commit().unwrap();
    }
    store.put_blob_bytes(&config, None).unwrap();
    let manifest = manifest_json(&config, layers, docker);
    let digest = store.put_blob_bytes(&manifest, None).unwrap();
    store
        .register_image(&name.parse().unwrap(), &digest)
        .unwrap()
}

/// Tar of a directory tree's files (path -> type and content hash), to prove a store unchanged.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if meta.is_dir() {
                out.insert(rel, format!("dir {:o}", meta.mode()));
                walk(root, &path, out);
            } else {
                let data = std::fs::read(&path).unwrap();
                out.insert(
                    rel,
                    format!("file {:o} {}", meta.mode(), Digest::of_bytes(&data)),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A read-only loop mount of an erofs artifact, unmounted on drop.
pub struct ErofsMount {
    pub dir: tempfile::TempDir,
}

impl ErofsMount {
    pub fn new(artifact: &Path) -> ErofsMount {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "erofs", "-o", "ro,loop"])
            .arg(artifact)
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount {} failed", artifact.display());
        ErofsMount { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

impl Drop for ErofsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}
