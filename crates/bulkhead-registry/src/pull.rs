//! `pull`: resolve a reference to a platform manifest, download its blobs
//! concurrently into the image store, then register the image.
//!
//! Failure semantics: a failed pull registers no image and leaves no partial blob
//! visible (the store's `BlobWriter` verifies size and sha256 before an atomic rename
//! and deletes its temp file when dropped). Blobs that were fully downloaded and
//! verified before the failure stay in the store: they are content-addressed, make a
//! retried pull faster, and `image prune` removes them if the pull is abandoned.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use bulkhead_image::manifest::{BlobRef, ManifestDocument, MANIFEST_MEDIA_TYPES};
use bulkhead_image::{Digest, Image, ImageError, Reference, Store};

use crate::client::{Client, RetryPolicy};
use crate::credentials::Credentials;
use crate::error::RegistryError;
use crate::event::PullEvent;
use crate::manifest;
use crate::platform::Platform;

const COPY_CHUNK: usize = 64 * 1024;

/// Options of [`pull`].
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Platform picked from multi-platform images (default `linux/amd64`).
    pub platform: Platform,
    /// Registries (`host` or `host:port`) reached over plain HTTP; loopback always is.
    pub insecure_registries: Vec<String>,
    /// Credentials for the reference's registry; anonymous when `None`.
    pub credentials: Option<Credentials>,
    /// Blobs downloaded at the same time (at least 1).
    pub max_concurrent: usize,
    /// Retry bounds for failed requests and interrupted blob downloads.
    pub retry: RetryPolicy,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::default(),
            insecure_registries: Vec::new(),
            credentials: None,
            max_concurrent: 3,
            retry: RetryPolicy::default(),
        }
    }
}

/// Pulls `reference` from its registry into `store` and registers it under that name,
/// reporting each step to `events`. The callback runs on the download threads too (hence
/// `Sync`) and should return quickly: a slow one slows the downloads.
pub fn pull(
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
    events: &(dyn Fn(&PullEvent) + Sync),
) -> Result<Image, RegistryError> {
    let client = Client::new(
        &reference.registry,
        &opts.insecure_registries,
        opts.credentials.clone(),
        opts.retry.clone(),
    );
    let name = reference.to_string();
    // Keeps `image prune` from collecting blobs this pull found present or wrote,
    // until the image referencing them is registered.
    let _lease = store.lease().map_err(|source| RegistryError::Store {
        what: format!("pull of {name}"),
        source,
    })?;
    events(&PullEvent::Resolving {
        reference: reference.clone(),
    });
    let scope = format!("repository:{}:pull", reference.repository);
    let (image_manifest, platform) = resolve(&client, reference, &scope, &opts.platform)?;
    events(&PullEvent::ManifestChosen {
        digest: image_manifest.digest.clone(),
        platform,
    });
    let what = format!("manifest of {name}");
    let ManifestDocument::Manifest {
        manifest: parsed,
        docker,
    } = &image_manifest.document
    else {
        return Err(RegistryError::UnsupportedMediaType {
            what,
            media_type: "nested image index".to_owned(),
        });
    };
    let blobs = manifest::image_blobs(parsed, *docker, &what)?;
    let job = Job {
        client: &client,
        store,
        reference: &name,
        repository: &reference.repository,
        scope: &scope,
        events,
        cancelled: AtomicBool::new(false),
    };
    job.download_all(&blobs, opts.max_concurrent)?;
    let store_err = |source| RegistryError::Store {
        what: what.clone(),
        source,
    };
    store
        .put_blob_bytes(&image_manifest.bytes, Some(&image_manifest.digest))
        .map_err(store_err)?;
    let image = store
        .register_image(reference, &image_manifest.digest)
        .map_err(store_err)?;
    events(&PullEvent::Done {
        reference: reference.clone(),
        digest: image_manifest.digest,
    });
    Ok(image)
}

/// Fetches the manifest `reference` points to and, for an index, the manifest of
/// `platform` it lists, with the platform of the index entry chosen.
fn resolve(
    client: &Client,
    reference: &Reference,
    scope: &str,
    platform: &Platform,
) -> Result<(manifest::Fetched, Option<Platform>), RegistryError> {
    let name = reference.to_string();
    let what = format!("manifest of {name}");
    let target = match (&reference.digest, &reference.tag) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.clone(),
        (None, None) => bulkhead_image::DEFAULT_TAG.to_owned(),
    };
    let fetched = fetch_manifest(
        client,
        &reference.repository,
        &target,
        reference.digest.as_ref(),
        scope,
        &what,
    )?;
    let ManifestDocument::Index(index) = &fetched.document else {
        return Ok((fetched, None));
    };
    let (descriptor, chosen) = manifest::select_platform(index, platform, &name)?;
    let digest = manifest::descriptor_digest(descriptor, &what)?;
    let what = format!("{platform} manifest {digest} of {name}");
    let fetched = fetch_manifest(
        client,
        &reference.repository,
        &digest.to_string(),
        Some(&digest),
        scope,
        &what,
    )?;
    Ok((fetched, Some(chosen)))
}

fn fetch_manifest(
    client: &Client,
    repository: &str,
    target: &str,
    expected: Option<&Digest>,
    scope: &str,
    what: &str,
) -> Result<manifest::Fetched, RegistryError> {
    let response = client.get(
        &format!("{repository}/manifests/{target}"),
        &MANIFEST_MEDIA_TYPES,
        Some(scope),
        what,
    )?;
    manifest::read(response, expected, client.registry(), what)
}

