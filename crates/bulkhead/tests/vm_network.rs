//! A VM container joins a network namespace someone else made (`--network ns:PATH`), as a process
//! container does: the test builds the namespace by hand, as contracts §2 describes it (a veth whose host
//! end has an address of a private /30, the other end `eth0` in the namespace with the second address,
//! an MTU and a default route), and checks traffic both ways, what the container sees, and that `rm`
//! leaves the namespace as it was. Only this machine's own addresses are used.

mod common;

use bulkhead_testkit::vm_lock;
use common::Root;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a booting guest may take to serve (the debug binary is a large initramfs under TCG).
const SERVE_WAIT: Duration = Duration::from_secs(90);

/// A network namespace with a veth pair, removed on drop.
struct Netns {
    name: String,
    host_if: String,
    host_ip: Ipv4Addr,
    ns_ip: Ipv4Addr,
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Netns {
    /// `10.214.N.0/30`, N from our pid: test binaries running in parallel pick other subnets.
    fn new(mtu: u32) -> Netns {
        let pid = std::process::id();
        let n = (pid % 250) as u8 + 1;
        let ns = Netns {
            name: format!("bh-vmnet-{pid}"),
            host_if: format!("bhvn{pid}"),
            host_ip: Ipv4Addr::new(10, 214, n, 1),
            ns_ip: Ipv4Addr::new(10, 214, n, 2),
        };
        let peer = format!("bhvp{pid}");
        ip(&["netns", "add", &ns.name]);
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ]);
        ip(&["link", "set", &peer, "netns", &ns.name]);
        ip(&["-n", &ns.name, "link", "set", &peer, "name", "eth0"]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", ns.host_ip),
            "dev",
            &ns.host_if,
        ]);
        ip(&["link", "set", &ns.host_if, "up"]);
        ip(&[
            "-n",
            &ns.name,
            "addr",
            "add",
            &format!("{}/30", ns.ns_ip),
            "dev",
            "eth0",
        ]);
        ip(&[
            "-n",
            &ns.name,
            "link",
            "set",
            "eth0",
            "mtu",
            &mtu.to_string(),
            "up",
        ]);
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &ns.name,
            "route",
            "add",
            "default",
            "via",
            &ns.host_ip.to_string(),
        ]);
        ns
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `ip -n NS ARGS`.
    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend(args);
        ip(&all)
    }

    /// `tc ARGS` inside the namespace.
    fn tc(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "tc"])
            .args(args)
            .output()
            .expect("tc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, and with it the host's.
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "delete", &self.host_if])
            .status();
    }
}

