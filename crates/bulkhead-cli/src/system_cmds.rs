//! System commands: info, version, kernel.

use crate::args::{EventsArgs, KernelCommand};
use crate::format;
use anyhow::{bail, Result};
use bulkhead_engine::{AccelKind, CgroupVersion, Engine, Event, EventKind, Isolation, Kernel};
use chrono::{SecondsFormat, Utc};
use serde_json::json;
use std::io::Write;

pub fn version() -> Result<i32> {
    println!("bulkhead version {}", env!("CARGO_PKG_VERSION"));
    Ok(0)
}

pub fn info(engine: &Engine) -> Result<i32> {
    let info = engine.info()?;
    println!("Root Dir: {}", info.root.display());
    println!("Store Size: {}", format::size(info.store_bytes));
    println!("Images: {}", info.images);
    println!(
        "Containers: {} (running: {}, stopped: {})",
        info.containers,
        info.running,
        info.containers - info.running
    );
    let cgroups = match info.cgroup_version {
        CgroupVersion::V1 => "v1",
        CgroupVersion::V2 => "v2",
    };
    println!("Cgroup Version: {cgroups}");
    match &info.accel {
        Ok(a) => println!(
            "VM Accelerator: {} ({})",
            a.kind.as_str(),
            if a.kind == AccelKind::Kvm {
                "hardware virtualization"
            } else {
                &a.reason
            }
        ),
        Err(e) => println!("VM Accelerator: unavailable ({e})"),
    }
    match &info.guest_kernel {
        Some(k) => println!("VM Kernel: {} ({})", k.vmlinux.display(), k.source_version),
        None => println!("VM Kernel: not built (run `bulkhead kernel build`)"),
    }
    let policy = &info.policy;
    println!("Default Isolation: {}", policy.default_isolation());
    match &policy.source {
        Some(path) => println!("Isolation Policy: {}", path.display()),
        None => println!(
            "Isolation Policy: none (write {} to set one)",
            bulkhead_engine::policy_path(&info.root).display()
        ),
    }
    for pattern in &policy.rules.force_vm {
        println!(" Force {}: {pattern}", Isolation::Vm);
    }
    if let Some(allowed) = &policy.rules.process_allowed {
        println!(" {} only for: {}", Isolation::Process, allowed.join(", "));
    }
    Ok(0)
}

pub fn kernel(cmd: KernelCommand) -> Result<i32> {
    let kernel: Kernel = match cmd {
        KernelCommand::Build => bulkhead_engine::build_guest_kernel(|line| eprintln!("{line}"))?,
        KernelCommand::Info => match bulkhead_engine::guest_kernel() {
            Some(k) => k,
            None => anyhow::bail!("no guest kernel is built: run `bulkhead kernel build`"),
        },
    };
    println!("vmlinux: {}", kernel.vmlinux.display());
    println!("config: {}", kernel.config.display());
    println!("source: {}", kernel.source_version);
    println!("key: {}", kernel.key);
    Ok(0)
}

/// `events`: past events in range, then (without `--until`, or until it passes) new ones as they come.
pub fn events(engine: &Engine, a: EventsArgs) -> Result<i32> {
    let as_json = match a.format.as_deref() {
        None => false,
        Some("json" | "{{json .}}") => true,
        Some(other) => bail!("unsupported --format {other} (only json)"),
    };
    let follow = a.until.is_none_or(|u| u > Utc::now());
    let since = a.since.or_else(|| a.until.is_none().then(Utc::now));
    let mut out = std::io::stdout().lock();
    engine.events(since, a.until, follow, |e| {
        if as_json {
            writeln!(out, "{}", event_json(e))?;
        } else {
            writeln!(out, "{}", event_line(e))?;
        }
        out.flush()
    })?;
    Ok(0)
}

/// Docker's text line: `TIME TYPE ACTION ID (k=v, ...)`.
fn event_line(e: &Event) -> String {
    let attributes: Vec<String> = e
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "{} {} {} {} ({})",
        e.time.to_rfc3339_opts(SecondsFormat::Nanos, true),
        kind(e.kind),
        e.action,
        e.id,
        attributes.join(", ")
    )
}

/// Docker's events message (`docker events --format json`).
fn event_json(e: &Event) -> serde_json::Value {
    let mut v = json!({
        "Type": kind(e.kind),
        "Action": e.action,
        "Actor": { "ID": e.id, "Attributes": e.attributes },
        "scope": "local",
        "time": e.time.timestamp(),
        "timeNano": e.time.timestamp_nanos_opt().unwrap_or(0),
    });
    // The fields of docker's older format, which it still sends for containers.
    if e.kind == EventKind::Container {
        v["status"] = json!(e.action);
        v["id"] = json!(e.id);
        v["from"] = json!(e.attributes.get("image"));
    }
    v
}

fn kind(k: EventKind) -> &'static str {
    match k {
        EventKind::Container => "container",
        EventKind::Image => "image",
        EventKind::Network => "network",
        EventKind::Volume => "volume",
    }
}
