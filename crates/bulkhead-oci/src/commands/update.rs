//! `update`: live resource limits. bulkhead applies memory, CPU quota and pids limits (the engine's
//! `Resources`, in both isolation modes); flags for others are refused, and in a `--resources` file
//! (as containerd sends the whole `LinuxResources`) the other fields are left as they are.

use super::Ctx;
use anyhow::{bail, Context, Result};
use bulkhead_engine::Resources;
use oci_spec::runtime::LinuxResources;

pub fn update(ctx: &Ctx, a: &liboci_cli::Update) -> Result<()> {
    let refused = [
        (a.blkio_weight.is_some(), "--blkio-weight"),
        (a.cpu_rt_period.is_some(), "--cpu-rt-period"),
        (a.cpu_rt_runtime.is_some(), "--cpu-rt-runtime"),
        (a.cpu_share.is_some(), "--cpu-share"),
        (a.cpuset_cpus.is_some(), "--cpuset-cpus"),
        (a.cpuset_mems.is_some(), "--cpuset-mems"),
        (a.memory_reservation.is_some(), "--memory-reservation"),
        (a.memory_swap.is_some(), "--memory-swap"),
        (a.l3_cache_schema.is_some(), "--l3-cache-schema"),
        (a.mem_bw_schema.is_some(), "--mem-bw-schema"),
    ];
    if let Some((_, flag)) = refused.iter().find(|(set, _)| *set) {
        bail!("update {flag} is not supported by bulkhead-runc (memory, CPU quota and pids are)");
    }
    let mut resources = match &a.resources {
        Some(path) => from_file(path)?,
        None => Resources::default(),
    };
    if let Some(m) = a.memory {
        resources.memory_bytes = Some(m);
    }
    if let Some(quota) = a.cpu_quota {
        resources.cpus = Some(quota as f64 / a.cpu_period.unwrap_or(100_000).max(1) as f64);
    }
    if let Some(p) = a.pids_limit {
        resources.pids_limit = Some(p);
    }
    let loaded = ctx.load(&a.container_id)?;
    let Some(c) = &loaded.container else {
        bail!("a pod sandbox has no resources of its own in bulkhead");
    };
    ctx.engine()?.update(c.id(), resources, None, false)?;
    Ok(())
}

/// `-r FILE` (`-` for stdin): the runtime spec's `linux.resources`.
fn from_file(path: &std::path::Path) -> Result<Resources> {
    let bytes = if path == std::path::Path::new("-") {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
        b
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
    };
    let r: LinuxResources = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a runtime-spec linux.resources", path.display()))?;
    let memory_bytes = r
        .memory()
        .as_ref()
        .and_then(|m| m.limit())
        .filter(|l| *l > 0)
        .map(|l| l as u64);
    let cpus = r.cpu().as_ref().and_then(|c| {
        let quota = c.quota().filter(|q| *q > 0)?;
        Some(quota as f64 / c.period().unwrap_or(100_000).max(1) as f64)
    });
    let pids_limit = r.pids().as_ref().map(|p| p.limit());
    Ok(Resources {
        memory_bytes,
        cpus,
        pids_limit,
    })
}
