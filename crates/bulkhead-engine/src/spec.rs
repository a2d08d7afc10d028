//! Turns create options plus the image's config into a container definition, and a definition into the
//! runtime spec that either isolation level runs. Docker's precedence rules apply throughout.

use crate::config::{ContainerConfig, CreateOptions, Isolation, VmOptions};
use crate::etc_files::{self, Attachment, HostFiles};
use crate::volumes::MountPlan;
use crate::{env, isolation, EngineError};
use bulkhead_runtime::{
    ContainerSpec, IdMap, MountSpec, NetworkMode, ProcessSpec, Resources, Rlimit, SeccompPolicy,
    SecuritySpec, Workload,
};
use oci_spec::image::ImageConfiguration;
use std::path::{Path, PathBuf};

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const DEFAULT_DISK: u64 = 10 << 30;
const MIB: u64 = 1 << 20;

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidOption(msg.into())
}

/// Builds the persistent definition of a new container, with the isolation the policy decided.
pub fn container_config(
    id: &str,
    name: String,
    opts: &CreateOptions,
    isolation: Isolation,
    image_id: &str,
    image: &ImageConfiguration,
    mounts: &MountPlan,
) -> Result<ContainerConfig, EngineError> {
    let cfg = image.config().clone().unwrap_or_default();
    let entrypoint: Vec<String> = match &opts.entrypoint {
        Some(e) => e.clone(),
        None => cfg.entrypoint().clone().unwrap_or_default(),
    };
    // As in docker, an explicit entrypoint drops the image's Cmd.
    let cmd = if !opts.cmd.is_empty() {
        opts.cmd.clone()
    } else if opts.entrypoint.is_some() {
        Vec::new()
    } else {
        cfg.cmd().clone().unwrap_or_default()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(invalid(format!(
            "no command specified and image {} has no Entrypoint or Cmd",
            opts.image
        )));
    }
    let hostname = opts
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_string());
    let mut env = env::merge(cfg.env().as_deref().unwrap_or(&[]), &opts.env)?;
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    set_default(&mut env, "HOSTNAME", &hostname);
    if opts.tty {
        set_default(&mut env, "TERM", "xterm");
    }
    let process = ProcessSpec {
        args,
        env,
        cwd: opts
            .workdir
            .clone()
            .or_else(|| cfg.working_dir().clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".to_string()),
        user: opts
            .user
            .clone()
            .or_else(|| cfg.user().clone())
            .unwrap_or_default(),
        terminal: opts.tty,
        rlimits: opts
            .ulimits
            .iter()
            .map(|u| parse_ulimit(u))
            .collect::<Result<_, _>>()?,
        console_size: opts.console_size.filter(|_| opts.tty),
    };
    if !process.cwd.starts_with('/') {
        return Err(invalid(format!(
            "working directory {} is not absolute",
            process.cwd
        )));
    }
    let resources = Resources {
        memory_bytes: opts.memory,
        cpus: opts.cpus,
        pids_limit: opts.pids_limit,
    };
    validate_resources(&resources)?;
    let names = etc_files::parse_options(opts)?;
    let config = ContainerConfig {
        id: id.to_string(),
        name,
        created: chrono::Utc::now(),
        image: opts.image.clone(),
        image_id: image_id.to_string(),
        isolation,
        workload: Workload {
            process,
            hostname,
            readonly_rootfs: opts.read_only,
            mounts: mounts.mounts.clone(),
            network: match parse_network(opts.network.as_deref())? {
                NetworkRequest::Host => NetworkMode::Host,
                NetworkRequest::Namespace(path) => NetworkMode::Namespace(path),
                // The monitor makes the namespace and puts its path in the runtime spec at start.
                _ => NetworkMode::None,
            },
            userns: parse_userns(opts.userns.as_deref())?,
            security: parse_security(opts)?,
            resources,
            sysctls: Default::default(),
            join_namespaces: Vec::new(),
        },
        open_stdin: opts.interactive,
        stop_signal: opts
            .stop_signal
            .clone()
            .or_else(|| cfg.stop_signal().clone())
            .unwrap_or_else(|| "SIGTERM".to_string()),
        stop_timeout: opts.stop_timeout.unwrap_or(10),
        auto_remove: opts.auto_remove,
        vm: VmOptions {
            accel: opts.accel.clone().unwrap_or_else(|| "auto".to_string()),
        },
        disk_size: opts.disk_size.unwrap_or(DEFAULT_DISK),
        volumes: mounts.volume_names(),
        extra_hosts: names.extra_hosts,
        dns: names.dns,
        dns_search: names.dns_search,
        dns_options: names.dns_options,
        network_mode: String::new(),
        networks: Vec::new(),
        ports: parse_ports(opts, &cfg)?,
        labels: cfg
            .labels()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(opts.labels.clone())
            .collect(),
        rootfs_dir: None,
    };
    isolation::mode(isolation).check(&config)?;
    parse_signal(&config.stop_signal)?;
    Ok(config)
}

