//! The event log, docker's `events`: `<root>/events.jsonl`, one JSON line per event, appended with
//! `O_APPEND` by whichever process makes the event (a CLI or API server call, or a container's monitor
//! for start and die), and rotated to `events.jsonl.1` at about 4 MiB.
//!
//! Writers append under a shared lock (`events.lock`) and the rotation renames under the exclusive one,
//! so once a rotation is done nobody writes the old file any more and a follower that read it to its end
//! has missed nothing. Recording an event never fails the operation it reports: a write error is logged.

use crate::config::ContainerConfig;
use crate::layout::Layout;
use crate::logs::read_complete_lines;
use crate::EngineError;
use bulkhead_fs::Lock;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

/// The size past which the current file is rotated.
const ROTATE_AT: u64 = 4 << 20;
/// How often a follower looks for new events.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// What an event is about, as docker's `Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Container,
    Image,
    Network,
    Volume,
}

/// One event, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Nanosecond precision.
    pub time: DateTime<Utc>,
    pub kind: EventKind,
    /// Docker's action: `create`, `start`, `die`, `destroy`, `pull`, `tag`, ...
    pub action: String,
    /// Container id, image id or reference, network id, volume name.
    pub id: String,
    /// `name`, `image`, `exitCode`, `signal`, and a container's labels.
    pub attributes: BTreeMap<String, String>,
}

/// Appends an event now; a failure is logged, never returned.
pub(crate) fn record(
    layout: &Layout,
    kind: EventKind,
    action: &str,
    id: &str,
    attributes: BTreeMap<String, String>,
) {
    let event = Event {
        time: Utc::now(),
        kind,
        action: action.to_string(),
        id: id.to_string(),
        attributes,
    };
    if let Err(e) = append(layout, &event) {
        tracing::warn!("recording the {action} event of {id}: {e}");
    }
}

/// A container event with docker's attributes: the container's labels, its `name` and `image`, then
/// `extra` (`exitCode`, `signal`, ...).
pub(crate) fn container(
    layout: &Layout,
    config: &ContainerConfig,
    action: &str,
    extra: &[(&str, String)],
) {
    let mut attributes = config.labels.clone();
    attributes.insert("name".into(), config.name.clone());
    attributes.insert("image".into(), config.image.clone());
    for (k, v) in extra {
        attributes.insert(k.to_string(), v.clone());
    }
    record(layout, EventKind::Container, action, &config.id, attributes);
}

/// An event whose only attribute is the `name` of what it is about (images, networks, volumes).
pub(crate) fn named(layout: &Layout, kind: EventKind, action: &str, id: &str, name: &str) {
    let attributes = BTreeMap::from([("name".to_string(), name.to_string())]);
    record(layout, kind, action, id, attributes);
}

fn append(layout: &Layout, event: &Event) -> Result<(), EngineError> {
    let mut line = serde_json::to_vec(event).map_err(|source| EngineError::Corrupt {
        path: layout.events(),
        source,
    })?;
    line.push(b'\n');
    let path = layout.events();
    let lock = lock(layout, false)?;
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .map_err(EngineError::io(&path))?;
    // One write: readers never see two events interleaved.
    file.write_all(&line).map_err(EngineError::io(&path))?;
    let full = file
        .metadata()
        .map(|m| m.len() >= ROTATE_AT)
        .unwrap_or(false);
    drop(file);
    drop(lock);
    if full {
        rotate(layout)?;
    }
    Ok(())
}

/// Moves the full current file to `events.jsonl.1` (replacing the previous one), once.
fn rotate(layout: &Layout) -> Result<(), EngineError> {
    let _lock = lock(layout, true)?;
    let path = layout.events();
    // Another writer may have rotated meanwhile.
    if std::fs::metadata(&path).is_ok_and(|m| m.len() >= ROTATE_AT) {
        let rotated = layout.events_rotated();
        std::fs::rename(&path, &rotated).map_err(EngineError::io(&rotated))?;
    }
    Ok(())
}

fn lock(layout: &Layout, exclusive: bool) -> Result<Lock, EngineError> {
    let path = layout.events_lock();
    if exclusive {
        Lock::exclusive(&path)
    } else {
        Lock::shared(&path)
    }
    .map_err(EngineError::io(path))
}

/// The current file, read from `pos` on, and its inode (to notice a rotation).
struct Current {
    reader: BufReader<File>,
    pos: u64,
    inode: u64,
}

impl Current {
    fn read_new(&mut self, out: &mut Vec<Event>, path: &Path) -> Result<(), EngineError> {
        self.reader
            .seek(SeekFrom::Start(self.pos))
            .map_err(EngineError::io(path))?;
        self.pos += read_complete_lines(&mut self.reader, out, path)?;
        Ok(())
    }
}

