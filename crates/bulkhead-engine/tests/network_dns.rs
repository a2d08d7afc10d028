//! The network name responder on its own, without containers: a scratch endpoint directory, the
//! responder on a loopback address of this test, and a stand-in upstream resolver on another one.

use bulkhead_engine::network_dns::{start, DnsConfig, DnsHandle};
use simple_dns::rdata::{RData, A};
use simple_dns::{Name, Packet, PacketFlag, Question, ResourceRecord, CLASS, RCODE, TYPE};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

/// What the stand-in upstream answers for every name.
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

/// Loopback addresses of this test binary (127.53.<pid>.x), so parallel runs do not meet.
fn loopback(host: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 53, (std::process::id() % 251) as u8, host)
}

fn endpoint(dir: &Path, id: &str, name: &str, aliases: &[&str], ip: &str) {
    let json =
        serde_json::json!({"container_id": id, "name": name, "aliases": aliases, "ipv4": ip});
    std::fs::write(dir.join(format!("{id}.json")), json.to_string()).unwrap();
}

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut p = Packet::new_query(id);
    p.set_flags(PacketFlag::RECURSION_DESIRED);
    p.questions.push(Question::new(
        Name::new_unchecked(name),
        TYPE::A.into(),
        CLASS::IN.into(),
        false,
    ));
    p.build_bytes_vec().unwrap()
}

fn addresses(answer: &[u8]) -> (RCODE, Vec<Ipv4Addr>) {
    let p = Packet::parse(answer).unwrap();
    let addrs = p
        .answers
        .iter()
        .filter_map(|rr| match &rr.rdata {
            RData::A(a) => Some(Ipv4Addr::from(a.address)),
            _ => None,
        })
        .collect();
    (p.rcode(), addrs)
}

/// Asks `server` by UDP; `None` if nothing came back within a second.
fn ask_udp(server: SocketAddrV4, name: &str) -> Option<(RCODE, Vec<Ipv4Addr>)> {
    ask_udp_from(Ipv4Addr::LOCALHOST, server, name)
}

fn ask_udp_from(
    client: Ipv4Addr,
    server: SocketAddrV4,
    name: &str,
) -> Option<(RCODE, Vec<Ipv4Addr>)> {
    let s = UdpSocket::bind((client, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s.send_to(&query(42, name), server).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.recv(&mut buf).ok()?;
    assert_eq!(&buf[..2], &42u16.to_be_bytes());
    Some(addresses(&buf[..n]))
}

fn ask_tcp(server: SocketAddrV4, names: &[&str]) -> Vec<(RCODE, Vec<Ipv4Addr>)> {
    let mut s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    names
        .iter()
        .map(|name| {
            let q = query(7, name);
            s.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
            s.write_all(&q).unwrap();
            let mut len = [0u8; 2];
            s.read_exact(&mut len).unwrap();
            let mut answer = vec![0; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut answer).unwrap();
            addresses(&answer)
        })
        .collect()
}

/// A resolver on `addr` (UDP and TCP) that answers every query with `answer`, for the life of the test.
fn upstream(addr: SocketAddrV4, answer: Ipv4Addr) {
    let reply = move |q: &[u8]| -> Vec<u8> {
        let q = Packet::parse(q).unwrap();
        let mut r = Packet::new_reply(q.id());
        let name = q.questions[0].qname.clone();
        r.questions.push(q.questions[0].clone());
        r.answers.push(ResourceRecord::new(
            name,
            CLASS::IN,
            60,
            RData::A(A::from(answer)),
        ));
        r.build_bytes_vec().unwrap()
    };
    let udp = UdpSocket::bind(addr).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            udp.send_to(&reply(&buf[..n]), from).unwrap();
        }
    });
    let tcp = TcpListener::bind(addr).unwrap();
    std::thread::spawn(move || {
        for mut s in tcp.incoming().flatten() {
            let mut len = [0u8; 2];
            s.read_exact(&mut len).unwrap();
            let mut q = vec![0; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut q).unwrap();
            let r = reply(&q);
            s.write_all(&(r.len() as u16).to_be_bytes()).unwrap();
            s.write_all(&r).unwrap();
        }
    });
}

/// A scratch network: endpoints with `web` (alias `www`) on 10.88.0.2 and `client` on 127.0.0.1 (where
/// the test's queries come from), container definitions, and the responder's address `loopback(first)`
/// with a stand-in upstream on `loopback(first + 1)`.
struct Net {
    endpoints: tempfile::TempDir,
    containers: tempfile::TempDir,
    listen: SocketAddrV4,
    upstream: SocketAddrV4,
}

const WEB: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);

