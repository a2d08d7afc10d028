//! Volumes as docker's `local` driver keeps them: `<root>/volumes/<name>/_data` is the content (bound
//! into process-mode containers, shared with VMs over virtio-9p) and `volume.json` the record. A volume
//! a container names is created on first use; an anonymous one gets a random 64-hex name.
//!
//! Volume content may have been written by a VM guest, which the host never trusts: host code that walks
//! it (copy-up, removal) works on directory descriptors and never follows a symlink found there
//! (`copy_up.rs`; removal uses `std::fs::remove_dir_all`, which opens every level `O_NOFOLLOW`).

mod copy_up;
mod mount_flags;

pub use mount_flags::{parse_mount, parse_volume, Requested};

use crate::layout::Layout;
use crate::{containers, fsutil, EngineError};
use bulkhead_runtime::MountSpec;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

const DRIVER: &str = "local";

/// One volume's record (`volume.json`), and where its content is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub created: DateTime<Utc>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Made for `-v /path` or `--mount` without a source: removed by `rm -v`, `--rm` and `volume prune`.
    pub anonymous: bool,
    /// `<root>/volumes/<name>/_data`.
    #[serde(skip)]
    pub mountpoint: PathBuf,
}

/// What `volume prune` removed.
#[derive(Debug, Clone, Default)]
pub struct VolumePruneReport {
    pub removed: Vec<String>,
}

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, so never a path.
pub(crate) fn validate_name(name: &str) -> Result<(), String> {
    if crate::docker_names::is_valid(name, 255) {
        Ok(())
    } else {
        Err(format!(
            "invalid volume name {name:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]* (a host path must be absolute)"
        ))
    }
}

fn record(layout: &Layout, name: &str) -> PathBuf {
    layout.volume(name).join("volume.json")
}

/// Loads volume `name`'s record.
pub(crate) fn load(layout: &Layout, name: &str) -> Result<Volume, EngineError> {
    validate_name(name).map_err(EngineError::InvalidOption)?;
    let path = record(layout, name);
    if !path.exists() {
        return Err(EngineError::NoSuchVolume(name.to_string()));
    }
    let mut v: Volume = fsutil::read_json(&path)?;
    v.mountpoint = layout.volume_data(name);
    Ok(v)
}

/// Creates volume `name` unless it exists; returns it and whether this call made it. The caller holds
/// the volumes lock.
fn create_locked(
    layout: &Layout,
    name: &str,
    labels: &BTreeMap<String, String>,
    anonymous: bool,
) -> Result<(Volume, bool), EngineError> {
    validate_name(name).map_err(EngineError::InvalidOption)?;
    if record(layout, name).exists() {
        return Ok((load(layout, name)?, false));
    }
    let dir = layout.volume(name);
    // A directory without a record is a crash's leftover (we hold the lock): made again from scratch.
    let _ = fs::remove_dir_all(&dir);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(EngineError::io(&dir))?;
    let data = layout.volume_data(name);
    let volume = Volume {
        name: name.to_string(),
        driver: DRIVER.to_string(),
        created: Utc::now(),
        labels: labels.clone(),
        anonymous,
        mountpoint: data.clone(),
    };
    let made = fs::DirBuilder::new()
        .mode(0o755)
        .create(&data)
        .map_err(EngineError::io(&data))
        .and_then(|()| fsutil::write_json(&record(layout, name), &volume));
    if let Err(e) = made {
        let _ = fs::remove_dir_all(&dir);
        return Err(e);
    }
    volume_event(layout, "create", name);
    Ok((volume, true))
}

fn lock(layout: &Layout) -> Result<bulkhead_fs::Lock, EngineError> {
    bulkhead_fs::private_dir(&layout.volumes()).map_err(EngineError::io(layout.volumes()))?;
    fsutil::lock(&layout.volumes_lock())
}

/// The names of the containers that use volume `name` (stopped ones too).
fn users(layout: &Layout, name: &str) -> Result<Vec<String>, EngineError> {
    Ok(containers::configs(layout)?
        .into_iter()
        .filter(|c| c.volumes.iter().any(|v| v == name))
        .map(|c| c.name)
        .collect())
}

/// Removes volume `name` (the caller holds the lock and checked it is unused): renamed out of the way
/// first, so a crash never leaves a half-removed volume under its name.
fn remove_locked(layout: &Layout, name: &str) -> Result<(), EngineError> {
    let dir = layout.volume(name);
    let doomed = layout
        .volumes()
        .join(bulkhead_fs::unique_name(&format!(".rm-{name}-")));
    fs::rename(&dir, &doomed).map_err(EngineError::io(&dir))?;
    volume_event(layout, "destroy", name);
    // remove_dir_all opens each directory O_NOFOLLOW and unlinks symlinks as entries: a link a guest
    // planted in the data is removed, never followed.
    fs::remove_dir_all(&doomed).map_err(EngineError::io(&doomed))
}

