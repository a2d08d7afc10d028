//! OCI image layouts on disk (`oci-layout`, `index.json`, `blobs/sha256/`) with given layers: one image,
//! or an index of several platforms. Digests are `sha256:HEX` strings; the crates under test parse them
//! into their own types.

use std::path::Path;

use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::layer::{gzip, zstd};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// `sha256:HEX` of the bytes.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// One layer: its blob (compressed as its media type says), media type and uncompressed digest.
#[derive(Clone)]
pub struct Layer {
    pub blob: Vec<u8>,
    pub media_type: String,
    pub diff_id: String,
}

impl Layer {
    /// Compresses the tar as `media_type` asks (any other media type keeps the bytes as they are).
    pub fn new(tar: &[u8], media_type: &str) -> Layer {
        let blob = match media_type {
            OCI_GZIP => gzip(tar),
            OCI_ZSTD => zstd(tar),
            _ => tar.to_vec(),
        };
        Layer {
            blob,
            media_type: media_type.to_string(),
            diff_id: sha256(tar),
        }
    }
}

/// Which manifest and config media types to write.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    Oci,
    /// Docker schema 2, as `docker push` and older registries use.
    Docker,
}

/// One platform's image: its architecture (os is linux) and layers, base first.
pub struct Platform<'a> {
    pub architecture: &'a str,
    pub layers: &'a [Layer],
    /// The config's `Volumes` (docker's `VOLUME` paths).
    pub volumes: &'a [&'a str],
    /// `EXPOSE`d ports such as `80/tcp`.
    pub exposed_ports: &'a [&'a str],
    /// The config's `Labels`.
    pub labels: &'a [(&'a str, &'a str)],
    /// The config's `Cmd`.
    pub cmd: &'a [&'a str],
}

impl<'a> Platform<'a> {
    pub fn amd64(layers: &'a [Layer]) -> Platform<'a> {
        Platform {
            architecture: "amd64",
            layers,
            volumes: &[],
            exposed_ports: &[],
            labels: &[],
            cmd: &["/bin/sh"],
        }
    }

    /// The image config: PATH=/bin, the command (`/bin/sh` unless set), the volumes, ports and labels, one history
    /// entry per layer.
    pub fn config_json(&self) -> Vec<u8> {
        let diff_ids: Vec<&str> = self.layers.iter().map(|l| l.diff_id.as_str()).collect();
        let history: Vec<_> = (0..self.layers.len())
            .map(|i| json!({ "created_by": format!("layer {i}") }))
            .collect();
        let mut config = json!({ "Env": ["PATH=/bin"], "Cmd": self.cmd, "WorkingDir": "/" });
        if !self.volumes.is_empty() {
            let volumes: serde_json::Map<_, _> = self
                .volumes
                .iter()
                .map(|v| (v.to_string(), json!({})))
                .collect();
            config["Volumes"] = volumes.into();
        }
        if !self.exposed_ports.is_empty() {
            let exposed: serde_json::Map<String, serde_json::Value> = self
                .exposed_ports
                .iter()
                .map(|p| (p.to_string(), json!({})))
                .collect();
            config["ExposedPorts"] = exposed.into();
        }
        if !self.labels.is_empty() {
            let labels: serde_json::Map<String, serde_json::Value> = self
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            config["Labels"] = labels.into();
        }
        serde_json::to_vec(&json!({
            "created": "2024-01-02T03:04:05Z",
            "architecture": self.architecture,
            "os": "linux",
            "config": config,
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
            "history": history,
        }))
        .expect("config JSON")
    }

    pub fn manifest_json(&self, config: &[u8], format: ManifestFormat) -> Vec<u8> {
        let docker = format == ManifestFormat::Docker;
        let (media_type, config_type) = if docker {
            (DOCKER_MANIFEST, DOCKER_CONFIG)
        } else {
            (OCI_MANIFEST, OCI_CONFIG)
        };
        let layer_type = |l: &Layer| match l.media_type.as_str() {
            OCI_GZIP if docker => DOCKER_GZIP.to_string(),
            other => other.to_string(),
        };
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": { "mediaType": config_type, "digest": sha256(config), "size": config.len() },
            "layers": self.layers.iter().map(|l| json!({
                "mediaType": layer_type(l), "digest": sha256(&l.blob), "size": l.blob.len()
            })).collect::<Vec<_>>(),
        }))
        .expect("manifest JSON")
    }
}

/// The digests written for one image.
pub struct BuiltImage {
    pub manifest: String,
    pub config: String,
    pub layers: Vec<String>,
}

impl BuiltImage {
    /// Config and layer digests: what a pull downloads besides the manifest.
    pub fn blobs(&self) -> Vec<String> {
        std::iter::once(self.config.clone())
            .chain(self.layers.iter().cloned())
            .collect()
    }
}

/// What `write_layout` wrote.
pub struct Layout {
    /// One per platform, in order.
    pub images: Vec<BuiltImage>,
    /// The digest `index.json` points to: the manifest of a single image, else the image index.
    pub top: String,
}

/// Writes an OCI layout at `dir` (created if missing): the single image, or an index of all platforms
/// when there are several, annotated with `ref_name` if given.
pub fn write_layout(dir: &Path, ref_name: Option<&str>, platforms: &[Platform]) -> Layout {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("layout blobs dir");
    let put = |bytes: &[u8]| -> String {
        let digest = sha256(bytes);
        std::fs::write(blobs.join(&digest[7..]), bytes).expect("writing a blob");
        digest
    };
    let mut images = Vec::new();
    let mut descriptors = Vec::new();
    for platform in platforms {
        let layers = platform.layers.iter().map(|l| put(&l.blob)).collect();
        let config = platform.config_json();
        let manifest = platform.manifest_json(&config, ManifestFormat::Oci);
        let image = BuiltImage {
            manifest: put(&manifest),
            config: put(&config),
            layers,
        };
        descriptors.push(json!({
            "mediaType": OCI_MANIFEST,
            "digest": image.manifest,
            "size": manifest.len(),
            "platform": { "architecture": platform.architecture, "os": "linux" },
        }));
        images.push(image);
    }
    let mut top = if let [single] = &mut descriptors[..] {
        single
            .as_object_mut()
            .expect("descriptor object")
            .remove("platform");
        single.clone()
    } else {
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": descriptors,
        }))
        .expect("index JSON");
        json!({ "mediaType": OCI_INDEX, "digest": put(&index), "size": index.len() })
    };
    if let Some(name) = ref_name {
        top["annotations"] = json!({ REF_NAME: name });
    }
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("writing oci-layout");
    std::fs::write(
        dir.join("index.json"),
        json!({ "schemaVersion": 2, "manifests": [&top] }).to_string(),
    )
    .expect("writing index.json");
    Layout {
        images,
        top: top["digest"].as_str().expect("digest").to_string(),
    }
}
