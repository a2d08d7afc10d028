//! Pull behaviour against a misbehaving registry (see `common::fault`): corrupt and
//! truncated blobs, 429/5xx answers, redirects and bearer-token authentication.

mod common;

use bulkhead_image::Reference;
use bulkhead_registry::{pull, Credentials, PullEvent, PullOptions, RegistryError};
use bulkhead_testkit::{write_layout, BuiltImage, Platform};
use common::fault::{Fault, FaultServer};
use common::images::busybox_image;
use common::{
    assert_failed_pull_left_store_clean, new_store, quiet, recorded_pull, store_state, test_options,
};
use tempfile::TempDir;

struct Setup {
    _layout: TempDir,
    server: FaultServer,
    image: BuiltImage,
    reference: Reference,
}

fn serve(fault: Fault) -> Setup {
    let layout = tempfile::tempdir().unwrap();
    let mut images = write_layout(
        layout.path(),
        Some("v1"),
        &[Platform::amd64(&busybox_image(256 * 1024))],
    )
    .images;
    let server = FaultServer::start(layout.path(), fault);
    let reference = format!("{}/img:v1", server.host()).parse().unwrap();
    Setup {
        _layout: layout,
        server,
        image: images.remove(0),
        reference,
    }
}

fn blob_requests(server: &FaultServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.contains("/blobs/"))
        .count()
}

#[test]
fn corrupt_blob_is_rejected_after_bounded_retries() {
    let setup = serve(Fault::CorruptBlobs);
    let (root, store) = new_store();
    let before = store_state(&root, &store);
    let opts = PullOptions {
        max_concurrent: 1,
        ..test_options()
    };
    let (result, events) = recorded_pull(&store, &setup.reference, &opts);
    let err = result.unwrap_err();
    assert!(
        matches!(err, RegistryError::BlobCorrupt { attempts: 3, .. }),
        "{err}"
    );
    // The first blob (the config) is retried twice, then given up.
    let config = setup.image.config.clone();
    let verdicts: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            PullEvent::BlobRetrying {
                digest, attempt, ..
            } if digest.to_string() == config => Some(format!("retry {attempt}")),
            PullEvent::BlobFailed { digest } if digest.to_string() == config => {
                Some("failed".to_owned())
            }
            _ => None,
        })
        .collect();
    assert_eq!(verdicts, ["retry 1", "retry 2", "failed"]);
    let msg = err.to_string();
    assert!(
        msg.contains("digest mismatch") && msg.contains("img:v1"),
        "{msg}"
    );
    // One blob, three attempts; the first failure stops the pull.
    assert_eq!(blob_requests(&setup.server), 3);
    assert_failed_pull_left_store_clean(&root, &store, &before);
    assert_eq!(store_state(&root, &store), before);
}

#[test]
fn dropped_connection_is_retried_then_succeeds() {
    let setup = serve(Fault::DropBlobs { times: 2 });
    let (_root, store) = new_store();
    let image = pull(&store, &setup.reference, &test_options(), &quiet).unwrap();
    assert_eq!(image.manifest_digest.to_string(), setup.image.manifest);
    assert_eq!(blob_requests(&setup.server), 4 + 2);
}

