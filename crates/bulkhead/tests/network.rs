//! Bridge networking in process mode, end to end through the real binary as root: published ports
//! fetched from the host (loopback and its own address), `-P` over an image's exposed ports, two
//! containers on a user-defined network, `none`, `host` and `container:` modes, and bad input refused
//! with nothing left behind. Traffic stays between this machine's addresses and the containers'.
//! Subnets are 10.23x.<pid>.0/24 so parallel runs do not collide; each test removes what it makes.

mod common;

use common::host::{network_leftovers, nft_ruleset};
use common::net::{subnet, Network};
use common::{interfaces, stable_interfaces, stderr, Root, IMAGE};
use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;

/// A host port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The body of `url`, fetched by curl on the host.
fn curl(url: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--retry",
            "3",
            "--retry-connrefused",
            url,
        ])
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The host's first global IPv4 address on an interface that is not a bridge or veth of ours.
fn host_address() -> Ipv4Addr {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "scope", "global"])
        .output()
        .expect("ip addr");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let dev = *words.get(1)?;
            let addr = words.get(3)?.split('/').next()?;
            let ours = ["bulkhead", "bh-", "veth", "cni-", "vmnm", "tap"];
            (!ours.iter().any(|p| dev.starts_with(p))).then(|| addr.parse().ok())?
        })
        .next()
        .expect("a global address on the host")
}

fn httpd(r: &Root, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[IMAGE, "httpd", "-f", "-p", "80", "-h", "/etc"]);
    r.detached(&args)
}

#[test]
fn published_ports_reach_httpd_from_loopback_and_the_host_address() {
    let r = Root::new();
    let (local, any) = (free_port(), free_port());
    let id = httpd(&r, "web", &["-p", &format!("127.0.0.1:{local}:80")]);
    let id2 = httpd(&r, "web2", &["-p", &format!("{any}:80")]);
    assert_eq!(
        curl(&format!("http://127.0.0.1:{local}/hostname")).trim(),
        &id[..12]
    );
    let host = host_address();
    assert_eq!(
        curl(&format!("http://{host}:{any}/hostname")).trim(),
        &id2[..12]
    );
    assert_eq!(
        curl(&format!("http://127.0.0.1:{any}/hostname")).trim(),
        &id2[..12]
    );

    assert_eq!(
        r.ok(&["port", "web"]).trim(),
        format!("80/tcp -> 127.0.0.1:{local}")
    );
    assert_eq!(
        r.ok(&["port", "web2", "80/tcp"]).trim(),
        format!("0.0.0.0:{any}")
    );
    assert!(r
        .ok(&["ps"])
        .contains(&format!("127.0.0.1:{local}->80/tcp")));
    let v = r.inspect("web");
    let settings = &v["NetworkSettings"];
    assert_eq!(
        settings["Ports"]["80/tcp"][0]["HostPort"],
        local.to_string()
    );
    let ip = settings["Networks"]["bridge"]["IPAddress"]
        .as_str()
        .unwrap();
    assert_eq!(settings["IPAddress"], ip);
    assert_eq!(v["HostConfig"]["NetworkMode"], "bridge");
    // The container's own address, straight over the bridge, and its eth0 as docker names it.
    assert_eq!(curl(&format!("http://{ip}/hostname")).trim(), &id[..12]);
    let mac = settings["MacAddress"].as_str().unwrap();
    assert_eq!(
        r.ok(&["exec", "web", "cat", "/sys/class/net/eth0/address"])
            .trim(),
        mac
    );

    r.ok(&["rm", "-f", "web", "web2"]);
    for id in [&id, &id2] {
        assert_eq!(network_leftovers(id), Vec::<String>::new());
    }
    let refused = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{local}/"),
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "the port is still published");
}

