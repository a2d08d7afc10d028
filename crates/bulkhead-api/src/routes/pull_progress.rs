//! A pull's progress as docker's JSON messages (`CreateImageInfo`), one per line: `Pulling from`,
//! per layer `Pulling fs layer` / `Downloading` (with `progressDetail`) / `Download complete` /
//! `Pull complete`, then `Digest:` and `Status:`, or `errorDetail` on failure. The docker CLI and the
//! SDKs draw their progress from these.

use bollard_stubs::models::{CreateImageInfo, ErrorDetail, ProgressDetail};
use bulkhead_engine::{PullEvent, RegistryEvent};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most this often a `Downloading` message per layer: a fast registry would otherwise send one
/// per network read.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Turns a pull's events into message lines for `send`; shared by the pull's download threads.
pub struct PullMessages<F: Fn(Bytes) + Sync> {
    send: F,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Repository and tag of the pull, announced once the registry has found the manifest.
    origin: Option<(String, String)>,
    /// Size of each blob being downloaded, by short id.
    totals: HashMap<String, u64>,
    last_progress: HashMap<String, Instant>,
    /// Whether any blob had to be downloaded (else the image was up to date).
    downloaded: bool,
}

/// Docker's layer ids in progress messages: the digest's first 12 hex digits.
fn short(hex: &str) -> String {
    hex.chars().take(12).collect()
}

pub fn line(info: &CreateImageInfo) -> Bytes {
    let mut v = serde_json::to_vec(info).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

pub fn status(text: impl Into<String>, id: Option<String>) -> CreateImageInfo {
    CreateImageInfo {
        status: Some(text.into()),
        id,
        ..Default::default()
    }
}

/// The failure message docker puts in the stream once progress has been sent.
pub fn failure(message: &str) -> CreateImageInfo {
    CreateImageInfo {
        error: Some(message.to_string()),
        error_detail: Some(ErrorDetail {
            message: Some(message.to_string()),
            code: None,
        }),
        ..Default::default()
    }
}

/// Docker's text bar: `[=====>      ]  1.2MB/3.4MB`.
fn bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (current.min(total) * WIDTH).checked_div(total).unwrap_or(0) as usize;
    let arrow = if filled < WIDTH as usize { ">" } else { "" };
    let mb = |n: u64| format!("{:.2}MB", n as f64 / 1e6);
    format!(
        "[{}{arrow}{}] {:>9}/{}",
        "=".repeat(filled.saturating_sub(usize::from(!arrow.is_empty()))),
        " ".repeat(WIDTH as usize - filled),
        mb(current),
        mb(total)
    )
}

impl<F: Fn(Bytes) + Sync> PullMessages<F> {
    pub fn new(send: F) -> Self {
        PullMessages {
            send,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, info: CreateImageInfo) {
        (self.send)(line(&info));
    }

    fn layer(&self, text: &str, hex: &str, detail: Option<(u64, u64)>) {
        let (progress, progress_detail) = match detail {
            Some((current, total)) => (
                Some(bar(current, total)),
                Some(ProgressDetail {
                    current: Some(current as i64),
                    total: Some(total as i64),
                }),
            ),
            None => (None, Some(ProgressDetail::default())),
        };
        self.emit(CreateImageInfo {
            status: Some(text.to_string()),
            id: Some(short(hex)),
            progress,
            progress_detail,
            ..Default::default()
        });
    }

    /// Shows one engine event. `Pulling from` waits for the manifest, so a reference the registry
    /// does not have fails before any message and is answered with an HTTP error, as dockerd does.
    pub fn event(&self, event: &PullEvent) {
        let PullEvent::Registry(e) = event else {
            return;
        };
        match e {
            RegistryEvent::Resolving { reference } => {
                let tag = match (&reference.tag, &reference.digest) {
                    (Some(tag), _) => tag.clone(),
                    (None, Some(digest)) => digest.to_string(),
                    (None, None) => "latest".into(),
                };
                self.state().origin = Some((reference.repository.clone(), tag));
            }
            RegistryEvent::ManifestChosen { .. } => {
                let origin = self.state().origin.take();
                if let Some((repository, tag)) = origin {
                    self.emit(status(format!("Pulling from {repository}"), Some(tag)));
                }
            }
            RegistryEvent::BlobPresent { digest } => {
                self.layer("Already exists", digest.hex(), None)
            }
            RegistryEvent::BlobStarted { digest, size } => {
                {
                    let mut s = self.state();
                    s.downloaded = true;
                    s.totals.insert(short(digest.hex()), *size);
                }
                self.layer("Pulling fs layer", digest.hex(), None);
            }
            RegistryEvent::BlobProgress { digest, downloaded } => {
                let id = short(digest.hex());
                let total = {
                    let mut s = self.state();
                    let now = Instant::now();
                    let due = s
                        .last_progress
                        .get(&id)
                        .is_none_or(|t| now.duration_since(*t) >= PROGRESS_INTERVAL);
                    if !due {
                        return;
                    }
                    s.last_progress.insert(id.clone(), now);
                    s.totals.get(&id).copied().unwrap_or(0)
                };
                self.layer("Downloading", digest.hex(), Some((*downloaded, total)));
            }
            RegistryEvent::BlobRetrying {
                digest,
                attempt,
                reason,
            } => self.layer(
                &format!("Retrying (attempt {attempt}): {reason}"),
                digest.hex(),
                None,
            ),
            RegistryEvent::BlobDone { digest } => {
                self.layer("Download complete", digest.hex(), None);
                self.layer("Pull complete", digest.hex(), None);
            }
            RegistryEvent::BlobFailed { digest } => {
                self.layer("Download failed", digest.hex(), None)
            }
            RegistryEvent::Done { digest, .. } => {
                self.emit(status(format!("Digest: {digest}"), None))
            }
        }
    }

    /// Whether any layer was downloaded (`Downloaded newer image`) or all were there (`up to date`).
    pub fn downloaded(&self) -> bool {
        self.state().downloaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_is_docker_shaped() {
        assert!(bar(0, 100).starts_with("[>"));
        assert!(bar(50, 100).contains("=>"));
        assert!(bar(100, 100).starts_with(&format!("[{}]", "=".repeat(50))));
        assert!(bar(100, 0).starts_with("[>"));
    }

    #[test]
    fn failure_has_both_fields() {
        let v: serde_json::Value = serde_json::from_slice(&line(&failure("boom"))).unwrap();
        assert_eq!(v["error"], "boom");
        assert_eq!(v["errorDetail"]["message"], "boom");
    }
}
