//! `top` and `stats`: docker's tables over the engine's process table and resource samples.

use crate::args::{StatsArgs, TopArgs};
use crate::format;
use anyhow::Result;
use bulkhead_engine::{ContainerStats, Engine, Status};
use std::io::{IsTerminal, Write};
use std::time::Duration;

pub fn top(engine: &Engine, a: TopArgs) -> Result<i32> {
    let table = engine.top(&a.container)?;
    let mut rows = vec![table.titles];
    rows.extend(table.processes);
    format::table(&mut std::io::stdout().lock(), &rows)?;
    Ok(0)
}

/// CPU % needs two samples: the container's CPU time over the machine's, between them.
const SAMPLE_GAP: Duration = Duration::from_secs(1);

pub fn stats(engine: &Engine, a: StatsArgs) -> Result<i32> {
    let keys: Vec<String> = if a.containers.is_empty() {
        engine
            .list(false)?
            .into_iter()
            .filter(|c| c.state.status == Status::Running)
            .map(|c| c.id().to_string())
            .collect()
    } else {
        a.containers.clone()
    };
    let mut before = sample(engine, &keys)?;
    loop {
        std::thread::sleep(SAMPLE_GAP);
        let now = sample(engine, &keys)?;
        let mut rows = vec![[
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "PIDS",
        ]
        .map(String::from)
        .to_vec()];
        for ((key, old), (_, new)) in before.iter().zip(&now) {
            let c = engine.find(key)?;
            rows.push(row(c.short_id(), &c.config.name, old, new));
        }
        let mut out = std::io::stdout().lock();
        if !a.no_stream && out.is_terminal() {
            // Each sample in place of the last, as docker stats does.
            write!(out, "\x1b[2J\x1b[H")?;
        }
        format::table(&mut out, &rows)?;
        out.flush()?;
        if a.no_stream {
            return Ok(0);
        }
        before = now;
    }
}

fn sample(engine: &Engine, keys: &[String]) -> Result<Vec<(String, ContainerStats)>> {
    keys.iter()
        .map(|k| Ok((k.clone(), engine.stats(k)?)))
        .collect()
}

fn row(id: &str, name: &str, old: &ContainerStats, new: &ContainerStats) -> Vec<String> {
    let (rx, tx) = new.networks.iter().fold((0u64, 0u64), |(rx, tx), n| {
        (rx.saturating_add(n.rx_bytes), tx.saturating_add(n.tx_bytes))
    });
    let mem_pct = if new.memory_limit > 0 {
        new.memory_usage as f64 / new.memory_limit as f64 * 100.0
    } else {
        0.0
    };
    vec![
        id.to_string(),
        name.to_string(),
        format!("{:.2}%", cpu_percent(old, new)),
        format!(
            "{} / {}",
            format::binary_size(new.memory_usage),
            format::binary_size(new.memory_limit)
        ),
        format!("{mem_pct:.2}%"),
        format!("{} / {}", format::size(rx), format::size(tx)),
        new.pids.to_string(),
    ]
}

/// docker's formula: the container's share of the machine's CPU time, times its CPUs.
fn cpu_percent(old: &ContainerStats, new: &ContainerStats) -> f64 {
    let cpu = new.cpu_total_ns.saturating_sub(old.cpu_total_ns) as f64;
    let system = new.system_cpu_ns.saturating_sub(old.system_cpu_ns) as f64;
    if system > 0.0 {
        cpu / system * new.online_cpus as f64 * 100.0
    } else {
        0.0
    }
}
