//! The engine's container records as docker's JSON: the inspect object and the list summary.
//! docker-compose reads `Config.Labels`, `State`, `HostConfig` and `NetworkSettings.Networks` of these
//! to decide what to create, start or recreate, so they follow dockerd's shapes field for field where
//! bulkhead has the fact, and leave out what it does not.

use bollard_stubs::models::{
    ContainerConfig, ContainerInspectResponse, ContainerState, ContainerStateStatusEnum,
    ContainerSummary, ContainerSummaryHostConfig, ContainerSummaryNetworkSettings,
    EndpointSettings, HostConfig, HostConfigIsolationEnum, HostConfigLogConfig, MountPoint,
    MountPointTypeEnum, NetworkSettings, Port, PortBinding, PortMap, PortTypeEnum,
    ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};
use bulkhead_engine::{
    Container, ContainerConfig as Record, ContainerDetails, Isolation, MountSpec, NetworkMode,
    Protocol, Status,
};
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

/// Network ids to names, to name a stopped container's networks (a running one's state has them).
pub type NetworkNames = HashMap<String, String>;

/// Go's zero time, which docker prints for a time that has not happened.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| ZERO_TIME.into())
}

/// The image id as docker spells it (`sha256:...`).
pub fn image_id(cfg: &Record) -> String {
    if cfg.image_id.starts_with("sha256:") {
        cfg.image_id.clone()
    } else {
        format!("sha256:{}", cfg.image_id)
    }
}

/// The bytes the container's writable disk occupies on the host (docker's `SizeRw`).
pub fn size_rw(c: &Container) -> Option<i64> {
    std::fs::metadata(c.paths.disk())
        .ok()
        .map(|m| (m.blocks() * 512) as i64)
}

pub fn inspect(d: &ContainerDetails, names: &NetworkNames, size: bool) -> ContainerInspectResponse {
    let c = &d.container;
    let (cfg, st) = (&c.config, &c.state);
    let running = st.status == Status::Running;
    let args = &cfg.workload.process.args;
    ContainerInspectResponse {
        id: Some(cfg.id.clone()),
        created: Some(time(Some(cfg.created))),
        path: args.first().cloned(),
        args: Some(args.get(1..).unwrap_or_default().to_vec()),
        state: Some(ContainerState {
            status: Some(match st.status {
                Status::Created => ContainerStateStatusEnum::CREATED,
                Status::Running if st.paused => ContainerStateStatusEnum::PAUSED,
                Status::Running => ContainerStateStatusEnum::RUNNING,
                Status::Exited => ContainerStateStatusEnum::EXITED,
            }),
            running: Some(running),
            paused: Some(st.paused),
            restarting: Some(false),
            oom_killed: Some(st.oom_killed),
            dead: Some(false),
            pid: Some(if running {
                st.pid.unwrap_or(0) as i64
            } else {
                0
            }),
            exit_code: Some(st.exit_code.unwrap_or(0) as i64),
            error: Some(st.error.clone().unwrap_or_default()),
            started_at: Some(time(st.started_at)),
            finished_at: Some(time(st.finished_at)),
            health: None,
        }),
        image: Some(image_id(cfg)),
        resolv_conf_path: Some(String::new()),
        hostname_path: Some(String::new()),
        hosts_path: Some(String::new()),
        log_path: Some(d.log_path.display().to_string()),
        name: Some(format!("/{}", cfg.name)),
        restart_count: Some(st.restart_count as i64),
        driver: Some("bulkhead".into()),
        platform: Some("linux".into()),
        mount_label: Some(String::new()),
        process_label: Some(String::new()),
        app_armor_profile: Some(String::new()),
        exec_ids: None,
        host_config: Some(host_config(cfg)),
        graph_driver: None,
        size_rw: if size { size_rw(c) } else { None },
        size_root_fs: None,
        mounts: Some(mounts(cfg)),
        config: Some(config(cfg)),
        network_settings: Some(network_settings(c, names)),
    }
}

fn network_mode(cfg: &Record) -> String {
    if !cfg.network_mode.is_empty() {
        return cfg.network_mode.clone();
    }
    match &cfg.workload.network {
        NetworkMode::None => "none".into(),
        NetworkMode::Host => "host".into(),
        NetworkMode::Namespace(p) => format!("ns:{}", p.display()),
    }
}

