//! Pulls from a real Distribution registry (`docker-registry` 2.8), anonymous and
//! with htpasswd basic auth, images pushed by skopeo from layouts built here.

mod common;

use bulkhead_image::{Digest, Reference, Store};
use bulkhead_registry::{
    login, pull, CredentialStore, Credentials, PullEvent, PullOptions, RegistryError,
};
use bulkhead_testkit::{Account, Auth, Platform, Registry};
use common::images::{busybox_image, tiny_image};
use common::{
    assert_failed_pull_left_store_clean, new_store, quiet, recorded_pull, store_state, test_options,
};

fn reference(registry: &Registry, name: &str) -> Reference {
    format!("{}/{name}", registry.host()).parse().unwrap()
}

/// Checks the order of one blob's events: started, progress up to `size`, done.
fn assert_blob_downloaded(events: &[PullEvent], digest: &Digest, size: u64) {
    let mine: Vec<&PullEvent> = events
        .iter()
        .filter(|e| match e {
            PullEvent::BlobStarted { digest: d, .. }
            | PullEvent::BlobProgress { digest: d, .. }
            | PullEvent::BlobDone { digest: d } => d == digest,
            _ => false,
        })
        .collect();
    assert_eq!(
        mine.first(),
        Some(&&PullEvent::BlobStarted {
            digest: digest.clone(),
            size
        }),
        "{mine:?}"
    );
    assert_eq!(
        mine.last(),
        Some(&&PullEvent::BlobDone {
            digest: digest.clone()
        })
    );
    let progress: Vec<u64> = mine
        .iter()
        .filter_map(|e| match e {
            PullEvent::BlobProgress { downloaded, .. } => Some(*downloaded),
            _ => None,
        })
        .collect();
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
    assert_eq!(progress.last(), Some(&size));
}

/// A pull without credentials is refused with a hint to log in.
fn assert_needs_login(store: &Store, image_ref: &Reference) {
    let anonymous = pull(store, image_ref, &test_options(), &quiet).unwrap_err();
    assert!(
        matches!(anonymous, RegistryError::AuthFailed { .. }),
        "{anonymous}"
    );
    assert!(
        anonymous.to_string().contains("bulkhead login"),
        "{anonymous}"
    );
}

#[test]
fn multi_layer_pull_then_second_pull_fetches_nothing() {
    let registry = Registry::start(Auth::Anonymous);
    let images = registry
        .push(
            "apps/busybox",
            "v1",
            &[Platform::amd64(&busybox_image(512 * 1024))],
        )
        .images;
    let before_pull = registry.blob_downloads();

    let (_root, store) = new_store();
    let image_ref = reference(&registry, "apps/busybox:v1");
    let (image, events) = recorded_pull(&store, &image_ref, &test_options());
    let image = image.unwrap();

    assert_eq!(image.manifest_digest.to_string(), images[0].manifest);
    assert_eq!(
        events.first(),
        Some(&PullEvent::Resolving {
            reference: image_ref.clone()
        })
    );
    assert_eq!(
        events[1],
        PullEvent::ManifestChosen {
            digest: image.manifest_digest.clone(),
            platform: None,
        }
    );
    assert_eq!(
        events.last(),
        Some(&PullEvent::Done {
            reference: image_ref.clone(),
            digest: image.manifest_digest.clone(),
        })
    );
    for layer in &image.layers {
        assert_blob_downloaded(&events, &layer.digest, layer.size);
    }
    assert_eq!(image.id.digest().to_string(), images[0].config);
    assert_eq!(image.layers.len(), 3);
    for blob in images[0].blobs() {
        assert!(store.has_blob(&blob.parse().unwrap()), "{blob} missing");
    }
    assert_eq!(registry.blob_downloads() - before_pull, 4);
    let resolved = store.resolve(&image_ref.to_string()).unwrap();
    assert_eq!(resolved.id, image.id);

    // Everything is present: the second pull only fetches the manifest.
    let (again, events) = recorded_pull(&store, &image_ref, &test_options());
    assert_eq!(again.unwrap().id, image.id);
    let present = events
        .iter()
        .filter(|e| matches!(e, PullEvent::BlobPresent { .. }))
        .count();
    assert_eq!(present, 4, "{events:?}");
    assert!(!events
        .iter()
        .any(|e| matches!(e, PullEvent::BlobStarted { .. })));
    assert_eq!(registry.blob_downloads() - before_pull, 4);
}

