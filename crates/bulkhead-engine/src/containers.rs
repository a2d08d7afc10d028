//! The container records on disk: create, find by name or id prefix, list, update state under lock.

use crate::fsutil;
use crate::layout::{ContainerPaths, Layout};
use crate::state::{self, ContainerState};
use crate::{ContainerConfig, EngineError};
use bulkhead_fs::Lock;
use std::fs;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::time::{Duration, SystemTime};

/// One container as recorded on disk.
#[derive(Debug, Clone)]
pub struct Container {
    pub paths: ContainerPaths,
    pub config: ContainerConfig,
    pub state: ContainerState,
}

impl Container {
    /// Loads a container and reconciles its state with the processes that really exist.
    pub fn load(layout: &Layout, id: &str) -> Result<Container, EngineError> {
        let paths = layout.container(id);
        // A removal renames the directory away at any moment, between the two reads too: a record file
        // that is not there is a container that is not there.
        let gone = |e: EngineError| match e {
            EngineError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                EngineError::NoSuchContainer(id.to_string())
            }
            e => e,
        };
        let config: ContainerConfig = fsutil::read_json(&paths.config()).map_err(gone)?;
        let state: ContainerState = fsutil::read_json(&paths.state()).map_err(gone)?;
        let mut c = Container {
            paths,
            config,
            state,
        };
        let mut probe = c.state.clone();
        if state::reconcile(&mut probe) {
            let mut ended = false;
            c.update_state(|s| {
                let was_running = s.status == state::Status::Running;
                state::reconcile(s);
                ended = was_running && s.status != state::Status::Running;
            })?;
            // Whoever notices that a monitor died without recording the exit reports the `die`.
            if ended {
                let code = c
                    .state
                    .exit_code
                    .unwrap_or(state::LOST_EXIT_CODE)
                    .to_string();
                crate::events::container(layout, &c.config, "die", &[("exitCode", code)]);
            }
        }
        Ok(c)
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    pub fn short_id(&self) -> &str {
        &self.config.id[..12]
    }

    pub fn lock(&self) -> Result<Lock, EngineError> {
        fsutil::lock(&self.paths.lock())
    }

    /// Re-reads the state under the container lock, applies `f`, and writes it back atomically.
    pub fn update_state(&mut self, f: impl FnOnce(&mut ContainerState)) -> Result<(), EngineError> {
        let _lock = self.lock()?;
        let mut current: ContainerState = fsutil::read_json(&self.paths.state())?;
        f(&mut current);
        fsutil::write_json(&self.paths.state(), &current)?;
        self.state = current;
        Ok(())
    }

    pub fn save_config(&self) -> Result<(), EngineError> {
        fsutil::write_json(&self.paths.config(), &self.config)
    }
}

/// How old a `.new-*` or `.rm-*` directory must be before `list` takes it for a crash's leftover.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// A container being created: its directory `containers/.new-<id>/`, which `list` and `find` do not
/// see, filled (disk, config, state) and then renamed into place as the last step of `create`, so a
/// `kill -9` at any point leaves a whole container or none. Dropped uncommitted, it is removed.
pub struct Staged {
    pub paths: ContainerPaths,
    committed: bool,
}

/// Makes the staging directory of container `id`, owner-only.
pub fn stage(layout: &Layout, id: &str) -> Result<Staged, EngineError> {
    bulkhead_fs::private_dir(&layout.containers()).map_err(EngineError::io(layout.containers()))?;
    let paths = ContainerPaths {
        dir: layout.containers().join(format!(".new-{id}")),
        ..layout.container(id)
    };
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&paths.dir)
        .map_err(EngineError::io(&paths.dir))?;
    Ok(Staged {
        paths,
        committed: false,
    })
}

impl Staged {
    /// Writes the records and renames the directory into place, if the name is still free.
    pub fn commit(
        mut self,
        layout: &Layout,
        config: ContainerConfig,
    ) -> Result<Container, EngineError> {
        fsutil::write_json(&self.paths.config(), &config)?;
        fsutil::write_json(&self.paths.state(), &ContainerState::default())?;
        bulkhead_fs::sync_dir(&self.paths.dir).map_err(EngineError::io(&self.paths.dir))?;
        let _lock = fsutil::lock(&layout.containers_lock())?;
        if configs(layout)?.iter().any(|c| c.name == config.name) {
            return Err(EngineError::NameInUse(config.name));
        }
        let paths = layout.container(&config.id);
        fs::rename(&self.paths.dir, &paths.dir).map_err(EngineError::io(&paths.dir))?;
        self.committed = true;
        bulkhead_fs::sync_dir(&layout.containers())
            .map_err(EngineError::io(layout.containers()))?;
        Ok(Container {
            paths,
            config,
            state: ContainerState::default(),
        })
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.paths.dir);
        }
    }
}

