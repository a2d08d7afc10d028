//! Opening a session. Every link (CLI to monitor, monitor to agent, agent to monitor) opens through
//! [`handshake`], so what a peer sends in place of `Hello` is judged the same way on each of them, and
//! the tests that feed it a hostile peer exercise the path production takes.

use crate::{read_frame, Message, ProtoError, VERSION};
use std::io::{ErrorKind, Read, Write};

/// Longest peer error message kept, in bytes: it ends up on terminals and in state files.
pub const MAX_PEER_MESSAGE: usize = 1024;

/// Sends our `Hello`, then `ahead` (what this side will send next anyway: a peer that is still booting
/// then has it without waiting for a round trip to us), then reads the peer's `Hello`, which must be of
/// our version.
///
/// An `Error` in place of `Hello` (a peer that failed before it could serve, e.g. a VM guest that cannot
/// mount its root filesystem) is [`ProtoError::Peer`] with the peer's own message. A read or write that
/// runs into the stream's timeout (set by the caller) is [`ProtoError::TimedOut`].
pub fn handshake(
    r: &mut impl Read,
    w: &mut impl Write,
    ahead: &[Message],
) -> Result<(), ProtoError> {
    let mut exchange = || {
        Message::Hello { version: VERSION }.send(w)?;
        for msg in ahead {
            msg.send(w)?;
        }
        let frame = read_frame(r)?;
        match Message::from_frame(&frame)? {
            Message::Hello { version } if version == VERSION => Ok(()),
            Message::Hello { version } => Err(ProtoError::Version(version)),
            Message::Error { message, .. } => Err(ProtoError::Peer(bounded_peer_message(&message))),
            _ => Err(ProtoError::Unexpected {
                expected: "Hello",
                got: frame.kind,
            }),
        }
    };
    exchange().map_err(|e| match e {
        ProtoError::Io(io) if matches!(io.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            ProtoError::TimedOut
        }
        other => other,
    })
}

/// `message` cut to [`MAX_PEER_MESSAGE`] bytes, with control characters escaped: it comes from a peer
/// that may be hostile and is printed to terminals.
pub fn bounded_peer_message(message: &str) -> String {
    const CUT: &str = " [...]";
    let mut out = String::new();
    for c in message.chars() {
        let len = out.len();
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        if out.len() > MAX_PEER_MESSAGE - CUT.len() {
            out.truncate(len);
            out.push_str(CUT);
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn against(peer: &[Message]) -> (Result<(), ProtoError>, Vec<u8>) {
        let mut input = Vec::new();
        for m in peer {
            m.send(&mut input).unwrap();
        }
        let mut out = Vec::new();
        let result = handshake(
            &mut input.as_slice(),
            &mut out,
            &[Message::StdinClose { stream: 0 }],
        );
        (result, out)
    }

    #[test]
    fn sends_hello_and_ahead_then_accepts_hello() {
        let (result, out) = against(&[Message::Hello { version: VERSION }]);
        result.unwrap();
        let mut sent = out.as_slice();
        assert_eq!(
            Message::recv(&mut sent).unwrap(),
            Message::Hello { version: VERSION }
        );
        assert_eq!(
            Message::recv(&mut sent).unwrap(),
            Message::StdinClose { stream: 0 }
        );
        assert!(sent.is_empty());
    }

    #[test]
    fn refuses_other_versions_and_other_messages() {
        let (result, _) = against(&[Message::Hello { version: 99 }]);
        assert!(matches!(result, Err(ProtoError::Version(99))), "{result:?}");
        let (result, _) = against(&[Message::Attach { stdin: false }]);
        assert!(
            matches!(result, Err(ProtoError::Unexpected { .. })),
            "{result:?}"
        );
        let (result, _) = against(&[]);
        assert!(matches!(result, Err(ProtoError::Closed)), "{result:?}");
    }

    #[test]
    fn an_error_in_place_of_hello_keeps_the_peers_message() {
        let (result, _) = against(&[Message::Error {
            stream: 0,
            message: "cannot mount: EINVAL".into(),
        }]);
        match result {
            Err(ProtoError::Peer(message)) => assert_eq!(message, "cannot mount: EINVAL"),
            other => panic!("expected Peer, got {other:?}"),
        }
    }

    #[test]
    fn peer_messages_are_bounded_and_escaped() {
        assert_eq!(
            bounded_peer_message("red \x1b[31m\nalert"),
            "red \\u{1b}[31m\\nalert"
        );
        let long = bounded_peer_message(&"é".repeat(MAX_PEER_MESSAGE));
        assert!(long.len() <= MAX_PEER_MESSAGE, "{}", long.len());
        assert!(long.ends_with("é [...]"), "{long}");
    }
}
