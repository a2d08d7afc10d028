//! The image half of the facade: pull, import, export, tag, remove, prune, list, inspect, and registry
//! logins. Every image that enters the store gets its root filesystem artifact built here, so both
//! isolation levels can run it at once.

use crate::events::{self, EventKind};
use crate::{Engine, EngineError};
use bulkhead_image::{Image, ImageDeletion, ImageInspect, ImageSummary, PruneReport, Reference};
use bulkhead_registry::{CredentialStore, PullOptions};
use std::path::Path;

/// How to reach a registry for a pull.
#[derive(Debug, Clone, Default)]
pub struct PullSettings {
    /// `os/arch[/variant]` to pick from multi-platform images (default `linux/amd64`).
    pub platform: Option<String>,
    /// Registries (`host` or `host:port`) reached over plain HTTP; loopback always is.
    pub insecure_registries: Vec<String>,
}

/// What happens during a pull, for the front end to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// `create` did not find the image in the store and pulls it.
    NotFoundLocally { reference: String },
    /// Progress reported by the registry client (downloads run on several threads).
    Registry(bulkhead_registry::PullEvent),
}

/// Where a pull's events go; called from the download threads.
pub type PullEvents<'a> = &'a (dyn Fn(&PullEvent) + Sync);

/// A pulled image and the canonical reference it was registered under.
#[derive(Debug, Clone)]
pub struct PulledImage {
    pub reference: String,
    pub image: Image,
}

impl Engine {
    /// Pulls `reference` with the credentials stored for its registry and builds its rootfs artifact.
    pub fn pull(
        &self,
        reference: &str,
        settings: &PullSettings,
        events: PullEvents,
    ) -> Result<PulledImage, EngineError> {
        let parsed: Reference = reference.parse()?;
        let credentials = CredentialStore::open(self.layout.root())?.get(&parsed.registry)?;
        let mut opts = PullOptions {
            insecure_registries: settings.insecure_registries.clone(),
            credentials,
            ..PullOptions::default()
        };
        if let Some(p) = &settings.platform {
            opts.platform = p
                .parse()
                .map_err(|e| EngineError::InvalidOption(format!("invalid platform {p}: {e}")))?;
        }
        let image = bulkhead_registry::pull(&self.store, &parsed, &opts, &|e| {
            events(&PullEvent::Registry(e.clone()))
        })?;
        self.store.rootfs_artifact(&image)?;
        let reference = parsed.to_string();
        events::named(
            &self.layout,
            EventKind::Image,
            "pull",
            &reference,
            &reference,
        );
        Ok(PulledImage { reference, image })
    }

    /// Loads an OCI layout or `docker save` archive; returns the images it held.
    pub fn import_images(&self, archive: &Path) -> Result<Vec<Image>, EngineError> {
        let images = self.store.import(archive)?;
        for image in &images {
            self.store.rootfs_artifact(image)?;
            let id = image.id.to_string();
            let name = image.names.first().unwrap_or(&id);
            events::named(&self.layout, EventKind::Image, "load", &id, name);
        }
        Ok(images)
    }

    /// Makes a one-layer image from a root filesystem tarball, tagged `reference`.
    pub fn import_rootfs(&self, tar: &Path, reference: &str) -> Result<Image, EngineError> {
        let image = self.store.import_rootfs(tar, reference)?;
        self.store.rootfs_artifact(&image)?;
        let id = image.id.to_string();
        events::named(&self.layout, EventKind::Image, "import", &id, reference);
        Ok(image)
    }

    /// Writes `reference` as an OCI image layout tar to `out`.
    pub fn export_image(&self, reference: &str, out: &Path) -> Result<(), EngineError> {
        Ok(self.store.export(reference, out)?)
    }

    pub fn tag_image(&self, source: &str, target: &str) -> Result<(), EngineError> {
        self.store.tag(source, target)?;
        let id = self.store.resolve(target)?.id.to_string();
        events::named(&self.layout, EventKind::Image, "tag", &id, target);
        Ok(())
    }

    /// Untags `reference`, and deletes the image once no tag is left; an image that a container (in any
    /// state) was created from is kept unless `force`.
    pub fn remove_image(
        &self,
        reference: &str,
        force: bool,
    ) -> Result<Vec<ImageDeletion>, EngineError> {
        let used: Vec<String> = crate::containers::configs(&self.layout)?
            .into_iter()
            .map(|c| c.image_id)
            .collect();
        let id = self.store.resolve(reference)?.id.to_string();
        let deletions = self
            .store
            .remove(reference, force, &|id| used.contains(&id.to_string()))?;
        for deletion in &deletions {
            let (action, name) = match deletion {
                ImageDeletion::Untagged(name) => ("untag", name.clone()),
                ImageDeletion::Deleted(deleted) => {
                    // Process mode's shared mount of its artifact goes with it (`rmi -f` of an image
                    // running containers use: their overlays keep their own reference).
                    let lower = self.layout.lowers().join(deleted.0.hex());
                    bulkhead_runtime::rootfs::shared_lower::remove(&lower)?;
                    ("delete", deleted.to_string())
                }
            };
            events::named(&self.layout, EventKind::Image, action, &id, &name);
        }
        Ok(deletions)
    }

    /// Deletes blobs and artifacts no image refers to.
    pub fn prune_images(&self) -> Result<PruneReport, EngineError> {
        Ok(self.store.prune()?)
    }

    pub fn images(&self) -> Result<Vec<ImageSummary>, EngineError> {
        Ok(self.store.list()?)
    }

    pub fn inspect_image(&self, reference: &str) -> Result<ImageInspect, EngineError> {
        Ok(self.store.inspect(reference)?)
    }

    /// Checks the credentials against the registry, then stores them under the root.
    pub fn login(
        &self,
        registry: &str,
        username: &str,
        password: &str,
        insecure: bool,
    ) -> Result<(), EngineError> {
        CredentialStore::open(self.layout.root())?.login(registry, username, password, |c| {
            bulkhead_registry::login(registry, c, insecure)
        })?;
        Ok(())
    }

    /// Forgets the credentials of `registry`; `false` if there were none.
    pub fn logout(&self, registry: &str) -> Result<bool, EngineError> {
        Ok(CredentialStore::open(self.layout.root())?.logout(registry)?)
    }
}