impl Net {
    fn new(first: u8) -> Net {
        let net = Net {
            endpoints: tempfile::tempdir().unwrap(),
            containers: tempfile::tempdir().unwrap(),
            listen: SocketAddrV4::new(loopback(first), 53),
            upstream: SocketAddrV4::new(loopback(first + 1), 53),
        };
        endpoint(
            net.endpoints.path(),
            "aaaaaaaaaaaaaaaa",
            "web",
            &["www"],
            "10.88.0.2",
        );
        endpoint(
            net.endpoints.path(),
            "ffffffffffffffff",
            "client",
            &[],
            "127.0.0.1",
        );
        upstream(net.upstream, OUTSIDE);
        net
    }

    fn responder(&self) -> DnsHandle {
        start(DnsConfig {
            endpoints: self.endpoints.path().to_path_buf(),
            listen: self.listen,
            containers: self.containers.path().to_path_buf(),
            upstreams: vec![SocketAddr::V4(self.upstream)],
        })
        .unwrap()
    }
}

#[test]
fn answers_the_network_and_relays_the_rest() {
    let net = Net::new(1);
    let _dns = net.responder();
    let listen = net.listen;
    let web = vec![WEB];
    assert_eq!(ask_udp(listen, "web"), Some((RCODE::NoError, web.clone())));
    assert_eq!(ask_udp(listen, "WWW."), Some((RCODE::NoError, web.clone())));
    assert_eq!(
        ask_udp(listen, "aaaaaaaaaaaa"),
        Some((RCODE::NoError, web.clone()))
    );
    assert_eq!(
        ask_udp(listen, "outside.test"),
        Some((RCODE::NoError, vec![OUTSIDE]))
    );
    // A container that joins is answered from the next query on.
    assert_eq!(ask_udp(listen, "db").unwrap().1, vec![OUTSIDE]);
    endpoint(
        net.endpoints.path(),
        "bbbbbbbbbbbbbbbb",
        "db",
        &["www"],
        "10.88.0.3",
    );
    assert_eq!(
        ask_udp(listen, "db").unwrap().1,
        vec![Ipv4Addr::new(10, 88, 0, 3)]
    );
    assert_eq!(ask_udp(listen, "www").unwrap().1.len(), 2);
    // TCP: several queries on one connection, local and relayed.
    assert_eq!(
        ask_tcp(listen, &["web", "elsewhere.test"]),
        [(RCODE::NoError, web), (RCODE::NoError, vec![OUTSIDE])]
    );
}

#[test]
fn a_containers_own_dns_servers_take_its_outside_queries() {
    let net = Net::new(3);
    let _dns = net.responder();
    // The client stands for a container at loopback(5) that was created with --dns loopback(6).
    let (client, own) = (loopback(5), SocketAddrV4::new(loopback(6), 53));
    let mine = Ipv4Addr::new(10, 77, 0, 2);
    upstream(own, mine);
    let id = "cc".repeat(32);
    endpoint(net.endpoints.path(), &id, "app", &[], &client.to_string());
    let definition = net.containers.path().join(&id);
    std::fs::create_dir(&definition).unwrap();
    let config = serde_json::json!({"name": "app", "dns": [own.ip().to_string()]});
    std::fs::write(definition.join("config.json"), config.to_string()).unwrap();
    assert_eq!(
        ask_udp_from(client, net.listen, "outside.test").unwrap().1,
        [mine]
    );
    assert_eq!(ask_udp_from(client, net.listen, "web").unwrap().1, [WEB]);
    assert_eq!(ask_udp(net.listen, "outside.test").unwrap().1, [OUTSIDE]);
}

#[test]
fn garbage_gets_no_answer_and_changes_nothing() {
    let net = Net::new(7);
    let _dns = net.responder();
    let listen = net.listen;
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut response = query(1, "web");
    response[2] |= 0x80;
    for junk in [
        &b""[..],
        &[0u8; 3][..],
        &[0xffu8; 600][..],
        &[0u8; 9000][..],
        &response[..],
    ] {
        s.send_to(junk, listen).unwrap();
    }
    assert!(s.recv(&mut [0u8; 4096]).is_err(), "garbage was answered");
    // A TCP client announcing a long message and sending less, and one sending a non-query.
    let mut half = TcpStream::connect(listen).unwrap();
    half.write_all(&[0xff, 0xff, 1, 2, 3]).unwrap();
    let mut bad = TcpStream::connect(listen).unwrap();
    bad.write_all(&[0, 4, 1, 2, 3, 4]).unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(bad.read(&mut [0u8; 16]).unwrap(), 0, "closed without reply");
    assert_eq!(ask_udp(listen, "web").unwrap().1, [WEB]);
}