/// A volume event with docker's attribute `driver`.
fn volume_event(layout: &Layout, action: &str, name: &str) {
    let attributes = BTreeMap::from([("driver".to_string(), DRIVER.to_string())]);
    crate::events::record(
        layout,
        crate::events::EventKind::Volume,
        action,
        name,
        attributes,
    );
}

fn names(layout: &Layout) -> Result<Vec<String>, EngineError> {
    let dir = layout.volumes();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EngineError::io(dir)(e)),
    };
    let mut out: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with('.') && record(layout, n).exists())
        .collect();
    out.sort();
    Ok(out)
}

/// The mounts of a new container, resolved to runtime mounts with the volumes named (anonymous ones get
/// their random name now) but nothing created yet.
#[derive(Debug, Clone, Default)]
pub(crate) struct MountPlan {
    pub mounts: Vec<MountSpec>,
    /// Volume name, whether anonymous, whether an empty one gets the image's content, and the target.
    volumes: Vec<(String, bool, bool, String)>,
    /// `-v` bind sources to create when missing.
    bind_dirs: Vec<PathBuf>,
}

impl MountPlan {
    /// Parses `-v`, `--mount` and `--tmpfs` (already parsed by the caller into `tmpfs`), refusing two
    /// mounts on one target, and adds an anonymous volume for each of the image's `VOLUME` paths that no
    /// mount covers, as docker does.
    pub fn parse(
        layout: &Layout,
        volumes: &[String],
        mounts: &[String],
        tmpfs: Vec<MountSpec>,
        image_volumes: &[String],
    ) -> Result<MountPlan, EngineError> {
        let mut requested = Vec::new();
        for v in volumes {
            requested.push(parse_volume(v)?);
        }
        for m in mounts {
            requested.push(parse_mount(m)?);
        }
        let covered = |path: &str| {
            let path = path.trim_end_matches('/');
            requested
                .iter()
                .map(Requested::target)
                .chain(tmpfs.iter().filter_map(|t| match t {
                    MountSpec::Tmpfs { target, .. } => Some(target.as_str()),
                    MountSpec::Bind { .. } => None,
                }))
                .any(|t| t.trim_end_matches('/') == path)
        };
        let declared: Vec<Requested> = image_volumes
            .iter()
            .filter(|p| p.starts_with('/') && !p.trim_end_matches('/').is_empty() && !covered(p))
            .map(|p| Requested::Volume {
                name: None,
                target: p.clone(),
                readonly: false,
                copy: true,
            })
            .collect();
        requested.extend(declared);
        let mut plan = MountPlan::default();
        let mut targets: Vec<String> = Vec::new();
        for r in requested {
            let target = r.target().trim_end_matches('/').to_string();
            if targets.contains(&target) {
                return Err(EngineError::InvalidOption(format!(
                    "duplicate mount point {target}"
                )));
            }
            targets.push(target);
            plan.mounts.push(match r {
                Requested::Bind {
                    source,
                    target,
                    readonly,
                    create_source,
                } => {
                    if create_source {
                        plan.bind_dirs.push(source.clone());
                    } else if !source.exists() {
                        return Err(EngineError::InvalidOption(format!(
                            "invalid mount: bind source path {} does not exist",
                            source.display()
                        )));
                    }
                    MountSpec::Bind {
                        source,
                        target,
                        readonly,
                    }
                }
                Requested::Volume {
                    name,
                    target,
                    readonly,
                    copy,
                } => {
                    let anonymous = name.is_none();
                    let name = match name {
                        Some(n) => n,
                        None => containers::new_id()?,
                    };
                    plan.volumes
                        .push((name.clone(), anonymous, copy, target.clone()));
                    MountSpec::Bind {
                        source: layout.volume_data(&name),
                        target,
                        readonly,
                    }
                }
                Requested::Tmpfs { target, options } => MountSpec::Tmpfs { target, options },
            });
        }
        for t in tmpfs {
            if let MountSpec::Tmpfs { target, .. } = &t {
                if targets.contains(&target.trim_end_matches('/').to_string()) {
                    return Err(EngineError::InvalidOption(format!(
                        "duplicate mount point {target}"
                    )));
                }
            }
            plan.mounts.push(t);
        }
        Ok(plan)
    }

    /// The names of the volumes the container uses.
    pub fn volume_names(&self) -> Vec<String> {
        self.volumes.iter().map(|(n, ..)| n.clone()).collect()
    }

