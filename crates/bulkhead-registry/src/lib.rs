//! OCI distribution (v2) client: pulls images from registries into the bulkhead
//! image store, and logs in to registries.
//!
//! Supports anonymous, basic and bearer-token authentication, OCI and Docker
//! schema 2 manifests and indexes, bounded concurrent blob downloads with digest
//! verification, and bounded retries of rate-limited, failing or interrupted
//! requests. HTTPS is used except for loopback registries and those listed as
//! insecure. A failed pull registers no image; fully verified blobs downloaded
//! before the failure stay in the store (content-addressed, removed by `image prune`).

mod auth;
mod client;
mod credentials;
mod error;
mod event;
#[cfg(fuzzing)]
pub mod fuzzing;
mod manifest;
mod platform;
mod pull;

pub use client::RetryPolicy;
pub use credentials::{CredentialStore, Credentials};
pub use error::RegistryError;
pub use event::PullEvent;
pub use platform::Platform;
pub use pull::{pull, PullOptions};

/// Checks `credentials` against `registry`'s API endpoint (`/v2/`), answering its
/// Basic or Bearer challenge. `insecure` selects plain HTTP (loopback registries
/// always use it). Pass this as the `verify` step of [`CredentialStore::login`].
pub fn login(
    registry: &str,
    credentials: &Credentials,
    insecure: bool,
) -> Result<(), RegistryError> {
    let insecure_registries = if insecure {
        vec![registry.to_owned()]
    } else {
        Vec::new()
    };
    let client = client::Client::new(
        registry,
        &insecure_registries,
        Some(credentials.clone()),
        RetryPolicy::default(),
    );
    client.get("", &[], None, &format!("login to {registry}"))?;
    Ok(())
}
