//! The container records on disk: create, find by name or id prefix, list, update state under lock.

use crate::fsutil;
use crate::layout::{ContainerPaths, Layout};
use crate::state::{self, ContainerState};
use crate::{ContainerConfig, EngineError};
use bulkhead_fs::Lock;
use std::fs;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;

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
        if !paths.config().exists() {
            return Err(EngineError::NoSuchContainer(id.to_string()));
        }
        let config: ContainerConfig = fsutil::read_json(&paths.config())?;
        let state: ContainerState = fsutil::read_json(&paths.state())?;
        let mut c = Container {
            paths,
            config,
            state,
        };
        let mut probe = c.state.clone();
        if state::reconcile(&mut probe) {
            c.update_state(|s| {
                state::reconcile(s);
            })?;
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

/// Creates the record of a new container; the name must be free.
pub fn create(layout: &Layout, config: ContainerConfig) -> Result<Container, EngineError> {
    bulkhead_fs::private_dir(&layout.containers()).map_err(EngineError::io(layout.containers()))?;
    let _lock = fsutil::lock(&layout.containers_lock())?;
    if configs(layout)?.iter().any(|c| c.name == config.name) {
        return Err(EngineError::NameInUse(config.name));
    }
    let paths = layout.container(&config.id);
    // Written to a temp dir and renamed, so a crash never leaves a container without its files.
    let tmp = layout.containers().join(format!(".new-{}", config.id));
    // A leftover of a crash is ours (the directory above is owner-only and we hold its lock); the
    // new one is created exclusively, owner-only.
    let _ = fs::remove_dir_all(&tmp);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(EngineError::io(&tmp))?;
    let staged = layout.container(&config.id).dir;
    let result = (|| {
        fsutil::write_json(&tmp.join("config.json"), &config)?;
        fsutil::write_json(&tmp.join("state.json"), &ContainerState::default())?;
        bulkhead_fs::sync_dir(&tmp).map_err(EngineError::io(&tmp))?;
        fs::rename(&tmp, &staged).map_err(EngineError::io(&staged))?;
        bulkhead_fs::sync_dir(&layout.containers()).map_err(EngineError::io(layout.containers()))
    })();
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(Container {
        paths,
        config,
        state: ContainerState::default(),
    })
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
