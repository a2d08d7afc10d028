//! System commands: info, version, kernel, and the hidden monitor entry point.

use crate::args::{KernelCommand, MonitorArgs};
use crate::format;
use anyhow::Result;
use bulkhead_engine::{Engine, Layout, Status};
use bulkhead_vm::{AccelChoice, AccelKind};
use std::os::fd::FromRawFd;
use std::path::Path;

pub fn version() -> Result<i32> {
    println!("bulkhead version {}", env!("CARGO_PKG_VERSION"));
    Ok(0)
}

pub fn info(root: &Path) -> Result<i32> {
    let engine = Engine::open(root)?;
    let containers = engine.list(true)?;
    let running = containers
        .iter()
        .filter(|c| c.state.status == Status::Running)
        .count();
    let images = engine.store().list()?;
    println!("Root Dir: {}", root.display());
    println!("Store Size: {}", format::size(engine.store().total_size()?));
    println!("Images: {}", images.len());
    println!(
        "Containers: {} (running: {}, stopped: {})",
        containers.len(),
        running,
        containers.len() - running
    );
    let cgroups = match bulkhead_runtime::cgroups::version() {
        bulkhead_runtime::cgroups::CgroupVersion::V1 => "v1",
        bulkhead_runtime::cgroups::CgroupVersion::V2 => "v2",
    };
    println!("Cgroup Version: {cgroups}");
    let cache = bulkhead_vm::default_cache_dir();
    match bulkhead_vm::accel::detect(AccelChoice::Auto) {
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
    match bulkhead_vm::kernel::info(&cache) {
        Some(k) => println!("VM Kernel: {} ({})", k.vmlinux.display(), k.source_version),
        None => println!("VM Kernel: not built (run `bulkhead kernel build`)"),
    }
    Ok(0)
}

pub fn kernel(cmd: KernelCommand) -> Result<i32> {
    let cache = bulkhead_vm::default_cache_dir();
    let kernel = match cmd {
        KernelCommand::Build => bulkhead_vm::kernel::build(&cache, |line| eprintln!("{line}"))?,
        KernelCommand::Info => match bulkhead_vm::kernel::info(&cache) {
            Some(k) => k,
            None => anyhow::bail!(
                "no guest kernel in {}: run `bulkhead kernel build`",
                cache.display()
            ),
        },
    };
    println!("vmlinux: {}", kernel.vmlinux.display());
    println!("config: {}", kernel.config.display());
    println!("source: {}", kernel.source_version);
    println!("key: {}", kernel.key);
    Ok(0)
}

/// Fd on which `Engine::start` waits for the monitor's first report.
const READY_FD: i32 = 3;

pub fn monitor(root: &Path, a: MonitorArgs) -> Result<i32> {
    // SAFETY: fd 3 is the ready pipe that `Engine::start` placed there; we take ownership of it once.
    let ready = (nix::fcntl::fcntl(READY_FD, nix::fcntl::FcntlArg::F_GETFD).is_ok())
        .then(|| unsafe { std::fs::File::from_raw_fd(READY_FD) });
    Ok(bulkhead_engine::monitor::run(
        &Layout::new(root),
        &a.id,
        a.attach_first,
        ready,
    ))
}
