//! Import and export of image archives: OCI layout directories, OCI archive tars, `docker save`
//! tars and plain rootfs tarballs.
//!
//! Imports stream every member into a staging directory under `tmp/` (blobs are hashed while
//! written, never held in memory), validate the complete image there — manifests, media types,
//! configs, and every new layer's tar integrity, member names and diff id — and only then move the
//! blobs into the store and update the metadata. A failed or killed import therefore leaves the
//! store as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::blobs::BlobWriter;
use crate::digest::Digest;
use crate::error::ImageError;
use crate::fsutil::{self, TempPath};
use crate::layer::{self, Budget, Compression};
use crate::manifest::{self, ImageParts, ManifestDocument, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use crate::reference::Reference;
use crate::store::{Image, Store};
use crate::tar_headers;

const OCI_LAYOUT_FILE: &str = "oci-layout";
const OCI_LAYOUT_VERSION: &str = "1.0.0";
const INDEX_FILE: &str = "index.json";
const DOCKER_MANIFEST_FILE: &str = "manifest.json";
const BLOBS_PREFIX: &str = "blobs/sha256/";
const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";
const DEFAULT_PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn unsupported(path: &Path, reason: impl Into<String>) -> ImageError {
    ImageError::UnsupportedArchive {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn json_error(path: &Path, what: &str, e: serde_json::Error) -> ImageError {
    unsupported(path, format!("bad {what}: {e}"))
}

/// Blobs of one import, staged under `tmp/` until the whole image is validated.
struct Staging<'s> {
    store: &'s Store,
    dir: TempPath,
}

impl<'s> Staging<'s> {
    fn new(store: &'s Store) -> Result<Staging<'s>, ImageError> {
        let dir = TempPath(store.tmp_dir().join(bulkhead_fs::unique_name("import")));
        fs::create_dir(&dir.0).map_err(ImageError::io(format!("create {}", dir.0.display())))?;
        Ok(Staging { store, dir })
    }

    fn writer(
        &self,
        expected: Option<&Digest>,
        size: Option<u64>,
        what: String,
    ) -> Result<BlobWriter, ImageError> {
        BlobWriter::create(self.store, &self.dir.0, expected, size, what)
    }

    fn put_bytes(&self, bytes: &[u8], what: &str) -> Result<Digest, ImageError> {
        let mut writer = self.writer(None, Some(bytes.len() as u64), what.to_string())?;
        writer
            .write_all(bytes)
            .map_err(ImageError::io(format!("stage {what}")))?;
        writer.finish()
    }

    fn staged(&self, digest: &Digest) -> Option<PathBuf> {
        let path = self.dir.0.join(digest.hex());
        path.is_file().then_some(path)
    }

    /// A staged blob, else a blob already in the store.
    fn lookup(&self, digest: &Digest) -> Option<PathBuf> {
        self.staged(digest).or_else(|| self.store.blob_path(digest))
    }

    fn parts(&self, manifest_digest: &Digest, reference: &str) -> Result<ImageParts, ImageError> {
        manifest::load_image_parts(
            &|d| self.lookup(d),
            manifest_digest,
            reference,
            self.store.limits().max_manifest_bytes,
        )
    }

    fn read_small(
        &self,
        digest: &Digest,
        reference: &str,
        what: &str,
    ) -> Result<Vec<u8>, ImageError> {
        let path = self.lookup(digest).ok_or_else(|| ImageError::BlobMissing {
            reference: reference.to_string(),
            digest: digest.clone(),
        })?;
        manifest::read_capped(
            &path,
            self.store.limits().max_manifest_bytes,
            reference,
            what,
        )
    }

    /// Scans every staged layer of `parts` (tar integrity, names, limits, diff id).
    fn verify_layers(&self, parts: &ImageParts) -> Result<(), ImageError> {
        let mut budget = Budget::default();
        for layer_desc in &parts.layers {
            let Some(path) = self.staged(&layer_desc.digest) else {
                continue; // already in the store
            };
            let name = layer_desc.digest.to_string();
            let reader = layer::open_layer(&path, &name)?;
            let diff_id = layer::scan_layer(reader, &name, self.store.limits(), &mut budget)?;
            if diff_id != layer_desc.diff_id {
                return Err(ImageError::DigestMismatch {
                    what: format!("uncompressed layer {name}"),
                    expected: layer_desc.diff_id.clone(),
                    actual: diff_id,
                });
            }
        }
        Ok(())
    }

    /// Moves the staged blobs an image needs into the store.
    fn publish(&self, parts: &ImageParts) -> Result<(), ImageError> {
        let mut digests = vec![parts.manifest_digest.clone(), parts.config_digest.clone()];
        digests.extend(parts.layers.iter().map(|l| l.digest.clone()));
        let blobs = self.store.blobs_dir();
        for digest in digests {
            let Some(staged) = self.staged(&digest) else {
                continue;
            };
            let dest = blobs.join(digest.hex());
            if dest.exists() {
                continue;
            }
            fs::rename(&staged, &dest).map_err(ImageError::io(format!(
                "rename {} to {}",
                staged.display(),
                dest.display()
            )))?;
        }
        fsutil::fsync_dir(&blobs)
    }
}

/// An image found in an archive: its manifest and the names to tag it with.
struct Candidate {
    manifest_digest: Digest,
    names: Vec<Reference>,
}

/// Normalises an archive member name (`./a//b` -> `a/b`).
fn normalise_member(name: &[u8]) -> String {
    String::from_utf8_lossy(name)
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Joins a symlink target onto the directory of `member`, lexically.
fn resolve_link(member: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        member.split('/').collect()
    };
    if !target.starts_with('/') {
        parts.pop();
    }
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// What an archive tar contained, after streaming it into staging.
#[derive(Default)]
struct ArchiveContents {
    /// Small metadata files kept in memory (`index.json`, `manifest.json`, configs).
    small: BTreeMap<String, Vec<u8>>,
    /// Member name to staged blob digest.
    blobs: BTreeMap<String, Digest>,
    /// Symlink members to their lexically resolved target.
    links: BTreeMap<String, String>,
}

impl ArchiveContents {
    fn digest_of(&self, member: &str) -> Option<&Digest> {
        let mut name = normalise_member(member.as_bytes());
        for _ in 0..16 {
            if let Some(d) = self.blobs.get(&name) {
                return Some(d);
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }
}

fn is_small_member(name: &str) -> bool {
    name == OCI_LAYOUT_FILE
        || name == INDEX_FILE
        || name == "repositories"
        || (!name.contains('/') && name.ends_with(".json"))
}

impl Store {
    /// Imports an OCI layout directory, an OCI archive tar or a `docker save` tar (possibly
    /// gzip/zstd compressed), detected from the content. Returns the imported images.
    pub fn import(&self, path: &Path) -> Result<Vec<Image>, ImageError> {
        self.import_inner(path).map_err(|error| ImageError::Import {
            path: path.to_path_buf(),
            error: Box::new(error),
        })
    }

    fn import_inner(&self, path: &Path) -> Result<Vec<Image>, ImageError> {
        let _lease = self.lease()?;
        let staging = Staging::new(self)?;
        let meta =
            fs::metadata(path).map_err(ImageError::io(format!("stat {}", path.display())))?;
        let contents = if meta.is_dir() {
            stage_layout_dir(&staging, path)?
        } else {
            stage_archive(&staging, path)?
        };
        let candidates = if let Some(index) = contents.small.get(INDEX_FILE) {
            oci_candidates(&staging, path, index)?
        } else if let Some(manifest) = contents.small.get(DOCKER_MANIFEST_FILE) {
            docker_candidates(&staging, path, manifest, &contents)?
        } else {
            return Err(unsupported(
                path,
                "neither index.json (OCI) nor manifest.json (docker save) found",
            ));
        };
        let mut validated = Vec::new();
        for candidate in candidates {
            let reference = candidate.names.first().map_or_else(
                || candidate.manifest_digest.to_string(),
                ToString::to_string,
            );
            let parts = staging.parts(&candidate.manifest_digest, &reference)?;
            staging.verify_layers(&parts)?;
            validated.push((candidate, parts));
        }
        let mut images = Vec::new();
        for (candidate, parts) in validated {
            staging.publish(&parts)?;
            let mut image = None;
            for name in &candidate.names {
                image = Some(self.record_image(Some(name), &parts)?);
            }
            let image = match image {
                Some(image) => image,
                None => self.record_image(None, &parts)?,
            };
            images.push(image);
        }
        Ok(images)
    }

    /// Imports a plain rootfs tarball (gzip, zstd or uncompressed) as a one-layer image tagged
    /// `reference`, with a default config (`Cmd ["/bin/sh"]`, `PATH`, linux/amd64).
    pub fn import_rootfs(&self, tar: &Path, reference: &str) -> Result<Image, ImageError> {
        self.import_rootfs_inner(tar, reference)
            .map_err(|error| ImageError::Import {
                path: tar.to_path_buf(),
                error: Box::new(error),
            })
    }

    fn import_rootfs_inner(&self, tar: &Path, reference: &str) -> Result<Image, ImageError> {
        let name: Reference = reference.parse()?;
        if name.tag.is_none() || name.digest.is_some() {
            return Err(ImageError::InvalidReference {
                input: reference.to_string(),
                reason: "a rootfs import needs a name:tag without digest".to_string(),
            });
        }
        let _lease = self.lease()?;
        let staging = Staging::new(self)?;
        let mut file = fsutil::open_read(tar)?;
        let mut writer = staging.writer(None, None, format!("rootfs tarball {}", tar.display()))?;
        io::copy(&mut file, &mut writer)
            .map_err(ImageError::io(format!("read {}", tar.display())))?;
        let size = writer.written();
        let layer_digest = writer.finish()?;
        let staged = staging.dir.0.join(layer_digest.hex());
        let (compression, reader) =
            layer::decompress(fsutil::open_read(&staged)?, &layer_digest.to_string())?;
        let diff_id = layer::scan_layer(
            reader,
            &layer_digest.to_string(),
            self.limits(),
            &mut Budget::default(),
        )?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let file_name = tar
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let config = json!({
            "created": now,
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": [DEFAULT_PATH_ENV],
                "Cmd": ["/bin/sh"],
            },
            "rootfs": { "type": "layers", "diff_ids": [diff_id.to_string()] },
            "history": [{ "created": now, "created_by": format!("bulkhead image import-rootfs {file_name}") }],
        });
        let config_bytes = serde_json::to_vec(&config).map_err(|e| json_error(tar, "config", e))?;
        let config_digest = staging.put_bytes(&config_bytes, "config")?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config_bytes.len() },
            "layers": [{ "mediaType": compression.oci_media_type(), "digest": layer_digest.to_string(), "size": size }],
        });
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| json_error(tar, "manifest", e))?;
        let manifest_digest = staging.put_bytes(&manifest_bytes, "manifest")?;
        let parts = staging.parts(&manifest_digest, &name.to_string())?;
        staging.publish(&parts)?;
        self.record_image(Some(&name), &parts)
    }

    /// Writes `reference` as an OCI archive tar (`oci-layout`, `index.json` with
    /// `org.opencontainers.image.ref.name`, `blobs/`). Docker schema 2 manifests are rewritten
    /// with OCI media types; config and layers are unchanged, so the image id stays the same.
    pub fn export(&self, reference: &str, out: &Path) -> Result<(), ImageError> {
        let image = self.resolve(reference)?;
        let manifest_path =
            self.blob_path(&image.manifest_digest)
                .ok_or_else(|| ImageError::BlobMissing {
                    reference: reference.to_string(),
                    digest: image.manifest_digest.clone(),
                })?;
        let original = manifest::read_capped(
            &manifest_path,
            self.limits().max_manifest_bytes,
            reference,
            "manifest",
        )?;
        let manifest_bytes = match manifest::parse_document(&original, None, reference)? {
            ManifestDocument::Manifest { docker: false, .. } => original,
            ManifestDocument::Manifest {
                manifest,
                docker: true,
            } => {
                let layers: Vec<Value> = image
                    .layers
                    .iter()
                    .map(|l| json!({ "mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.size }))
                    .collect();
                let converted = json!({
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": OCI_CONFIG,
                        "digest": image.id.to_string(),
                        "size": manifest.config().size(),
                    },
                    "layers": layers,
                });
                serde_json::to_vec(&converted).map_err(|e| json_error(out, "manifest", e))?
            }
            ManifestDocument::Index(_) => {
                return Err(ImageError::InvalidManifest {
                    reference: reference.to_string(),
                    reason: "stored manifest is an index".to_string(),
                })
            }
        };
        let manifest_digest = Digest::of_bytes(&manifest_bytes);
        let names: Vec<String> = match reference.parse::<Reference>() {
            Ok(r) if image.names.contains(&r.to_string()) => vec![r.to_string()],
            _ => image.names.clone(),
        };
        let descriptor = |name: Option<&String>| {
            let mut d = json!({
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest.to_string(),
                "size": manifest_bytes.len(),
            });
            if let Some(name) = name {
                d["annotations"] =
                    json!({ REF_NAME_ANNOTATION: name, CONTAINERD_NAME_ANNOTATION: name });
            }
            d
        };
        let manifests: Vec<Value> = if names.is_empty() {
            vec![descriptor(None)]
        } else {
            names.iter().map(Some).map(descriptor).collect()
        };
        let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
        let index_bytes = serde_json::to_vec(&index).map_err(|e| json_error(out, "index", e))?;
        let layout = json!({ "imageLayoutVersion": OCI_LAYOUT_VERSION }).to_string();

        let dir = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = TempPath(dir.join(format!(".{}", bulkhead_fs::unique_name("export"))));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp.0)
            .map_err(ImageError::io(format!("create {}", tmp.0.display())))?;
        let mut builder = tar::Builder::new(io::BufWriter::new(file));
        let write_err = ImageError::io(format!("write {}", out.display()));
        let result = (|| -> io::Result<File> {
            append_bytes(&mut builder, OCI_LAYOUT_FILE, layout.as_bytes())?;
            append_bytes(&mut builder, INDEX_FILE, &index_bytes)?;
            append_bytes(
                &mut builder,
                &format!("{BLOBS_PREFIX}{}", manifest_digest.hex()),
                &manifest_bytes,
            )?;
            let mut written = BTreeSet::new();
            let mut blobs = vec![image.id.0.clone()];
            blobs.extend(image.layers.iter().map(|l| l.digest.clone()));
            for digest in blobs {
                if !written.insert(digest.clone()) {
                    continue;
                }
                let path = self.blob_file(&digest);
                let mut blob = File::open(&path)?;
                let mut header = tar::Header::new_ustar();
                header.set_size(blob.metadata()?.len());
                header.set_mode(0o644);
                header.set_entry_type(tar::EntryType::Regular);
                builder.append_data(
                    &mut header,
                    format!("{BLOBS_PREFIX}{}", digest.hex()),
                    &mut blob,
                )?;
            }
            let file = builder
                .into_inner()?
                .into_inner()
                .map_err(|e| e.into_error())?;
            file.sync_all()?;
            Ok(file)
        })();
        result.map_err(write_err)?;
        fs::rename(&tmp.0, out).map_err(ImageError::io(format!(
            "rename {} to {}",
            tmp.0.display(),
            out.display()
        )))?;
        fsutil::fsync_dir(dir)
    }
}

fn append_bytes<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, name, bytes)
}

