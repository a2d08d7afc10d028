//! Builds OCI image layouts on disk (JSON + gzipped tar written here), the input
//! `skopeo copy oci:DIR:TAG docker://...` pushes to the test registries.

use std::fs;
use std::io::Write;
use std::path::Path;

use bulkhead_image::Digest;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::json;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// One member of a layer tar.
pub enum Entry {
    Dir(&'static str),
    File(&'static str, Vec<u8>),
    Symlink(&'static str, &'static str),
}

/// One platform image: its architecture and layers (base first).
pub struct ImageSpec {
    pub architecture: &'static str,
    pub layers: Vec<Vec<Entry>>,
}

/// What was written for one image.
pub struct BuiltImage {
    pub manifest: Digest,
    pub config: Digest,
    pub layers: Vec<Digest>,
}

impl BuiltImage {
    /// Config and layer digests.
    pub fn blobs(&self) -> Vec<Digest> {
        std::iter::once(self.config.clone())
            .chain(self.layers.iter().cloned())
            .collect()
    }
}

/// A three-layer busybox image: busybox + shell links, a layer with `payload` bytes
/// of data and a file to delete, and a layer whiting that file out.
pub fn busybox_image(payload: usize) -> ImageSpec {
    let busybox = fs::read("/bin/busybox").expect("read /bin/busybox (busybox-static)");
    let data: Vec<u8> = (0..payload)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    ImageSpec {
        architecture: "amd64",
        layers: vec![
            vec![
                Entry::Dir("bin"),
                Entry::File("bin/busybox", busybox),
                Entry::Symlink("bin/sh", "busybox"),
                Entry::Dir("etc"),
                Entry::File("etc/hostname", b"bulkhead\n".to_vec()),
            ],
            vec![
                Entry::Dir("data"),
                Entry::File("data/payload.bin", data),
                Entry::File("etc/obsolete.conf", b"remove me\n".to_vec()),
            ],
            vec![
                Entry::File("etc/.wh.obsolete.conf", Vec::new()),
                Entry::File("etc/motd", b"hello from layer 3\n".to_vec()),
            ],
        ],
    }
}

/// A one-layer image for another architecture (content is irrelevant).
pub fn tiny_image(architecture: &'static str) -> ImageSpec {
    ImageSpec {
        architecture,
        layers: vec![vec![Entry::File(
            "arch.txt",
            architecture.as_bytes().to_vec(),
        )]],
    }
}

/// Writes an OCI layout at `dir` whose `tag` is the single image, or an index of
/// all images when there are several. Returns the images in order and the digest
/// `tag` points to.
pub fn write_layout(dir: &Path, tag: &str, images: &[ImageSpec]) -> (Vec<BuiltImage>, Digest) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let put = |bytes: &[u8]| -> Digest {
        let digest = Digest::of_bytes(bytes);
        fs::write(blobs.join(digest.hex()), bytes).unwrap();
        digest
    };
    let mut built = Vec::new();
    let mut descriptors = Vec::new();
    for image in images {
        let mut layer_descs = Vec::new();
        let mut diff_ids = Vec::new();
        let mut layers = Vec::new();
        for entries in &image.layers {
            let tar = layer_tar(entries);
            diff_ids.push(Digest::of_bytes(&tar).to_string());
            let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
            gz.write_all(&tar).unwrap();
            let gz = gz.finish().unwrap();
            let digest = put(&gz);
            layer_descs.push(json!({"mediaType": OCI_LAYER_GZIP, "digest": digest.to_string(), "size": gz.len()}));
            layers.push(digest);
        }
        let history: Vec<_> = (0..image.layers.len())
            .map(|i| json!({"created_by": format!("layer {i}")}))
            .collect();
        let config = serde_json::to_vec(&json!({
            "architecture": image.architecture,
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }))
        .unwrap();
        let config_digest = put(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
            "layers": layer_descs,
        }))
        .unwrap();
        let manifest_digest = put(&manifest);
        descriptors.push(json!({
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest.to_string(),
            "size": manifest.len(),
            "platform": {"architecture": image.architecture, "os": "linux"},
        }));
        built.push(BuiltImage {
            manifest: manifest_digest,
            config: config_digest,
            layers,
        });
    }
    let top = if images.len() == 1 {
        let mut d = descriptors.remove(0);
        d.as_object_mut().unwrap().remove("platform");
        d
    } else {
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": descriptors,
        }))
        .unwrap();
        let digest = put(&index);
        json!({"mediaType": OCI_INDEX, "digest": digest.to_string(), "size": index.len()})
    };
    let top_digest: Digest = top["digest"].as_str().unwrap().parse().unwrap();
    let mut top = top;
    top["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    let index_json = json!({"schemaVersion": 2, "manifests": [top]});
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index_json).unwrap(),
    )
    .unwrap();
    (built, top_digest)
}

fn layer_tar(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(1_700_000_000);
        header.set_uid(0);
        header.set_gid(0);
        match entry {
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .unwrap();
            }
            Entry::File(path, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o755);
                header.set_size(data.len() as u64);
                builder
                    .append_data(&mut header, path, data.as_slice())
                    .unwrap();
            }
            Entry::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}