/// The runtime spec for a run of `config` on the assembled `rootfs`, as its isolation level runs it.
/// `netns` is the namespace the monitor prepared (a bridge network's, or another container's), and
/// `attachments` the networks its setup joined, primary first.
pub fn runtime_spec(
    config: &ContainerConfig,
    rootfs: &Path,
    netns: Option<&Path>,
    attachments: &[Attachment],
) -> Result<ContainerSpec, EngineError> {
    let files = etc_files::generate(config, attachments, &HostFiles::read())?;
    let mut spec = ContainerSpec {
        id: config.id.clone(),
        rootfs: rootfs.to_path_buf(),
        workload: config.workload.clone(),
        cgroup_name: String::new(),
        etc_hosts: files.hosts,
        resolv_conf: files.resolv_conf,
        root_share: config.rootfs_dir.is_some(),
    };
    if let Some(netns) = netns {
        spec.workload.network = NetworkMode::Namespace(netns.to_path_buf());
    }
    isolation::mode(config.isolation).adapt_spec(&mut spec);
    Ok(spec)
}

pub fn validate_resources(r: &Resources) -> Result<(), EngineError> {
    if let Some(m) = r.memory_bytes {
        if m < 6 * MIB {
            return Err(invalid("the memory limit must be at least 6 MiB"));
        }
    }
    if let Some(c) = r.cpus {
        if !(c > 0.0 && c <= 1024.0) {
            return Err(invalid(format!(
                "a CPU quota of {c} is out of range (0 to 1024)"
            )));
        }
    }
    Ok(())
}

fn set_default(env: &mut Vec<String>, key: &str, value: &str) {
    if !env.iter().any(|e| e.split('=').next() == Some(key)) {
        env.push(format!("{key}={value}"));
    }
}

/// The `--tmpfs` mounts (`-v` and `--mount` are parsed with them by `volumes::MountPlan`).
pub fn tmpfs_mounts(opts: &CreateOptions) -> Result<Vec<MountSpec>, EngineError> {
    opts.tmpfs.iter().map(|t| parse_tmpfs(t)).collect()
}

fn parse_tmpfs(t: &str) -> Result<MountSpec, EngineError> {
    let (target, options) = t.split_once(':').unwrap_or((t, ""));
    if !target.starts_with('/') || target == "/" {
        return Err(invalid(format!(
            "invalid tmpfs mount {t}: the path must be absolute and not /"
        )));
    }
    Ok(MountSpec::Tmpfs {
        target: target.to_string(),
        options: options.to_string(),
    })
}

/// What `--network` asks for, before names are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkRequest {
    None,
    Host,
    /// The default `bridge` network or a user-defined one, by name or id.
    Network(String),
    /// Another container's namespace, by name or id.
    Container(String),
    /// A network namespace prepared elsewhere (`ns:PATH`: a bind-mounted netns file, as `ip netns add`
    /// or a CRI runtime makes it), joined as it is.
    Namespace(PathBuf),
}

/// Parses `--network` (default `bridge`, as in docker).
pub fn parse_network(n: Option<&str>) -> Result<NetworkRequest, EngineError> {
    Ok(match n.unwrap_or(crate::networks::DEFAULT_NETWORK) {
        "" => return Err(invalid("--network needs a value")),
        "none" => NetworkRequest::None,
        "host" => NetworkRequest::Host,
        "default" => NetworkRequest::Network(crate::networks::DEFAULT_NETWORK.into()),
        ns if ns.starts_with("ns:") => {
            let path = Path::new(&ns[3..]);
            if !path.is_absolute() {
                return Err(invalid(format!(
                    "network {ns}: the namespace must be an absolute path, as in ns:/run/netns/NAME"
                )));
            }
            NetworkRequest::Namespace(path.to_path_buf())
        }
        other => match other.strip_prefix("container:") {
            Some("") => return Err(invalid("--network container: needs a container name")),
            Some(c) => NetworkRequest::Container(c.to_string()),
            None => NetworkRequest::Network(other.to_string()),
        },
    })
}

