//! The store's small metadata file, `<images>/repositories.json`: image records and tags.
//!
//! Readers load it without locking (it is only ever replaced by an atomic rename); writers hold
//! the exclusive metadata lock for the whole read-modify-write so concurrent updates serialise.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use bulkhead_fs::{Durability, Lock};
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, ImageId};
use crate::error::ImageError;
use crate::fsutil;
use crate::store::Store;

const METADATA_VERSION: u32 = 1;

/// One registered image, keyed by its id in [`Metadata::images`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    /// The manifest this image was last registered from.
    pub(crate) manifest_digest: Digest,
    /// `registry/repository@sha256:...` names of the manifest (docker's RepoDigests).
    #[serde(default)]
    pub(crate) repo_digests: BTreeSet<String>,
    /// RFC 3339 time the image was first registered.
    pub(crate) added: String,
}

/// Everything in `repositories.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Metadata {
    version: u32,
    /// Image id (`sha256:...`) to record.
    pub(crate) images: BTreeMap<ImageId, ImageRecord>,
    /// Canonical `registry/repository:tag` to image id.
    pub(crate) tags: BTreeMap<String, ImageId>,
}

impl Metadata {
    /// Canonical tag names pointing at `id`, sorted.
    pub(crate) fn tags_of(&self, id: &ImageId) -> Vec<String> {
        self.tags
            .iter()
            .filter(|(_, v)| *v == id)
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn load(path: &Path) -> Result<Metadata, ImageError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(Metadata {
                    version: METADATA_VERSION,
                    ..Metadata::default()
                })
            }
            Err(e) => return Err(ImageError::io(format!("read {}", path.display()))(e)),
        };
        let meta: Metadata = serde_json::from_slice(&bytes).map_err(|e| ImageError::Metadata {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if meta.version != METADATA_VERSION {
            return Err(ImageError::Metadata {
                path: path.to_path_buf(),
                reason: format!("unsupported version {}", meta.version),
            });
        }
        Ok(meta)
    }
}

impl Store {
    /// Current metadata snapshot (no lock needed: the file is replaced atomically).
    pub(crate) fn metadata(&self) -> Result<Metadata, ImageError> {
        Metadata::load(&self.metadata_path())
    }

    /// Runs `f` on the metadata under the exclusive metadata lock and persists the result
    /// atomically if `f` succeeds. On error nothing is written.
    pub(crate) fn update_metadata<T>(
        &self,
        f: impl FnOnce(&mut Metadata) -> Result<T, ImageError>,
    ) -> Result<T, ImageError> {
        let _lock = fsutil::lock(&self.metadata_lock_path(), Lock::exclusive)?;
        let path = self.metadata_path();
        let mut meta = Metadata::load(&path)?;
        let value = f(&mut meta)?;
        let bytes = serde_json::to_vec_pretty(&meta).map_err(|e| ImageError::Metadata {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        bulkhead_fs::replace(&path, &bytes, &self.tmp_dir(), Durability::DataAndEntry)
            .map_err(ImageError::io(format!("write {}", path.display())))?;
        Ok(value)
    }
}