#[test]
fn publish_all_maps_the_image_s_exposed_ports() {
    let r = Root::new();
    let dir = tempfile::tempdir().unwrap();
    let layers = [bulkhead_testkit::Layer::new(
        &bulkhead_testkit::busybox_layer(),
        "application/vnd.oci.image.layer.v1.tar",
    )];
    bulkhead_testkit::write_layout(
        dir.path(),
        Some("docker.io/library/exposed:latest"),
        &[bulkhead_testkit::Platform {
            exposed_ports: &["80/tcp"],
            ..bulkhead_testkit::Platform::amd64(&layers)
        }],
    );
    r.ok(&["image", "import", dir.path().to_str().unwrap()]);
    let image = "exposed";
    let id = r.detached(&[
        "--name",
        "exposed",
        "-P",
        "--entrypoint",
        "/bin/busybox",
        image,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let mapped = r.ok(&["port", "exposed", "80"]);
    let port = mapped.trim().rsplit(':').next().unwrap().to_string();
    assert!(port.parse::<u16>().unwrap() > 0, "{mapped}");
    assert!(curl(&format!("http://127.0.0.1:{port}/passwd")).starts_with("root:x:0:0"));
    r.ok(&["rm", "-f", &id]);
    assert_eq!(network_leftovers(&id), Vec::<String>::new());
}

#[test]
fn containers_on_a_user_network_reach_each_other_by_address() {
    let r = Root::new();
    let subnet = subnet(231);
    let network = Network::create(&r, "n", &subnet);
    let net = network.name.clone();
    let listed = r.ok(&["network", "ls"]);
    assert!(
        listed.contains(&net) && listed.contains("bridge"),
        "{listed}"
    );
    let server = httpd(&r, "server", &["--network", &net, "--network-alias", "www"]);
    let ip = r.inspect("server")["NetworkSettings"]["Networks"][&net]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        ip.starts_with(subnet.trim_end_matches("0/24")),
        "{ip} in {subnet}"
    );
    let out = r.ok(&[
        "run",
        "--rm",
        "--network",
        &net,
        IMAGE,
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{ip}/hostname"),
    ]);
    assert_eq!(out.trim(), &server[..12]);
    let inspect: serde_json::Value =
        serde_json::from_str(&r.ok(&["network", "inspect", &net])).unwrap();
    assert_eq!(inspect[0]["Containers"][&server]["Aliases"][0], "www");
    assert_eq!(inspect[0]["IPAM"]["Config"][0]["Subnet"], subnet);

    let refused = r.bh(&["network", "rm", &net]);
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        stderr(&refused).contains("in use by container(s) server"),
        "{}",
        stderr(&refused)
    );
    r.ok(&["rm", "-f", "server"]);
    let bridge = inspect[0]["Options"]["com.docker.network.bridge.name"]
        .as_str()
        .unwrap()
        .to_string();
    r.ok(&["network", "rm", &net]);
    assert!(!Command::new("ip")
        .args(["link", "show", &bridge])
        .output()
        .unwrap()
        .status
        .success());
    assert!(!nft_ruleset().contains(&format!("bulkhead-net:{bridge}")));
    assert_eq!(network_leftovers(&server), Vec::<String>::new());
}

#[test]
fn none_host_and_container_modes() {
    let r = Root::new();
    let none = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        IMAGE,
        "cat",
        "/proc/net/dev",
    ]);
    assert_eq!(interfaces(&none), ["lo"]);
    let host = r.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        IMAGE,
        "cat",
        "/proc/net/dev",
    ]);
    assert_eq!(
        stable_interfaces(&host),
        stable_interfaces(&std::fs::read_to_string("/proc/net/dev").unwrap())
    );
    let first = r.detached(&["--name", "first", IMAGE, "sleep", "1000"]);
    let ip = r.inspect("first")["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let shared = r.ok(&[
        "run",
        "--rm",
        "--network",
        "container:first",
        IMAGE,
        "ip",
        "-4",
        "-o",
        "addr",
    ]);
    assert!(
        shared.contains(&format!("eth0    inet {ip}/")) || shared.contains(&ip),
        "{shared}"
    );
    r.ok(&["rm", "-f", &first]);
    assert_eq!(network_leftovers(&first), Vec::<String>::new());
}

