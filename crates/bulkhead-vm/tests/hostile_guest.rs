//! A fake guest behind a real unix socket pair (standing in for QEMU's end, which the host hands it)
//! misbehaves; the host side must fail with a clear error, without panicking or hanging. The host side is
//! what the engine's monitor runs in production: `bulkhead_proto::handshake` bounded by a read timeout on
//! the stream.

use bulkhead_proto::{handshake, Frame, Kind, Message, ProtoError, MAX_PEER_MESSAGE};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The host's side of opening the session, as the monitor does it (which sends its `Start` ahead too;
/// what goes ahead does not change how the guest's answer is judged).
fn host_handshake(stream: &UnixStream, timeout: Duration) -> Result<(), ProtoError> {
    stream.set_read_timeout(Some(timeout)).unwrap();
    handshake(
        &mut &*stream,
        &mut &*stream,
        &[Message::StdinClose { stream: 0 }],
    )
}

/// Serves the guest's end of a socket pair with `guest`, returns the host's handshake result.
fn handshake_against(guest: impl FnOnce(UnixStream) + Send + 'static) -> Result<(), ProtoError> {
    let (stream, mut conn) = UnixStream::pair().unwrap();
    let server = thread::spawn(move || {
        // Like QEMU's chardev, consume what the host sends, so closing never resets the connection.
        let hello = bulkhead_proto::read_frame(&mut conn).unwrap();
        assert_eq!(hello.kind, Kind::Hello);
        let mut rest = conn.try_clone().unwrap();
        guest(conn);
        let _ = rest.shutdown(std::net::Shutdown::Write);
        let _ = rest.read_to_end(&mut Vec::new());
    });
    let result = host_handshake(&stream, TIMEOUT);
    drop(stream);
    server.join().unwrap();
    result
}

#[test]
fn oversized_frame_is_refused() {
    let result = handshake_against(|mut conn| {
        // Claims a 4 GiB frame; the host must refuse before allocating it.
        let _ = conn.write_all(&u32::MAX.to_be_bytes());
        let _ = conn.write_all(&[Kind::Hello as u8, 0, 0, 0, 0]);
    });
    assert!(
        matches!(result, Err(ProtoError::Oversized { .. })),
        "{result:?}"
    );
}

#[test]
fn random_bytes_are_refused() {
    let result = handshake_against(|mut conn| {
        let _ = conn.write_all(&[0, 0, 0, 9, 0xee, 1, 2, 3, 4, 5, 6, 7, 8]);
    });
    assert!(
        matches!(result, Err(ProtoError::UnknownKind(0xee))),
        "{result:?}"
    );
}

#[test]
fn malformed_hello_is_refused() {
    let result = handshake_against(|mut conn| {
        let frame = Frame {
            kind: Kind::Hello,
            stream: 0,
            payload: b"\xff\xfe not json".to_vec(),
        };
        let _ = bulkhead_proto::write_frame(&mut conn, &frame);
    });
    assert!(
        matches!(result, Err(ProtoError::Malformed { .. })),
        "{result:?}"
    );
}

#[test]
fn truncated_frame_then_hangup_is_refused() {
    let result = handshake_against(|mut conn| {
        let _ = conn.write_all(&[0, 0]);
    });
    assert!(
        matches!(result, Err(ProtoError::Truncated(2))),
        "{result:?}"
    );
}

#[test]
fn guest_error_before_hello_is_reported() {
    let result = handshake_against(|mut conn| {
        let _ = Message::Error {
            stream: 0,
            message: "mounting erofs on /run/bulkhead/lower: EINVAL".into(),
        }
        .send(&mut conn);
    });
    match result {
        Err(ProtoError::Peer(message)) => {
            assert_eq!(message, "mounting erofs on /run/bulkhead/lower: EINVAL")
        }
        other => panic!("expected ProtoError::Peer, got {other:?}"),
    }
}

#[test]
fn huge_guest_error_with_escapes_is_bounded() {
    let result = handshake_against(|mut conn| {
        let _ = Message::Error {
            stream: 0,
            message: format!("\x1b]0;pwned\x07{}", "A".repeat(200_000)),
        }
        .send(&mut conn);
    });
    match result {
        Err(ProtoError::Peer(message)) => {
            assert!(message.len() <= MAX_PEER_MESSAGE, "{}", message.len());
            assert!(!message.contains('\x1b'), "{message}");
            assert!(message.starts_with("\\u{1b}]0;pwned"), "{message}");
        }
        other => panic!("expected ProtoError::Peer, got {other:?}"),
    }
}

#[test]
fn silent_guest_times_out() {
    let (stream, mut guest) = UnixStream::pair().unwrap();
    let result = host_handshake(&stream, Duration::from_millis(200));
    assert!(matches!(result, Err(ProtoError::TimedOut)), "{result:?}");
    // The host did send its Hello before giving up.
    let mut hello = [0u8; 4];
    guest.read_exact(&mut hello).unwrap();
    assert!(u32::from_be_bytes(hello) >= 5);
}
