//! Rebuilding a container's overlayfs upper directory from an OCI layer tar, with the same hostile-layer
//! unpacker that imports images. This is how the host takes back the changes of a container whose
//! writable disk a VM could have written: the guest streams them as a tar, and the host applies the tar
//! to a disk it formatted itself, never mounting the disk the guest wrote.

use crate::error::ImageError;
use crate::store::Limits;
use crate::unpack::{Unpacker, Whiteouts};
use std::io::Read;
use std::path::Path;

/// Applies the layer tar read from `reader` to the upper directory `upper`, recording whiteouts as
/// overlayfs does (a 0:0 character device, or `trusted.overlay.opaque=y` on a directory) instead of
/// removing anything. At most `max_bytes` of file content are written; `what` names the tar in errors.
pub fn unpack_upper(
    reader: impl Read,
    upper: &Path,
    max_bytes: u64,
    what: &str,
) -> Result<(), ImageError> {
    let limits = Limits {
        max_unpacked_bytes: max_bytes,
        ..Limits::default()
    };
    let mut unpacker = Unpacker::new(upper, &limits, Whiteouts::Record)?;
    unpacker.apply_layer(reader, what)?;
    unpacker.finish()
}
