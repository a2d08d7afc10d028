//! The image store: opening, name resolution, listing, tagging, removal and garbage collection.
//!
//! Locking discipline (all `flock`, so a killed process releases its locks):
//! - `ingest.lock` shared: held by anything writing into `tmp/` or relying on blobs that are not
//!   yet referenced by an image (blob writers, imports, rootfs builds, registration, and pulls via
//!   [`Store::lease`]); exclusive: garbage collection and temp cleanup.
//! - `lock` exclusive: every read-modify-write of `repositories.json`.
//!
//! Order is always ingest before metadata, so the two never deadlock.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use bulkhead_fs::Lock;
use oci_spec::image::{Config, History, ImageConfiguration};
use serde::Serialize;

use crate::digest::{Digest, ImageId};
use crate::error::ImageError;
use crate::fsutil;
use crate::manifest::{self, ImageParts, LayerDescriptor};
use crate::metadata::{ImageRecord, Metadata};
use crate::reference::Reference;

/// Minimum length of an image id prefix accepted by [`Store::resolve`].
const MIN_ID_PREFIX: usize = 4;

/// Bounds applied to untrusted content.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Total bytes of file content unpacked for one image (zip-bomb guard).
    pub max_unpacked_bytes: u64,
    /// Total tar members across the layers of one image.
    pub max_members: u64,
    /// Longest accepted member name, in bytes.
    pub max_path_len: usize,
    /// Largest accepted manifest, index or config blob.
    pub max_manifest_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_unpacked_bytes: 16 << 30,
            max_members: 1_000_000,
            max_path_len: 4096,
            max_manifest_bytes: manifest::MAX_MANIFEST_BYTES,
        }
    }
}

/// A registered image.
#[derive(Clone, Debug)]
pub struct Image {
    /// Config digest, as in docker.
    pub id: ImageId,
    /// The single-platform manifest the image was registered from.
    pub manifest_digest: Digest,
    pub config: ImageConfiguration,
    pub layers: Vec<LayerDescriptor>,
    /// Canonical tags (`docker.io/library/busybox:latest`), sorted.
    pub names: Vec<String>,
    /// Config plus (compressed) layer sizes in bytes.
    pub size: u64,
    /// Creation time from the config (RFC 3339), if any.
    pub created: Option<String>,
}

/// One row of `images` output: one per (repository, tag); untagged images show `<none>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    pub repository: String,
    pub tag: String,
    pub id: ImageId,
    pub created: Option<String>,
    pub size: u64,
}

/// One effect of [`Store::remove`], in the order docker reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageDeletion {
    /// A tag or a `name@digest` reference was removed; familiar form (`busybox:latest`).
    Untagged(String),
    /// The image record was deleted (its blobs are freed unless another image uses them).
    Deleted(ImageId),
}

/// What [`Store::inspect`] reports about one image. Serializes with docker's field names.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: ImageId,
    /// Familiar tags (`busybox:latest`).
    pub repo_tags: Vec<String>,
    /// Familiar `name@digest` references the image was pulled or registered as.
    pub repo_digests: Vec<String>,
    pub manifest_digest: Digest,
    pub created: Option<String>,
    pub author: Option<String>,
    pub architecture: String,
    pub os: String,
    pub variant: Option<String>,
    /// Config plus (compressed) layer sizes in bytes.
    pub size: u64,
    /// The image's default run configuration (command, environment, user, ...).
    pub config: Option<Config>,
    #[serde(rename = "RootFS")]
    pub root_fs: InspectRootFs,
    pub layers: Vec<InspectLayer>,
    pub history: Vec<History>,
    pub metadata: InspectMetadata,
}

/// The uncompressed layers of an image, by diff id.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectRootFs {
    /// Always `layers`.
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<Digest>,
}

/// A layer blob as the manifest lists it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectLayer {
    pub digest: Digest,
    pub size: u64,
    /// OCI media type (Docker types are mapped to OCI ones).
    pub media_type: String,
}

/// Local facts about an image, not part of the image itself.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectMetadata {
    /// When the image was registered in this store (RFC 3339).
    pub added: String,
}

/// What [`Store::prune`] deleted.
#[derive(Clone, Debug, Default)]
pub struct PruneReport {
    pub blobs_removed: Vec<Digest>,
    pub artifacts_removed: Vec<PathBuf>,
    pub bytes_freed: u64,
}

