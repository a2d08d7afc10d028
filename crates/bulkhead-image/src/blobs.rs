//! Content-addressed blob storage: `<images>/blobs/sha256/<hex>`.
//!
//! A blob only becomes visible by an atomic rename after its size and sha256 were verified and
//! its data fsynced, so a reader never sees partial or wrong content. Writing the same blob twice
//! (two concurrent pulls) is harmless: both renames install identical bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::digest::{Digest, DigestHasher};
use crate::error::ImageError;
use crate::fsutil;
use crate::store::{IngestLease, Store};

/// Streams one blob into a temp file; [`BlobWriter::commit`] verifies and publishes it.
///
/// Dropping a writer without committing deletes the temp file.
pub struct BlobWriter {
    file: Option<BufWriter<File>>,
    tmp_path: PathBuf,
    dest_dir: PathBuf,
    hasher: DigestHasher,
    expected: Option<Digest>,
    expected_size: Option<u64>,
    what: String,
    _lease: IngestLease,
}

impl BlobWriter {
    pub(crate) fn create(
        store: &Store,
        dest_dir: &Path,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
        what: String,
    ) -> Result<BlobWriter, ImageError> {
        let lease = store.lease()?;
        let tmp_path = store.tmp_dir().join(bulkhead_fs::unique_name("blob"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp_path)
            .map_err(ImageError::io(format!("create {}", tmp_path.display())))?;
        Ok(BlobWriter {
            file: Some(BufWriter::with_capacity(256 * 1024, file)),
            tmp_path,
            dest_dir: dest_dir.to_path_buf(),
            hasher: DigestHasher::default(),
            expected: expected.cloned(),
            expected_size,
            what,
            _lease: lease,
        })
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.hasher.len()
    }

    /// Verifies size and sha256, fsyncs and atomically renames the blob into place.
    ///
    /// On mismatch the error names expected and actual values and nothing is stored.
    pub fn commit(self) -> Result<(), ImageError> {
        self.finish().map(|_| ())
    }

    /// Like [`BlobWriter::commit`] but also returns the digest (the only check when none was
    /// expected).
    pub(crate) fn finish(mut self) -> Result<Digest, ImageError> {
        let Some(writer) = self.file.take() else {
            return Err(ImageError::Io {
                context: format!("{}: blob writer already finished", self.what),
                source: io::Error::other("writer closed"),
            });
        };
        let file = writer.into_inner().map_err(|e| {
            ImageError::io(format!("write {}", self.tmp_path.display()))(e.into_error())
        })?;
        let size = self.hasher.len();
        let actual = std::mem::take(&mut self.hasher).finish();
        if let Some(expected_size) = self.expected_size {
            if expected_size != size {
                return Err(ImageError::SizeMismatch {
                    what: self.what.clone(),
                    expected: expected_size,
                    actual: size,
                });
            }
        }
        if let Some(expected) = &self.expected {
            if *expected != actual {
                return Err(ImageError::DigestMismatch {
                    what: self.what.clone(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        file.sync_all()
            .map_err(ImageError::io(format!("fsync {}", self.tmp_path.display())))?;
        drop(file);
        let dest = self.dest_dir.join(actual.hex());
        if dest.exists() {
            // Same content already present (content addressing makes it identical).
            return Ok(actual);
        }
        fs::rename(&self.tmp_path, &dest).map_err(ImageError::io(format!(
            "rename {} to {}",
            self.tmp_path.display(),
            dest.display()
        )))?;
        fsutil::fsync_dir(&self.dest_dir)?;
        Ok(actual)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("blob writer already finished"));
        };
        if let Some(limit) = self.expected_size {
            if self.hasher.len() + buf.len() as u64 > limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: more than the expected {limit} bytes", self.what),
                ));
            }
        }
        let n = file.write(buf)?;
        self.hasher.write_all(&buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // After a successful rename the temp name is gone and this is a no-op.
        let _ = fs::remove_file(&self.tmp_path);
    }
}

impl Store {
    /// Path of the blob file for `digest`, whether or not it exists.
    pub(crate) fn blob_file(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// Whether the blob is stored.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_file(digest).is_file()
    }

    /// Path of a stored blob, `None` if it is not stored.
    pub fn blob_path(&self, digest: &Digest) -> Option<PathBuf> {
        let path = self.blob_file(digest);
        path.is_file().then_some(path)
    }

    /// Opens a writer for a blob that must hash to `expected` (and be `expected_size` long if
    /// given). The temp file lives under `<images>/tmp`.
    pub fn blob_writer(
        &self,
        expected: &Digest,
        expected_size: Option<u64>,
    ) -> Result<BlobWriter, ImageError> {
        BlobWriter::create(
            self,
            &self.blobs_dir(),
            Some(expected),
            expected_size,
            format!("blob {expected}"),
        )
    }

    /// Stores a small in-memory blob (manifest, config) and returns its digest.
    pub fn put_blob_bytes(
        &self,
        bytes: &[u8],
        expected: Option<&Digest>,
    ) -> Result<Digest, ImageError> {
        let actual = Digest::of_bytes(bytes);
        if let Some(expected) = expected {
            if *expected != actual {
                return Err(ImageError::DigestMismatch {
                    what: format!("blob {expected}"),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        if self.has_blob(&actual) {
            return Ok(actual);
        }
        let mut writer = BlobWriter::create(
            self,
            &self.blobs_dir(),
            Some(&actual),
            Some(bytes.len() as u64),
            format!("blob {actual}"),
        )?;
        writer
            .write_all(bytes)
            .map_err(ImageError::io(format!("write blob {actual}")))?;
        writer.finish()
    }
}