/// `-p` values, and with `-P` every exposed port of the image not published explicitly.
fn parse_ports(
    opts: &CreateOptions,
    image: &oci_spec::image::Config,
) -> Result<Vec<bulkhead_net::ports::PortSpec>, EngineError> {
    use bulkhead_net::ports::PortSpec;
    let mut ports = opts
        .publish
        .iter()
        .map(|p| PortSpec::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    if opts.publish_all {
        for exposed in image.exposed_ports().iter().flatten() {
            let spec = PortSpec::parse(exposed).map_err(|_| {
                invalid(format!("the image exposes {exposed}, which is not a port"))
            })?;
            if !ports
                .iter()
                .any(|p| (p.container_port, p.protocol) == (spec.container_port, spec.protocol))
            {
                ports.push(spec);
            }
        }
    }
    if !ports.is_empty()
        && !matches!(
            parse_network(opts.network.as_deref())?,
            NetworkRequest::Network(_)
        )
    {
        return Err(invalid(
            "conflicting options: port publishing needs a bridge network (not none, host or container:)",
        ));
    }
    Ok(ports)
}

fn parse_userns(u: Option<&str>) -> Result<Option<IdMap>, EngineError> {
    let Some(u) = u else { return Ok(None) };
    match u {
        "" | "host" => Ok(None),
        "auto" => Ok(Some(IdMap {
            host_uid: 100_000,
            host_gid: 100_000,
            size: 65_536,
        })),
        spec => {
            let nums: Vec<u32> = spec
                .split(':')
                .map(|p| p.parse::<u32>())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    invalid(format!(
                        "invalid user namespace mode {spec}: expected host, auto or UID:GID:SIZE"
                    ))
                })?;
            match nums.as_slice() {
                [uid, gid, size] if *size > 0 => Ok(Some(IdMap {
                    host_uid: *uid,
                    host_gid: *gid,
                    size: *size,
                })),
                _ => Err(invalid(format!(
                    "invalid user namespace mode {spec}: expected host, auto or UID:GID:SIZE"
                ))),
            }
        }
    }
}

fn parse_security(opts: &CreateOptions) -> Result<SecuritySpec, EngineError> {
    let mut sec = SecuritySpec {
        privileged: opts.privileged,
        cap_add: opts.cap_add.clone(),
        cap_drop: opts.cap_drop.clone(),
        seccomp: if opts.privileged {
            SeccompPolicy::Unconfined
        } else {
            SeccompPolicy::Default
        },
        no_new_privileges: false,
        masked_paths: None,
        readonly_paths: None,
    };
    for o in &opts.security_opt {
        let (key, value) = o.split_once(['=', ':']).unwrap_or((o.as_str(), ""));
        match (key, value) {
            ("seccomp", "unconfined") => sec.seccomp = SeccompPolicy::Unconfined,
            ("seccomp", "") => {
                return Err(invalid(
                    "security option seccomp needs unconfined or a profile's JSON",
                ))
            }
            ("seccomp", json) => {
                serde_json::from_str::<serde_json::Value>(json)
                    .map_err(|e| invalid(format!("the seccomp profile is not valid JSON: {e}")))?;
                sec.seccomp = SeccompPolicy::Profile(json.to_string());
            }
            ("no-new-privileges", "" | "true") => sec.no_new_privileges = true,
            ("no-new-privileges", "false") => sec.no_new_privileges = false,
            _ => return Err(invalid(format!("unsupported security option {o}"))),
        }
    }
    Ok(sec)
}

fn parse_ulimit(u: &str) -> Result<Rlimit, EngineError> {
    let bad = || invalid(format!("invalid ulimit {u}: expected NAME=SOFT[:HARD]"));
    let (kind, values) = u.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = values.split_once(':').unwrap_or((values, values));
    let num = |s: &str| -> Result<u64, EngineError> {
        if s == "-1" || s == "unlimited" {
            Ok(u64::MAX)
        } else {
            s.parse().map_err(|_| bad())
        }
    };
    Ok(Rlimit {
        kind: kind.to_string(),
        soft: num(soft)?,
        hard: num(hard)?,
    })
}

/// Parses `SIGTERM`, `TERM`, or `15`.
pub fn parse_signal(s: &str) -> Result<nix::sys::signal::Signal, EngineError> {
    use nix::sys::signal::Signal;
    use std::str::FromStr;
    let bad = || invalid(format!("invalid signal {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options() {
        assert_eq!(
            parse_signal("term").unwrap(),
            nix::sys::signal::Signal::SIGTERM
        );
        assert_eq!(
            parse_signal("9").unwrap(),
            nix::sys::signal::Signal::SIGKILL
        );
        assert!(parse_signal("SIGNOPE").is_err());
        assert_eq!(
            parse_network(Some("ns:/run/netns/a")).unwrap(),
            NetworkRequest::Namespace("/run/netns/a".into())
        );
        assert!(parse_network(Some("ns:run/netns/a")).is_err());
        assert_eq!(
            parse_network(None).unwrap(),
            NetworkRequest::Network("bridge".into())
        );
        assert_eq!(
            parse_network(Some("container:web")).unwrap(),
            NetworkRequest::Container("web".into())
        );
        assert!(parse_network(Some("container:")).is_err());
        assert_eq!(parse_ulimit("nofile=10:20").unwrap().hard, 20);
        assert!(parse_tmpfs("/tmp:size=1m").is_ok());
        assert_eq!(parse_userns(Some("1:2:3")).unwrap().unwrap().size, 3);
        assert!(parse_userns(Some("1:2")).is_err());
    }
}
