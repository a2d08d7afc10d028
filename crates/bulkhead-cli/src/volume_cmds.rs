//! `volume create|ls|inspect|rm|prune`, docker-shaped.

use crate::args::VolumeCommand;
use crate::format;
use anyhow::Result;
use bulkhead_engine::{Engine, Volume};
use serde_json::json;

pub fn volume(engine: &Engine, command: VolumeCommand) -> Result<i32> {
    match command {
        VolumeCommand::Create { name, label } => {
            let labels = crate::args::parse_labels(&label).map_err(anyhow::Error::msg)?;
            println!("{}", engine.volume_create(name.as_deref(), &labels)?.name);
            Ok(0)
        }
        VolumeCommand::Ls { quiet } => {
            let volumes = engine.volume_list()?;
            if quiet {
                for v in volumes {
                    println!("{}", v.name);
                }
                return Ok(0);
            }
            let mut rows = vec![vec!["DRIVER".to_string(), "VOLUME NAME".to_string()]];
            rows.extend(volumes.into_iter().map(|v| vec![v.driver, v.name]));
            format::table(&mut std::io::stdout().lock(), &rows)?;
            Ok(0)
        }
        VolumeCommand::Inspect { volumes } => {
            let mut all = Vec::new();
            let mut failed = false;
            for name in &volumes {
                match engine.volume_inspect(name) {
                    Ok(v) => all.push(inspect_json(&v)),
                    Err(e) => {
                        eprintln!("bulkhead: {e}");
                        failed = true;
                    }
                }
            }
            println!("{}", serde_json::to_string_pretty(&all)?);
            Ok(i32::from(failed))
        }
        VolumeCommand::Rm { force, volumes } => {
            let mut failed = false;
            for name in &volumes {
                match engine.volume_remove(name, force) {
                    Ok(()) => println!("{name}"),
                    Err(e) => {
                        eprintln!("bulkhead: {e}");
                        failed = true;
                    }
                }
            }
            Ok(i32::from(failed))
        }
        VolumeCommand::Prune { all, force: _ } => {
            let report = engine.volume_prune(all)?;
            if !report.removed.is_empty() {
                println!("Deleted Volumes:");
                for name in &report.removed {
                    println!("{name}");
                }
            }
            Ok(0)
        }
    }
}

/// Docker's `volume inspect` shape.
fn inspect_json(v: &Volume) -> serde_json::Value {
    json!({
        "CreatedAt": v.created.to_rfc3339(),
        "Driver": v.driver,
        "Labels": v.labels,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": {},
        "Scope": "local",
        "Anonymous": v.anonymous,
    })
}
