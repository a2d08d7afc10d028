//! `GET /info` and `GET /system/df`: the engine's `info` and usage in docker's shapes. `Isolation` is
//! the policy's default (`process` or `hyperv`), which is what a container gets without
//! `--isolation`.

use crate::routes::{images, volumes};
use bollard_stubs::models::{
    ContainerSummary, Runtime, SystemDataUsageResponse, SystemInfo, SystemInfoCgroupDriverEnum,
    SystemInfoCgroupVersionEnum, SystemInfoIsolationEnum, VolumeUsageData,
};
use bulkhead_engine::{CgroupVersion, Engine, EngineError, Isolation, Status};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

/// How images are stored and mounted: an erofs image of the layers, under an overlay in process mode
/// and as a read-only disk of the VM in VM mode.
const STORAGE_DRIVER: &str = "bulkhead-erofs";
const RUNTIME: &str = "bulkhead";

fn os_release_name() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
}

fn mem_total() -> Option<i64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

pub fn system_info(engine: &Engine) -> Result<SystemInfo, EngineError> {
    let info = engine.info()?;
    let uname = nix::sys::utsname::uname().ok();
    let text = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uname.as_ref().map(|u| f(u).to_string_lossy().into_owned())
    };
    let mut warnings = Vec::new();
    if let Err(why) = &info.accel {
        warnings.push(format!(
            "WARNING: hyperv (VM) isolation is unavailable: {why}"
        ));
    }
    if info.guest_kernel.is_none() {
        warnings.push(
            "WARNING: no guest kernel is built: hyperv containers need `bulkhead kernel build`"
                .to_string(),
        );
    }
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| RUNTIME.to_string());
    Ok(SystemInfo {
        containers: Some(info.containers as i64),
        containers_running: Some(info.running as i64),
        containers_paused: Some(0),
        containers_stopped: Some((info.containers - info.running) as i64),
        images: Some(info.images as i64),
        driver: Some(STORAGE_DRIVER.into()),
        driver_status: Some(vec![vec![
            "Store size".into(),
            format!("{} bytes", info.store_bytes),
        ]]),
        docker_root_dir: Some(info.root.display().to_string()),
        memory_limit: Some(true),
        swap_limit: Some(false),
        cpu_cfs_period: Some(true),
        cpu_cfs_quota: Some(true),
        pids_limit: Some(true),
        ipv4_forwarding: Some(true),
        debug: Some(false),
        system_time: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
        logging_driver: Some("json-file".into()),
        cgroup_driver: Some(SystemInfoCgroupDriverEnum::CGROUPFS),
        cgroup_version: Some(match info.cgroup_version {
            CgroupVersion::V1 => SystemInfoCgroupVersionEnum::_1,
            CgroupVersion::V2 => SystemInfoCgroupVersionEnum::_2,
        }),
        kernel_version: text(|u| u.release()),
        operating_system: os_release_name(),
        os_type: Some("linux".into()),
        architecture: text(|u| u.machine()),
        ncpu: std::thread::available_parallelism()
            .ok()
            .map(|n| n.get() as i64),
        mem_total: mem_total(),
        name: text(|u| u.nodename()),
        server_version: Some(env!("CARGO_PKG_VERSION").into()),
        runtimes: Some(HashMap::from([(
            RUNTIME.to_string(),
            Runtime {
                path: Some(exe),
                ..Default::default()
            },
        )])),
        default_runtime: Some(RUNTIME.into()),
        live_restore_enabled: Some(true),
        isolation: Some(match info.policy.default_isolation() {
            Isolation::Process => SystemInfoIsolationEnum::PROCESS,
            Isolation::Vm => SystemInfoIsolationEnum::HYPERV,
        }),
        security_options: Some(vec!["name=seccomp,profile=builtin".into()]),
        warnings: Some(warnings),
        ..Default::default()
    })
}

/// Bytes allocated to a file (the writable layers are sparse disk images).
fn allocated(path: &std::path::Path) -> i64 {
    std::fs::metadata(path).map_or(0, |m| (m.blocks() * 512) as i64)
}

pub fn data_usage(engine: &Engine) -> Result<SystemDataUsageResponse, EngineError> {
    let info = engine.info()?;
    let containers = engine
        .list(true)?
        .into_iter()
        .map(|c| ContainerSummary {
            id: Some(c.config.id.clone()),
            names: Some(vec![format!("/{}", c.config.name)]),
            image: Some(c.config.image.clone()),
            image_id: Some(c.config.image_id.clone()),
            created: Some(c.config.created.timestamp()),
            size_rw: Some(allocated(&c.paths.disk())),
            state: Some(c.state.status.to_string()),
            status: Some(match c.state.status {
                Status::Running => "Up".to_string(),
                Status::Created => "Created".to_string(),
                Status::Exited => format!("Exited ({})", c.state.exit_code.unwrap_or(0)),
            }),
            ..Default::default()
        })
        .collect();
    let used = volumes::users(engine)?;
    let volumes = engine
        .volume_list()?
        .iter()
        .map(|v| {
            let usage = VolumeUsageData {
                size: volumes::disk_usage(&v.mountpoint) as i64,
                ref_count: used.get(&v.name).copied().unwrap_or(0),
            };
            volumes::model(v, Some(usage))
        })
        .collect();
    Ok(SystemDataUsageResponse {
        layers_size: Some(info.store_bytes as i64),
        images: Some(images::summaries(engine)?),
        containers: Some(containers),
        volumes: Some(volumes),
        build_cache: Some(Vec::new()),
    })
}
