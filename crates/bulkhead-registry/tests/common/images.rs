//! The images the registry tests push and pull, as layers for `bulkhead_testkit::write_layout`.

use bulkhead_testkit::oci::OCI_GZIP;
use bulkhead_testkit::{busybox_layer, Layer, LayerBuilder};

/// Three layers: busybox, `payload` bytes of data plus a file to delete, and a layer whiting that file
/// out (four blobs to download with the config).
pub fn busybox_image(payload: usize) -> Vec<Layer> {
    let data: Vec<u8> = (0..payload)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let second = LayerBuilder::new()
        .dir("data/", 0o755)
        .file("data/payload.bin", &data, 0o644)
        .file("etc/obsolete.conf", b"remove me\n", 0o644)
        .finish();
    let third = LayerBuilder::new()
        .file("etc/.wh.obsolete.conf", b"", 0o644)
        .file("etc/motd", b"hello from layer 3\n", 0o644)
        .finish();
    [busybox_layer(), second, third]
        .iter()
        .map(|tar| Layer::new(tar, OCI_GZIP))
        .collect()
}

/// One small layer naming the architecture (content is irrelevant; digests differ per architecture).
pub fn tiny_image(architecture: &str) -> Vec<Layer> {
    let tar = LayerBuilder::new()
        .file("arch.txt", architecture.as_bytes(), 0o644)
        .finish();
    vec![Layer::new(&tar, OCI_GZIP)]
}
