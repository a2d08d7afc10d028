//! Where everything of a container lives, in one place.

use std::path::{Path, PathBuf};

/// Paths under the bulkhead root.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The event log (`events.rs`), its previous file after a rotation, and the lock that orders
    /// appends before a rotation.
    pub fn events(&self) -> PathBuf {
        self.root.join("events.jsonl")
    }

    pub fn events_rotated(&self) -> PathBuf {
        self.root.join("events.jsonl.1")
    }

    pub fn events_lock(&self) -> PathBuf {
        self.root.join("events.lock")
    }

    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// Serialises name reservation and listing against creation and removal.
    pub fn containers_lock(&self) -> PathBuf {
        self.containers().join(".lock")
    }

    /// Named and anonymous volumes, as docker's `local` driver keeps them: `<name>/_data` and
    /// `<name>/volume.json`.
    pub fn volumes(&self) -> PathBuf {
        self.root.join("volumes")
    }

    /// Serialises volume creation and removal against the containers that use them.
    pub fn volumes_lock(&self) -> PathBuf {
        self.volumes().join(".lock")
    }

    pub fn volume(&self, name: &str) -> PathBuf {
        self.volumes().join(name)
    }

    /// What a container mounts of volume `name`.
    pub fn volume_data(&self, name: &str) -> PathBuf {
        self.volume(name).join("_data")
    }

    /// The shared read-only mounts of image artifacts that process-mode containers use as their lower
    /// layer (`bulkhead_runtime::rootfs::shared_lower`), one directory per image.
    pub fn lowers(&self) -> PathBuf {
        self.root.join("lowers")
    }

    pub fn container(&self, id: &str) -> ContainerPaths {
        ContainerPaths {
            dir: self.containers().join(id),
            run: PathBuf::from("/run/bulkhead").join(&id[..id.len().min(16)]),
            lowers: self.lowers(),
        }
    }
}

/// The files of one container.
#[derive(Debug, Clone)]
pub struct ContainerPaths {
    pub dir: PathBuf,
    /// Sockets and VM runtime files (short path for the 108-byte socket limit).
    pub run: PathBuf,
    /// [`Layout::lowers`], where the lower layer of the container's image is mounted.
    pub lowers: PathBuf,
}

impl ContainerPaths {
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }
    pub fn disk(&self) -> PathBuf {
        self.dir.join("rw.img")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("container.log")
    }
    pub fn monitor_log(&self) -> PathBuf {
        self.dir.join("monitor.log")
    }
    pub fn mnt(&self) -> PathBuf {
        self.dir.join("mnt")
    }
    pub fn socket(&self) -> PathBuf {
        self.run.join("monitor.sock")
    }
}