#[test]
fn an_upstream_that_is_down_gives_servfail() {
    let dir = tempfile::tempdir().unwrap();
    endpoint(dir.path(), "ffffffffffffffff", "client", &[], "127.0.0.1");
    let listen = SocketAddrV4::new(loopback(9), 53);
    // Nothing listens on the upstream's address: the relay is refused at once.
    let _dns = start(DnsConfig {
        endpoints: dir.path().to_path_buf(),
        listen,
        containers: dir.path().to_path_buf(),
        upstreams: vec![SocketAddr::V4(SocketAddrV4::new(loopback(10), 53))],
    })
    .unwrap();
    assert_eq!(
        ask_udp(listen, "outside.test"),
        Some((RCODE::ServerFailure, vec![]))
    );
}

#[test]
fn only_the_networks_containers_are_served() {
    let net = Net::new(13);
    let _dns = net.responder();
    let stranger = loopback(15);
    assert_eq!(ask_udp_from(stranger, net.listen, "web"), None);
    assert_eq!(ask_udp_from(stranger, net.listen, "outside.test"), None);
    assert_eq!(ask_udp(net.listen, "web").unwrap().1, [WEB]);
}

#[test]
fn every_monitor_on_a_network_serves_the_port_until_the_last_stops() {
    let net = Net::new(11);
    let (first, second) = (net.responder(), net.responder());
    for _ in 0..4 {
        assert!(ask_udp(net.listen, "web").is_some());
    }
    drop(first);
    for _ in 0..4 {
        assert!(ask_udp(net.listen, "web").is_some());
        ask_tcp(net.listen, &["web"]);
    }
    drop(second);
    assert_eq!(ask_udp(net.listen, "web"), None);
    assert!(TcpStream::connect(net.listen).is_err());
}

/// A bridge with a gateway address and a network namespace on it through a veth pair, made by the test
/// with iproute2 and removed on drop: the path a container's query takes, without a container.
struct Bridge {
    name: String,
    netns: String,
}

impl Bridge {
    fn new(tag: &str, gateway: &str, client: &str) -> Bridge {
        let pid = std::process::id();
        let b = Bridge {
            name: format!("bhdns{tag}{}", pid % 100_000),
            netns: format!("bhdns{tag}-{pid}"),
        };
        let (host_end, ns_end) = (format!("{}h", b.name), format!("{}n", b.name));
        for args in [
            vec!["link", "add", &b.name, "type", "bridge"],
            vec!["addr", "add", gateway, "dev", &b.name],
            vec!["link", "set", &b.name, "up"],
            vec!["netns", "add", &b.netns],
            vec![
                "link", "add", &host_end, "type", "veth", "peer", "name", &ns_end,
            ],
            vec!["link", "set", &host_end, "master", &b.name, "up"],
            vec!["link", "set", &ns_end, "netns", &b.netns],
            vec!["-n", &b.netns, "addr", "add", client, "dev", &ns_end],
            vec!["-n", &b.netns, "link", "set", &ns_end, "up"],
        ] {
            let status = std::process::Command::new("ip")
                .args(&args)
                .status()
                .unwrap();
            assert!(status.success(), "ip {args:?}");
        }
        b
    }

    /// Runs busybox in the namespace.
    fn busybox(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.netns, "busybox"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end and so the pair.
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.name])
            .status();
    }
}

#[test]
fn a_client_behind_a_bridge_resolves_through_the_gateway() {
    let third = (std::process::id() % 251) as u8;
    let gateway = Ipv4Addr::new(10, 213, third, 1);
    let client = Ipv4Addr::new(10, 213, third, 2);
    let bridge = Bridge::new("a", &format!("{gateway}/24"), &format!("{client}/24"));
    let net = Net::new(17);
    endpoint(
        net.endpoints.path(),
        "1111111111111111",
        "me",
        &[],
        &client.to_string(),
    );
    let listen = SocketAddrV4::new(gateway, 53);
    let _dns = start(DnsConfig {
        endpoints: net.endpoints.path().to_path_buf(),
        listen,
        containers: net.containers.path().to_path_buf(),
        upstreams: vec![SocketAddr::V4(net.upstream)],
    })
    .unwrap();
    let server = gateway.to_string();
    let web = bridge.busybox(&["nslookup", "web", &server]);
    assert!(web.contains("Address: 10.88.0.2"), "{web}");
    // The relay runs in the host's namespace: the upstream on a host loopback address answers.
    let outside = bridge.busybox(&["nslookup", "outside.test", &server]);
    assert!(
        outside.contains(&format!("Address: {OUTSIDE}")),
        "{outside}"
    );
}
