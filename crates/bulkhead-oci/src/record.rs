//! What the runtime keeps per container beside the engine's record, in `<root>/oci/<id>/`: the relay's
//! pid, the bundle, the annotations and hooks (`relay.json`), and the fifo `start` opens to release the
//! relay (as runc's `exec.fifo`).

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelayInfo {
    pub pid: i32,
    /// The relay's start time (guards against pid reuse).
    pub start: Option<u64>,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: DateTime<Utc>,
    pub annotations: BTreeMap<String, String>,
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// A pod's sandbox: the relay itself holds the pod's namespaces; no engine container runs the
    /// sandbox image.
    pub sandbox: bool,
}

pub struct Record {
    dir: PathBuf,
}

impl Record {
    pub fn new(root: &Path, id: &str) -> Result<Record> {
        check_id(id)?;
        Ok(Record {
            dir: root.join("oci").join(id),
        })
    }

    /// Makes the directory and the start fifo; fails if the id is taken.
    pub fn create(&self) -> Result<()> {
        if let Some(parent) = self.dir.parent() {
            std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
        }
        match std::fs::create_dir(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("container with id exists: {}", self.id())
            }
            Err(e) => return Err(e).context(self.dir.display().to_string()),
        }
        nix::unistd::mkfifo(
            &self.fifo(),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .with_context(|| format!("making {}", self.fifo().display()))
    }

    pub fn id(&self) -> &str {
        self.dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }

    pub fn fifo(&self) -> PathBuf {
        self.dir.join("start.fifo")
    }

    /// Whether `start` has released the relay (the fifo is removed then).
    pub fn started(&self) -> bool {
        !self.fifo().exists()
    }

    pub fn save(&self, info: &RelayInfo) -> Result<()> {
        let tmp = self.dir.join("relay.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(info)?)
            .with_context(|| tmp.display().to_string())?;
        std::fs::rename(&tmp, self.dir.join("relay.json")).context("relay.json")
    }

    /// The record, or runc's "does not exist" for an id this root does not hold.
    pub fn load(&self) -> Result<RelayInfo> {
        let path = self.dir.join("relay.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("container does not exist: {}", self.id())
            }
            Err(e) => Err(e).context(path.display().to_string()),
        }
    }

    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).context(self.dir.display().to_string())
            }
            _ => Ok(()),
        }
    }

    /// Every id with a record under `root`.
    pub fn ids(root: &Path) -> Result<Vec<String>> {
        let dir = root.join("oci");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).context(dir.display().to_string()),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|id| dir.join(id).join("relay.json").exists())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

impl RelayInfo {
    pub fn alive(&self) -> bool {
        bulkhead_engine::state::alive(Some(self.pid), self.start)
    }
}

/// runc's rule for ids (`^[\w+-\.]+$`), which also keeps them from naming a path.
fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if !ok {
        bail!("invalid container id {id:?}: ids may hold letters, digits, '_', '+', '-' and '.'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_name_paths() {
        for bad in ["", ".", "..", "a/b", "../x", "a b", "x\n"] {
            assert!(Record::new(Path::new("/r"), bad).is_err(), "{bad:?}");
        }
        for good in ["abc", "a.b-c_d+e", &"f".repeat(64)] {
            assert!(Record::new(Path::new("/r"), good).is_ok(), "{good:?}");
        }
    }
}
