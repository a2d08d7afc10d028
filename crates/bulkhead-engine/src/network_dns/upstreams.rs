//! Where a relayed query goes. Docker's embedded DNS relays a container's outside queries to that
//! container's `--dns` servers if it has any, else to the host's. The responder here is shared by the
//! network, so it tells containers apart by the query's source address (the endpoint records map it to
//! a container id) and reads that container's definition.

use super::names::Table;
use serde::Deserialize;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// A definition larger than this is not one the engine wrote: its container gets the host's resolvers.
const MAX_CONFIG: u64 = 1 << 20;

/// The part of a container's `config.json` (`ContainerConfig::dns`) the relay needs.
#[derive(Deserialize)]
struct Servers {
    #[serde(default)]
    dns: Vec<IpAddr>,
}

/// The resolvers for a query from `client`, never `listen` itself.
pub fn for_client(
    client: IpAddr,
    table: &Table,
    containers: &Path,
    host: &[SocketAddr],
    listen: SocketAddr,
) -> Vec<SocketAddr> {
    let own = match client {
        IpAddr::V4(v4) => table
            .container_at(v4)
            .map(|id| own_servers(&containers.join(id).join("config.json"), id))
            .unwrap_or_default(),
        IpAddr::V6(_) => Vec::new(),
    };
    let chosen = if own.is_empty() { host.to_vec() } else { own };
    chosen.into_iter().filter(|up| *up != listen).collect()
}

fn own_servers(config: &Path, id: &str) -> Vec<SocketAddr> {
    // The id comes from an endpoint record: it must name a directory under `containers`, nothing else.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Vec::new();
    }
    let mut text = Vec::new();
    let read = std::fs::File::open(config).and_then(|f| f.take(MAX_CONFIG).read_to_end(&mut text));
    match read
        .ok()
        .and_then(|_| serde_json::from_slice::<Servers>(&text).ok())
    {
        Some(s) => s
            .dns
            .into_iter()
            .map(|ip| SocketAddr::new(ip, 53))
            .collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field read here is the one `create --dns` writes.
    #[test]
    fn reads_the_dns_servers_create_writes() {
        let opts = crate::CreateOptions {
            image: "test".into(),
            cmd: vec!["sh".into()],
            dns: vec!["10.9.9.9".into()],
            ..Default::default()
        };
        let image = oci_spec::image::ImageConfiguration::default();
        let id = "ab".repeat(32);
        let config = crate::spec::container_config(
            &id,
            "c".into(),
            &opts,
            Default::default(),
            "i",
            &image,
            &Default::default(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
        assert_eq!(
            own_servers(&path, &id),
            ["10.9.9.9:53".parse::<SocketAddr>().unwrap()]
        );
        assert!(own_servers(&path, "../x").is_empty());
    }
}
