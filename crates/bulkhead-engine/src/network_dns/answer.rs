//! The protocol part: what the responder does with one message. Names of the network are answered
//! here; every other well-formed query goes to the host's resolvers unchanged (no NXDOMAIN of our own,
//! so a container resolves outside names exactly as the host does).

use super::names::Table;
use simple_dns::rdata::{RData, A, PTR};
use simple_dns::{Name, Packet, PacketFlag, ResourceRecord, CLASS, OPCODE, QTYPE, RCODE, TYPE};
use std::net::Ipv4Addr;

/// Docker's embedded DNS gives its answers this lifetime.
const TTL: u32 = 600;

#[derive(Debug, PartialEq)]
pub enum Action {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Not a name of the network: relay the query to the upstream resolvers.
    Forward,
    /// Not a query (garbage, a response, an update, several questions): no reply at all, so the
    /// responder cannot be made to talk by spoofed packets.
    Drop,
}

pub fn handle(message: &[u8], table: &Table) -> Action {
    let Ok(query) = Packet::parse(message) else {
        return Action::Drop;
    };
    if query.has_flags(PacketFlag::RESPONSE)
        || query.opcode() != OPCODE::StandardQuery
        || query.questions.len() != 1
    {
        return Action::Drop;
    }
    let question = &query.questions[0];
    let qname = question.qname.to_string();
    let mut reply = Packet::new_reply(query.id());
    reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER | PacketFlag::RECURSION_AVAILABLE);
    if query.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    reply.questions.push(question.clone());
    if let Some(addrs) = table.addresses(&qname) {
        // A name of the network answers only A; other types get an empty NOERROR (no IPv6 here), so
        // getaddrinfo's AAAA query does not leak the name to the outside resolvers.
        if matches!(question.qtype, QTYPE::TYPE(TYPE::A) | QTYPE::ANY) {
            for addr in addrs {
                reply.answers.push(ResourceRecord::new(
                    question.qname.clone(),
                    CLASS::IN,
                    TTL,
                    RData::A(A::from(*addr)),
                ));
            }
        }
    } else if let Some(owner) = reverse_name(&qname).and_then(|a| table.name_of(a)) {
        if !matches!(question.qtype, QTYPE::TYPE(TYPE::PTR) | QTYPE::ANY) {
            return Action::Forward;
        }
        let Ok(target) = Name::new(owner) else {
            return Action::Forward;
        };
        reply.answers.push(ResourceRecord::new(
            question.qname.clone(),
            CLASS::IN,
            TTL,
            RData::PTR(PTR(target)),
        ));
    } else {
        return Action::Forward;
    }
    match reply.build_bytes_vec_compressed() {
        Ok(bytes) => Action::Reply(bytes),
        Err(_) => Action::Drop,
    }
}

/// The SERVFAIL for `message` when no upstream answered (so the client gives up at once instead of
/// waiting for its own timeout).
pub fn server_failure(message: &[u8]) -> Option<Vec<u8>> {
    let query = Packet::parse(message).ok()?;
    let mut reply = Packet::new_reply(query.id());
    reply.set_flags(PacketFlag::RECURSION_AVAILABLE);
    reply.questions = query.questions;
    *reply.rcode_mut() = RCODE::ServerFailure;
    reply.build_bytes_vec().ok()
}

