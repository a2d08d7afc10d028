//! `POST /containers/create`: docker's create body (its `Config` with `HostConfig` and
//! `NetworkingConfig` beside it) as the engine's `CreateOptions`. Every field bulkhead implements is
//! mapped; a field Docker defines but bulkhead does not implement is refused by name when it asks for
//! anything (the docker CLI sends every field, most of them empty), so a request is never half-honoured.

use crate::error::ApiError;
use bollard_stubs::models::{
    ContainerConfig, EndpointSettings, HostConfig, Mount, MountTypeEnum, NetworkingConfig,
    RestartPolicyNameEnum,
};
use bulkhead_engine::{CreateOptions, Isolation};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `Config` fields that become create options, or only describe how the client attaches.
const CONFIG_MAPPED: &[&str] = &[
    "Hostname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "NetworkDisabled",
    "Labels",
    "StopSignal",
    "StopTimeout",
];

/// `HostConfig` fields that become create options (`ConsoleSize` and `ContainerIDFile` are the
/// client's: the attach resizes the terminal, the CLI writes the id file).
const HOST_MAPPED: &[&str] = &[
    "Memory",
    "NanoCpus",
    "CpuQuota",
    "CpuPeriod",
    "PidsLimit",
    "Ulimits",
    "Binds",
    "ContainerIDFile",
    "LogConfig",
    "NetworkMode",
    "PortBindings",
    "RestartPolicy",
    "AutoRemove",
    "Mounts",
    "ConsoleSize",
    "CapAdd",
    "CapDrop",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ExtraHosts",
    "Privileged",
    "PublishAllPorts",
    "ReadonlyRootfs",
    "SecurityOpt",
    "Tmpfs",
    "UsernsMode",
    "Isolation",
];

/// `EndpointsConfig` entry fields bulkhead honours (`NetworkID` names the network it is for).
const ENDPOINT_MAPPED: &[&str] = &["Aliases", "NetworkID"];

/// Docker's CPU period when only a quota is given, in microseconds.
const DEFAULT_CPU_PERIOD: i64 = 100_000;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// The create body and the `name` query parameter as create options. Nothing is pulled: a missing
/// image is the engine's not-found error, on which the docker CLI pulls and retries.
pub fn options(body: &[u8], name: Option<&str>) -> Result<CreateOptions, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("malformed JSON request body: {e}")))?;
    let Value::Object(mut raw_config) = value else {
        return Err(bad("the create request body must be a JSON object"));
    };
    let mut raw_host = take_object(&mut raw_config, "HostConfig")?;
    let mut raw_networking = take_object(&mut raw_config, "NetworkingConfig")?;
    drop_newer_fields(&mut raw_networking)?;
    let isolation = isolation(&mut raw_host)?;
    let config: ContainerConfig = strict(&raw_config, "")?;
    let host: HostConfig = strict(&raw_host, "HostConfig.")?;
    let networking: NetworkingConfig = strict(&raw_networking, "NetworkingConfig.")?;
    refuse_unsupported("Config", &raw_config, CONFIG_MAPPED)?;
    refuse_unsupported("HostConfig", &raw_host, HOST_MAPPED)?;
    check_log_and_restart(&host)?;

    let image = config.image.clone().filter(|i| !i.is_empty());
    let mut opts = CreateOptions {
        image: image.ok_or_else(|| bad("Config.Image is required"))?,
        name: name
            .map(|n| n.trim_start_matches('/'))
            .filter(|n| !n.is_empty())
            .map(String::from),
        isolation,
        pull: None,
        ..CreateOptions::default()
    };
    map_config(&config, &mut opts)?;
    map_host(&host, &mut opts)?;
    map_anonymous_volumes(&config, &host, &mut opts);
    map_ports(&config, &host, &mut opts);
    map_network(&config, &host, &networking, &raw_networking, &mut opts)?;
    Ok(opts)
}

