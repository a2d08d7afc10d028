//! The `/etc/hosts` and `/etc/resolv.conf` a container gets, written as docker writes them, and the
//! `--add-host`/`--dns*` options they come from. Both isolation modes install the same text (the VM's
//! guest writes what the spec carries), so a name resolves the same way in either.

use crate::config::{ContainerConfig, CreateOptions};
use crate::EngineError;
use bulkhead_runtime::NetworkMode;
use std::net::{IpAddr, Ipv4Addr};

/// What docker writes for every container not on the host's network.
const DEFAULT_HOSTS: &str = "127.0.0.1\tlocalhost\n\
    ::1\tlocalhost ip6-localhost ip6-loopback\n\
    fe00::0\tip6-localnet\n\
    ff00::0\tip6-mcastprefix\n\
    ff02::1\tip6-allnodes\n\
    ff02::2\tip6-allrouters\n";
/// Docker's resolvers when the host has none a container can reach.
const DEFAULT_NAMESERVERS: [Ipv4Addr; 2] = [Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(8, 8, 4, 4)];
/// `--add-host NAME:host-gateway` stands for the gateway of the container's network.
const HOST_GATEWAY: &str = "host-gateway";

/// A network the container is attached to, as its network setup reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attachment {
    /// The container's address on the network.
    pub ipv4: Ipv4Addr,
    pub gateway: Ipv4Addr,
    /// The network resolves container names (user-defined networks; not the default bridge).
    pub dns: bool,
}

/// The host's own files, which docker copies from (read once per start; tests pass their own).
#[derive(Debug, Clone, Default)]
pub struct HostFiles {
    pub hosts: String,
    pub resolv_conf: String,
}

impl HostFiles {
    pub fn read() -> HostFiles {
        HostFiles {
            hosts: std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
            resolv_conf: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        }
    }
}

/// The container's `/etc/hosts` and `/etc/resolv.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcFiles {
    pub hosts: String,
    pub resolv_conf: String,
}

fn invalid(msg: String) -> EngineError {
    EngineError::InvalidOption(msg)
}

/// The two files for `config` attached to `attachments` (first is primary; empty for `--network none`
/// and `host`).
pub fn generate(
    config: &ContainerConfig,
    attachments: &[Attachment],
    host: &HostFiles,
) -> Result<EtcFiles, EngineError> {
    Ok(EtcFiles {
        hosts: hosts(config, attachments, host)?,
        resolv_conf: resolv_conf(config, attachments, host),
    })
}

fn hosts(
    config: &ContainerConfig,
    attachments: &[Attachment],
    host: &HostFiles,
) -> Result<String, EngineError> {
    let on_host = config.workload.network == NetworkMode::Host;
    let mut out = if on_host {
        host.hosts.clone()
    } else {
        DEFAULT_HOSTS.to_string()
    };
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for entry in &config.extra_hosts {
        let (name, addr) = parse_add_host(entry)?;
        let addr = match addr {
            Some(ip) => ip,
            None => IpAddr::V4(attachments.first().map(|a| a.gateway).ok_or_else(|| {
                invalid(format!(
                    "--add-host {entry}: host-gateway needs a bridge network, and this container is not on one"
                ))
            })?),
        };
        out.push_str(&format!("{addr}\t{name}\n"));
    }
    // Docker ends with the container's own address: "IP fqdn short" when the host name has a domain.
    if let (Some(a), false) = (attachments.first(), on_host) {
        let name = &config.workload.hostname;
        match name.split_once('.') {
            Some((short, _)) => out.push_str(&format!("{}\t{name} {short}\n", a.ipv4)),
            None => out.push_str(&format!("{}\t{name}\n", a.ipv4)),
        }
    }
    Ok(out)
}

