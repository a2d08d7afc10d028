//! bulkhead-image: the content-addressed OCI image store, layer unpacking and the per-image
//! read-only root filesystem artifact shared by both isolation modes.
//!
//! # On-disk layout (`<root>/images/`)
//!
//! ```text
//! blobs/sha256/<hex>        manifests, configs and layers, named by their sha256
//! repositories.json         image records (id -> manifest, repo digests) and tags (name -> id)
//! rootfs/<id-hex>.erofs     read-only root filesystem artifact, built lazily per image
//! locks/<id-hex>.lock       per-image artifact build lock
//! tmp/                      in-flight blob writes, import staging, unpack dirs
//! lock, ingest.lock         metadata lock; ingest lease (shared) / garbage collection (exclusive)
//! ```
//!
//! # Guarantees
//!
//! - **Atomicity.** Every file becomes visible by `rename` after its data was fsynced, and the
//!   directory is fsynced after the rename. Blobs are verified (size and sha256) before the
//!   rename, so a visible blob is always complete and correct. `repositories.json` is replaced
//!   whole. An import stages all blobs and validates the image before publishing anything, so a
//!   killed or failed import leaves no half-visible image; leftovers in `tmp/` are removed the
//!   next time the store is opened while idle, or by `prune`.
//! - **Concurrency.** Metadata updates are serialised by `flock` on `lock`. Blob writes are
//!   idempotent (same name, same bytes). Writers hold a shared lease on `ingest.lock`, garbage
//!   collection takes it exclusively, so blobs of an in-flight pull or import are never collected.
//!   Rootfs artifacts are built once under a per-image lock; waiters reuse the result.
//! - **Threat model for layer tars.** Layers are untrusted. Member names that are absolute or
//!   contain `..` are rejected; every parent directory is resolved component by component with
//!   `O_NOFOLLOW`, symlinks are resolved inside the rootfs and a symlink leading out is rejected;
//!   hard links must name an existing member inside the rootfs. Unpacked bytes, member count and
//!   name length are capped ([`Limits`]); manifests and configs are capped before parsing. Device
//!   nodes are created only when running as root. Each layer's uncompressed digest is checked
//!   against the config's `diff_ids`. The same unpacker rebuilds a container's overlay upper
//!   directory from the tar a VM exported ([`unpack_upper`]), so a disk a guest wrote reaches the
//!   host only through these checks.

mod archive;
mod blobs;
mod digest;
mod error;
mod fsutil;
#[cfg(fuzzing)]
pub mod fuzzing;
mod layer;
pub mod manifest;
mod metadata;
mod reference;
mod rootfs;
mod store;
mod tar_headers;
mod unpack;
mod upper;

pub use blobs::BlobWriter;
pub use digest::{Digest, ImageId};
pub use error::ImageError;
pub use layer::Compression;
pub use manifest::LayerDescriptor;
pub use reference::{Reference, DEFAULT_REGISTRY, DEFAULT_TAG};
pub use store::{
    Image, ImageDeletion, ImageInspect, ImageSummary, IngestLease, InspectLayer, InspectMetadata,
    InspectRootFs, Limits, PruneReport, Store,
};
pub use upper::unpack_upper;
