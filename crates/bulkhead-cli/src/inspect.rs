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
            "Status": if st.paused { "paused".to_string() } else { st.status.to_string() },
            "Running": st.status == Status::Running,
            "Paused": st.paused,
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
            "NetworkMode": if !cfg.network_mode.is_empty() {
                cfg.network_mode.clone()
            } else {
                match &cfg.workload.network {
                    bulkhead_engine::NetworkMode::None => "none".to_string(),
                    bulkhead_engine::NetworkMode::Host => "host".to_string(),
                    bulkhead_engine::NetworkMode::Namespace(p) => format!("ns:{}", p.display()),
                }
            },
            "PortBindings": port_bindings(cfg.ports.iter().map(|p| {
                (p.container_port, p.protocol.to_string(),
                 p.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                 p.host_port.map(|p| p.to_string()).unwrap_or_default())
            })),
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
        "NetworkSettings": network_settings(d),
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
            "Labels": cfg.labels,
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
                let volume = cfg.volume_of(source);
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

/// `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}` from (container port, protocol, host ip,
/// host port).
fn port_bindings(ports: impl Iterator<Item = (u16, String, String, String)>) -> Value {
    let mut map = serde_json::Map::new();
    for (port, proto, ip, host_port) in ports {
        let entry = map
            .entry(format!("{port}/{proto}"))
            .or_insert_with(|| json!([]));
        if let Value::Array(list) = entry {
            list.push(json!({ "HostIp": ip, "HostPort": host_port }));
        }
    }
    Value::Object(map)
}

/// Docker's NetworkSettings of a running container (empty values when it is not running); the
/// top-level address fields are the default `bridge` network's, as in docker.
fn network_settings(d: &ContainerDetails) -> Value {
    let (cfg, st) = (&d.container.config, &d.container.state);
    let running = st.status == Status::Running;
    let net = st.network.as_ref().filter(|_| running);
    let interfaces = net.map(|n| n.interfaces.as_slice()).unwrap_or_default();
    let default = interfaces.iter().find(|i| i.network_name == "bridge");
    let networks: serde_json::Map<String, Value> = interfaces
        .iter()
        .map(|i| {
            let aliases = cfg
                .networks
                .iter()
                .find(|a| a.network_id == i.network_id)
                .map(|a| a.aliases.clone())
                .unwrap_or_default();
            (
                i.network_name.clone(),
                json!({
                    "NetworkID": i.network_id,
                    "IPAddress": i.ipv4.to_string(),
                    "IPPrefixLen": i.prefix,
                    "Gateway": i.gateway.to_string(),
                    "MacAddress": i.mac,
                    "Aliases": aliases,
                }),
            )
        })
        .collect();
    let ports = port_bindings(net.into_iter().flat_map(|n| &n.ports).map(|p| {
        (
            p.container_port,
            p.protocol.to_string(),
            p.host_ip.to_string(),
            p.host_port.to_string(),
        )
    }));
    json!({
        "SandboxKey": if running && !cfg.networks.is_empty() {
            bulkhead_engine::netns_path(&cfg.id).display().to_string()
        } else {
            String::new()
        },
        "IPAddress": default.map(|i| i.ipv4.to_string()).unwrap_or_default(),
        "IPPrefixLen": default.map(|i| i.prefix).unwrap_or(0),
        "Gateway": default.map(|i| i.gateway.to_string()).unwrap_or_default(),
        "MacAddress": default.map(|i| i.mac.clone()).unwrap_or_default(),
        "Ports": ports,
        "Networks": networks,
    })
}
