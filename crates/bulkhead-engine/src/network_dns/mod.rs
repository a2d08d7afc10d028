//! Name resolution on user-defined networks, as docker's embedded DNS gives it: a container's
//! `/etc/resolv.conf` names the network's gateway, and a responder there answers the names and aliases
//! of the containers on the network and relays every other query to the host's resolvers.
//!
//! The responder is a thread of each container's monitor (started once the container is up: the monitor
//! must stay single-threaded while process mode forks). Every monitor on a network binds `<gateway>:53`
//! with `SO_REUSEPORT`, so the kernel spreads queries over them, each answers from the same endpoint
//! records, and the port closes when the last container on the network stops. A process-mode container
//! and a VM guest both reach the gateway through the bridge, so both modes resolve the same way. As
//! docker's, it serves only the network's own containers: a query from any other address (the host,
//! another network, another machine routed to the gateway) is dropped, so it is no open resolver.

mod answer;
mod forward;
mod names;
mod upstreams;

use crate::etc_files;
use crate::layout::Layout;
use answer::Action;
use names::Names;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Relays and TCP connections served at once; more are dropped (the client retries), so a flood costs
/// bounded threads and memory.
const MAX_BUSY: usize = 64;
/// Datagrams taken per wake-up before TCP gets a turn.
const BURST: usize = 64;
/// A TCP client gets this long between messages, this long in all, and this many queries.
const TCP_IDLE: Duration = Duration::from_secs(5);
const TCP_LIFETIME: Duration = Duration::from_secs(30);
const TCP_QUERIES: usize = 100;

/// What one responder serves.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// The network's endpoint records (`<root>/networks/<network-id>/endpoints`).
    pub endpoints: PathBuf,
    /// Where to answer: the gateway's port 53 (a test uses a loopback address and a port of its own).
    pub listen: SocketAddrV4,
    /// The engine's container definitions (`<root>/containers`): a container's `--dns` servers take
    /// its queries instead of `upstreams`.
    pub containers: PathBuf,
    /// The resolvers every other query goes to, in order.
    pub upstreams: Vec<SocketAddr>,
}