#[test]
fn pull_by_digest_and_platform_selection_from_index() {
    let registry = Registry::start(Auth::Anonymous);
    let arm64_layers = tiny_image("arm64");
    let layout = registry.push(
        "multi",
        "multi",
        &[
            Platform::amd64(&busybox_image(1024)),
            Platform {
                architecture: "arm64",
                ..Platform::amd64(&arm64_layers)
            },
        ],
    );
    let (images, index_digest) = (layout.images, layout.top);

    let (_root, store) = new_store();
    let (amd64, events) = recorded_pull(
        &store,
        &reference(&registry, "multi:multi"),
        &test_options(),
    );
    let amd64 = amd64.unwrap();
    assert_eq!(amd64.manifest_digest.to_string(), images[0].manifest);
    assert_eq!(
        events[1],
        PullEvent::ManifestChosen {
            digest: amd64.manifest_digest.clone(),
            platform: Some(bulkhead_registry::Platform::default()),
        }
    );

    let (_root2, store2) = new_store();
    let arm64_opts = PullOptions {
        platform: "linux/arm64".parse().unwrap(),
        ..test_options()
    };
    let by_digest = reference(&registry, &format!("multi@{index_digest}"));
    let arm64 = pull(&store2, &by_digest, &arm64_opts, &quiet).unwrap();
    assert_eq!(arm64.manifest_digest.to_string(), images[1].manifest);

    let (root3, store3) = new_store();
    let before = store_state(&root3, &store3);
    let s390x = PullOptions {
        platform: "linux/s390x".parse().unwrap(),
        ..test_options()
    };
    let err = pull(
        &store3,
        &reference(&registry, "multi:multi"),
        &s390x,
        &quiet,
    )
    .unwrap_err();
    assert!(
        matches!(err, RegistryError::PlatformNotFound { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("linux/s390x") && msg.contains("linux/amd64, linux/arm64"),
        "{msg}"
    );
    assert!(msg.contains(&registry.host()), "{msg}");
    assert_eq!(store_state(&root3, &store3), before);
}

#[test]
fn unknown_tag_is_a_clear_404_and_changes_nothing() {
    let registry = Registry::start(Auth::Anonymous);
    registry.push("present", "v1", &[Platform::amd64(&tiny_image("amd64"))]);

    let (root, store) = new_store();
    let before = store_state(&root, &store);
    for missing in ["present:nope", "absent:v1"] {
        let err = pull(
            &store,
            &reference(&registry, missing),
            &test_options(),
            &quiet,
        )
        .unwrap_err();
        assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("manifest of {}/{missing}", registry.host())),
            "{msg}"
        );
        assert!(msg.contains("404"), "{msg}");
        assert_failed_pull_left_store_clean(&root, &store, &before);
        assert_eq!(store_state(&root, &store), before);
    }
}

#[test]
fn basic_auth_registry_requires_the_right_credentials() {
    let account = Account {
        user: "alice",
        password: "correct horse",
    };
    let registry = Registry::start(Auth::Htpasswd(&account));
    let images = registry
        .push(
            "private/app",
            "v1",
            &[Platform::amd64(&busybox_image(1024))],
        )
        .images;
    let image_ref = reference(&registry, "private/app:v1");

    let (root, store) = new_store();
    let before = store_state(&root, &store);
    assert_needs_login(&store, &image_ref);

    let wrong = PullOptions {
        credentials: Some(Credentials::new("alice", "wrong")),
        ..test_options()
    };
    let err = pull(&store, &image_ref, &wrong, &quiet).unwrap_err();
    assert!(matches!(err, RegistryError::AuthFailed { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&registry.host()) && msg.contains("private/app:v1"),
        "{msg}"
    );
    assert_eq!(store_state(&root, &store), before);

    let right = PullOptions {
        credentials: Some(Credentials::new("alice", "correct horse")),
        ..test_options()
    };
    let image = pull(&store, &image_ref, &right, &quiet).unwrap();
    assert_eq!(image.manifest_digest.to_string(), images[0].manifest);
}

#[test]
fn login_verifies_before_saving() {
    let account = Account {
        user: "bob",
        password: "hunter2",
    };
    let registry = Registry::start(Auth::Htpasswd(&account));
    let host = registry.host();
    let root = tempfile::tempdir().unwrap();
    let creds = CredentialStore::open(root.path()).unwrap();

    let err = creds
        .login(&host, "bob", "nope", |c| login(&host, c, false))
        .unwrap_err();
    assert!(matches!(err, RegistryError::AuthFailed { .. }), "{err}");
    assert!(err.to_string().contains(&host), "{err}");
    assert!(!creds.path().exists(), "rejected credentials were saved");

    creds
        .login(&host, "bob", "hunter2", |c| login(&host, c, false))
        .unwrap();
    assert_eq!(
        creds.get(&host).unwrap(),
        Some(Credentials::new("bob", "hunter2"))
    );

    // Anonymous registries accept any login, like docker.
    let open = Registry::start(Auth::Anonymous);
    login(&open.host(), &Credentials::new("x", "y"), false).unwrap();
}

#[test]
fn token_auth_registry_with_jwt_issuer() {
    let account = Account {
        user: "dave",
        password: "t0ken pass",
    };
    let registry = Registry::start(Auth::Token(&account));
    let images = registry
        .push("team/app", "v1", &[Platform::amd64(&busybox_image(1024))])
        .images;
    let image_ref = reference(&registry, "team/app:v1");

    let (root, store) = new_store();
    let before = store_state(&root, &store);
    assert_needs_login(&store, &image_ref);
    let wrong = PullOptions {
        credentials: Some(Credentials::new("dave", "nope")),
        ..test_options()
    };
    let err = pull(&store, &image_ref, &wrong, &quiet).unwrap_err();
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    assert_eq!(store_state(&root, &store), before);

    let issued_before = registry.tokens_issued();
    let right = PullOptions {
        credentials: Some(Credentials::new("dave", "t0ken pass")),
        ..test_options()
    };
    let image = pull(&store, &image_ref, &right, &quiet).unwrap();
    assert_eq!(image.manifest_digest.to_string(), images[0].manifest);
    // One token for the repository scope serves the manifest and all blobs.
    assert_eq!(registry.tokens_issued() - issued_before, 1);

    let host = registry.host();
    login(&host, &Credentials::new("dave", "t0ken pass"), false).unwrap();
    let err = login(&host, &Credentials::new("dave", "x"), false).unwrap_err();
    assert!(matches!(err, RegistryError::AuthFailed { .. }), "{err}");
}