    /// Creates what the plan names: missing `-v` bind directories, missing volumes, and the image's
    /// content (`artifact`, the image's erofs) in each empty volume that asks for it. The caller holds
    /// the guard it got from [`MountPlan::lock`]; returns the volumes this call made, for
    /// [`MountPlan::undo`].
    pub fn realize(
        &self,
        layout: &Layout,
        artifact: &Path,
        _guard: &bulkhead_fs::Lock,
    ) -> Result<Vec<String>, EngineError> {
        for dir in &self.bind_dirs {
            // Docker creates a missing host directory for -v.
            fs::create_dir_all(dir)
                .or_else(|e| if dir.exists() { Ok(()) } else { Err(e) })
                .map_err(EngineError::io(dir))?;
        }
        let mut made = Vec::new();
        let result = (|| {
            let mut copies = Vec::new();
            for (name, anonymous, copy, target) in &self.volumes {
                let (_, new) = create_locked(layout, name, &BTreeMap::new(), *anonymous)?;
                if new {
                    made.push(name.clone());
                }
                if *copy {
                    copies.push((layout.volume_data(name), target.as_str()));
                }
            }
            copy_up::from_image(layout, artifact, &copies)
        })();
        match result {
            Ok(()) => Ok(made),
            Err(e) => {
                self.undo(layout, &made);
                Err(e)
            }
        }
    }

    /// Takes the volumes lock for [`MountPlan::realize`] and the container's record that follows it.
    pub fn lock(layout: &Layout) -> Result<bulkhead_fs::Lock, EngineError> {
        lock(layout)
    }

    /// Removes the volumes a failed create made (the caller holds the lock).
    pub fn undo(&self, layout: &Layout, made: &[String]) {
        for name in made {
            let _ = remove_locked(layout, name);
        }
    }
}

/// Removes the anonymous volumes among `names` that no other container uses (`rm -v`, `--rm`).
pub(crate) fn remove_anonymous(layout: &Layout, names: &[String]) -> Result<(), EngineError> {
    let _guard = lock(layout)?;
    for name in names {
        match load(layout, name) {
            Ok(v) if v.anonymous && users(layout, name)?.is_empty() => remove_locked(layout, name)?,
            Ok(_) | Err(EngineError::NoSuchVolume(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl crate::Engine {
    /// `volume create`: makes volume `name` (a random name if `None`) unless it exists.
    pub fn volume_create(
        &self,
        name: Option<&str>,
        labels: &BTreeMap<String, String>,
    ) -> Result<Volume, EngineError> {
        let _guard = lock(&self.layout)?;
        let name = match name {
            Some(n) => n.to_string(),
            None => containers::new_id()?,
        };
        Ok(create_locked(&self.layout, &name, labels, false)?.0)
    }

    /// `volume ls`, by name.
    pub fn volume_list(&self) -> Result<Vec<Volume>, EngineError> {
        names(&self.layout)?
            .iter()
            .map(|n| load(&self.layout, n))
            .collect()
    }

    pub fn volume_inspect(&self, name: &str) -> Result<Volume, EngineError> {
        load(&self.layout, name)
    }

    /// `volume rm`: refused while any container (even a stopped one) uses it; `force` only makes a
    /// missing volume no error, as in docker.
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<(), EngineError> {
        let _guard = lock(&self.layout)?;
        match load(&self.layout, name) {
            Ok(_) => {}
            Err(EngineError::NoSuchVolume(_)) if force => return Ok(()),
            Err(e) => return Err(e),
        }
        let users = users(&self.layout, name)?;
        if !users.is_empty() {
            return Err(EngineError::VolumeInUse {
                name: name.to_string(),
                containers: users,
            });
        }
        remove_locked(&self.layout, name)
    }

    /// `volume prune`: the unused anonymous volumes, or with `all` every unused one (docker's rule).
    pub fn volume_prune(&self, all: bool) -> Result<VolumePruneReport, EngineError> {
        let _guard = lock(&self.layout)?;
        let used: Vec<String> = containers::configs(&self.layout)?
            .into_iter()
            .flat_map(|c| c.volumes)
            .collect();
        let mut report = VolumePruneReport::default();
        for name in names(&self.layout)? {
            let v = load(&self.layout, &name)?;
            if (all || v.anonymous) && !used.contains(&name) {
                remove_locked(&self.layout, &name)?;
                report.removed.push(name);
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_never_paths() {
        for good in ["db", "a", "my_vol.1-x", "0abc"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["a/b", "/abs", "..", ".hidden", "-x", "", "a b", "a:b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