/// Opens the current file (created if missing, so a follower can wait on it), and with `rotated` also
/// reads the rotated one, both under the shared lock so no rotation falls between them.
fn open_current(layout: &Layout, rotated: Option<&mut Vec<Event>>) -> Result<Current, EngineError> {
    let _lock = lock(layout, false)?;
    if let Some(out) = rotated {
        let path = layout.events_rotated();
        match File::open(&path) {
            Ok(f) => {
                read_complete_lines(&mut BufReader::new(f), out, &path)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(EngineError::io(path)(e)),
        }
    }
    let path = layout.events();
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(&path)
        .map_err(EngineError::io(&path))?;
    let inode = file.metadata().map_err(EngineError::io(&path))?.ino();
    Ok(Current {
        reader: BufReader::new(file),
        pos: 0,
        inode,
    })
}

/// See [`crate::Engine::events`].
pub(crate) fn read(
    layout: &Layout,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    follow: bool,
    mut sink: impl FnMut(&Event) -> std::io::Result<()>,
) -> Result<(), EngineError> {
    let wanted = |e: &Event| since.is_none_or(|s| e.time >= s) && until.is_none_or(|u| e.time <= u);
    let path = layout.events();
    let mut batch = Vec::new();
    let mut current = open_current(layout, Some(&mut batch))?;
    current.read_new(&mut batch, &path)?;
    loop {
        for e in batch.drain(..).filter(|e| wanted(e)) {
            if sink(&e).is_err() {
                return Ok(());
            }
        }
        if !follow || until.is_some_and(|u| Utc::now() > u) {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_POLL);
        let rotated = std::fs::metadata(&path).is_ok_and(|m| m.ino() != current.inode);
        if rotated {
            // Under the lock no writer is mid-write in the old file: its end is final.
            let _lock = lock(layout, false)?;
            current.read_new(&mut batch, &path)?;
            drop(_lock);
            current = open_current(layout, None)?;
        }
        current.read_new(&mut batch, &path)?;
    }
}

/// The exit code the last `die` event of container `id` recorded, if any (for a container that is gone).
pub(crate) fn last_exit_code(layout: &Layout, id: &str) -> Result<Option<i32>, EngineError> {
    let mut events = Vec::new();
    let path = layout.events();
    open_current(layout, Some(&mut events))?.read_new(&mut events, &path)?;
    Ok(events
        .iter()
        .rev()
        .find(|e| e.kind == EventKind::Container && e.action == "die" && e.id == id)
        .and_then(|e| e.attributes.get("exitCode"))
        .and_then(|c| c.parse().ok()))
}

impl crate::Engine {
    /// Events in [since, until]; with `follow`, keeps reading new ones until `sink` returns Err or `until`
    /// passes (polls the file every ~100 ms). Records past events from both files (rotated + current).
    pub fn events(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        follow: bool,
        sink: impl FnMut(&Event) -> std::io::Result<()>,
    ) -> Result<(), EngineError> {
        read(&self.layout, since, until, follow, sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> BTreeMap<String, String> {
        BTreeMap::from([("n".to_string(), n.to_string())])
    }

    #[test]
    fn rotation_keeps_every_event_readable_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        // About 5 KiB per event: rotates after ~800.
        let padding = "x".repeat(5000);
        let total = 1000;
        for n in 0..total {
            let mut attributes = event(n);
            attributes.insert("pad".into(), padding.clone());
            record(&layout, EventKind::Volume, "create", "v", attributes);
        }
        assert!(layout.events_rotated().exists());
        assert!(std::fs::metadata(layout.events()).unwrap().len() < ROTATE_AT);
        let mut seen = Vec::new();
        read(&layout, None, None, false, |e| {
            seen.push(e.attributes["n"].parse::<usize>().unwrap());
            Ok(())
        })
        .unwrap();
        // One rotation: the rotated file and the current one hold every event, in order.
        assert_eq!(seen, (0..total).collect::<Vec<_>>());
    }

    #[test]
    fn a_follower_misses_nothing_across_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let total = 1000;
        let follower = {
            let layout = layout.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let until = Utc::now() + chrono::Duration::seconds(60);
                read(&layout, None, Some(until), true, |e| {
                    seen.push(e.attributes["n"].parse::<usize>().unwrap());
                    if seen.len() == total {
                        return Err(std::io::Error::other("all seen"));
                    }
                    Ok(())
                })
                .unwrap();
                seen
            })
        };
        let padding = "x".repeat(5000);
        for n in 0..total {
            let mut attributes = event(n);
            attributes.insert("pad".into(), padding.clone());
            record(&layout, EventKind::Volume, "create", "v", attributes);
            if n % 100 == 0 {
                // Let the follower catch up now and then, so it follows the file across the rotation.
                std::thread::sleep(Duration::from_millis(150));
            }
        }
        assert!(layout.events_rotated().exists());
        assert_eq!(follower.join().unwrap(), (0..total).collect::<Vec<_>>());
    }

    #[test]
    fn since_and_until_bound_the_events() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        record(&layout, EventKind::Image, "pull", "a", event(0));
        std::thread::sleep(Duration::from_millis(5));
        let middle = Utc::now();
        record(&layout, EventKind::Image, "pull", "b", event(1));
        let mut ids = Vec::new();
        read(&layout, Some(middle), None, false, |e| {
            ids.push(e.id.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(ids, ["b"]);
        ids.clear();
        read(&layout, None, Some(middle), false, |e| {
            ids.push(e.id.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(ids, ["a"]);
    }
}
