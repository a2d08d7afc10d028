//! Harness of the registry integration tests on top of bulkhead-testkit (which has the real
//! `docker-registry` and the layout writer): a fault-injecting registry, the test images, pull options
//! and store-state checks.

#![allow(dead_code)] // each test binary uses a different subset of the harness

pub mod fault;
pub mod images;

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use bulkhead_image::{Image, Reference, Store};
use bulkhead_registry::{pull, PullEvent, PullOptions, RegistryError, RetryPolicy};
use bulkhead_testkit::assert_blobs_intact;
use tempfile::TempDir;

/// A fresh store in a temp root.
pub fn new_store() -> (TempDir, Store) {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    (root, store)
}

/// Pull options with short retry delays (the retry count is what is tested).
pub fn test_options() -> PullOptions {
    PullOptions {
        retry: RetryPolicy {
            attempts: 3,
            backoff: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(1),
        },
        ..PullOptions::default()
    }
}

/// The `events` callback of a pull whose progress is not looked at.
pub fn quiet(_: &PullEvent) {}

/// Pulls, keeping the events reported, in order.
pub fn recorded_pull(
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
) -> (Result<Image, RegistryError>, Vec<PullEvent>) {
    let events = Mutex::new(Vec::new());
    let result = pull(store, reference, opts, &|e| {
        events.lock().unwrap().push(e.clone())
    });
    (result, events.into_inner().unwrap())
}

/// The observable state of a store: registered images and stored blobs.
#[derive(Debug, PartialEq, Eq)]
pub struct StoreState {
    pub images: Vec<String>,
    pub blobs: BTreeSet<String>,
}

pub fn store_state(root: &TempDir, store: &Store) -> StoreState {
    let images = store
        .list()
        .unwrap()
        .into_iter()
        .map(|s| format!("{}:{} {}", s.repository, s.tag, s.id.digest()))
        .collect();
    StoreState {
        images,
        blobs: blob_files(root).into_iter().collect(),
    }
}

fn blob_files(root: &TempDir) -> Vec<String> {
    let dir = root.path().join("images/blobs/sha256");
    fs::read_dir(&dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// After a failed pull: no image was registered, nothing is left in `tmp/`, and
/// every blob that is stored is complete and matches its digest.
pub fn assert_failed_pull_left_store_clean(root: &TempDir, store: &Store, before: &StoreState) {
    let after = store_state(root, store);
    assert_eq!(
        after.images, before.images,
        "a failed pull registered an image"
    );
    let tmp: Vec<PathBuf> = fs::read_dir(root.path().join("images/tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(tmp.is_empty(), "partial downloads left behind: {tmp:?}");
    assert_blobs_intact(root.path());
}