/// Shared state of the blob downloads of one pull.
struct Job<'a> {
    client: &'a Client,
    store: &'a Store,
    reference: &'a str,
    repository: &'a str,
    scope: &'a str,
    events: &'a (dyn Fn(&PullEvent) + Sync),
    /// Set by the first failing download so the others stop early.
    cancelled: AtomicBool,
}

/// Why one attempt at downloading a blob failed.
enum AttemptError {
    /// Worth another attempt.
    Retryable(Retryable),
    /// Another download failed; stop quietly.
    Cancelled,
    /// Not worth retrying (request failed after its own retries, local store error).
    Fatal(RegistryError),
}

enum Retryable {
    /// Reading the body failed (connection dropped, timeout).
    Transfer(io::Error),
    /// The received bytes did not match the digest or size.
    Corrupt(ImageError),
}

impl Retryable {
    fn reason(&self) -> String {
        match self {
            Retryable::Transfer(e) => e.to_string(),
            Retryable::Corrupt(e) => e.to_string(),
        }
    }

    fn into_error(self, registry: &str, what: String, attempts: u32) -> RegistryError {
        match self {
            Retryable::Corrupt(source) => RegistryError::BlobCorrupt {
                what,
                attempts,
                source,
            },
            Retryable::Transfer(source) => RegistryError::Connection {
                registry: registry.to_owned(),
                what,
                attempts,
                reason: source.to_string(),
            },
        }
    }
}

impl Job<'_> {
    fn download_all(&self, blobs: &[BlobRef], max_concurrent: usize) -> Result<(), RegistryError> {
        let queue = Mutex::new(blobs.iter().collect::<VecDeque<_>>());
        let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
        let workers = max_concurrent.clamp(1, blobs.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    if self.cancelled.load(Ordering::Relaxed) {
                        break;
                    }
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                    let Some(blob) = next else { break };
                    if let Err(error) = self.download(blob) {
                        self.cancelled.store(true, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(error);
                        break;
                    }
                });
            }
        });
        match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Downloads one blob unless the store has it, retrying interrupted or corrupt
    /// transfers up to the retry policy's attempt count.
    fn download(&self, blob: &BlobRef) -> Result<(), RegistryError> {
        let digest = || blob.digest.clone();
        if self.store.has_blob(&blob.digest) {
            (self.events)(&PullEvent::BlobPresent { digest: digest() });
            return Ok(());
        }
        let what = format!("blob {} of {}", blob.digest, self.reference);
        (self.events)(&PullEvent::BlobStarted {
            digest: digest(),
            size: blob.size,
        });
        let retry = self.client.retry();
        let mut failures = 0;
        loop {
            let error = match self.attempt(blob, &what) {
                Ok(()) => {
                    (self.events)(&PullEvent::BlobDone { digest: digest() });
                    return Ok(());
                }
                Err(AttemptError::Cancelled) => return Ok(()),
                Err(AttemptError::Fatal(error)) => {
                    (self.events)(&PullEvent::BlobFailed { digest: digest() });
                    return Err(error);
                }
                Err(AttemptError::Retryable(error)) => error,
            };
            failures += 1;
            if failures >= retry.attempts() {
                (self.events)(&PullEvent::BlobFailed { digest: digest() });
                return Err(error.into_error(self.client.registry(), what, failures));
            }
            let reason = error.reason();
            tracing::warn!(%what, %reason, failures, "blob download failed, retrying");
            (self.events)(&PullEvent::BlobRetrying {
                digest: digest(),
                attempt: failures,
                reason,
            });
            std::thread::sleep(retry.backoff(failures));
        }
    }

    fn attempt(&self, blob: &BlobRef, what: &str) -> Result<(), AttemptError> {
        let response = self
            .client
            .get(
                &format!("{}/blobs/{}", self.repository, blob.digest),
                &[],
                Some(self.scope),
                what,
            )
            .map_err(AttemptError::Fatal)?;
        let local = |source| {
            AttemptError::Fatal(RegistryError::Store {
                what: what.to_owned(),
                source,
            })
        };
        let mut writer = self
            .store
            .blob_writer(&blob.digest, Some(blob.size))
            .map_err(local)?;
        // Never read past the declared size: a longer body cannot match the digest
        // anyway, and a hostile registry must not be able to stream forever.
        let mut body = response.into_reader().take(blob.size);
        let mut buf = vec![0u8; COPY_CHUNK];
        let mut downloaded = 0u64;
        loop {
            if self.cancelled.load(Ordering::Relaxed) {
                return Err(AttemptError::Cancelled);
            }
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(AttemptError::Retryable(Retryable::Transfer(e))),
            };
            writer.write_all(&buf[..n]).map_err(|source| {
                local(ImageError::Io {
                    context: format!("write {what}"),
                    source,
                })
            })?;
            downloaded += n as u64;
            (self.events)(&PullEvent::BlobProgress {
                digest: blob.digest.clone(),
                downloaded,
            });
        }
        writer.commit().map_err(|error| match error {
            ImageError::DigestMismatch { .. } | ImageError::SizeMismatch { .. } => {
                AttemptError::Retryable(Retryable::Corrupt(error))
            }
            other => local(other),
        })
    }
}