fn resolv_conf(config: &ContainerConfig, attachments: &[Attachment], host: &HostFiles) -> String {
    let on_host = config.workload.network == NetworkMode::Host;
    let embedded = attachments.iter().find(|a| a.dns);
    let overridden =
        !config.dns.is_empty() || !config.dns_search.is_empty() || !config.dns_options.is_empty();
    if on_host && !overridden {
        return host.resolv_conf.clone();
    }
    let parsed = Resolv::parse(&host.resolv_conf);
    let nameservers: Vec<IpAddr> = if let Some(a) = embedded {
        // The network's responder relays the rest (to this container's --dns servers, if any).
        vec![IpAddr::V4(a.gateway)]
    } else if !config.dns.is_empty() {
        config.dns.clone()
    } else if on_host {
        parsed.nameservers
    } else {
        // A loopback resolver of the host is not reachable from the container's own namespace.
        let reachable: Vec<IpAddr> = parsed
            .nameservers
            .into_iter()
            .filter(|ip| !ip.is_loopback())
            .collect();
        if reachable.is_empty() {
            DEFAULT_NAMESERVERS.map(IpAddr::V4).to_vec()
        } else {
            reachable
        }
    };
    let search: Vec<String> = if config.dns_search.is_empty() {
        parsed.search
    } else {
        // `--dns-search .` means no search domains.
        config
            .dns_search
            .iter()
            .filter(|d| *d != ".")
            .cloned()
            .collect()
    };
    let mut options = if config.dns_options.is_empty() {
        parsed.options
    } else {
        config.dns_options.clone()
    };
    // As docker: names on the network are single labels, asked as they are before any search domain.
    if embedded.is_some() && !options.iter().any(|o| o.starts_with("ndots:")) {
        options.push("ndots:0".to_string());
    }
    let mut out = String::new();
    for ns in nameservers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The resolvers a network's responder relays to: the host's, loopback ones included (the relay runs
/// on the host), or docker's defaults.
pub fn upstream_resolvers(host_resolv_conf: &str) -> Vec<IpAddr> {
    let ns = Resolv::parse(host_resolv_conf).nameservers;
    if ns.is_empty() {
        DEFAULT_NAMESERVERS.map(IpAddr::V4).to_vec()
    } else {
        ns
    }
}

/// The parts of a resolv.conf that docker carries over.
#[derive(Debug, Default, PartialEq)]
struct Resolv {
    nameservers: Vec<IpAddr>,
    search: Vec<String>,
    options: Vec<String>,
}

impl Resolv {
    fn parse(text: &str) -> Resolv {
        let mut r = Resolv::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                // A scoped IPv6 address (fe80::1%eth0) is the host's link only: skipped.
                Some("nameserver") => r
                    .nameservers
                    .extend(words.next().and_then(|w| w.parse::<IpAddr>().ok())),
                // The last search line wins, as in the resolver.
                Some("search") => r.search = words.map(String::from).collect(),
                Some("options") => r.options.extend(words.map(String::from)),
                _ => {}
            }
        }
        r
    }
}

/// The `--add-host`/`--dns*` options, checked and normalised for the container's definition.
pub struct NameOptions {
    pub extra_hosts: Vec<String>,
    pub dns: Vec<IpAddr>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
}

pub fn parse_options(opts: &CreateOptions) -> Result<NameOptions, EngineError> {
    let extra_hosts = opts
        .add_hosts
        .iter()
        .map(|h| {
            let (name, addr) = parse_add_host(h)?;
            Ok(match addr {
                Some(ip) => format!("{name}:{ip}"),
                None => format!("{name}:{HOST_GATEWAY}"),
            })
        })
        .collect::<Result<_, EngineError>>()?;
    let dns = opts
        .dns
        .iter()
        .map(|d| {
            d.parse::<IpAddr>()
                .map_err(|_| invalid(format!("--dns {d}: not an IP address")))
        })
        .collect::<Result<_, _>>()?;
    for domain in &opts.dns_search {
        if domain != "." && !valid_host_name(domain.strip_suffix('.').unwrap_or(domain)) {
            return Err(invalid(format!("--dns-search {domain}: not a domain name")));
        }
    }
    for option in &opts.dns_options {
        if option.is_empty() || option.contains(char::is_whitespace) {
            return Err(invalid(format!(
                "--dns-option \"{option}\": expected one resolver option such as ndots:2"
            )));
        }
    }
    Ok(NameOptions {
        extra_hosts,
        dns,
        dns_search: opts.dns_search.clone(),
        dns_options: opts.dns_options.clone(),
    })
}

/// `NAME:IP` or `NAME=IP` (IPv6 may be bracketed); `None` for `host-gateway`.
fn parse_add_host(entry: &str) -> Result<(String, Option<IpAddr>), EngineError> {
    let (name, addr) = entry
        .split_once('=')
        .or_else(|| entry.split_once(':'))
        .ok_or_else(|| invalid(format!("--add-host {entry}: expected HOST:IP")))?;
    if !valid_host_name(name) {
        return Err(invalid(format!(
            "--add-host {entry}: \"{name}\" is not a valid host name"
        )));
    }
    if addr == HOST_GATEWAY {
        return Ok((name.to_string(), None));
    }
    let bare = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    let ip = bare.parse::<IpAddr>().map_err(|_| {
        invalid(format!(
            "--add-host {entry}: \"{addr}\" is not an IP address (or host-gateway)"
        ))
    })?;
    Ok((name.to_string(), Some(ip)))
}

