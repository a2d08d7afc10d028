//! Entry point for the fuzz targets (`fuzz/`, which cargo-fuzz builds with `--cfg fuzzing`; absent from
//! every other build): what a pull does with an index a registry sent.

use bulkhead_image::manifest::{self as formats, ManifestDocument};

use crate::manifest;
use crate::platform::Platform;

/// Parses a manifest response as a pull does and, for an index, picks a platform from it (a plain one,
/// and one with a variant).
pub fn select_platform(bytes: &[u8]) {
    let Ok(ManifestDocument::Index(index)) = formats::parse_document(bytes, None, "fuzz") else {
        return;
    };
    for wanted in [
        Platform::new("linux", "amd64", None),
        Platform::new("linux", "arm", Some("v7")),
    ] {
        let _ = manifest::select_platform(&index, &wanted, "fuzz");
    }
}