/// Removes `key` from `object` as an object of its own (absent or `null`: empty).
fn take_object(object: &mut Map<String, Value>, key: &str) -> Result<Map<String, Value>, ApiError> {
    match object.remove(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(o)) => Ok(o),
        Some(other) => Err(bad(format!("{key} must be a JSON object, not {other}"))),
    }
}

/// Endpoint fields of API versions after the models' 1.47 that the docker CLI sends (empty) whatever
/// version it speaks; set, they are refused as unsupported.
const NEWER_ENDPOINT_FIELDS: &[&str] = &["GwPriority"];

fn drop_newer_fields(networking: &mut Map<String, Value>) -> Result<(), ApiError> {
    let Some(Value::Object(endpoints)) = networking.get_mut("EndpointsConfig") else {
        return Ok(());
    };
    for (name, entry) in endpoints.iter_mut() {
        let Value::Object(entry) = entry else {
            continue;
        };
        for field in NEWER_ENDPOINT_FIELDS {
            match entry.remove(*field) {
                Some(v) if !is_zero(&v) => {
                    return Err(bad(format!(
                    "NetworkingConfig.EndpointsConfig.{name}.{field} is not supported by bulkhead"
                )))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Deserializes `raw` as `T`, refusing fields `T` does not define by their path.
pub fn strict<T: DeserializeOwned>(raw: &Map<String, Value>, prefix: &str) -> Result<T, ApiError> {
    let mut unknown = Vec::new();
    let value = Value::Object(raw.clone());
    let parsed = serde_ignored::deserialize(value, |path| {
        unknown.push(format!("{prefix}{path}"));
    })
    .map_err(|e| bad(format!("malformed JSON request body: {prefix}{e}")))?;
    if !unknown.is_empty() {
        return Err(bad(format!(
            "unknown field(s) in the request body: {}",
            unknown.join(", ")
        )));
    }
    Ok(parsed)
}

/// `HostConfig.Isolation`, case-insensitive as docker reads it: `process`, `hyperv` (a VM), or
/// `default`/empty for the isolation policy to decide. The raw value is lower-cased in place so the
/// typed model (which is case-sensitive) reads it.
fn isolation(host: &mut Map<String, Value>) -> Result<Option<Isolation>, ApiError> {
    let Some(value) = host.get_mut("Isolation") else {
        return Ok(None);
    };
    let Value::String(given) = value else {
        return match value {
            Value::Null => Ok(None),
            other => Err(bad(format!(
                "HostConfig.Isolation must be a string, not {other}"
            ))),
        };
    };
    let lower = given.to_ascii_lowercase();
    let chosen = match lower.as_str() {
        "" | "default" => None,
        "process" => Some(Isolation::Process),
        "hyperv" => Some(Isolation::Vm),
        _ => {
            return Err(bad(format!(
                "invalid isolation \"{given}\": bulkhead supports process, hyperv (a VM) or default"
            )))
        }
    };
    *given = lower;
    Ok(chosen)
}

/// Refuses the first field outside `mapped` that asks for something (see [`is_default`]).
pub fn refuse_unsupported(
    section: &str,
    raw: &Map<String, Value>,
    mapped: &[&str],
) -> Result<(), ApiError> {
    match raw
        .iter()
        .find(|(k, v)| !mapped.contains(&k.as_str()) && !is_default(k, v))
    {
        Some((k, v)) => Err(bad(format!(
            "{section}.{k} is not supported by bulkhead (it was set to {v})"
        ))),
        None => Ok(()),
    }
}

/// Whether a field's value asks for nothing: empty, zero, false, or docker's "unset" spelling.
fn is_default(field: &str, v: &Value) -> bool {
    match (field, v) {
        // The docker CLI's defaults for these are -1 (unset, and unlimited swap).
        ("MemorySwappiness" | "MemorySwap", Value::Number(n)) if n.as_i64() == Some(-1) => true,
        _ => is_zero(v),
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.iter().all(is_zero),
        Value::Object(o) => o.values().all(is_zero),
    }
}

/// Only docker's own log formats (bulkhead keeps its log itself), and no restart policy.
fn check_log_and_restart(host: &HostConfig) -> Result<(), ApiError> {
    if let Some(log) = &host.log_config {
        let kind = log.typ.as_deref().unwrap_or_default();
        if !matches!(kind, "" | "json-file" | "local")
            || log.config.as_ref().is_some_and(|c| !c.is_empty())
        {
            return Err(bad(format!(
                "HostConfig.LogConfig (driver \"{kind}\" with options) is not supported by bulkhead: \
                 it keeps each container's log itself"
            )));
        }
    }
    if let Some(policy) = host.restart_policy.as_ref().and_then(|p| p.name) {
        if !matches!(
            policy,
            RestartPolicyNameEnum::EMPTY | RestartPolicyNameEnum::NO
        ) {
            return Err(bad(format!(
                "HostConfig.RestartPolicy \"{policy}\" is not supported by bulkhead (only \"no\")"
            )));
        }
    }
    Ok(())
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|s| !s.is_empty())
}

fn map_config(c: &ContainerConfig, opts: &mut CreateOptions) -> Result<(), ApiError> {
    opts.cmd = c.cmd.clone().unwrap_or_default();
    // `[""]` (the CLI's `--entrypoint ""`) and `[]` clear the image's entrypoint; null keeps it.
    opts.entrypoint = match c.entrypoint.as_deref() {
        Some([only]) if only.is_empty() => Some(Vec::new()),
        other => other.map(<[String]>::to_vec),
    };
    opts.env = c.env.clone().unwrap_or_default();
    opts.workdir = non_empty(&c.working_dir);
    opts.user = non_empty(&c.user);
    opts.hostname = non_empty(&c.hostname);
    opts.interactive = c.open_stdin.unwrap_or(false);
    opts.tty = c.tty.unwrap_or(false);
    opts.labels = c
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect::<BTreeMap<_, _>>();
    opts.stop_signal = non_empty(&c.stop_signal);
    opts.stop_timeout = match c.stop_timeout {
        None => None,
        Some(t) if t >= 0 => Some(t as u64),
        Some(t) => return Err(bad(format!("Config.StopTimeout {t} must not be negative"))),
    };
    Ok(())
}

fn map_host(h: &HostConfig, opts: &mut CreateOptions) -> Result<(), ApiError> {
    opts.console_size = super::exec::console_size(h.console_size.as_deref())?;
    opts.volumes = h.binds.clone().unwrap_or_default();
    opts.mounts = h
        .mounts
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, m)| mount_flag(i, m))
        .collect::<Result<_, _>>()?;
    opts.tmpfs = h
        .tmpfs
        .iter()
        .flatten()
        .map(|(path, options)| match options.as_str() {
            "" => path.clone(),
            o => format!("{path}:{o}"),
        })
        .collect();
    opts.read_only = h.readonly_rootfs.unwrap_or(false);
    opts.memory = h.memory.filter(|m| *m > 0).map(|m| m as u64);
    opts.cpus = cpus(h)?;
    opts.pids_limit = h.pids_limit;
    opts.network = non_empty(&h.network_mode);
    opts.publish_all = h.publish_all_ports.unwrap_or(false);
    opts.cap_add = h.cap_add.clone().unwrap_or_default();
    opts.cap_drop = h.cap_drop.clone().unwrap_or_default();
    opts.security_opt = h.security_opt.clone().unwrap_or_default();
    opts.privileged = h.privileged.unwrap_or(false);
    opts.auto_remove = h.auto_remove.unwrap_or(false);
    opts.ulimits = h
        .ulimits
        .iter()
        .flatten()
        .map(|u| {
            let name = u.name.clone().unwrap_or_default();
            let (soft, hard) = (u.soft.unwrap_or(0), u.hard.unwrap_or(0));
            format!("{name}={soft}:{hard}")
        })
        .collect();
    opts.dns = h.dns.clone().unwrap_or_default();
    opts.dns_search = h.dns_search.clone().unwrap_or_default();
    opts.dns_options = h.dns_options.clone().unwrap_or_default();
    opts.add_hosts = h.extra_hosts.clone().unwrap_or_default();
    opts.userns = non_empty(&h.userns_mode);
    Ok(())
}

/// `NanoCpus`, or docker's older `CpuQuota`/`CpuPeriod` pair, as a number of CPUs.
pub fn cpus(h: &HostConfig) -> Result<Option<f64>, ApiError> {
    cpus_of(h.nano_cpus, h.cpu_quota, h.cpu_period)
}

pub fn cpus_of(
    nano: Option<i64>,
    quota: Option<i64>,
    period: Option<i64>,
) -> Result<Option<f64>, ApiError> {
    let (nano, quota) = (nano.unwrap_or(0), quota.unwrap_or(0));
    if nano > 0 && quota > 0 {
        return Err(bad(
            "conflicting options: NanoCpus and CpuQuota/CpuPeriod cannot both be set",
        ));
    }
    if nano > 0 {
        return Ok(Some(nano as f64 / 1e9));
    }
    if quota > 0 {
        let period = period.filter(|p| *p > 0).unwrap_or(DEFAULT_CPU_PERIOD);
        return Ok(Some(quota as f64 / period as f64));
    }
    Ok(None)
}

/// A structured `HostConfig.Mounts` entry as the engine's `--mount` value.
fn mount_flag(i: usize, m: &Mount) -> Result<String, ApiError> {
    let at = |what: &str| format!("HostConfig.Mounts[{i}].{what}");
    let unsupported = |what: &str| bad(format!("{} is not supported by bulkhead", at(what)));
    let kind = match m.typ {
        Some(MountTypeEnum::BIND) => "bind",
        Some(MountTypeEnum::VOLUME) => "volume",
        Some(MountTypeEnum::TMPFS) => "tmpfs",
        Some(other) => {
            return Err(bad(format!(
                "{} \"{other}\" is not supported by bulkhead (bind, volume or tmpfs)",
                at("Type")
            )))
        }
        None => return Err(bad(format!("{} is required", at("Type")))),
    };
    let mut fields = vec![format!("type={kind}")];
    for (key, value) in [("source", &m.source), ("target", &m.target)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            if v.contains(',') {
                return Err(bad(format!(
                    "{}: bulkhead does not support a comma in a mount path ({v})",
                    at(key)
                )));
            }
            fields.push(format!("{key}={v}"));
        }
    }
    if m.read_only == Some(true) {
        fields.push("readonly".into());
    }
    if m.bind_options.as_ref().is_some_and(|b| !zero_model(b)) {
        return Err(unsupported("BindOptions"));
    }
    if let Some(v) = &m.volume_options {
        if v.labels.as_ref().is_some_and(|l| !l.is_empty())
            || v.driver_config.as_ref().is_some_and(|d| !zero_model(d))
            || v.subpath.as_ref().is_some_and(|s| !s.is_empty())
        {
            return Err(unsupported("VolumeOptions"));
        }
        if v.no_copy == Some(true) {
            fields.push("volume-nocopy".into());
        }
    }
    if let Some(t) = &m.tmpfs_options {
        if t.options.as_ref().is_some_and(|o| !o.is_empty()) {
            return Err(unsupported("TmpfsOptions.Options"));
        }
        if let Some(size) = t.size_bytes.filter(|s| *s > 0) {
            fields.push(format!("tmpfs-size={size}"));
        }
        if let Some(mode) = t.mode.filter(|m| *m > 0) {
            fields.push(format!("tmpfs-mode={mode:o}"));
        }
    }
    Ok(fields.join(","))
}

/// Whether a model value asks for nothing (all its fields unset, empty or false).
fn zero_model<T: serde::Serialize>(model: &T) -> bool {
    serde_json::to_value(model).is_ok_and(|v| is_zero(&v))
}

/// `Config.Volumes` (the CLI's `-v /path`): anonymous volumes, except where a bind, mount or tmpfs
/// already covers the path.
fn map_anonymous_volumes(c: &ContainerConfig, h: &HostConfig, opts: &mut CreateOptions) {
    let mut covered: Vec<String> = opts
        .volumes
        .iter()
        .map(|b| {
            let parts: Vec<&str> = b.split(':').collect();
            parts.get(1).unwrap_or(&parts[0]).to_string()
        })
        .collect();
    covered.extend(h.mounts.iter().flatten().filter_map(|m| m.target.clone()));
    covered.extend(h.tmpfs.iter().flatten().map(|(path, _)| path.clone()));
    let mut anonymous: Vec<&String> = c
        .volumes
        .iter()
        .flat_map(|v| v.keys())
        .filter(|path| !covered.contains(path))
        .collect();
    anonymous.sort();
    opts.volumes.extend(anonymous.into_iter().cloned());
}

/// `PortBindings` as `-p` values; with `PublishAllPorts`, also the ports the request exposes (the
/// engine adds the image's).
fn map_ports(c: &ContainerConfig, h: &HostConfig, opts: &mut CreateOptions) {
    let mut bound: Vec<(&String, &Vec<bollard_stubs::models::PortBinding>)> = h
        .port_bindings
        .iter()
        .flatten()
        .filter_map(|(port, list)| list.as_ref().map(|l| (port, l)))
        .collect();
    bound.sort_by_key(|(port, _)| port.as_str());
    for (port, bindings) in &bound {
        for b in bindings.iter() {
            let ip = b.host_ip.as_deref().unwrap_or_default();
            let host_port = b.host_port.as_deref().unwrap_or_default();
            opts.publish
                .push(match (ip.is_empty(), host_port.is_empty()) {
                    (true, true) => port.to_string(),
                    (true, false) => format!("{host_port}:{port}"),
                    (false, _) => format!("{ip}:{host_port}:{port}"),
                });
        }
    }
    if opts.publish_all {
        let mut exposed: Vec<&String> = c
            .exposed_ports
            .iter()
            .flat_map(|e| e.keys())
            .filter(|p| !bound.iter().any(|(b, _)| b == p))
            .collect();
        exposed.sort();
        opts.publish.extend(exposed.into_iter().cloned());
    }
}

/// `NetworkMode`, `NetworkDisabled`, and the network-scoped aliases of `NetworkingConfig`.
fn map_network(
    c: &ContainerConfig,
    h: &HostConfig,
    networking: &NetworkingConfig,
    raw: &Map<String, Value>,
    opts: &mut CreateOptions,
) -> Result<(), ApiError> {
    if c.network_disabled == Some(true) {
        match opts.network.as_deref() {
            None | Some("none" | "default") => opts.network = Some("none".into()),
            Some(other) => {
                return Err(bad(format!(
                    "conflicting options: Config.NetworkDisabled and HostConfig.NetworkMode {other}"
                )))
            }
        }
    }
    let endpoints: Vec<(&String, &EndpointSettings)> =
        networking.endpoints_config.iter().flatten().collect();
    let raw_endpoints = raw.get("EndpointsConfig").and_then(Value::as_object);
    let (name, settings) = match endpoints.as_slice() {
        [] => return Ok(()),
        [one] => *one,
        _ => return Err(bad(
            "NetworkingConfig.EndpointsConfig: bulkhead attaches a container to one network at \
                 create; connect it to more with POST /networks/{id}/connect",
        )),
    };
    let is_default = |n: &str| matches!(n, "default" | "bridge");
    match h.network_mode.as_deref().filter(|m| !m.is_empty()) {
        None => opts.network = Some(name.clone()),
        Some(mode) if mode == name || (is_default(mode) && is_default(name)) => {}
        Some(mode) => {
            return Err(bad(format!(
                "NetworkingConfig.EndpointsConfig names network {name}, but HostConfig.NetworkMode \
                 is {mode}"
            )))
        }
    }
    if let Some(Value::Object(entry)) = raw_endpoints.and_then(|e| e.get(name)) {
        refuse_unsupported(
            &format!("NetworkingConfig.EndpointsConfig.{name}"),
            entry,
            ENDPOINT_MAPPED,
        )?;
    }
    opts.network_aliases = settings.aliases.clone().unwrap_or_default();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<CreateOptions, ApiError> {
        options(body.as_bytes(), Some("web"))
    }

    #[test]
    fn docker_cli_defaults_are_accepted_and_mapped() {
        let o = parse(
            r#"{"Image":"busybox","Cmd":["echo","hi"],"Entrypoint":[""],"Labels":{"a":"b"},
            "Volumes":{"/data":{},"/bound":{}},"ExposedPorts":{"80/tcp":{}},
            "HostConfig":{"Binds":["/srv:/bound:ro"],"Memory":0,"MemorySwappiness":-1,
              "NanoCpus":1500000000,"Devices":[],"ConsoleSize":[24,80],"OomKillDisable":false,
              "RestartPolicy":{"Name":"no","MaximumRetryCount":0},"LogConfig":{"Type":"","Config":{}},
              "Isolation":"HyperV","PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}]},
              "Tmpfs":{"/run":"size=1m"},"Ulimits":[{"Name":"nofile","Soft":10,"Hard":20}],
              "Mounts":[{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1024,"Mode":448}}]},
            "NetworkingConfig":{"EndpointsConfig":{"front":{"Aliases":["w"],"Links":null,
              "GwPriority":0}}}}"#,
        )
        .unwrap();
        assert_eq!(o.name.as_deref(), Some("web"));
        assert_eq!(o.entrypoint, Some(vec![]));
        assert_eq!(o.isolation, Some(Isolation::Vm));
        assert_eq!(o.cpus, Some(1.5));
        assert_eq!(o.volumes, ["/srv:/bound:ro", "/data"]);
        assert_eq!(o.publish, ["8080:80/tcp"]);
        assert_eq!(o.tmpfs, ["/run:size=1m"]);
        assert_eq!(o.ulimits, ["nofile=10:20"]);
        assert_eq!(
            o.mounts,
            ["type=tmpfs,target=/t,tmpfs-size=1024,tmpfs-mode=700"]
        );
        assert_eq!(o.network.as_deref(), Some("front"));
        assert_eq!(o.network_aliases, ["w"]);
        assert_eq!(o.labels.get("a").map(String::as_str), Some("b"));
    }

    #[test]
    fn set_unsupported_fields_and_bad_values_are_named() {
        let e = parse(r#"{"Image":"b","HostConfig":{"Devices":[{"PathOnHost":"/dev/x"}]}}"#)
            .unwrap_err();
        assert_eq!(e.status, hyper::StatusCode::BAD_REQUEST);
        assert!(
            e.message.contains("HostConfig.Devices is not supported"),
            "{}",
            e.message
        );
        let e = parse(r#"{"Image":"b","HostConfig":{"Isolation":"bogus"}}"#).unwrap_err();
        assert!(
            e.message.contains("invalid isolation \"bogus\""),
            "{}",
            e.message
        );
        let e =
            parse(r#"{"Image":"b","HostConfig":{"RestartPolicy":{"Name":"always"}}}"#).unwrap_err();
        assert!(e.message.contains("RestartPolicy"), "{}", e.message);
        let e = parse(r#"{"Image":"b","Bogus":1}"#).unwrap_err();
        assert!(e.message.contains("Bogus"), "{}", e.message);
        let e = parse(r#"{"Image":"b","HostConfig":{"Nope":1}}"#).unwrap_err();
        assert!(e.message.contains("HostConfig.Nope"), "{}", e.message);
        assert!(parse(r#"{"Cmd":["x"]}"#).is_err());
        assert!(parse(r#"{"Image":"b","HostConfig":{"NanoCpus":1,"CpuQuota":5}}"#).is_err());
        assert_eq!(
            cpus_of(None, Some(50_000), None).unwrap(),
            Some(0.5),
            "a quota alone uses docker's 100 ms period"
        );
    }
}
