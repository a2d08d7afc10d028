//! The per-image read-only root filesystem artifact, `<images>/rootfs/<id-hex>.erofs`.
//!
//! Both isolation modes use the same file: the process mode loop-mounts it, the VM mode attaches
//! it as a read-only virtio-blk disk. It is built lazily on first use under a per-image lock:
//! layers are unpacked into a temp directory, `mkfs.erofs` writes a temp image, which is fsynced
//! and renamed into place. A killed build leaves only temp files, never a partial artifact.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use bulkhead_fs::Lock;

use crate::error::ImageError;
use crate::fsutil::{self, TempPath};
use crate::layer;
use crate::store::{Image, Store};
use crate::unpack::{Unpacker, Whiteouts};

/// File name suffix of artifacts in `<images>/rootfs/`.
pub(crate) const ARTIFACT_SUFFIX: &str = ".erofs";
const MKFS_EROFS: &str = "mkfs.erofs";

impl Store {
    /// Path where the artifact of `image` lives once built.
    pub fn rootfs_artifact_path(&self, image: &Image) -> PathBuf {
        self.rootfs_dir()
            .join(format!("{}{ARTIFACT_SUFFIX}", image.id.0.hex()))
    }

    /// Returns the read-only erofs artifact of `image`, building it first if needed.
    /// Concurrent callers build it once; the others wait and reuse it.
    pub fn rootfs_artifact(&self, image: &Image) -> Result<PathBuf, ImageError> {
        let dest = self.rootfs_artifact_path(image);
        if dest.is_file() {
            return Ok(dest);
        }
        let _lease = self.lease()?;
        let lock_path = self.locks_dir().join(format!("{}.lock", image.id.0.hex()));
        let _lock = fsutil::lock(&lock_path, Lock::exclusive)?;
        if dest.is_file() {
            return Ok(dest);
        }
        let work = TempPath(self.tmp_dir().join(bulkhead_fs::unique_name("unpack")));
        fs::create_dir(&work.0).map_err(ImageError::io(format!("create {}", work.0.display())))?;
        fs::set_permissions(&work.0, fs::Permissions::from_mode(0o755))
            .map_err(ImageError::io(format!("chmod {}", work.0.display())))?;
        self.unpack_image(image, &work.0)?;
        let out = TempPath(self.tmp_dir().join(bulkhead_fs::unique_name("rootfs")));
        // Created exclusively here, so mkfs.erofs writes into our file and never through a name
        // someone else made first.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&out.0)
            .map_err(ImageError::io(format!("create {}", out.0.display())))?;
        run_mkfs(&work.0, &out.0, &image.id.to_string())?;
        File::open(&out.0)
            .and_then(|f| {
                f.set_permissions(fs::Permissions::from_mode(0o444))?;
                f.sync_all()
            })
            .map_err(ImageError::io(format!("fsync {}", out.0.display())))?;
        fs::rename(&out.0, &dest).map_err(ImageError::io(format!(
            "rename {} to {}",
            out.0.display(),
            dest.display()
        )))?;
        fsutil::fsync_dir(&self.rootfs_dir())?;
        tracing::debug!(image = %image.id, artifact = %dest.display(), "built rootfs artifact");
        Ok(dest)
    }

    /// Applies all layers of `image`, in order, onto the empty directory `dir`, checking each
    /// layer's uncompressed digest against the config's diff id.
    pub fn unpack_image(&self, image: &Image, dir: &Path) -> Result<(), ImageError> {
        let mut unpacker = Unpacker::new(dir, self.limits(), Whiteouts::Apply)?;
        for layer_desc in &image.layers {
            let name = layer_desc.digest.to_string();
            let path =
                self.blob_path(&layer_desc.digest)
                    .ok_or_else(|| ImageError::BlobMissing {
                        reference: image.id.to_string(),
                        digest: layer_desc.digest.clone(),
                    })?;
            let reader = layer::open_layer(&path, &name)?;
            let diff_id = unpacker.apply_layer(reader, &name)?;
            if diff_id != layer_desc.diff_id {
                return Err(ImageError::DigestMismatch {
                    what: format!("image {}: uncompressed layer {name}", image.id),
                    expected: layer_desc.diff_id.clone(),
                    actual: diff_id,
                });
            }
        }
        unpacker.finish()
    }
}

/// Runs `mkfs.erofs`: uncompressed (fast to build and to read, and needs no compressor support
/// in the guest kernel), exact mtimes, xattrs kept (`-x` tolerance only controls sharing).
fn run_mkfs(source: &Path, out: &Path, id: &str) -> Result<(), ImageError> {
    let output = Command::new(MKFS_EROFS)
        .arg("--quiet")
        .arg("--preserve-mtime")
        .arg("-x1")
        .arg(out)
        .arg(source)
        .output()
        .map_err(ImageError::io(format!(
            "run {MKFS_EROFS} (is erofs-utils installed?)"
        )))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(ImageError::Mkfs {
            id: id.to_string(),
            status: output.status.to_string(),
            stderr: stderr.lines().last().unwrap_or("").trim().to_string(),
        });
    }
    Ok(())
}