#[test]
fn connection_dropped_every_time_fails_cleanly() {
    let setup = serve(Fault::DropBlobs { times: usize::MAX });
    let (root, store) = new_store();
    let before = store_state(&root, &store);
    let err = pull(&store, &setup.reference, &test_options(), &quiet).unwrap_err();
    assert!(
        matches!(err, RegistryError::Connection { attempts: 3, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&setup.server.host()) && msg.contains("img:v1"),
        "{msg}"
    );
    assert_failed_pull_left_store_clean(&root, &store, &before);
    assert_eq!(store_state(&root, &store), before);
}

#[test]
fn rate_limit_honours_retry_after_then_gives_up() {
    let transient = serve(Fault::Status {
        path_contains: "/manifests/",
        status: 429,
        times: 2,
        retry_after: Some(1),
    });
    let (_root, store) = new_store();
    pull(&store, &transient.reference, &test_options(), &quiet).unwrap();

    let persistent = serve(Fault::Status {
        path_contains: "/manifests/",
        status: 429,
        times: usize::MAX,
        retry_after: Some(0),
    });
    let (root, store) = new_store();
    let before = store_state(&root, &store);
    let err = pull(&store, &persistent.reference, &test_options(), &quiet).unwrap_err();
    assert!(
        matches!(err, RegistryError::RateLimited { attempts: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("img:v1"), "{err}");
    assert_eq!(store_state(&root, &store), before);
}

#[test]
fn server_errors_are_retried_with_backoff_then_fail() {
    let transient = serve(Fault::Status {
        path_contains: "/blobs/",
        status: 503,
        times: 2,
        retry_after: None,
    });
    let (_root, store) = new_store();
    pull(&store, &transient.reference, &test_options(), &quiet).unwrap();

    let persistent = serve(Fault::Status {
        path_contains: "/blobs/",
        status: 500,
        times: usize::MAX,
        retry_after: None,
    });
    let (root, store) = new_store();
    let before = store_state(&root, &store);
    let err = pull(&store, &persistent.reference, &test_options(), &quiet).unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::ServerError {
                status: 500,
                attempts: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("img:v1"), "{err}");
    assert_failed_pull_left_store_clean(&root, &store, &before);
}

#[test]
fn blob_redirects_to_storage_are_followed() {
    let setup = serve(Fault::RedirectBlobs);
    let (_root, store) = new_store();
    let image = pull(&store, &setup.reference, &test_options(), &quiet).unwrap();
    assert_eq!(image.manifest_digest.to_string(), setup.image.manifest);
    let storage = setup
        .server
        .requests()
        .iter()
        .filter(|r| r.contains("/storage/"))
        .count();
    assert_eq!(storage, 4);
}

#[test]
fn bearer_token_is_fetched_once_per_scope_and_checked() {
    let setup = serve(Fault::BearerAuth {
        user: "carol",
        password: "pa55",
    });
    let (root, store) = new_store();
    let before = store_state(&root, &store);
    let wrong = PullOptions {
        credentials: Some(Credentials::new("carol", "bad")),
        ..test_options()
    };
    let err = pull(&store, &setup.reference, &wrong, &quiet).unwrap_err();
    assert!(matches!(err, RegistryError::AuthFailed { .. }), "{err}");
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    assert_eq!(store_state(&root, &store), before);

    let right = PullOptions {
        credentials: Some(Credentials::new("carol", "pa55")),
        ..test_options()
    };
    let image = pull(&store, &setup.reference, &right, &quiet).unwrap();
    assert_eq!(image.manifest_digest.to_string(), setup.image.manifest);
    assert_eq!(
        setup.server.tokens_issued(),
        1,
        "token not cached for the scope"
    );
}

#[test]
fn oversized_schema1_and_unknown_manifests_are_refused() {
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "application/vnd.oci.image.manifest.v1+json",
            vec![b' '; 5 << 20],
            "larger than the 4194304 byte limit",
        ),
        (
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            br#"{"schemaVersion":1,"name":"img","tag":"v1","fsLayers":[]}"#.to_vec(),
            "schema 1",
        ),
        (
            "application/vnd.example.unknown+json",
            b"{}".to_vec(),
            "unsupported media type",
        ),
    ];
    for (media_type, body, expected) in cases {
        let setup = serve(Fault::ReplaceManifest { media_type, body });
        let (root, store) = new_store();
        let before = store_state(&root, &store);
        let err = pull(&store, &setup.reference, &test_options(), &quiet).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(expected) && msg.contains("img:v1"), "{msg}");
        assert_eq!(blob_requests(&setup.server), 0);
        assert_eq!(store_state(&root, &store), before);
    }
}