/// Stages every blob of an OCI layout directory and reads its `index.json`.
fn stage_layout_dir(staging: &Staging<'_>, dir: &Path) -> Result<ArchiveContents, ImageError> {
    if !dir.join(OCI_LAYOUT_FILE).is_file() {
        return Err(unsupported(dir, "directory without an oci-layout file"));
    }
    let limit = staging.store.limits().max_manifest_bytes;
    let mut contents = ArchiveContents::default();
    let index = manifest::read_capped(
        &dir.join(INDEX_FILE),
        limit,
        &dir.display().to_string(),
        INDEX_FILE,
    )?;
    contents.small.insert(INDEX_FILE.to_string(), index);
    let blobs = dir.join(BLOBS_PREFIX);
    for entry in
        fs::read_dir(&blobs).map_err(ImageError::io(format!("read {}", blobs.display())))?
    {
        let entry = entry.map_err(ImageError::io(format!("read {}", blobs.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let expected = Digest::from_hex(&name)?;
        let mut file = fsutil::open_read(&entry.path())?;
        let mut writer = staging.writer(
            Some(&expected),
            None,
            format!("blob {}", entry.path().display()),
        )?;
        io::copy(&mut file, &mut writer)
            .map_err(ImageError::io(format!("read {}", entry.path().display())))?;
        let digest = writer.finish()?;
        contents
            .blobs
            .insert(format!("{BLOBS_PREFIX}{name}"), digest);
    }
    Ok(contents)
}

/// Streams an archive tar: small metadata files into memory, everything else into staging.
fn stage_archive(staging: &Staging<'_>, path: &Path) -> Result<ArchiveContents, ImageError> {
    let limit = staging.store.limits().max_manifest_bytes;
    let (_, reader) = layer::decompress(fsutil::open_read(path)?, &path.display().to_string())?;
    let (mut archive, _) = tar_headers::archive(reader);
    let bad = |e: io::Error| unsupported(path, format!("corrupt or truncated tar: {e}"));
    let mut contents = ArchiveContents::default();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = normalise_member(&entry.path_bytes());
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .unwrap_or_default();
            let resolved = if kind.is_symlink() {
                resolve_link(&name, &target)
            } else {
                normalise_member(target.as_bytes())
            };
            contents.links.insert(name, resolved);
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let size = entry.size();
        if is_small_member(&name) {
            if size > limit {
                return Err(ImageError::OversizedManifest {
                    reference: path.display().to_string(),
                    what: name,
                    limit,
                });
            }
            let mut bytes = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut bytes).map_err(bad)?;
            if bytes.len() as u64 != size {
                return Err(unsupported(path, format!("member {name:?} truncated")));
            }
            contents.small.insert(name, bytes);
            continue;
        }
        let expected = match name.strip_prefix(BLOBS_PREFIX) {
            Some(hex) => Some(Digest::from_hex(hex)?),
            None if name.ends_with("/layer.tar") || name.ends_with(".tar") => None,
            // Legacy per-layer `json`/`VERSION` files carry nothing we need.
            None => continue,
        };
        let mut writer = staging.writer(
            expected.as_ref(),
            Some(size),
            format!("archive member {name}"),
        )?;
        let copied = io::copy(&mut entry, &mut writer).map_err(bad)?;
        if copied != size {
            return Err(unsupported(
                path,
                format!("member {name:?} truncated ({copied} of {size} bytes)"),
            ));
        }
        let digest = writer.finish()?;
        contents.blobs.insert(name, digest);
    }
    Ok(contents)
}

/// Name of an index entry: a full reference in the ref.name or containerd annotation.
fn annotated_name(
    annotations: Option<&std::collections::HashMap<String, String>>,
) -> Option<Reference> {
    let annotations = annotations?;
    [CONTAINERD_NAME_ANNOTATION, REF_NAME_ANNOTATION]
        .iter()
        .filter_map(|key| annotations.get(*key))
        // A bare tag ("latest") names no repository, so it cannot become a name here.
        .filter(|value| value.contains('/') || value.contains(':'))
        .find_map(|value| value.parse().ok())
}

/// Images listed in an OCI `index.json` (nested indexes resolved to linux/amd64).
fn oci_candidates(
    staging: &Staging<'_>,
    path: &Path,
    index: &[u8],
) -> Result<Vec<Candidate>, ImageError> {
    let reference = path.display().to_string();
    let index = match manifest::parse_document(index, None, &reference)? {
        ManifestDocument::Index(index) => index,
        ManifestDocument::Manifest { .. } => {
            return Err(unsupported(path, "index.json is not an image index"))
        }
    };
    let mut by_manifest: BTreeMap<Digest, Vec<Reference>> = BTreeMap::new();
    for descriptor in index.manifests() {
        let name = annotated_name(descriptor.annotations().as_ref());
        let mut digest = manifest::descriptor_digest(descriptor)?;
        for _ in 0..4 {
            let bytes = staging.read_small(&digest, &reference, "manifest")?;
            match manifest::parse_document(&bytes, None, &reference)? {
                ManifestDocument::Manifest { .. } => break,
                ManifestDocument::Index(nested) => {
                    digest = manifest::descriptor_digest(&manifest::select_platform(
                        &nested, &reference,
                    )?)?;
                }
            }
        }
        let names = by_manifest.entry(digest).or_default();
        if let Some(name) = name {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    if by_manifest.is_empty() {
        return Err(unsupported(path, "index.json lists no manifests"));
    }
    Ok(by_manifest
        .into_iter()
        .map(|(manifest_digest, names)| Candidate {
            manifest_digest,
            names,
        })
        .collect())
}

/// Images listed in a `docker save` `manifest.json`; an OCI manifest is synthesised for each.
fn docker_candidates(
    staging: &Staging<'_>,
    path: &Path,
    manifest_json: &[u8],
    contents: &ArchiveContents,
) -> Result<Vec<Candidate>, ImageError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        #[serde(default)]
        repo_tags: Option<Vec<String>>,
        layers: Vec<String>,
    }
    let entries: Vec<Entry> = serde_json::from_slice(manifest_json)
        .map_err(|e| json_error(path, DOCKER_MANIFEST_FILE, e))?;
    let mut candidates = Vec::new();
    for entry in entries {
        let config_name = normalise_member(entry.config.as_bytes());
        let config_digest = match contents.small.get(&config_name) {
            Some(bytes) => staging.put_bytes(bytes, &config_name)?,
            None => contents
                .digest_of(&config_name)
                .cloned()
                .ok_or_else(|| unsupported(path, format!("config {config_name:?} missing")))?,
        };
        let config_size = staging
            .lookup(&config_digest)
            .and_then(|p| fs::metadata(p).ok())
            .map_or(0, |m| m.len());
        let mut layers = Vec::new();
        for layer_name in &entry.layers {
            let digest = contents
                .digest_of(layer_name)
                .ok_or_else(|| unsupported(path, format!("layer {layer_name:?} missing")))?;
            let blob = staging
                .lookup(digest)
                .ok_or_else(|| unsupported(path, format!("layer {layer_name:?} missing")))?;
            let mut head = [0u8; 4];
            let n = fsutil::open_read(&blob)?
                .read(&mut head)
                .map_err(ImageError::io(format!("read {}", blob.display())))?;
            let size = fs::metadata(&blob)
                .map_err(ImageError::io(format!("stat {}", blob.display())))?
                .len();
            layers.push(json!({
                "mediaType": Compression::sniff(&head[..n]).oci_media_type(),
                "digest": digest.to_string(),
                "size": size,
            }));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config_size },
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|e| json_error(path, "manifest", e))?;
        let manifest_digest = staging.put_bytes(&bytes, "manifest")?;
        let names = entry
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| t.parse::<Reference>())
            .collect::<Result<Vec<_>, _>>()?;
        candidates.push(Candidate {
            manifest_digest,
            names,
        });
    }
    if candidates.is_empty() {
        return Err(unsupported(path, "manifest.json lists no images"));
    }
    Ok(candidates)
}