/// `GET /` from `addr`, retried until it answers or `SERVE_WAIT` passes.
fn http_get(addr: SocketAddr) -> String {
    let deadline = Instant::now() + SERVE_WAIT;
    loop {
        let attempt = || -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body)
        };
        match attempt() {
            Ok(body) if !body.is_empty() => return body,
            other if Instant::now() > deadline => panic!("no answer from {addr}: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// What [`SHOW_ETH0`] printed, with spacing normalised.
fn eth0_view(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// eth0's address, MAC and MTU, and the routes, as a container sees them.
const SHOW_ETH0: &str = "ip -o -4 addr show dev eth0 | awk '{print $2, $4}'; \
                         cat /sys/class/net/eth0/address /sys/class/net/eth0/mtu; ip route";

#[test]
fn vm_joins_a_namespace_made_elsewhere_and_leaves_it_clean() {
    let _vm = vm_lock();
    let root = Root::new();
    let ns = Netns::new(1400);
    let network = format!("--network=ns:{}", ns.path());
    let mac = ns
        .ip(&["-o", "link", "show", "eth0"])
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_default()
        .to_string();

    // A process container in the namespace, for what the VM's container must see alike.
    let process_view = root.ok(&["run", "--rm", &network, "demo", "sh", "-c", SHOW_ETH0]);
    let lines: Vec<&str> = process_view.lines().map(str::trim).collect();
    assert_eq!(
        lines[..4],
        [
            format!("eth0 {}/30", ns.ns_ip).as_str(),
            mac.as_str(),
            "1400",
            format!("default via {} dev eth0", ns.host_ip).as_str(),
        ],
        "{process_view}"
    );

    let id = root.detached(&[
        "--isolation=vm",
        &network,
        "demo",
        "sh",
        "-c",
        "mkdir -p /www && echo served-by-the-vm > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    let id = id.as_str();
    // Host to the container's address: TCP to busybox httpd, and ICMP.
    let body = http_get(SocketAddr::from((ns.ns_ip, 80)));
    assert!(body.contains("served-by-the-vm"), "{body}");
    let ping = Command::new("busybox")
        .args(["ping", "-c", "1", "-W", "5", &ns.ns_ip.to_string()])
        .output()
        .unwrap();
    assert!(ping.status.success(), "host to VM ping: {ping:?}");
    // The namespace now holds the VM's tap, mirrored both ways.
    assert!(ns.ip(&["-o", "link"]).contains("bhtap0"));
    assert!(ns
        .tc(&["filter", "show", "dev", "eth0", "ingress"])
        .contains("mirred"));

    // The container to the host end's address, and what it sees: eth0 as the process container saw it.
    let vm_view = root.ok(&[
        "exec",
        id,
        "sh",
        "-c",
        &format!(
            "ping -c 1 -W 5 {} >/dev/null && echo reached; {SHOW_ETH0}",
            ns.host_ip
        ),
    ]);
    assert_eq!(vm_view.lines().next(), Some("reached"), "{vm_view}");
    let vm_view: String = vm_view.lines().skip(1).map(|l| format!("{l}\n")).collect();
    assert_eq!(eth0_view(&vm_view), eth0_view(&process_view));

    // A second VM in the same namespace is refused before it boots, and its removal leaves the first
    // one's wiring alone.
    let second = root.bh(&["run", "--rm", "--isolation=vm", &network, "demo", "true"]);
    assert!(!second.status.success());
    assert!(
        common::stderr(&second).contains("already serves another VM"),
        "{}",
        common::stderr(&second)
    );
    let body = http_get(SocketAddr::from((ns.ns_ip, 80)));
    assert!(body.contains("served-by-the-vm"), "{body}");

    // `rm -f` of the running VM: no tap and no tc filter is left, and eth0 is as the test made it. A
    // persistent tap of ours, as a QEMU its guest took over could leave with TUNSETPERSIST, goes too.
    ns.ip(&["tuntap", "add", "dev", "bhtap9", "mode", "tap"]);
    root.ok(&["rm", "-f", id]);
    assert!(
        !ns.ip(&["-o", "link"]).contains("bhtap"),
        "{}",
        ns.ip(&["link"])
    );
    assert_eq!(ns.tc(&["filter", "show", "dev", "eth0", "ingress"]), "");
    assert!(!ns.tc(&["qdisc", "show", "dev", "eth0"]).contains("ingress"));
    assert!(ns
        .ip(&["-o", "-4", "addr", "show", "eth0"])
        .contains(&format!("{}/30", ns.ns_ip)));
}

#[test]
fn vm_network_namespace_errors_are_clear() {
    let root = Root::new();
    // Not absolute: refused at create.
    let out = root.bh(&["create", "--network=ns:run/netns/x", "demo", "true"]);
    assert!(!out.status.success());
    assert!(common::stderr(&out).contains("absolute path"), "{out:?}");
    // Missing: the start fails naming it, in either mode, before a VM boots.
    for mode in ["--isolation=vm", "--isolation=process"] {
        let out = root.bh(&[
            "run",
            "--rm",
            mode,
            "--network=ns:/run/netns/bh-vmnet-absent",
            "demo",
            "true",
        ]);
        assert!(!out.status.success());
        assert!(
            common::stderr(&out).contains("/run/netns/bh-vmnet-absent"),
            "{mode}: {}",
            common::stderr(&out)
        );
    }
}
