//! `state`, `list` and `ps`.

use super::Ctx;
use crate::record::Record;
use anyhow::{bail, Result};
use bulkhead_engine::Isolation;
use std::io::Write;

pub fn state(ctx: &Ctx, id: &str) -> Result<()> {
    let state = ctx.load(id)?.state();
    println!("{}", serde_json::to_string_pretty(&state)?);
    Ok(())
}

pub fn list(ctx: &Ctx, a: &liboci_cli::List) -> Result<()> {
    let states: Vec<_> = Record::ids(&ctx.root)?
        .iter()
        .filter_map(|id| ctx.load(id).ok().map(|l| l.state()))
        .collect();
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for s in &states {
            writeln!(out, "{}", s.id)?;
        }
        return Ok(());
    }
    match a.format.as_str() {
        "json" => writeln!(out, "{}", serde_json::to_string(&states)?)?,
        "table" => {
            writeln!(
                out,
                "{:<24} {:<8} {:<10} {:<60} {:<31} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            )?;
            for s in &states {
                writeln!(
                    out,
                    "{:<24} {:<8} {:<10} {:<60} {:<31} {}",
                    s.id,
                    s.pid,
                    s.status,
                    s.bundle.display(),
                    s.created,
                    if s.owner.is_empty() { "root" } else { s.owner }
                )?;
            }
        }
        other => bail!("invalid format option {other:?}: table or json"),
    }
    Ok(())
}

/// runc's `ps`: the container's host pids (`--format json` is what containerd's shim reads). A VM
/// container's processes are the guest's; its host process is QEMU, whose pid stands for them all.
pub fn ps(ctx: &Ctx, a: &liboci_cli::Ps) -> Result<()> {
    let loaded = ctx.load(&a.container_id)?;
    let pids: Vec<i32> = match &loaded.container {
        None => vec![loaded.relay.pid],
        Some(c) if c.state.status != bulkhead_engine::Status::Running => Vec::new(),
        Some(c) if c.config.isolation == Isolation::Vm => c.state.pid.into_iter().collect(),
        Some(c) => {
            let table = ctx.engine()?.top(c.id())?;
            let column = table.titles.iter().position(|t| t == "PID");
            table
                .processes
                .iter()
                .filter_map(|row| row.get(column?)?.parse().ok())
                .collect()
        }
    };
    match a.format.as_str() {
        "json" => println!("{}", serde_json::to_string(&pids)?),
        "table" => {
            println!("PID");
            for pid in pids {
                println!("{pid}");
            }
        }
        other => bail!("invalid format option {other:?}: table or json"),
    }
    Ok(())
}
