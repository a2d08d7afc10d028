//! Image commands: pull, images, tag, rmi, image (ls, inspect, import, import-rootfs, export, prune), login.

use crate::args::*;
use crate::format;
use crate::pull_progress::PullProgress;
use anyhow::{bail, Result};
use bulkhead_engine::{Engine, ImageDeletion, PullSettings};
use std::io::Read;

pub fn pull(engine: &Engine, a: PullArgs) -> Result<i32> {
    let settings = PullSettings {
        platform: a.platform,
        insecure_registries: a.insecure_registry,
    };
    let progress = PullProgress::new(a.quiet);
    let pulled = engine.pull(&a.reference, &settings, &|e| progress.show_engine_event(e))?;
    println!("{} ({})", pulled.reference, pulled.image.manifest_digest);
    Ok(0)
}

pub fn images(engine: &Engine) -> Result<i32> {
    let mut rows = vec![vec![
        "REPOSITORY".into(),
        "TAG".into(),
        "IMAGE ID".into(),
        "CREATED".into(),
        "SIZE".into(),
    ]];
    for s in engine.images()? {
        let created = s
            .created
            .as_deref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .map(|t| format::ago(t.with_timezone(&chrono::Utc)))
            .unwrap_or_else(|| "N/A".into());
        rows.push(vec![
            s.repository,
            s.tag,
            s.id.short().to_string(),
            created,
            format::size(s.size),
        ]);
    }
    format::table(&mut std::io::stdout().lock(), &rows)?;
    Ok(0)
}

pub fn tag(engine: &Engine, a: TagArgs) -> Result<i32> {
    engine.tag_image(&a.source, &a.target)?;
    Ok(0)
}

pub fn rmi(engine: &Engine, a: RmiArgs) -> Result<i32> {
    let mut failed = false;
    for reference in &a.images {
        match engine.remove_image(reference, a.force) {
            Ok(deletions) => {
                for deletion in deletions {
                    match deletion {
                        ImageDeletion::Untagged(name) => println!("Untagged: {name}"),
                        ImageDeletion::Deleted(id) => println!("Deleted: {id}"),
                    }
                }
            }
            Err(e) => {
                eprintln!("bulkhead: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

pub fn image(engine: &Engine, cmd: ImageCommand) -> Result<i32> {
    match cmd {
        ImageCommand::Ls => images(engine),
        ImageCommand::Rm(a) => rmi(engine, a),
        ImageCommand::Tag(a) => tag(engine, a),
        ImageCommand::Pull(a) => pull(engine, a),
        ImageCommand::Inspect { images } => {
            let all = images
                .iter()
                .map(|r| engine.inspect_image(r))
                .collect::<Result<Vec<_>, _>>()?;
            // Through `Value`, whose maps are sorted: keys in a stable order (labels are a HashMap).
            let all = serde_json::to_value(&all)?;
            println!("{}", serde_json::to_string_pretty(&all)?);
            Ok(0)
        }
        ImageCommand::Import { path } => {
            for image in engine.import_images(&path)? {
                let names = if image.names.is_empty() {
                    "<none>".to_string()
                } else {
                    image.names.join(", ")
                };
                println!("Loaded image: {names} ({})", image.id);
            }
            Ok(0)
        }
        ImageCommand::ImportRootfs { tar, tag } => {
            let image = engine.import_rootfs(&tar, &tag)?;
            println!("{}", image.id);
            Ok(0)
        }
        ImageCommand::Export { image, file } => {
            engine.export_image(&image, &file)?;
            Ok(0)
        }
        ImageCommand::Prune => {
            let report = engine.prune_images()?;
            for d in &report.blobs_removed {
                println!("deleted: {d}");
            }
            println!(
                "Total reclaimed space: {}",
                format::size(report.bytes_freed)
            );
            Ok(0)
        }
    }
}

pub fn login(engine: &Engine, a: LoginArgs) -> Result<i32> {
    let password = match (a.password, a.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are exclusive"),
        (Some(p), false) => p,
        (None, true) => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => bail!("give the password with --password or --password-stdin"),
    };
    engine.login(&a.registry, &a.username, &password, a.insecure)?;
    println!("Login Succeeded");
    Ok(0)
}

pub fn logout(engine: &Engine, a: LogoutArgs) -> Result<i32> {
    if engine.logout(&a.registry)? {
        println!("Removing login credentials for {}", a.registry);
    } else {
        println!("Not logged in to {}", a.registry);
    }
    Ok(0)
}