/// Keeps garbage collection away while held: take one across a pull, from the first blob
/// written until [`Store::register_image`] returns.
pub struct IngestLease {
    _lock: Lock,
}

/// The content-addressed image store under `<root>/images`.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
    limits: Limits,
}

impl Store {
    /// Opens (creating if needed) the store below bulkhead's `--root` and removes temp files
    /// left by killed processes when no other process is using the store.
    pub fn open(root: &Path) -> Result<Store, ImageError> {
        let store = Store {
            dir: root.join("images"),
            limits: Limits::default(),
        };
        for dir in [store.blobs_dir(), store.rootfs_dir(), store.locks_dir()] {
            fs::create_dir_all(&dir)
                .map_err(ImageError::io(format!("create {}", dir.display())))?;
        }
        // Owner-only: images are unpacked there, setuid-root files included, on no nosuid mount.
        let tmp = store.tmp_dir();
        bulkhead_fs::private_dir(&tmp)
            .map_err(ImageError::io(format!("create {}", tmp.display())))?;
        if let Some(_ingest) = fsutil::lock(&store.ingest_lock_path(), Lock::try_exclusive)? {
            let _meta = fsutil::lock(&store.metadata_lock_path(), Lock::exclusive)?;
            store.clean_tmp()?;
        }
        Ok(store)
    }

    /// Replaces the limits applied to untrusted content.
    pub fn with_limits(mut self, limits: Limits) -> Store {
        self.limits = limits;
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// `<root>/images`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes a shared ingest lease (see [`IngestLease`]).
    pub fn lease(&self) -> Result<IngestLease, ImageError> {
        Ok(IngestLease {
            _lock: fsutil::lock(&self.ingest_lock_path(), Lock::shared)?,
        })
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.dir.join("blobs").join("sha256")
    }
    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }
    pub(crate) fn rootfs_dir(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    pub(crate) fn locks_dir(&self) -> PathBuf {
        self.dir.join("locks")
    }
    pub(crate) fn metadata_path(&self) -> PathBuf {
        self.dir.join("repositories.json")
    }
    pub(crate) fn metadata_lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }
    pub(crate) fn ingest_lock_path(&self) -> PathBuf {
        self.dir.join("ingest.lock")
    }

    /// Removes everything in `tmp/`. Caller holds the ingest and metadata locks exclusively.
    fn clean_tmp(&self) -> Result<(), ImageError> {
        let tmp = self.tmp_dir();
        for entry in
            fs::read_dir(&tmp).map_err(ImageError::io(format!("read {}", tmp.display())))?
        {
            let entry = entry.map_err(ImageError::io(format!("read {}", tmp.display())))?;
            fsutil::remove_path(&entry.path())?;
        }
        Ok(())
    }

    /// Loads and validates the parts of an image from stored blobs.
    pub(crate) fn image_parts(
        &self,
        manifest_digest: &Digest,
        reference: &str,
    ) -> Result<ImageParts, ImageError> {
        manifest::load_image_parts(
            &|d| self.blob_path(d),
            manifest_digest,
            reference,
            self.limits.max_manifest_bytes,
        )
    }

    fn load_image(&self, meta: &Metadata, id: &ImageId) -> Result<Image, ImageError> {
        let record = meta.images.get(id).ok_or_else(|| ImageError::NotFound {
            reference: id.to_string(),
        })?;
        let parts = self.image_parts(&record.manifest_digest, &id.to_string())?;
        if parts.config_digest != id.0 {
            return Err(ImageError::InvalidManifest {
                reference: id.to_string(),
                reason: format!("manifest points at config {}", parts.config_digest),
            });
        }
        let size = parts.config_size + parts.layers.iter().map(|l| l.size).sum::<u64>();
        Ok(Image {
            id: id.clone(),
            manifest_digest: record.manifest_digest.clone(),
            created: parts.config.created().clone(),
            config: parts.config,
            layers: parts.layers,
            names: meta.tags_of(id),
            size,
        })
    }