fn host_config(cfg: &Record) -> HostConfig {
    let w = &cfg.workload;
    let resources = &w.resources;
    let mut binds = Vec::new();
    let mut tmpfs = HashMap::new();
    for m in &w.mounts {
        match m {
            MountSpec::Bind {
                source,
                target,
                readonly,
            } => {
                let source = match cfg.volume_of(source) {
                    Some(v) if is_anonymous(v) => continue,
                    Some(v) => v.to_string(),
                    None => source.display().to_string(),
                };
                let ro = if *readonly { ":ro" } else { "" };
                binds.push(format!("{source}:{target}{ro}"));
            }
            MountSpec::Tmpfs { target, options } => {
                tmpfs.insert(target.clone(), options.clone());
            }
        }
    }
    let mut security_opt = Vec::new();
    // The policy's serde name: the engine's facade does not name the runtime's type.
    let seccomp = serde_json::to_value(&w.security.seccomp).unwrap_or_default();
    if seccomp == "Unconfined" && !w.security.privileged {
        security_opt.push("seccomp=unconfined".to_string());
    } else if seccomp.is_object() {
        security_opt.push("seccomp=<profile>".to_string());
    }
    if w.security.no_new_privileges {
        security_opt.push("no-new-privileges".to_string());
    }
    HostConfig {
        memory: Some(resources.memory_bytes.unwrap_or(0) as i64),
        nano_cpus: Some(resources.cpus.map(|c| (c * 1e9) as i64).unwrap_or(0)),
        pids_limit: resources.pids_limit,
        ulimits: Some(
            w.process
                .rlimits
                .iter()
                .map(|r| ResourcesUlimits {
                    name: Some(r.kind.clone()),
                    soft: Some(limit(r.soft)),
                    hard: Some(limit(r.hard)),
                })
                .collect(),
        ),
        binds: Some(binds),
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::new()),
        }),
        network_mode: Some(network_mode(cfg)),
        port_bindings: Some(port_map(cfg.ports.iter().map(|p| {
            (
                p.container_port,
                p.protocol,
                p.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                p.host_port.map(|p| p.to_string()).unwrap_or_default(),
            )
        }))),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: Some(0),
        }),
        auto_remove: Some(cfg.auto_remove),
        cap_add: Some(w.security.cap_add.clone()),
        cap_drop: Some(w.security.cap_drop.clone()),
        dns: Some(cfg.dns.iter().map(|d| d.to_string()).collect()),
        dns_options: Some(cfg.dns_options.clone()),
        dns_search: Some(cfg.dns_search.clone()),
        extra_hosts: Some(cfg.extra_hosts.clone()),
        privileged: Some(w.security.privileged),
        readonly_rootfs: Some(w.readonly_rootfs),
        security_opt: Some(security_opt),
        tmpfs: Some(tmpfs),
        userns_mode: Some(
            w.userns
                .map(|m| format!("{}:{}:{}", m.host_uid, m.host_gid, m.size))
                .unwrap_or_default(),
        ),
        isolation: Some(match cfg.isolation {
            Isolation::Process => HostConfigIsolationEnum::PROCESS,
            Isolation::Vm => HostConfigIsolationEnum::HYPERV,
        }),
        ..HostConfig::default()
    }
}

/// A ulimit as docker shows it: -1 for unlimited.
fn limit(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(-1)
}

/// Anonymous volumes are named by 64 hex digits, as docker's.
fn is_anonymous(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The volume a bind's source is the content of (`volumes/<name>/_data`), if it is one.
fn config(cfg: &Record) -> ContainerConfig {
    let p = &cfg.workload.process;
    let exposed: HashMap<String, HashMap<(), ()>> = cfg
        .ports
        .iter()
        .map(|port| {
            (
                format!("{}/{}", port.container_port, port.protocol),
                HashMap::new(),
            )
        })
        .collect();
    ContainerConfig {
        hostname: Some(cfg.workload.hostname.clone()),
        domainname: Some(String::new()),
        user: Some(p.user.clone()),
        attach_stdin: Some(false),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        tty: Some(p.terminal),
        open_stdin: Some(cfg.open_stdin),
        stdin_once: Some(false),
        env: Some(p.env.clone()),
        cmd: Some(p.args.clone()),
        image: Some(cfg.image.clone()),
        working_dir: Some(p.cwd.clone()),
        entrypoint: None,
        labels: Some(cfg.labels.clone().into_iter().collect()),
        stop_signal: Some(cfg.stop_signal.clone()),
        stop_timeout: Some(cfg.stop_timeout as i64),
        ..ContainerConfig::default()
    }
}

/// `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}` from (container port, protocol, host ip,
/// host port).
fn port_map(ports: impl Iterator<Item = (u16, Protocol, String, String)>) -> PortMap {
    let mut map = PortMap::new();
    for (port, proto, ip, host_port) in ports {
        map.entry(format!("{port}/{proto}"))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(ip),
                host_port: Some(host_port),
            });
    }
    map
}

