//! Docker-shaped `inspect` JSON, built from the engine's typed records.

use bulkhead_engine::{ContainerDetails, MountSpec, Status};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

pub fn container(d: &ContainerDetails) -> Value {
    let (cfg, st) = (&d.container.config, &d.container.state);
    let time = |t: Option<DateTime<Utc>>| {
        t.map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
    };
    json!({
        "Id": cfg.id,
        "Name": format!("/{}", cfg.name),
        "Created": cfg.created.to_rfc3339(),
        "Path": cfg.workload.process.args.first(),
        "Args": cfg.workload.process.args.get(1..).unwrap_or_default(),
        "State": {
            "Status": st.status.to_string(),
            "Running": st.status == Status::Running,
            "Pid": if st.status == Status::Running { st.pid.unwrap_or(0) } else { 0 },
            "ExitCode": st.exit_code.unwrap_or(0),
            "OOMKilled": st.oom_killed,
            "Error": st.error.clone().unwrap_or_default(),
            "StartedAt": time(st.started_at),
            "FinishedAt": time(st.finished_at),
            "Qemu": st.jail.as_ref().map(|j| json!({
                "Pid": j.pid,
                "Uid": j.uid,
                "Gid": j.gid,
                "Cgroup": j.cgroup,
                "Namespaces": j.namespaces,
                "Mounts": j.mounts,
                "Checks": j.checks,
                "Capabilities": j.capabilities,
            })),
        },
        "Image": cfg.image_id,
        "ImageName": cfg.image,
        "Isolation": cfg.isolation.to_string(),
        "RestartCount": st.restart_count,
        "LogPath": d.log_path,
        "HostConfig": {
            "Isolation": cfg.isolation.to_string(),
            "AutoRemove": cfg.auto_remove,
            "Privileged": cfg.workload.security.privileged,
            "ReadonlyRootfs": cfg.workload.readonly_rootfs,
            "CapAdd": cfg.workload.security.cap_add,
            "CapDrop": cfg.workload.security.cap_drop,
            "NetworkMode": match &cfg.workload.network {
                bulkhead_engine::NetworkMode::None => "none".to_string(),
                bulkhead_engine::NetworkMode::Host => "host".to_string(),
                bulkhead_engine::NetworkMode::Namespace(p) => format!("ns:{}", p.display()),
            },
            "ExtraHosts": cfg.extra_hosts,
            "Dns": cfg.dns,
            "DnsSearch": cfg.dns_search,
            "DnsOptions": cfg.dns_options,
            "Memory": cfg.workload.resources.memory_bytes.unwrap_or(0),
            "NanoCpus": cfg.workload.resources.cpus.map(|c| (c * 1e9) as u64).unwrap_or(0),
            "PidsLimit": cfg.workload.resources.pids_limit,
            "Mounts": cfg.workload.mounts,
            "UsernsMode": cfg.workload.userns,
            "VmMemoryMiB": d.vm.map(|v| v.memory_mib),
            "VmVcpus": d.vm.map(|v| v.vcpus),
            "VmAccel": cfg.vm.accel,
        },
        "Mounts": mounts(cfg),
        "Config": {
            "Hostname": cfg.workload.hostname,
            "User": cfg.workload.process.user,
            "Env": cfg.workload.process.env,
            "Cmd": cfg.workload.process.args,
            "WorkingDir": cfg.workload.process.cwd,
            "Tty": cfg.workload.process.terminal,
            "OpenStdin": cfg.open_stdin,
            "StopSignal": cfg.stop_signal,
            "StopTimeout": cfg.stop_timeout,
            "Image": cfg.image,
        },
    })
}

/// Docker's top-level `Mounts`: binds and volumes (a bind of a volume's `_data` is the volume), and
/// tmpfs mounts.
fn mounts(cfg: &bulkhead_engine::ContainerConfig) -> Vec<Value> {
    cfg.workload
        .mounts
        .iter()
        .map(|m| match m {
            MountSpec::Bind {
                source,
                target,
                readonly,
            } => {
                let volume = source
                    .parent()
                    .and_then(|p| p.file_name())
                    .and_then(|n| n.to_str())
                    .filter(|n| source.ends_with("_data") && cfg.volumes.iter().any(|v| v == n));
                json!({
                    "Type": if volume.is_some() { "volume" } else { "bind" },
                    "Name": volume,
                    "Source": source,
                    "Destination": target,
                    "RW": !readonly,
                })
            }
            MountSpec::Tmpfs { target, options } => json!({
                "Type": "tmpfs",
                "Source": "",
                "Destination": target,
                "RW": !options.split(',').any(|o| o.trim() == "ro"),
            }),
        })
        .collect()
}
