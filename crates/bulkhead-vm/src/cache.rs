//! The on-disk cache shared by every bulkhead invocation on the machine (kernels, initramfs images), so
//! that expensive artifacts are built once. Entries are published by renaming a finished temporary
//! directory, so readers never see a half-written artifact.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// `$BULKHEAD_CACHE` if set and non-empty, else `/var/cache/bulkhead`.
pub fn default_cache_dir() -> PathBuf {
    match std::env::var_os("BULKHEAD_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("/var/cache/bulkhead"),
    }
}

/// Hex SHA-256 of a byte string.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Hex SHA-256 of a file's content, streamed.
pub(crate) fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A sibling temporary path unique to this process, for building an entry before renaming it in place.
pub(crate) fn temp_sibling(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_files_like_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"bulkhead").unwrap();
        assert_eq!(sha256_file(&path).unwrap(), sha256_hex(b"bulkhead"));
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn temp_sibling_stays_in_the_same_directory() {
        let t = temp_sibling(Path::new("/a/b/c"));
        assert_eq!(t.parent(), Some(Path::new("/a/b")));
        assert_ne!(t, Path::new("/a/b/c"));
    }
}