/// Dot-separated labels of letters, digits, `-` and `_` (1-63 each, 253 in all), no label starting or
/// ending with `-`: nothing a hosts or resolv.conf line could be split or extended by.
fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_RESOLV: &str = "# from the host\nnameserver 127.0.0.53\nnameserver 10.0.0.1\n\
        nameserver fe80::1%eth0\nsearch corp.test\noptions edns0 trust-ad\n";

    /// A container defined the way `create` defines it.
    fn config(network: &str, opts: CreateOptions) -> ContainerConfig {
        let opts = CreateOptions {
            image: "test".into(),
            cmd: vec!["sh".into()],
            hostname: Some("box.example.test".into()),
            network: Some(network.into()),
            ..opts
        };
        let image = oci_spec::image::ImageConfiguration::default();
        let id = "0123456789abcdef".repeat(4);
        crate::spec::container_config(
            &id,
            "c".into(),
            &opts,
            Default::default(),
            "i",
            &image,
            &Default::default(),
        )
        .unwrap()
    }

    fn host() -> HostFiles {
        HostFiles {
            hosts: "127.0.0.1 localhost\n10.0.0.9 printer".into(),
            resolv_conf: HOST_RESOLV.into(),
        }
    }

    const BRIDGE: Attachment = Attachment {
        ipv4: Ipv4Addr::new(172, 18, 0, 2),
        gateway: Ipv4Addr::new(172, 18, 0, 1),
        dns: false,
    };

    #[test]
    fn default_bridge_copies_the_hosts_reachable_resolvers() {
        let opts = CreateOptions {
            add_hosts: vec![
                "a:10.1.2.3".into(),
                "gw=host-gateway".into(),
                "six:[::1]".into(),
            ],
            ..Default::default()
        };
        let files = generate(&config("none", opts), &[BRIDGE], &host()).unwrap();
        assert!(files.hosts.starts_with(DEFAULT_HOSTS));
        assert!(files.hosts.ends_with(
            "10.1.2.3\ta\n172.18.0.1\tgw\n::1\tsix\n172.18.0.2\tbox.example.test box\n"
        ));
        assert_eq!(
            files.resolv_conf,
            "nameserver 10.0.0.1\nsearch corp.test\noptions edns0 trust-ad\n"
        );
    }

    #[test]
    fn user_network_points_at_its_gateway() {
        let user = Attachment {
            dns: true,
            ..BRIDGE
        };
        let opts = CreateOptions {
            dns: vec!["10.9.9.9".into()],
            dns_search: vec!["x.test".into()],
            ..Default::default()
        };
        let files = generate(&config("none", opts), &[user], &host()).unwrap();
        assert_eq!(
            files.resolv_conf,
            "nameserver 172.18.0.1\nsearch x.test\noptions edns0 trust-ad ndots:0\n"
        );
    }

    #[test]
    fn overrides_and_fallbacks() {
        let opts = CreateOptions {
            dns: vec!["10.9.9.9".into(), "2001:db8::1".into()],
            dns_search: vec![".".into()],
            dns_options: vec!["ndots:3".into()],
            add_hosts: vec!["a:10.1.2.3".into()],
            ..Default::default()
        };
        let c = config("none", opts);
        let files = generate(&c, &[], &host()).unwrap();
        assert_eq!(files.hosts, format!("{DEFAULT_HOSTS}10.1.2.3\ta\n"));
        assert_eq!(
            files.resolv_conf,
            "nameserver 10.9.9.9\nnameserver 2001:db8::1\noptions ndots:3\n"
        );
        // Only loopback resolvers on the host: docker's defaults.
        let local = HostFiles {
            resolv_conf: "nameserver 127.0.0.53\nnameserver ::1\n".into(),
            ..host()
        };
        let c = config("none", CreateOptions::default());
        assert_eq!(
            generate(&c, &[], &local).unwrap().resolv_conf,
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        assert_eq!(
            upstream_resolvers(&local.resolv_conf),
            [
                "127.0.0.53".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        // The host's network: the host's files, plus --add-host.
        let opts = CreateOptions {
            add_hosts: vec!["a:10.1.2.3".into()],
            ..Default::default()
        };
        let files = generate(&config("host", opts), &[], &host()).unwrap();
        assert_eq!(
            files.hosts,
            "127.0.0.1 localhost\n10.0.0.9 printer\n10.1.2.3\ta\n"
        );
        assert_eq!(files.resolv_conf, HOST_RESOLV);
        // host-gateway without a network.
        let opts = CreateOptions {
            add_hosts: vec!["gw:host-gateway".into()],
            ..Default::default()
        };
        assert!(generate(&config("none", opts), &[], &host()).is_err());
    }

    #[test]
    fn bad_options_are_refused() {
        let bad = |o: CreateOptions| parse_options(&o).is_err();
        let hosts = |h: &str| CreateOptions {
            add_hosts: vec![h.into()],
            ..Default::default()
        };
        assert!(bad(hosts("nocolon")));
        assert!(bad(hosts("a:10.1.2")));
        assert!(bad(hosts("bad name:10.1.2.3")));
        assert!(bad(hosts("-a:10.1.2.3")));
        assert!(bad(hosts("a\nb:10.1.2.3")));
        assert!(!bad(hosts("my_host.example:10.1.2.3")));
        assert!(bad(CreateOptions {
            dns: vec!["dns.example".into()],
            ..Default::default()
        }));
        assert!(bad(CreateOptions {
            dns_search: vec!["a b".into()],
            ..Default::default()
        }));
        assert!(bad(CreateOptions {
            dns_options: vec!["ndots:1 x".into()],
            ..Default::default()
        }));
    }
}