/// `4.3.2.1.in-addr.arpa` to 1.2.3.4.
fn reverse_name(qname: &str) -> Option<Ipv4Addr> {
    let lower = qname.to_ascii_lowercase();
    let octets = lower
        .strip_suffix('.')
        .unwrap_or(&lower)
        .strip_suffix(".in-addr.arpa")?;
    let mut parts: Vec<u8> = octets
        .split('.')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    if parts.len() != 4 {
        return None;
    }
    parts.reverse();
    Some(Ipv4Addr::new(parts[0], parts[1], parts[2], parts[3]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::Question;

    fn query(name: &str, qtype: TYPE) -> Vec<u8> {
        let mut p = Packet::new_query(7);
        p.set_flags(PacketFlag::RECURSION_DESIRED);
        p.questions.push(Question::new(
            Name::new_unchecked(name),
            qtype.into(),
            CLASS::IN.into(),
            false,
        ));
        p.build_bytes_vec().unwrap()
    }

    fn table() -> std::sync::Arc<Table> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("c.json"),
            r#"{"container_id":"c","name":"web","aliases":[],"ipv4":"10.88.0.2"}"#,
        )
        .unwrap();
        let names = super::super::names::Names::new(dir.path().to_path_buf());
        names.table()
    }

    fn reply(action: Action) -> Vec<u8> {
        match action {
            Action::Reply(bytes) => bytes,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn answers_names_and_forwards_the_rest() {
        let t = table();
        let bytes = reply(handle(&query("WEB", TYPE::A), &t));
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!(p.id(), 7);
        assert_eq!(p.answers.len(), 1);
        assert!(
            matches!(&p.answers[0].rdata, RData::A(a) if Ipv4Addr::from(a.address) == Ipv4Addr::new(10, 88, 0, 2))
        );
        let bytes = reply(handle(&query("web", TYPE::AAAA), &t));
        let aaaa = Packet::parse(&bytes).unwrap();
        assert!(aaaa.answers.is_empty());
        assert_eq!(aaaa.rcode(), RCODE::NoError);
        let bytes = reply(handle(&query("2.0.88.10.in-addr.arpa", TYPE::PTR), &t));
        let ptr = Packet::parse(&bytes).unwrap();
        assert!(matches!(&ptr.answers[0].rdata, RData::PTR(n) if n.0.to_string() == "web"));
        assert_eq!(handle(&query("example.test", TYPE::A), &t), Action::Forward);
        assert_eq!(
            handle(&query("3.0.88.10.in-addr.arpa", TYPE::PTR), &t),
            Action::Forward
        );
    }

    #[test]
    fn drops_what_is_not_a_query() {
        let t = table();
        assert_eq!(handle(b"", &t), Action::Drop);
        assert_eq!(handle(&[0xff; 40], &t), Action::Drop);
        let answer = reply(handle(&query("web", TYPE::A), &t));
        assert_eq!(handle(&answer, &t), Action::Drop);
        let bytes = server_failure(&query("x.test", TYPE::A)).unwrap();
        let fail = Packet::parse(&bytes).unwrap();
        assert_eq!(fail.rcode(), RCODE::ServerFailure);
        assert_eq!(reverse_name("1.2.3.in-addr.arpa"), None);
    }

    /// Mutated queries (bytes flipped, cut, grown, compression pointers aimed anywhere) never panic
    /// the responder: a deterministic sweep, since every message comes from a container.
    #[test]
    fn mutated_messages_never_panic() {
        let t = table();
        let seeds = [
            query("web", TYPE::A),
            query("2.0.88.10.in-addr.arpa", TYPE::PTR),
            query("a.much.longer.name.example.test", TYPE::AAAA),
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut seen = [0u32; 3];
        for round in 0..50_000 {
            let mut m = seeds[round % seeds.len()].clone();
            for _ in 0..1 + next() % 4 {
                let r = next();
                let at = (r >> 8) as usize % m.len().max(1);
                match r % 4 {
                    0 if !m.is_empty() => m[at] ^= (r >> 32) as u8,
                    1 => m.truncate(at),
                    2 => m.extend_from_slice(&(r >> 16).to_be_bytes()[..(r >> 40) as usize % 8]),
                    // A compression pointer (0xc0 | offset) somewhere in the message.
                    _ if m.len() > 1 => {
                        let p = at.min(m.len() - 2);
                        m[p] = 0xc0;
                        m[p + 1] = (r >> 24) as u8;
                    }
                    _ => {}
                }
            }
            seen[match handle(&m, &t) {
                Action::Reply(_) => 0,
                Action::Forward => 1,
                Action::Drop => 2,
            }] += 1;
            let _ = server_failure(&m);
        }
        // The sweep reached every outcome, not only the parser's refusals.
        assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
    }
}
