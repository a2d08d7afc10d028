//! Typed progress of a pull. The registry crate reports what happens; front ends decide how to
//! show it (bars, plain lines, API stream messages, nothing).

use bulkhead_image::{Digest, Reference};

use crate::platform::Platform;

/// One step of a [`crate::pull`], reported through its `events` callback.
///
/// Blobs (the config and the layers) download on several threads, so the events of different
/// blobs interleave. Those of one blob come in order: `BlobStarted`, `BlobProgress`..., then
/// `BlobDone` or `BlobFailed`, with `BlobRetrying` (and fresh `BlobProgress` from zero) between.
/// A blob whose download stopped because another one failed reports nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// The pull of `reference` started: its manifest is being resolved.
    Resolving { reference: Reference },
    /// The image manifest that will be downloaded, and the platform it was picked for when the
    /// reference named a multi-platform index (`None` for a single-platform manifest).
    ManifestChosen {
        digest: Digest,
        platform: Option<Platform>,
    },
    /// The store already holds this blob: it is not downloaded.
    BlobPresent { digest: Digest },
    /// The download of a blob of `size` bytes started.
    BlobStarted { digest: Digest, size: u64 },
    /// `downloaded` bytes of the blob have arrived in the current attempt.
    BlobProgress { digest: Digest, downloaded: u64 },
    /// Attempt number `attempt` failed for `reason`; the download restarts from zero.
    BlobRetrying {
        digest: Digest,
        attempt: u32,
        reason: String,
    },
    /// The blob was verified (size and sha256) and stored.
    BlobDone { digest: Digest },
    /// The download of the blob gave up; the pull returns the error.
    BlobFailed { digest: Digest },
    /// The image was registered under `reference`; `digest` is its manifest's.
    Done {
        reference: Reference,
        digest: Digest,
    },
}