/// Docker's top-level `Mounts`: binds, volumes (a bind of a volume's `_data`) and tmpfs mounts.
fn mounts(cfg: &Record) -> Vec<MountPoint> {
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
                MountPoint {
                    typ: Some(if volume.is_some() {
                        MountPointTypeEnum::VOLUME
                    } else {
                        MountPointTypeEnum::BIND
                    }),
                    name: volume.map(String::from),
                    source: Some(source.display().to_string()),
                    destination: Some(target.clone()),
                    driver: volume.map(|_| "local".to_string()),
                    mode: Some(String::new()),
                    rw: Some(!readonly),
                    propagation: Some(if volume.is_some() { "" } else { "rprivate" }.into()),
                }
            }
            MountSpec::Tmpfs { target, options } => MountPoint {
                typ: Some(MountPointTypeEnum::TMPFS),
                name: None,
                source: Some(String::new()),
                destination: Some(target.clone()),
                driver: None,
                mode: Some(options.clone()),
                rw: Some(!options.split(',').any(|o| o.trim() == "ro")),
                propagation: Some(String::new()),
            },
        })
        .collect()
}

/// Each network the container is on, by name: with its address while it runs, and with its aliases
/// always (a stopped container is still "on" its networks, as docker shows it). The container's short
/// id is among the aliases on user-defined networks, as dockerd's API before 1.45 showed it:
/// docker-compose 1.29 looks for it to tell a container it connected itself.
fn endpoints(c: &Container, names: &NetworkNames) -> HashMap<String, EndpointSettings> {
    let (cfg, st) = (&c.config, &c.state);
    let mode = network_mode(cfg);
    if cfg.networks.is_empty() {
        return if matches!(mode.as_str(), "none" | "host") {
            HashMap::from([(mode, EndpointSettings::default())])
        } else {
            HashMap::new()
        };
    }
    let running = st.status == Status::Running;
    let interfaces = st
        .network
        .as_ref()
        .filter(|_| running)
        .map(|n| n.interfaces.as_slice())
        .unwrap_or_default();
    cfg.networks
        .iter()
        .map(|attachment| {
            let iface = interfaces
                .iter()
                .find(|i| i.network_id == attachment.network_id);
            let name = iface
                .map(|i| i.network_name.clone())
                .or_else(|| names.get(&attachment.network_id).cloned())
                .unwrap_or_else(|| attachment.network_id.clone());
            let mut aliases = attachment.aliases.clone();
            if name != "bridge" {
                aliases.push(cfg.id[..12].to_string());
            }
            let dns_names = (name != "bridge").then(|| {
                std::iter::once(cfg.name.clone())
                    .chain(aliases.iter().cloned())
                    .collect()
            });
            let settings = EndpointSettings {
                network_id: Some(attachment.network_id.clone()),
                endpoint_id: Some(String::new()),
                aliases: Some(aliases),
                ip_address: Some(iface.map(|i| i.ipv4.to_string()).unwrap_or_default()),
                ip_prefix_len: Some(iface.map(|i| i.prefix as i64).unwrap_or(0)),
                gateway: Some(iface.map(|i| i.gateway.to_string()).unwrap_or_default()),
                mac_address: Some(iface.map(|i| i.mac.clone()).unwrap_or_default()),
                ipv6_gateway: Some(String::new()),
                global_ipv6_address: Some(String::new()),
                global_ipv6_prefix_len: Some(0),
                dns_names,
                ..EndpointSettings::default()
            };
            (name, settings)
        })
        .collect()
}

