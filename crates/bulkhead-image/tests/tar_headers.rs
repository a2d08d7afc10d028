//! Special tar headers (PAX extended headers, GNU long names) that claim gigabytes are refused at their
//! header, before anything buffers them, with the cause named; the store is unchanged afterwards.
//!
//! The layers are built as concatenated gzip members, one compressed MiB repeated, so a 2 GiB header
//! costs the test about 2 MB of memory and no 2 GiB of compression work.

mod common;

use std::time::{Duration, Instant};

use bulkhead_image::{ImageError, Store};
use bulkhead_testkit::oci::OCI_GZIP;
use bulkhead_testkit::{assert_blobs_intact, gzip, Layer, ManifestFormat};
use common::{ingest, snapshot};

const HUGE: u64 = 2 << 30;
const MIB: usize = 1 << 20;

/// A gzip stream whose uncompressed tar starts with a special header of `kind` claiming `HUGE` bytes,
/// then that many bytes of `a`, then one ordinary file and the end of the archive.
fn huge_special_header(kind: tar::EntryType) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_path("././@LongLink").unwrap();
    header.set_size(HUGE);
    header.set_mode(0o644);
    header.set_cksum();
    let mut blob = gzip(header.as_bytes());
    let chunk = gzip(&vec![b'a'; MIB]);
    for _ in 0..HUGE / MIB as u64 {
        blob.extend_from_slice(&chunk);
    }
    let mut file = tar::Header::new_gnu();
    file.set_path("file").unwrap();
    file.set_size(0);
    file.set_mode(0o644);
    file.set_cksum();
    let mut tail = file.as_bytes().to_vec();
    tail.extend_from_slice(&[0; 1024]);
    blob.extend_from_slice(&gzip(&tail));
    blob
}

/// Peak resident memory of this process (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kib * 1024
}

/// Runs `refuse`, which must fail within seconds and without growing this process by anything like
/// the header's size.
fn refused_fast_and_small(refuse: impl FnOnce() -> ImageError) -> ImageError {
    let before = peak_rss();
    let started = Instant::now();
    let err = refuse();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 256 << 20, "peak memory grew by {grown} bytes");
    err
}

fn assert_names_the_header(err: &ImageError, what: &str) {
    assert!(
        matches!(err, ImageError::LimitExceeded { what: w, limit, .. } if *w == what && *limit == 1 << 20),
        "{err}"
    );
    assert!(err.to_string().contains(what), "{err}");
}

#[test]
fn a_huge_pax_header_is_refused_when_unpacking() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let mut layer = Layer::new(&[], OCI_GZIP);
    layer.blob = huge_special_header(tar::EntryType::XHeader);
    // Never compared: the refusal comes first (hashing the 2 GiB stream would dominate the test).
    layer.diff_id = format!("sha256:{}", "0".repeat(64));
    let image = ingest(&store, "pax", &[layer], ManifestFormat::Oci);
    let before = snapshot(store.dir());
    let err = refused_fast_and_small(|| store.rootfs_artifact(&image).unwrap_err());
    assert_names_the_header(&err, "PAX extended header");
    assert_eq!(snapshot(store.dir()), before);
    assert_blobs_intact(root.path());
}

#[test]
fn a_huge_gnu_long_name_is_refused_on_import() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let before = snapshot(store.dir());
    let tarball = root.path().join("rootfs.tar.gz");
    std::fs::write(&tarball, huge_special_header(tar::EntryType::GNULongName)).unwrap();
    let err = refused_fast_and_small(|| {
        store
            .import_rootfs(&tarball, "longname:1")
            .expect_err("a 2 GiB long name must be refused")
    });
    let ImageError::Import { error, .. } = &err else {
        panic!("{err}");
    };
    assert_names_the_header(error, "GNU long name header");
    assert_eq!(snapshot(store.dir()), before);
    assert_blobs_intact(root.path());
    assert!(store.list().unwrap().is_empty());
}