#[test]
fn bad_network_input_is_refused_and_leaves_nothing() {
    let r = Root::new();
    let check = |args: &[&str], says: &str| {
        let out = r.bh(args);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    };
    check(
        &["run", "-p", "99999:80", IMAGE, "true"],
        "host port 99999 is not a port number",
    );
    check(
        &["run", "--network", "nosuchnet", IMAGE, "true"],
        "network nosuchnet not found",
    );
    check(
        &["run", "--network", "none", "-p", "80", IMAGE, "true"],
        "conflicting options",
    );
    assert!(r.all_ids().is_empty(), "a refused create left a container");

    let subnet = subnet(232);
    let network = Network::create(&r, "o", &subnet);
    let net = network.name.clone();
    let inner = subnet.replace(".0/24", ".128/25");
    check(
        &["network", "create", "--subnet", &inner, "other"],
        "overlaps",
    );
    check(
        &["network", "create", "--subnet", "10.1.2.3/24", "other"],
        "host bits",
    );
    check(
        &["network", "create", "--subnet", &subnet, &net],
        "already exists",
    );

    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let out = r.bh(&[
        "run",
        "--name",
        "clash",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        IMAGE,
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("already in use"), "{}", stderr(&out));
    let clash = r.inspect("clash")["Id"].as_str().unwrap().to_string();
    assert_eq!(network_leftovers(&clash), Vec::<String>::new());
    r.ok(&["rm", "clash"]);
    r.ok(&["network", "rm", &net]);
}

#[test]
fn connect_and_disconnect_a_stopped_container() {
    let r = Root::new();
    let network = Network::create(&r, "c", &subnet(233));
    let net = network.name.clone();
    let id = r
        .ok(&["create", "--name", "two", IMAGE, "sleep", "1000"])
        .trim()
        .to_string();
    r.ok(&["network", "connect", &net, "two"]);
    r.ok(&["start", "two"]);
    let devs = r.ok(&["exec", "two", "cat", "/proc/net/dev"]);
    assert_eq!(interfaces(&devs), ["eth0", "eth1", "lo"]);
    let v = r.inspect("two");
    let ip = v["NetworkSettings"]["Networks"][&net]["IPAddress"]
        .as_str()
        .unwrap();
    assert!(ip.starts_with(subnet(233).trim_end_matches("0/24")), "{ip}");
    let refused = r.bh(&["network", "disconnect", &net, "two"]);
    assert!(
        stderr(&refused).contains("while it is stopped"),
        "{}",
        stderr(&refused)
    );
    r.ok(&["stop", "-t", "0", "two"]);
    assert_eq!(network_leftovers(&id), Vec::<String>::new());
    r.ok(&["network", "disconnect", &net, "two"]);
    r.ok(&["network", "disconnect", "bridge", "two"]);
    r.ok(&["start", "two"]);
    let devs = r.ok(&["exec", "two", "cat", "/proc/net/dev"]);
    assert_eq!(interfaces(&devs), ["lo"]);
    assert_eq!(r.inspect("two")["HostConfig"]["NetworkMode"], "none");
    r.ok(&["rm", "-f", "two"]);
    r.ok(&["network", "rm", &net]);
}

#[test]
fn containers_cannot_reach_the_host_s_loopback_services() {
    let r = Root::new();
    // A service only the host itself may use (UDP: a single datagram is delivered, no handshake).
    let private = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = private.local_addr().unwrap().port();
    private.set_nonblocking(true).unwrap();
    // A container that routes 127.0.0.0/8 to its gateway (the host), as crafted frames could.
    let script = format!(
        "ip addr del 127.0.0.1/8 dev lo && \\
         ip route add 127.0.0.0/8 via $(ip route | awk '/default/ {{print $3}}') && \\
         (syslogd -n -R 127.0.0.1:{port} &) && sleep 0.3 && logger secret && sleep 0.5; echo done"
    );
    let out = r.ok(&["run", "--rm", "--privileged", IMAGE, "sh", "-c", &script]);
    assert!(out.contains("done"), "{out}");
    let mut buf = [0u8; 64];
    assert!(
        private.recv(&mut buf).is_err(),
        "a container reached the host's 127.0.0.1:{port}"
    );
}

/// A shell command fetching `url` with busybox wget, retried for up to 10 s: a server that `run -d`
/// has just started may not listen yet (an httpd in a TCG guest takes a moment).
fn fetch_with_retries(url: &str) -> String {
    format!("for i in $(seq 50); do wget -q -O - {url} && exit 0; sleep 0.2; done; exit 1")
}

/// The promise that both isolation levels share networks: a VM container and a process
/// container on one user-defined network reach each other by name both ways, and the VM's published
/// port answers on the host's loopback. One VM boot.
#[test]
fn a_vm_and_a_process_container_reach_each_other_by_name() {
    let _vm = bulkhead_testkit::vm_lock();
    let r = Root::new();
    // What a guest cannot share is refused at create, naming why.
    let other = r.ok(&["create", "--name", "other", IMAGE, "true"]);
    for (mode, why) in [
        ("host", "host networking is refused with vm isolation"),
        ("container:other", "refused with vm isolation"),
    ] {
        let out = r.bh(&["create", "--isolation=vm", "--network", mode, IMAGE, "true"]);
        assert_eq!(out.status.code(), Some(125), "{mode}");
        assert!(stderr(&out).contains(why), "{mode}: {}", stderr(&out));
    }
    assert_eq!(r.all_ids(), [other.trim()]);
    r.ok(&["rm", "other"]);
    let network = Network::create(&r, "x", &subnet(237));
    let net = network.name.clone();
    let port = free_port();
    let published = format!("127.0.0.1:{port}:80");
    let vm = httpd(
        &r,
        "vmweb",
        &["--isolation=vm", "--network", &net, "-p", &published],
    );
    let process = httpd(
        &r,
        "procweb",
        &["--network", &net, "--network-alias", "pweb"],
    );
    // Process -> VM by name.
    let out = r.ok(&[
        "run",
        "--rm",
        "--network",
        &net,
        IMAGE,
        "sh",
        "-c",
        &fetch_with_retries("http://vmweb/hostname"),
    ]);
    assert_eq!(out.trim(), &vm[..12]);
    // VM -> process by name and by alias.
    for name in ["procweb", "pweb"] {
        let url = format!("http://{name}/hostname");
        let out = r.ok(&["exec", "vmweb", "sh", "-c", &fetch_with_retries(&url)]);
        assert_eq!(out.trim(), &process[..12], "{name}");
    }
    // The VM's published port, from the host.
    assert_eq!(
        curl(&format!("http://127.0.0.1:{port}/hostname")).trim(),
        &vm[..12]
    );
    let ports = r.ok(&["port", "vmweb"]);
    assert_eq!(ports.trim(), format!("80/tcp -> 127.0.0.1:{port}"));
    r.ok(&["rm", "-f", "vmweb", "procweb"]);
    for id in [&vm, &process] {
        assert_eq!(network_leftovers(id), Vec::<String>::new());
    }
}
