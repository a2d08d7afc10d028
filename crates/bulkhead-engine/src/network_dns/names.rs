//! The names a network's responder answers for: the endpoint records the network setup writes per
//! attached container (`<root>/networks/<id>/endpoints/<container-id>.json`), re-read only when the
//! directory changes, so a query costs one `stat` while the network is stable.

use serde::Deserialize;
use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// An endpoint record larger than this is not one the engine wrote: it is skipped.
const MAX_ENDPOINT_FILE: u64 = 64 << 10;
/// The characters of a container id that docker also answers for (its short id).
const SHORT_ID: usize = 12;
/// A directory can change twice within one tick of its timestamp and keep the same mtime, so a listing
/// read less than this after the mtime is not trusted for the next query (git's "racy" index rule).
const RACY_WINDOW: Duration = Duration::from_secs(2);

#[derive(Deserialize)]
struct Endpoint {
    container_id: String,
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    ipv4: Ipv4Addr,
}

/// Who is on the network at one moment.
#[derive(Debug, Default, PartialEq)]
pub struct Table {
    /// Lowercased name, alias or short id to the addresses that carry it (an alias may be shared).
    by_name: HashMap<String, Vec<Ipv4Addr>>,
    /// Address to the container's name and id, for reverse lookups and its own resolvers.
    by_addr: HashMap<Ipv4Addr, (String, String)>,
}

impl Table {
    /// The addresses for `name` (any case, with or without the root's trailing dot), if it is on the
    /// network.
    pub fn addresses(&self, name: &str) -> Option<&[Ipv4Addr]> {
        let key = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        self.by_name.get(&key).map(Vec::as_slice)
    }

    /// The container name that owns `addr`.
    pub fn name_of(&self, addr: Ipv4Addr) -> Option<&str> {
        self.by_addr.get(&addr).map(|(name, _)| name.as_str())
    }

    /// Whether `addr` is a container on the network.
    pub fn has(&self, addr: IpAddr) -> bool {
        matches!(addr, IpAddr::V4(v4) if self.by_addr.contains_key(&v4))
    }

    /// The id of the container that owns `addr`.
    pub fn container_at(&self, addr: Ipv4Addr) -> Option<&str> {
        self.by_addr.get(&addr).map(|(_, id)| id.as_str())
    }

    fn add(&mut self, endpoint: Endpoint) {
        let short_id = endpoint.container_id.get(..SHORT_ID).map(str::to_string);
        let keys = std::iter::once(endpoint.name.clone())
            .chain(endpoint.aliases)
            .chain(short_id);
        for key in keys.filter(|k| !k.is_empty()) {
            let addrs = self.by_name.entry(key.to_ascii_lowercase()).or_default();
            if !addrs.contains(&endpoint.ipv4) {
                addrs.push(endpoint.ipv4);
            }
        }
        self.by_addr
            .insert(endpoint.ipv4, (endpoint.name, endpoint.container_id));
    }
}

struct Cached {
    mtime: SystemTime,
    read_at: SystemTime,
    table: Arc<Table>,
}

/// The endpoint directory of one network, with the last listing.
pub struct Names {
    dir: PathBuf,
    cache: Mutex<Option<Cached>>,
}

impl Names {
    pub fn new(dir: PathBuf) -> Names {
        Names {
            dir,
            cache: Mutex::new(None),
        }
    }

    /// The current table. A missing or unreadable directory is an empty network (every query is then
    /// forwarded), never an error: the responder outlives a network removed under it.
    pub fn table(&self) -> Arc<Table> {
        let Ok(mtime) = std::fs::metadata(&self.dir).and_then(|m| m.modified()) else {
            return Arc::default();
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.as_ref() {
            let settled = c.read_at.duration_since(c.mtime).unwrap_or_default() >= RACY_WINDOW;
            if c.mtime == mtime && settled {
                return c.table.clone();
            }
        }
        let read_at = SystemTime::now();
        let table = Arc::new(self.read());
        *cache = Some(Cached {
            mtime,
            read_at,
            table: table.clone(),
        });
        table
    }

    fn read(&self) -> Table {
        let mut table = Table::default();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return table;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension() != Some("json".as_ref()) {
                continue;
            }
            let mut text = Vec::new();
            let read = std::fs::File::open(&path)
                .and_then(|f| f.take(MAX_ENDPOINT_FILE + 1).read_to_end(&mut text));
            if read.is_err() || text.len() as u64 > MAX_ENDPOINT_FILE {
                continue;
            }
            // A record being replaced or not ours is skipped, not fatal: the next change re-reads.
            if let Ok(endpoint) = serde_json::from_slice::<Endpoint>(&text) {
                table.add(endpoint);
            }
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, id: &str, json: &str) {
        std::fs::write(dir.join(format!("{id}.json")), json).unwrap();
    }

    #[test]
    fn names_aliases_short_ids_and_changes() {
        let dir = tempfile::tempdir().unwrap();
        let id = "0123456789abcdef".repeat(4);
        write(
            dir.path(),
            &id,
            &format!(
                r#"{{"container_id":"{id}","name":"Web","aliases":["www","shared"],"ipv4":"10.88.0.2"}}"#
            ),
        );
        write(
            dir.path(),
            "other",
            r#"{"container_id":"x","name":"db","aliases":["shared"],"ipv4":"10.88.0.3"}"#,
        );
        write(dir.path(), "garbage", "{not json");
        std::fs::write(dir.path().join("ignored.tmp"), "{}").unwrap();
        let names = Names::new(dir.path().to_path_buf());
        let t = names.table();
        let one = [Ipv4Addr::new(10, 88, 0, 2)];
        assert_eq!(t.addresses("web."), Some(&one[..]));
        assert_eq!(t.addresses("WWW"), Some(&one[..]));
        assert_eq!(t.addresses("0123456789ab"), Some(&one[..]));
        assert_eq!(t.addresses("shared").map(<[_]>::len), Some(2));
        assert_eq!(t.addresses("nope"), None);
        assert_eq!(t.name_of(Ipv4Addr::new(10, 88, 0, 3)), Some("db"));
        assert_eq!(t.container_at(Ipv4Addr::new(10, 88, 0, 3)), Some("x"));
        assert!(t.has("10.88.0.3".parse().unwrap()));
        assert!(!t.has("10.88.0.4".parse().unwrap()));
        // The listing was just read, inside the racy window: a change is seen at once.
        std::fs::remove_file(dir.path().join("other.json")).unwrap();
        assert_eq!(names.table().addresses("db"), None);
        std::fs::remove_dir_all(dir.path()).unwrap();
        assert_eq!(*names.table(), Table::default());
    }
}
