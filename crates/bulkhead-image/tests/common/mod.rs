//! Store-side helpers of the image tests: putting an image into a store as a pull would, snapshots of a
//! store's files, and erofs mounts. Layers and layouts come from bulkhead-testkit.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bulkhead_image::{Digest, Store};
use bulkhead_testkit::{Layer, ManifestFormat, Platform};

/// Puts a whole image into the store the way the registry client does.
pub fn ingest(
    store: &Store,
    name: &str,
    layers: &[Layer],
    format: ManifestFormat,
) -> bulkhead_image::Image {
    let platform = Platform::amd64(layers);
    let config = platform.config_json();
    for layer in layers {
        let digest = Digest::of_bytes(&layer.blob);
        let mut w = store
            .blob_writer(&digest, Some(layer.blob.len() as u64))
            .unwrap();
        w.write_all(&layer.blob).unwrap();
        w.commit().unwrap();
    }
    store.put_blob_bytes(&config, None).unwrap();
    let manifest = platform.manifest_json(&config, format);
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
