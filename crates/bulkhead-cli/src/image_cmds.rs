//! Image commands: pull, images, tag, rmi, image (ls, inspect, import, import-rootfs, export, prune), login.

use crate::args::*;
use crate::format;
use crate::pull_progress::PullProgress;
use anyhow::{bail, Context, Result};
use bulkhead_engine::Engine;
use bulkhead_image::{ImageDeletion, Reference};
use bulkhead_registry::{CredentialStore, PullOptions};
use std::io::Read;
use std::path::Path;

pub fn pull(root: &Path, a: PullArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let image = pull_into(&engine, &a.reference, &a)?;
    println!("{}", image);
    Ok(0)
}

/// Pulls `reference` and unpacks it (builds its root filesystem artifact), like `docker pull`.
pub fn pull_into(engine: &Engine, reference: &str, a: &PullArgs) -> Result<String> {
    let parsed: Reference = reference
        .parse()
        .with_context(|| format!("invalid reference {reference}"))?;
    let creds = CredentialStore::open(engine.layout().root())?.get(&parsed.registry)?;
    let mut opts = PullOptions {
        insecure_registries: a.insecure_registry.clone(),
        credentials: creds,
        ..PullOptions::default()
    };
    if let Some(p) = &a.platform {
        opts.platform = p
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid --platform {p}: {e}"))?;
    }
    let progress = PullProgress::new(a.quiet);
    let image = bulkhead_registry::pull(engine.store(), &parsed, &opts, &|event| {
        progress.show(event)
    })?;
    engine.store().rootfs_artifact(&image)?;
    Ok(format!("{} ({})", parsed, image.manifest_digest))
}

pub fn images(root: &Path) -> Result<i32> {
    let engine = Engine::open(root)?;
    let mut rows = vec![vec![
        "REPOSITORY".into(),
        "TAG".into(),
        "IMAGE ID".into(),
        "CREATED".into(),
        "SIZE".into(),
    ]];
    for s in engine.store().list()? {
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

pub fn tag(root: &Path, a: TagArgs) -> Result<i32> {
    Engine::open(root)?.store().tag(&a.source, &a.target)?;
    Ok(0)
}

pub fn rmi(root: &Path, a: RmiArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let mut failed = false;
    for reference in &a.images {
        match engine
            .store()
            .remove(reference, a.force, &|id| engine.image_in_use(id))
        {
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

pub fn image(root: &Path, cmd: ImageCommand) -> Result<i32> {
    match cmd {
        ImageCommand::Ls => images(root),
        ImageCommand::Rm(a) => rmi(root, a),
        ImageCommand::Tag(a) => tag(root, a),
        ImageCommand::Pull(a) => pull(root, a),
        ImageCommand::Inspect { images } => {
            let engine = Engine::open(root)?;
            let all = images
                .iter()
                .map(|r| engine.store().inspect(r))
                .collect::<Result<Vec<_>, _>>()?;
            // Through `Value`, whose maps are sorted: keys in a stable order (labels are a
            // HashMap), the same as before the records were typed.
            let all = serde_json::to_value(&all)?;
            println!("{}", serde_json::to_string_pretty(&all)?);
            Ok(0)
        }
        ImageCommand::Import { path } => {
            let engine = Engine::open(root)?;
            for image in engine.store().import(&path)? {
                engine.store().rootfs_artifact(&image)?;
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
            let engine = Engine::open(root)?;
            let image = engine.store().import_rootfs(&tar, &tag)?;
            engine.store().rootfs_artifact(&image)?;
            println!("{}", image.id);
            Ok(0)
        }
        ImageCommand::Export { image, file } => {
            Engine::open(root)?.store().export(&image, &file)?;
            Ok(0)
        }
        ImageCommand::Prune => {
            let report = Engine::open(root)?.store().prune()?;
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

pub fn login(root: &Path, a: LoginArgs) -> Result<i32> {
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
    let store = CredentialStore::open(root)?;
    store.login(&a.registry, &a.username, &password, |c| {
        bulkhead_registry::login(&a.registry, c, a.insecure)
    })?;
    println!("Login Succeeded");
    Ok(0)
}

pub fn logout(root: &Path, a: LogoutArgs) -> Result<i32> {
    if CredentialStore::open(root)?.logout(&a.registry)? {
        println!("Removing login credentials for {}", a.registry);
    } else {
        println!("Not logged in to {}", a.registry);
    }
    Ok(0)
}
