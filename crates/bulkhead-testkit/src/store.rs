//! Checks on a bulkhead root's image store as it lies on disk.

use std::path::Path;

use crate::oci::sha256;

/// Every blob under `ROOT/images/blobs/sha256` is complete: its content hashes to its name. A store
/// that was never written is vacuously intact.
pub fn assert_blobs_intact(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root.join("images/blobs/sha256")) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("reading the blob dir").path();
        let name = path.file_name().expect("blob name").to_string_lossy();
        let data = std::fs::read(&path).expect("reading a blob");
        assert_eq!(sha256(&data)[7..], *name, "corrupt blob {}", path.display());
    }
}
