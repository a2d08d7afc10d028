//! The on-disk cache shared by every bulkhead invocation on the machine (kernels, initramfs images), so
//! that expensive artifacts are built once. Entries are published by renaming a finished temporary
//! directory, so readers never see a half-written artifact.

use sha2::{Digest, Sha256};
use std::fs::{self, File};
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

/// A small value that is slow to derive (a hash, a tool's answer, a measurement) and fixed for `name`,
/// kept as the file `dir/name`. `derive` runs only when no `valid` value is kept there. Keeping it is
/// best effort: an unwritable cache costs time, never correctness.
pub(crate) fn remembered<E>(
    dir: &Path,
    name: &str,
    valid: impl Fn(&str) -> bool,
    derive: impl FnOnce() -> Result<String, E>,
) -> Result<String, E> {
    let path = dir.join(name);
    if let Ok(value) = fs::read_to_string(&path) {
        if valid(&value) {
            return Ok(value);
        }
    }
    let value = derive()?;
    let tmp = temp_sibling(&path);
    let stored = fs::create_dir_all(dir)
        .and_then(|()| fs::write(&tmp, &value))
        .and_then(|()| fs::rename(&tmp, &path));
    if stored.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    Ok(value)
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
    fn remembered_values_are_derived_once_and_revalidated() {
        let dir = tempfile::tempdir().unwrap();
        let digits = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
        let first: Result<_, ()> = remembered(dir.path(), "n", digits, || Ok("42".into()));
        assert_eq!(first.unwrap(), "42");
        let again: Result<_, ()> = remembered(dir.path(), "n", digits, || panic!("derived twice"));
        assert_eq!(again.unwrap(), "42");
        // A kept value that fails validation is derived again and replaced.
        std::fs::write(dir.path().join("n"), "garbage").unwrap();
        let fixed: Result<_, ()> = remembered(dir.path(), "n", digits, || Ok("7".into()));
        assert_eq!(fixed.unwrap(), "7");
        assert_eq!(std::fs::read_to_string(dir.path().join("n")).unwrap(), "7");
        // Errors from `derive` pass through and nothing is kept.
        let failed = remembered(dir.path(), "m", digits, || Err("no"));
        assert_eq!(failed, Err("no"));
        assert!(!dir.path().join("m").exists());
    }

    #[test]
    fn temp_sibling_stays_in_the_same_directory() {
        let t = temp_sibling(Path::new("/a/b/c"));
        assert_eq!(t.parent(), Some(Path::new("/a/b")));
        assert_ne!(t, Path::new("/a/b/c"));
    }
}