/// Removes the `.new-*` and `.rm-*` directories a crashed create or removal left (older than a minute:
/// younger ones may belong to a create or removal still at work), under the containers lock.
fn sweep_stale(layout: &Layout) -> Result<(), EngineError> {
    let stale = |e: &fs::DirEntry| {
        let name = e.file_name().to_string_lossy().to_string();
        // A create adds entries as it goes, a removal deletes them: either moves the mtime.
        let age = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        (name.starts_with(".new-") || name.starts_with(".rm-"))
            && age.is_some_and(|a| a > STALE_AFTER)
    };
    let dir = layout.containers();
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(());
    };
    let leftovers: Vec<_> = entries.flatten().filter(stale).map(|e| e.path()).collect();
    if leftovers.is_empty() {
        return Ok(());
    }
    let _lock = fsutil::lock(&layout.containers_lock())?;
    for path in leftovers.iter().filter(|p| p.exists()) {
        tracing::info!(
            "removing {}, left by an interrupted create or removal",
            path.display()
        );
        if let Err(e) = fs::remove_dir_all(path) {
            tracing::warn!("removing {}: {e}", path.display());
        }
    }
    Ok(())
}

/// Ids of the container directories (temp and doomed directories start with a dot).
fn ids(layout: &Layout) -> Result<Vec<String>, EngineError> {
    let dir = layout.containers();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EngineError::io(dir)(e)),
    };
    Ok(entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|name| !name.starts_with('.'))
        .collect())
}

/// Every container's definition, without touching its state: enough to match names, ids and images.
pub fn configs(layout: &Layout) -> Result<Vec<ContainerConfig>, EngineError> {
    let mut out = Vec::new();
    for id in ids(layout)? {
        let path = layout.container(&id).config();
        match fsutil::read_json::<ContainerConfig>(&path) {
            Ok(c) => out.push(c),
            Err(EngineError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("skipping container {id}: {e}"),
        }
    }
    Ok(out)
}

/// All containers with reconciled state, newest first. Records that cannot be read are skipped with a
/// warning.
pub fn list(layout: &Layout) -> Result<Vec<Container>, EngineError> {
    sweep_stale(layout)?;
    let mut out = Vec::new();
    for id in ids(layout)? {
        match Container::load(layout, &id) {
            Ok(c) => out.push(c),
            Err(EngineError::NoSuchContainer(_)) => {}
            Err(e) => tracing::warn!("skipping container {id}: {e}"),
        }
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.config.created));
    Ok(out)
}

/// Finds a container by full id, exact name, or unique id prefix, like docker. Only the match is loaded
/// and reconciled.
pub fn find(layout: &Layout, key: &str) -> Result<Container, EngineError> {
    if key.is_empty() {
        return Err(EngineError::NoSuchContainer(key.to_string()));
    }
    if key.len() == 64 && layout.container(key).config().exists() {
        return Container::load(layout, key);
    }
    let all = configs(layout)?;
    if let Some(c) = all.iter().find(|c| c.name == key) {
        return Container::load(layout, &c.id);
    }
    let matches: Vec<&ContainerConfig> = all.iter().filter(|c| c.id.starts_with(key)).collect();
    match matches.as_slice() {
        [one] => Container::load(layout, &one.id),
        [] => Err(EngineError::NoSuchContainer(key.to_string())),
        _ => Err(EngineError::Ambiguous(key.to_string())),
    }
}

/// A new random 64-hex-digit container id.
pub fn new_id() -> Result<String, EngineError> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(EngineError::io("/dev/urandom"))?;
    Ok(hex::encode(bytes))
}

/// A docker-style `adjective_noun` name derived from the id.
pub fn generated_name(id: &str) -> String {
    const ADJ: [&str; 16] = [
        "brave", "calm", "eager", "fond", "keen", "lucid", "merry", "nifty", "proud", "quiet",
        "sharp", "stoic", "swift", "tender", "vivid", "witty",
    ];
    const NOUN: [&str; 16] = [
        "babbage", "curie", "darwin", "euler", "fermat", "gauss", "hopper", "kepler", "lovelace",
        "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wozniak",
    ];
    let b = |i: usize| usize::from_str_radix(&id[i..i + 2], 16).unwrap_or(0);
    format!("{}_{}_{}", ADJ[b(0) % 16], NOUN[b(2) % 16], &id[4..8])
}
