//! An OCI bundle's config.json as a caller (podman, containerd) hands it over: read from a bundle
//! directory, checked and translated into a workload, with its annotations and hooks. Refused with an
//! error or translated, never a panic.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// One bundle directory (with a `rootfs`) for the whole run; each input overwrites its config.json.
fn bundle_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir(dir.path().join("rootfs")).expect("the rootfs directory");
        dir
    })
    .path()
}

fuzz_target!(|data: &[u8]| {
    let dir = bundle_dir();
    std::fs::write(dir.join("config.json"), data).expect("writing config.json");
    let Ok(bundle) = bulkhead_oci::bundle::load(dir) else {
        return;
    };
    let _ = bulkhead_oci::bundle::workload(&bundle.spec, 4242);
    let _ = bulkhead_oci::bundle::annotations(&bundle.spec);
    let _ = bulkhead_oci::bundle::hooks(&bundle.spec);
    if let Some(process) = bundle.spec.process() {
        let _ = bulkhead_oci::bundle::process(process);
    }
});