impl DnsConfig {
    /// The responder of network `network_id` under the engine root `root`: on port 53 of its gateway,
    /// relaying to the nameservers of the host's `/etc/resolv.conf`.
    pub fn for_network(root: &Path, network_id: &str, gateway: Ipv4Addr) -> DnsConfig {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let listen = SocketAddrV4::new(gateway, 53);
        DnsConfig {
            endpoints: root.join("networks").join(network_id).join("endpoints"),
            listen,
            containers: Layout::new(root).containers(),
            upstreams: etc_files::upstream_resolvers(&host)
                .into_iter()
                .map(|ip| SocketAddr::new(ip, 53))
                .collect(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot serve DNS on {addr}: {source}")]
    Listen { addr: SocketAddrV4, source: Errno },
    #[error("cannot start the DNS responder: {0}")]
    Thread(std::io::Error),
}

/// A running responder; dropping it stops the thread and closes its sockets.
pub struct DnsHandle {
    /// Closing it wakes the thread (its end of the pipe hangs up).
    wake: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for DnsHandle {
    fn drop(&mut self) {
        self.wake.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds the responder's sockets (errors are reported here, not lost in the thread) and starts it.
pub fn start(config: DnsConfig) -> Result<DnsHandle, DnsError> {
    let listen_err = |source| DnsError::Listen {
        addr: config.listen,
        source,
    };
    let udp = UdpSocket::from(bind(config.listen, SockType::Datagram).map_err(listen_err)?);
    let tcp = TcpListener::from(bind(config.listen, SockType::Stream).map_err(listen_err)?);
    let (wait, wake) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| DnsError::Thread(e.into()))?;
    let server = Server {
        udp: Arc::new(udp),
        tcp,
        relay: Arc::new(Relay {
            names: Names::new(config.endpoints),
            containers: config.containers,
            upstreams: config.upstreams,
            listen: SocketAddr::V4(config.listen),
        }),
        busy: Arc::new(AtomicUsize::new(0)),
    };
    let thread = std::thread::Builder::new()
        .name("dns".into())
        .spawn(move || server.run(wait))
        .map_err(DnsError::Thread)?;
    Ok(DnsHandle {
        wake: Some(wake),
        thread: Some(thread),
    })
}

/// A non-blocking socket on `addr` that other monitors may bind as well.
fn bind(addr: SocketAddrV4, kind: SockType) -> nix::Result<OwnedFd> {
    let fd = socket::socket(
        AddressFamily::Inet,
        kind,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
    socket::bind(fd.as_raw_fd(), &SockaddrIn::from(addr))?;
    if kind == SockType::Stream {
        socket::listen(&fd, Backlog::new(64)?)?;
    }
    Ok(fd)
}

struct Server {
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
    relay: Arc<Relay>,
    busy: Arc<AtomicUsize>,
}

/// What the relay threads share with the responder.
struct Relay {
    names: Names,
    containers: PathBuf,
    upstreams: Vec<SocketAddr>,
    listen: SocketAddr,
}

impl Relay {
    fn upstreams_for(&self, client: SocketAddr, table: &names::Table) -> Vec<SocketAddr> {
        upstreams::for_client(
            client.ip(),
            table,
            &self.containers,
            &self.upstreams,
            self.listen,
        )
    }
}

/// One of the `MAX_BUSY` places, given back when the relay or connection ends (or fails to start).
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Server {
    fn run(self, wait: OwnedFd) {
        let mut buf = vec![0u8; forward::MAX_UDP];
        loop {
            let mut fds = [
                PollFd::new(self.udp.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.tcp.as_fd(), PollFlags::POLLIN),
                PollFd::new(wait.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => {
                    tracing::warn!("DNS responder stops: poll failed: {e}");
                    return;
                }
            }
            let ready = fds.map(|f| f.revents().is_some_and(|r| !r.is_empty()));
            if ready[2] {
                return;
            }
            if ready[0] {
                self.datagrams(&mut buf);
            }
            if ready[1] {
                self.connection();
            }
        }
    }

    fn datagrams(&self, buf: &mut [u8]) {
        for _ in 0..BURST {
            let Ok((n, client)) = self.udp.recv_from(buf) else {
                return;
            };
            let query = &buf[..n];
            let table = self.relay.names.table();
            if !table.has(client.ip()) {
                continue;
            }
            match answer::handle(query, &table) {
                Action::Reply(reply) => {
                    let _ = self.udp.send_to(&reply, client);
                }
                Action::Forward => {
                    // Weak: a relay still waiting when the responder stops must not keep the port
                    // bound (the kernel would go on handing this socket queries nobody reads).
                    let (query, udp, relay) = (
                        query.to_vec(),
                        Arc::downgrade(&self.udp),
                        self.relay.clone(),
                    );
                    self.spawn(move || {
                        let upstreams = relay.upstreams_for(client, &table);
                        let reply = forward::udp(&query, &upstreams)
                            .or_else(|| answer::server_failure(&query));
                        if let (Some(reply), Some(udp)) = (reply, udp.upgrade()) {
                            let _ = udp.send_to(&reply, client);
                        }
                    });
                }
                Action::Drop => {}
            }
        }
    }

    fn connection(&self) {
        let Ok((stream, client)) = self.tcp.accept() else {
            return;
        };
        if !self.relay.names.table().has(client.ip()) {
            return;
        }
        let relay = self.relay.clone();
        self.spawn(move || serve_tcp(stream, client, &relay));
    }

    /// Runs `job` on a thread of its own if a place is free; otherwise drops it.
    fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        if self.busy.fetch_add(1, Ordering::Relaxed) >= MAX_BUSY {
            self.busy.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let slot = Slot(self.busy.clone());
        let _ = std::thread::Builder::new()
            .name("dns-relay".into())
            .spawn(move || {
                let _slot = slot;
                job();
            });
    }
}

/// Answers the queries of one TCP client until it closes, idles, or has had its share.
fn serve_tcp(mut stream: TcpStream, client: SocketAddr, relay: &Relay) {
    let prepared = stream.set_nonblocking(false).is_ok()
        && stream.set_read_timeout(Some(TCP_IDLE)).is_ok()
        && stream.set_write_timeout(Some(TCP_IDLE)).is_ok();
    let began = Instant::now();
    for _ in 0..TCP_QUERIES {
        if !prepared || began.elapsed() > TCP_LIFETIME {
            return;
        }
        let Ok(query) = forward::read_framed(&mut stream) else {
            return;
        };
        let table = relay.names.table();
        let reply = match answer::handle(&query, &table) {
            Action::Reply(reply) => Some(reply),
            Action::Forward => forward::tcp(&query, &relay.upstreams_for(client, &table))
                .or_else(|| answer::server_failure(&query)),
            Action::Drop => return,
        };
        match reply {
            Some(reply) if forward::write_framed(&mut stream, &reply).is_ok() => {}
            _ => return,
        }
    }
}
