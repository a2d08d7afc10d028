//! The wire protocol as a hostile peer (a VM guest) can send it: a stream of frames, each decoded into a
//! message. Every message that decodes must encode and decode back to itself, and the handshake must
//! judge the stream without panicking.
#![no_main]

use bulkhead_proto::{handshake, read_frame, Message, ProtoError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut stream = data;
    while let Ok(frame) = read_frame(&mut stream) {
        let Ok(message) = Message::from_frame(&frame) else {
            continue;
        };
        match message.to_frame() {
            Ok(again) => assert_eq!(
                Message::from_frame(&again).expect("a re-encoded message decodes"),
                message
            ),
            // Re-encoding may grow a payload (JSON escapes) past the frame limit: refused, no bug.
            Err(ProtoError::Oversized { .. }) => {}
            Err(e) => panic!("a decoded message does not encode: {e}"),
        }
    }
    let _ = handshake(&mut &data[..], &mut std::io::sink(), &[]);
});
