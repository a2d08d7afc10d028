//! System commands: info, version, kernel.

use crate::args::KernelCommand;
use crate::format;
use anyhow::Result;
use bulkhead_engine::{AccelKind, CgroupVersion, Engine, Isolation, Kernel};

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
