//! A layer blob as a registry or an image archive delivers it (tar, gzip or zstd, sniffed from the
//! bytes), scanned and unpacked into a fresh directory; and the same bytes as the plain tar an export
//! guest streams, rebuilt into an overlay upper directory. The unpacker must refuse or apply them, never
//! panic, and never write outside those directories (checked by a file beside them).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scratch = tempfile::tempdir().expect("scratch dir");
    let root = scratch.path().join("rootfs");
    std::fs::create_dir(&root).expect("rootfs dir");
    let sentinel = scratch.path().join("sentinel");
    std::fs::write(&sentinel, b"untouched").expect("sentinel");
    let _ = bulkhead_image::fuzzing::unpack_layer(data, &root);
    let upper = scratch.path().join("upper");
    std::fs::create_dir(&upper).expect("upper dir");
    let _ = bulkhead_image::unpack_upper(data, &upper, 64 << 20, "fuzz");
    assert_eq!(
        std::fs::read(&sentinel).expect("sentinel still there"),
        b"untouched"
    );
    let entries = std::fs::read_dir(scratch.path())
        .expect("scratch dir")
        .count();
    assert_eq!(entries, 3, "the unpacker wrote beside its root");
});
