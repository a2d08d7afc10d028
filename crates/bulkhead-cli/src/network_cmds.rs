//! Network commands: network create, ls, inspect, rm, connect, disconnect.

use crate::args::*;
use crate::format;
use anyhow::{bail, Result};
use bulkhead_engine::{Engine, NetworkCreateOptions, NetworkDetails};
use serde_json::{json, Value};

pub fn network(engine: &Engine, cmd: NetworkCommand) -> Result<i32> {
    match cmd {
        NetworkCommand::Create(a) => {
            if a.driver != "bridge" {
                bail!("network driver {} is not supported (only bridge)", a.driver);
            }
            let record = engine.network_create(&NetworkCreateOptions {
                name: a.name,
                subnet: a.subnet,
                gateway: a.gateway,
                labels: parse_labels(&a.label).map_err(anyhow::Error::msg)?,
            })?;
            println!("{}", record.id);
            Ok(0)
        }
        NetworkCommand::Ls => {
            let mut rows = vec![vec![
                "NETWORK ID".to_string(),
                "NAME".into(),
                "DRIVER".into(),
                "SCOPE".into(),
            ]];
            for n in engine.network_list()? {
                rows.push(vec![
                    n.id[..12].to_string(),
                    n.name,
                    n.driver,
                    "local".into(),
                ]);
            }
            format::table(&mut std::io::stdout().lock(), &rows)?;
            Ok(0)
        }
        NetworkCommand::Inspect(a) => {
            let mut all = Vec::new();
            let mut failed = false;
            for key in &a.networks {
                match engine.network_inspect(key) {
                    Ok(d) => all.push(inspect(&d)),
                    Err(e) => {
                        eprintln!("bulkhead: {e}");
                        failed = true;
                    }
                }
            }
            println!("{}", serde_json::to_string_pretty(&all)?);
            Ok(if failed { 1 } else { 0 })
        }
        NetworkCommand::Rm(a) => {
            let mut failed = false;
            for key in &a.networks {
                match engine.network_remove(key) {
                    Ok(_) => println!("{key}"),
                    Err(e) => {
                        eprintln!("bulkhead: {e}");
                        failed = true;
                    }
                }
            }
            Ok(if failed { 1 } else { 0 })
        }
        NetworkCommand::Connect(a) => {
            engine.network_connect(&a.network, &a.container, &a.aliases)?;
            Ok(0)
        }
        NetworkCommand::Disconnect(a) => {
            engine.network_disconnect(&a.network, &a.container)?;
            Ok(0)
        }
    }
}

/// Docker-shaped `network inspect` JSON.
fn inspect(d: &NetworkDetails) -> Value {
    let r = &d.record;
    let containers: serde_json::Map<String, Value> = d
        .endpoints
        .iter()
        .map(|e| {
            (
                e.container_id.clone(),
                json!({
                    "Name": e.name,
                    "Aliases": e.aliases,
                    "MacAddress": bulkhead_engine::format_mac(&bulkhead_engine::mac_for(e.ipv4)),
                    "IPv4Address": format!("{}/{}", e.ipv4, r.subnet.prefix()),
                }),
            )
        })
        .collect();
    json!({
        "Name": r.name,
        "Id": r.id,
        "Created": r.created.to_rfc3339(),
        "Scope": "local",
        "Driver": r.driver,
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Config": [{ "Subnet": r.subnet.to_string(), "Gateway": r.gateway.to_string() }],
        },
        "Internal": false,
        "Containers": containers,
        "Options": { "com.docker.network.bridge.name": r.bridge },
        "EnableDNS": r.dns,
        "Labels": r.labels,
    })
}
