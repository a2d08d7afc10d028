//! Relaying a query to the host's resolvers. The relay runs in the monitor, in the host's network
//! namespace, so a resolver on a host loopback address (systemd-resolved, dnsmasq) serves containers
//! too. Each relay uses its own socket connected to the upstream, so only that upstream's answer to that
//! query id is accepted.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

/// How long one upstream gets before the next is tried (glibc's default is 5 s per server and the
/// client retries, so an answer after this is not awaited anyway).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest UDP answer relayed (EDNS's usual buffer size; larger ones come truncated, then by TCP).
pub const MAX_UDP: usize = 4096;

/// The first answer of `upstreams` to `query` over UDP, or `None` if none answered in time.
pub fn udp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    upstreams
        .iter()
        .find_map(|up| udp_one(query, *up).ok().flatten())
}

fn udp_one(query: &[u8], upstream: SocketAddr) -> std::io::Result<Option<Vec<u8>>> {
    let local: SocketAddr = if upstream.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(upstream)?;
    socket.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    socket.send(query)?;
    let mut buf = vec![0; MAX_UDP];
    // Datagrams that are not the answer (wrong id) are skipped until the timeout.
    loop {
        let n = socket.recv(&mut buf)?;
        if is_answer_to(&buf[..n], query) {
            buf.truncate(n);
            return Ok(Some(buf));
        }
    }
}

/// The first answer of `upstreams` to `query` over TCP (for clients that came by TCP, mostly after a
/// truncated UDP answer).
pub fn tcp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    upstreams.iter().find_map(|up| tcp_one(query, *up).ok())
}

fn tcp_one(query: &[u8], upstream: SocketAddr) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&upstream, UPSTREAM_TIMEOUT)?;
    stream.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    stream.set_write_timeout(Some(UPSTREAM_TIMEOUT))?;
    write_framed(&mut stream, query)?;
    let answer = read_framed(&mut stream)?;
    if is_answer_to(&answer, query) {
        Ok(answer)
    } else {
        Err(std::io::ErrorKind::InvalidData.into())
    }
}

/// A DNS message over TCP: a two-byte length, then the message (RFC 1035 4.2.2). The length field
/// bounds it at 64 KiB.
pub fn read_framed(stream: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut message = vec![0; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut message)?;
    Ok(message)
}

pub fn write_framed(stream: &mut impl Write, message: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(message.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed)
}

/// Same id, and the response bit set.
fn is_answer_to(answer: &[u8], query: &[u8]) -> bool {
    answer.len() >= 12 && query.len() >= 2 && answer[..2] == query[..2] && answer[2] & 0x80 != 0
}