fn network_settings(c: &Container, names: &NetworkNames) -> NetworkSettings {
    let (cfg, st) = (&c.config, &c.state);
    let running = st.status == Status::Running;
    let networks = endpoints(c, names);
    let default = networks.get("bridge").filter(|_| running);
    let published = st
        .network
        .as_ref()
        .filter(|_| running)
        .map(|n| n.ports.as_slice())
        .unwrap_or_default();
    let field =
        |f: fn(&EndpointSettings) -> Option<String>| Some(default.and_then(f).unwrap_or_default());
    NetworkSettings {
        bridge: Some(String::new()),
        sandbox_id: Some(String::new()),
        sandbox_key: Some(if running && !cfg.networks.is_empty() {
            bulkhead_engine::netns_path(&cfg.id).display().to_string()
        } else {
            String::new()
        }),
        ports: Some(port_map(published.iter().map(|p| {
            (
                p.container_port,
                p.protocol,
                p.host_ip.to_string(),
                p.host_port.to_string(),
            )
        }))),
        ip_address: field(|e| e.ip_address.clone()),
        ip_prefix_len: Some(default.and_then(|e| e.ip_prefix_len).unwrap_or(0)),
        gateway: field(|e| e.gateway.clone()),
        mac_address: field(|e| e.mac_address.clone()),
        endpoint_id: Some(String::new()),
        networks: Some(networks),
        ..NetworkSettings::default()
    }
}

/// One row of `GET /containers/json`.
pub fn summary(c: &Container, names: &NetworkNames, size: bool) -> ContainerSummary {
    let (cfg, st) = (&c.config, &c.state);
    let running = st.status == Status::Running;
    let published = st
        .network
        .as_ref()
        .filter(|_| running)
        .map(|n| n.ports.as_slice())
        .unwrap_or_default();
    ContainerSummary {
        id: Some(cfg.id.clone()),
        names: Some(vec![format!("/{}", cfg.name)]),
        image: Some(cfg.image.clone()),
        image_id: Some(image_id(cfg)),
        command: Some(cfg.workload.process.args.join(" ")),
        created: Some(cfg.created.timestamp()),
        ports: Some(
            published
                .iter()
                .map(|p| Port {
                    ip: Some(p.host_ip.to_string()),
                    private_port: p.container_port,
                    public_port: Some(p.host_port),
                    typ: Some(match p.protocol {
                        Protocol::Tcp => PortTypeEnum::TCP,
                        Protocol::Udp => PortTypeEnum::UDP,
                    }),
                })
                .collect(),
        ),
        size_rw: if size { size_rw(c) } else { None },
        size_root_fs: None,
        labels: Some(cfg.labels.clone().into_iter().collect()),
        state: Some(if st.paused {
            "paused".into()
        } else {
            st.status.to_string()
        }),
        status: Some(status_line(c, Utc::now())),
        host_config: Some(ContainerSummaryHostConfig {
            network_mode: Some(network_mode(cfg)),
            annotations: None,
        }),
        network_settings: Some(ContainerSummaryNetworkSettings {
            networks: Some(endpoints(c, names)),
        }),
        mounts: Some(mounts(cfg)),
    }
}

/// docker ps's STATUS column: `Up 5 minutes`, `Exited (3) 2 seconds ago`, `Created`.
fn status_line(c: &Container, now: DateTime<Utc>) -> String {
    let st = &c.state;
    let since = |t: Option<DateTime<Utc>>| human_duration(now - t.unwrap_or(now));
    match st.status {
        Status::Created => "Created".into(),
        Status::Running if st.paused => format!("Up {} (Paused)", since(st.started_at)),
        Status::Running => format!("Up {}", since(st.started_at)),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            st.exit_code.unwrap_or(0),
            since(st.finished_at)
        ),
    }
}

/// docker's (go-units) HumanDuration.
fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    let minutes = d.num_minutes();
    let hours = (d.num_milliseconds() as f64 / 3_600_000.0 + 0.5) as i64;
    match () {
        _ if seconds < 1 => "Less than a second".into(),
        _ if seconds == 1 => "1 second".into(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_docker_prints_them() {
        let s = chrono::Duration::seconds;
        assert_eq!(human_duration(s(0)), "Less than a second");
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(59)), "59 seconds");
        assert_eq!(human_duration(s(90)), "About a minute");
        assert_eq!(human_duration(s(600)), "10 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5 * 3600)), "5 hours");
        assert_eq!(human_duration(s(3 * 86400)), "3 days");
    }
}
