//! Reading layer blobs: compression detection, member-name checks and the verification scan.
//!
//! Compression is detected from magic bytes (media types in the wild are sometimes wrong), and
//! every member name is checked lexically before anything touches the filesystem: absolute names
//! and `..` components are refused outright, so no tar can name a path outside the rootfs.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::digest::{Digest, DigestHasher};
use crate::error::ImageError;
use crate::store::Limits;
use crate::tar_headers::{self, tar_error};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const MAX_COMPONENT_LEN: usize = 255;

/// Compression of a layer blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Detects compression from the first bytes of a stream.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type for this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// Wraps `reader` in the decompressor its magic bytes call for.
pub(crate) fn decompress<'a, R: Read + 'a>(
    reader: R,
    what: &str,
) -> Result<(Compression, Box<dyn Read + 'a>), ImageError> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let head = buffered
        .fill_buf()
        .map_err(ImageError::io(format!("read {what}")))?;
    let compression = Compression::sniff(head);
    let reader: Box<dyn Read + 'a> = match compression {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(buffered)
                .map_err(ImageError::io(format!("zstd decoder for {what}")))?,
        ),
    };
    Ok((compression, reader))
}

/// Opens a layer file and returns its decompressed tar stream.
pub(crate) fn open_layer(path: &Path, what: &str) -> Result<Box<dyn Read>, ImageError> {
    let file = File::open(path).map_err(ImageError::io(format!("open {}", path.display())))?;
    decompress(file, what).map(|(_, r)| r)
}

/// A reader that hashes everything read through it (to compute a layer's diff id).
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: DigestHasher,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: DigestHasher::default(),
        }
    }

    /// Reads the rest of the stream (tar padding after the end marker) and returns the digest.
    pub(crate) fn finish(mut self) -> io::Result<Digest> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(self.hasher.finish())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        io::Write::write_all(&mut self.hasher, &buf[..n])?;
        Ok(n)
    }
}

pub(crate) fn hostile(layer: &str, member: &[u8], reason: impl Into<String>) -> ImageError {
    ImageError::HostileLayer {
        layer: layer.to_string(),
        member: String::from_utf8_lossy(member).into_owned(),
        reason: reason.into(),
    }
}

/// A hard link whose target name is absolute, contains `..` or is otherwise invalid.
pub(crate) fn bad_link_target(layer: &str, member: &[u8], target: &[u8]) -> ImageError {
    hostile(
        layer,
        member,
        format!(
            "hard link target {:?} is outside the rootfs",
            String::from_utf8_lossy(target)
        ),
    )
}

pub(crate) fn corrupt(layer: &str, reason: impl std::fmt::Display) -> ImageError {
    ImageError::CorruptLayer {
        layer: layer.to_string(),
        reason: reason.to_string(),
    }
}

/// Splits a member name into path components relative to the rootfs.
///
/// Leading `./` is accepted (common in tars); absolute names, `..` components, empty
/// components after normalisation and overlong names are refused. Returns an empty vector for
/// the rootfs itself (`./`).
pub(crate) fn member_components<'a>(
    raw: &'a [u8],
    layer: &str,
    limits: &Limits,
) -> Result<Vec<&'a OsStr>, ImageError> {
    if raw.len() > limits.max_path_len {
        return Err(hostile(layer, raw, "path name too long"));
    }
    if raw.starts_with(b"/") {
        return Err(hostile(layer, raw, "absolute member name"));
    }
    if raw.contains(&0) {
        return Err(hostile(layer, raw, "NUL byte in member name"));
    }
    let mut components = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => continue,
            b".." => return Err(hostile(layer, raw, "`..` in member name")),
            _ if part.len() > MAX_COMPONENT_LEN => {
                return Err(hostile(layer, raw, "path component too long"))
            }
            _ => components.push(OsStr::from_bytes(part)),
        }
    }
    Ok(components)
}

/// Running totals checked against [`Limits`] while reading layers.
#[derive(Default)]
pub(crate) struct Budget {
    pub(crate) bytes: u64,
    pub(crate) members: u64,
}

impl Budget {
    pub(crate) fn charge(
        &mut self,
        size: u64,
        layer: &str,
        limits: &Limits,
    ) -> Result<(), ImageError> {
        self.members += 1;
        self.bytes = self.bytes.saturating_add(size);
        if self.members > limits.max_members {
            return Err(ImageError::LimitExceeded {
                layer: layer.to_string(),
                what: "member count",
                limit: limits.max_members,
            });
        }
        if self.bytes > limits.max_unpacked_bytes {
            return Err(ImageError::LimitExceeded {
                layer: layer.to_string(),
                what: "unpacked size",
                limit: limits.max_unpacked_bytes,
            });
        }
        Ok(())
    }
}

/// Reads a whole layer without extracting it: checks names, hard-link targets, limits and tar
/// integrity, and returns the diff id (sha256 of the uncompressed tar).
pub(crate) fn scan_layer(
    reader: impl Read,
    layer: &str,
    limits: &Limits,
    budget: &mut Budget,
) -> Result<Digest, ImageError> {
    let mut hashing = HashingReader::new(reader);
    {
        let (mut archive, special) = tar_headers::archive(&mut hashing);
        let entries = archive.entries().map_err(|e| tar_error(layer, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| tar_error(layer, e))?;
            let path = entry.path_bytes().into_owned();
            member_components(&path, layer, limits)?;
            let kind = entry.header().entry_type();
            if kind.is_hard_link() {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| hostile(layer, &path, "hard link without target"))?;
                let target_components = member_components(&target, layer, limits)
                    .map_err(|_| bad_link_target(layer, &path, &target))?;
                if target_components.is_empty() {
                    return Err(hostile(layer, &path, "hard link to the root directory"));
                }
            }
            let size = entry.size();
            // The special headers before this member (long names, PAX records) count as unpacked bytes.
            budget.charge(size + special.take(), layer, limits)?;
            let copied = io::copy(&mut entry, &mut io::sink()).map_err(|e| corrupt(layer, e))?;
            if copied != size {
                return Err(corrupt(
                    layer,
                    format!(
                        "member {:?} truncated ({copied} of {size} bytes)",
                        String::from_utf8_lossy(&path)
                    ),
                ));
            }
        }
    }
    hashing.finish().map_err(|e| corrupt(layer, e))
}