    fn find_by_id_prefix(meta: &Metadata, prefix: &str) -> Result<Option<ImageId>, ImageError> {
        let matches: Vec<&ImageId> = meta
            .images
            .keys()
            .filter(|id| id.0.hex().starts_with(prefix))
            .collect();
        match matches.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((*one).clone())),
            many => Err(ImageError::Ambiguous {
                prefix: prefix.to_string(),
                count: many.len(),
            }),
        }
    }

    /// Finds the image id a user reference denotes.
    fn lookup_id(meta: &Metadata, reference: &str) -> Result<ImageId, ImageError> {
        let not_found = || ImageError::NotFound {
            reference: reference.to_string(),
        };
        let is_hex_prefix = |s: &str| {
            (MIN_ID_PREFIX..=64).contains(&s.len())
                && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        if let Some(hex) = reference.strip_prefix("sha256:") {
            if is_hex_prefix(hex) {
                return Self::find_by_id_prefix(meta, hex)?.ok_or_else(not_found);
            }
        }
        if let Ok(r) = reference.parse::<Reference>() {
            let found = match &r.digest {
                Some(digest) => {
                    let repo_digest = format!("{}@{digest}", r.name());
                    meta.images
                        .iter()
                        .find(|(_, rec)| rec.repo_digests.contains(&repo_digest))
                        .map(|(id, _)| id.clone())
                }
                None => meta.tags.get(&r.to_string()).cloned(),
            };
            if let Some(id) = found {
                return Ok(id);
            }
        }
        if is_hex_prefix(reference) {
            return Self::find_by_id_prefix(meta, reference)?.ok_or_else(not_found);
        }
        Err(not_found())
    }

    /// Resolves a name, `name:tag`, `name@sha256:...`, full id or unique id prefix to an image.
    pub fn resolve(&self, reference: &str) -> Result<Image, ImageError> {
        let meta = self.metadata()?;
        let id = Self::lookup_id(&meta, reference)?;
        self.load_image(&meta, &id)
    }

    /// One row per (repository, tag); untagged images appear once as `<none>:<none>`.
    pub fn list(&self) -> Result<Vec<ImageSummary>, ImageError> {
        let meta = self.metadata()?;
        let mut rows = Vec::new();
        for id in meta.images.keys() {
            let image = self.load_image(&meta, id)?;
            let row = |repository: String, tag: String| ImageSummary {
                repository,
                tag,
                id: id.clone(),
                created: image.created.clone(),
                size: image.size,
            };
            if image.names.is_empty() {
                rows.push(row("<none>".into(), "<none>".into()));
            }
            for name in &image.names {
                let r: Reference = name.parse()?;
                rows.push(row(r.familiar_name(), r.tag.unwrap_or_default()));
            }
        }
        rows.sort_by(|a, b| (&a.repository, &a.tag).cmp(&(&b.repository, &b.tag)));
        Ok(rows)
    }

    /// What docker's image inspect shows about the image `reference` denotes.
    pub fn inspect(&self, reference: &str) -> Result<ImageInspect, ImageError> {
        let meta = self.metadata()?;
        let id = Self::lookup_id(&meta, reference)?;
        let image = self.load_image(&meta, &id)?;
        let record = meta.images.get(&id).ok_or_else(|| ImageError::NotFound {
            reference: reference.to_string(),
        })?;
        let familiar = |names: &mut dyn Iterator<Item = &String>| -> Vec<String> {
            names
                .filter_map(|n| n.parse::<Reference>().ok())
                .map(|r| r.familiar())
                .collect()
        };
        let config = &image.config;
        Ok(ImageInspect {
            repo_tags: familiar(&mut image.names.iter()),
            repo_digests: familiar(&mut record.repo_digests.iter()),
            manifest_digest: image.manifest_digest.clone(),
            created: image.created.clone(),
            author: config.author().clone(),
            architecture: config.architecture().to_string(),
            os: config.os().to_string(),
            variant: config.variant().clone(),
            size: image.size,
            config: config.config().clone(),
            root_fs: InspectRootFs {
                kind: "layers".to_string(),
                // The diff ids, validated when the image was loaded.
                layers: image.layers.iter().map(|l| l.diff_id.clone()).collect(),
            },
            layers: image
                .layers
                .iter()
                .map(|l| InspectLayer {
                    digest: l.digest.clone(),
                    size: l.size,
                    media_type: l.media_type.clone(),
                })
                .collect(),
            history: config.history().clone(),
            metadata: InspectMetadata {
                added: record.added.clone(),
            },
            id,
        })
    }

    /// Adds tag `dst` (e.g. `myapp:v1`) to the image `src` denotes.
    pub fn tag(&self, src: &str, dst: &str) -> Result<(), ImageError> {
        let dst_ref: Reference = dst.parse()?;
        if dst_ref.digest.is_some() {
            return Err(ImageError::InvalidReference {
                input: dst.to_string(),
                reason: "a tag target cannot contain a digest".to_string(),
            });
        }
        self.update_metadata(|meta| {
            let id = Self::lookup_id(meta, src)?;
            meta.tags.insert(dst_ref.to_string(), id);
            Ok(())
        })
    }

    /// Untags and, when the last tag goes (or when addressed by id), deletes the image record,
    /// then frees blobs no other image uses. Refuses images `in_use` unless `force`.
    /// Returns what was untagged and deleted, in docker's order.
    pub fn remove(
        &self,
        reference: &str,
        force: bool,
        in_use: &dyn Fn(&ImageId) -> bool,
    ) -> Result<Vec<ImageDeletion>, ImageError> {
        let (deletions, deleted) = self.update_metadata(|meta| {
            let id = Self::lookup_id(meta, reference)?;
            let tags = meta.tags_of(&id);
            let by_tag = reference
                .parse::<Reference>()
                .ok()
                .filter(|r| r.digest.is_none())
                .map(|r| r.to_string())
                .filter(|canonical| tags.contains(canonical));
            let familiar = |name: &str| {
                name.parse::<Reference>()
                    .map(|r| r.familiar())
                    .unwrap_or_else(|_| name.to_string())
            };
            let mut deletions = Vec::new();
            if let Some(tag) = &by_tag {
                if tags.len() > 1 {
                    meta.tags.remove(tag);
                    return Ok((vec![ImageDeletion::Untagged(familiar(tag))], None));
                }
            } else if tags.len() > 1 && !force {
                return Err(ImageError::MultipleTags {
                    id: id.0.hex()[..12].to_string(),
                    tags: tags
                        .iter()
                        .map(|t| familiar(t))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            if in_use(&id) && !force {
                return Err(ImageError::InUse {
                    reference: reference.to_string(),
                    id: id.to_string(),
                });
            }
            for tag in &tags {
                meta.tags.remove(tag);
                deletions.push(ImageDeletion::Untagged(familiar(tag)));
            }
            if let Some(record) = meta.images.remove(&id) {
                for repo_digest in &record.repo_digests {
                    deletions.push(ImageDeletion::Untagged(familiar(repo_digest)));
                }
                deletions.push(ImageDeletion::Deleted(id.clone()));
                return Ok((deletions, Some((id, record))));
            }
            Ok((deletions, None))
        })?;
        if let Some((id, record)) = deleted {
            let mut candidates = BTreeSet::new();
            candidates.insert(record.manifest_digest.clone());
            if let Ok(parts) = self.image_parts(&record.manifest_digest, &id.to_string()) {
                candidates.insert(parts.config_digest);
                candidates.extend(parts.layers.into_iter().map(|l| l.digest));
            }
            // Best effort: if a pull or build holds a lease, `prune` frees the rest later.
            if let Some(ingest) = fsutil::lock(&self.ingest_lock_path(), Lock::try_exclusive)? {
                self.collect_garbage(ingest, Some(&candidates))?;
            }
        }
        Ok(deletions)
    }

    /// Deletes blobs and rootfs artifacts that no image references, and stale temp files.
    /// Waits for running pulls, imports and builds to finish first.
    pub fn prune(&self) -> Result<PruneReport, ImageError> {
        let ingest = fsutil::lock(&self.ingest_lock_path(), Lock::exclusive)?;
        self.collect_garbage(ingest, None)
    }

    /// Garbage collection proper; `only` restricts blob deletion to the given candidates.
    fn collect_garbage(
        &self,
        _ingest: Lock,
        only: Option<&BTreeSet<Digest>>,
    ) -> Result<PruneReport, ImageError> {
        let _meta_lock = fsutil::lock(&self.metadata_lock_path(), Lock::exclusive)?;
        let meta = self.metadata()?;
        let mut referenced = BTreeSet::new();
        for (id, record) in &meta.images {
            referenced.insert(record.manifest_digest.clone());
            referenced.insert(id.0.clone());
            if let Ok(parts) = self.image_parts(&record.manifest_digest, &id.to_string()) {
                referenced.extend(parts.layers.into_iter().map(|l| l.digest));
            }
        }
        let mut report = PruneReport::default();
        let blobs = self.blobs_dir();
        for entry in
            fs::read_dir(&blobs).map_err(ImageError::io(format!("read {}", blobs.display())))?
        {
            let entry = entry.map_err(ImageError::io(format!("read {}", blobs.display())))?;
            let name = entry.file_name();
            let Ok(digest) = Digest::from_hex(&name.to_string_lossy()) else {
                continue;
            };
            if referenced.contains(&digest) || only.is_some_and(|c| !c.contains(&digest)) {
                continue;
            }
            report.bytes_freed += fsutil::disk_usage(&entry.path())?;
            fsutil::remove_path(&entry.path())?;
            report.blobs_removed.push(digest);
        }
        let rootfs = self.rootfs_dir();
        for entry in
            fs::read_dir(&rootfs).map_err(ImageError::io(format!("read {}", rootfs.display())))?
        {
            let entry = entry.map_err(ImageError::io(format!("read {}", rootfs.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let keep = name
                .strip_suffix(crate::rootfs::ARTIFACT_SUFFIX)
                .and_then(|hex| Digest::from_hex(hex).ok())
                .is_some_and(|d| meta.images.contains_key(&ImageId(d)));
            if !keep {
                report.bytes_freed += fsutil::disk_usage(&entry.path())?;
                fsutil::remove_path(&entry.path())?;
                report.artifacts_removed.push(entry.path());
            }
        }
        let locks = self.locks_dir();
        for entry in
            fs::read_dir(&locks).map_err(ImageError::io(format!("read {}", locks.display())))?
        {
            let entry = entry.map_err(ImageError::io(format!("read {}", locks.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let live = Digest::from_hex(name.trim_end_matches(".lock"))
                .is_ok_and(|d| meta.images.contains_key(&ImageId(d)));
            if !live {
                fsutil::remove_path(&entry.path())?;
            }
        }
        self.clean_tmp()?;
        Ok(report)
    }

    /// Bytes used by blobs and rootfs artifacts (for `bulkhead info`).
    pub fn total_size(&self) -> Result<u64, ImageError> {
        Ok(fsutil::disk_usage(&self.blobs_dir())? + fsutil::disk_usage(&self.rootfs_dir())?)
    }

    /// Registers an image from stored blobs: the single-platform manifest (OCI or Docker
    /// schema 2), its config and all layers must already be blobs. Validates, then tags `name`
    /// (and records its digest) in one atomic metadata update.
    pub fn register_image(
        &self,
        name: &Reference,
        manifest_digest: &Digest,
    ) -> Result<Image, ImageError> {
        let _lease = self.lease()?;
        let parts = self.image_parts(manifest_digest, &name.to_string())?;
        self.record_image(Some(name), &parts)
    }

    /// Adds or updates the record for validated `parts` and applies `name`, if any.
    pub(crate) fn record_image(
        &self,
        name: Option<&Reference>,
        parts: &ImageParts,
    ) -> Result<Image, ImageError> {
        let id = ImageId(parts.config_digest.clone());
        self.update_metadata(|meta| {
            let record = meta
                .images
                .entry(id.clone())
                .or_insert_with(|| ImageRecord {
                    manifest_digest: parts.manifest_digest.clone(),
                    repo_digests: BTreeSet::new(),
                    added: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                });
            record.manifest_digest = parts.manifest_digest.clone();
            if let Some(name) = name {
                record
                    .repo_digests
                    .insert(format!("{}@{}", name.name(), parts.manifest_digest));
                if let Some(digest) = &name.digest {
                    record
                        .repo_digests
                        .insert(format!("{}@{digest}", name.name()));
                }
                if let Some(tag) = &name.tag {
                    meta.tags.insert(name.with_tag(tag).to_string(), id.clone());
                }
            }
            Ok(())
        })?;
        // Created now so that a later (possibly failing) artifact build changes no store file.
        let lock = self.locks_dir().join(format!("{}.lock", id.0.hex()));
        drop(fsutil::lock(&lock, Lock::shared)?);
        let meta = self.metadata()?;
        self.load_image(&meta, &id)
    }
}
