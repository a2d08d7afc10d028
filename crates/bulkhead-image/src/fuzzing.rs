//! Entry points for the fuzz targets (`fuzz/`, which cargo-fuzz builds with `--cfg fuzzing`; absent from
//! every other build): the crate's parsers and its layer unpacker, reached the way an import and a rootfs
//! build reach them, without a store around them.

use std::path::Path;

use crate::layer::{self, Budget};
use crate::manifest::{self, ManifestDocument};
use crate::store::Limits;
use crate::unpack::{Unpacker, Whiteouts};
use crate::{Digest, ImageError};

const REFERENCE: &str = "fuzz";

/// Scans one layer blob (tar, gzip or zstd) as an import does, then applies it onto the empty
/// directory `dir` as a rootfs build does, with the default limits.
pub fn unpack_layer(blob: &[u8], dir: &Path) -> Result<Digest, ImageError> {
    let limits = Limits::default();
    let (_, reader) = layer::decompress(blob, REFERENCE)?;
    layer::scan_layer(reader, REFERENCE, &limits, &mut Budget::default())?;
    let mut unpacker = Unpacker::new(dir, &limits, Whiteouts::Apply)?;
    let (_, reader) = layer::decompress(blob, REFERENCE)?;
    let diff_id = unpacker.apply_layer(reader, REFERENCE)?;
    unpacker.finish()?;
    Ok(diff_id)
}

/// Parses a manifest or index as the store registers one: an image manifest's blobs, an index's choice
/// of platform.
pub fn parse_manifest(bytes: &[u8], declared: Option<&str>) -> Result<(), ImageError> {
    match manifest::parse_document(bytes, declared, REFERENCE)? {
        ManifestDocument::Manifest { manifest, docker } => {
            manifest::image_blobs(&manifest, docker, REFERENCE).map(drop)
        }
        ManifestDocument::Index(index) => manifest::select_platform(&index, REFERENCE).map(drop),
    }
}

/// Parses an image config.
pub fn parse_config(bytes: &[u8]) -> Result<(), ImageError> {
    manifest::parse_config(bytes, REFERENCE).map(drop)
}
