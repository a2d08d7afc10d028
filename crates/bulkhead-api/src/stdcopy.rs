//! Docker's framing of a container's output on attach, exec and logs streams. Without a TTY, stdout and
//! stderr share one connection, so each chunk is prefixed by 8 bytes: the stream (1 stdout, 2 stderr),
//! three zero bytes and the payload length as a big-endian u32 (docker's `stdcopy`). With a TTY there is
//! only one stream, sent raw.

use bytes::{BufMut, Bytes, BytesMut};

/// Which of the container's outputs a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

impl Output {
    fn id(self) -> u8 {
        match self {
            Output::Stdout => 1,
            Output::Stderr => 2,
        }
    }
}

/// How a stream's chunks are written: framed (no TTY) or raw (TTY).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Multiplexed,
    Raw,
}

impl Framing {
    pub fn for_tty(tty: bool) -> Framing {
        if tty {
            Framing::Raw
        } else {
            Framing::Multiplexed
        }
    }

    /// The response's `Content-Type`, which the docker client reads to know whether to demultiplex.
    pub fn content_type(self) -> &'static str {
        match self {
            Framing::Multiplexed => "application/vnd.docker.multiplexed-stream",
            Framing::Raw => "application/vnd.docker.raw-stream",
        }
    }

    /// `data` as it goes on the wire. A chunk larger than a frame can say is split into several; an empty
    /// one is nothing.
    pub fn encode(self, output: Output, data: &[u8]) -> Bytes {
        if self == Framing::Raw {
            return Bytes::copy_from_slice(data);
        }
        let max = u32::MAX as usize;
        let frames = data.len().div_ceil(max);
        let mut out = BytesMut::with_capacity(data.len() + 8 * frames);
        for chunk in data.chunks(max) {
            out.put_u8(output.id());
            out.put_bytes(0, 3);
            out.put_u32(chunk.len() as u32);
            out.put_slice(chunk);
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Docker's demultiplexer, as the client runs it: (stream, payload) per frame.
    fn demux(mut wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut frames = Vec::new();
        while !wire.is_empty() {
            assert!(wire.len() >= 8, "a torn header: {wire:?}");
            assert_eq!(&wire[1..4], &[0, 0, 0]);
            let len = u32::from_be_bytes([wire[4], wire[5], wire[6], wire[7]]) as usize;
            frames.push((wire[0], wire[8..8 + len].to_vec()));
            wire = &wire[8 + len..];
        }
        frames
    }

    #[test]
    fn multiplexed_frames_name_the_stream_and_length() {
        let mut wire = Framing::Multiplexed
            .encode(Output::Stdout, b"hello\n")
            .to_vec();
        assert_eq!(&wire[..8], &[1, 0, 0, 0, 0, 0, 0, 6]);
        wire.extend_from_slice(&Framing::Multiplexed.encode(Output::Stderr, &[0xff; 300]));
        assert_eq!(
            demux(&wire),
            vec![(1, b"hello\n".to_vec()), (2, vec![0xff; 300])]
        );
        assert_eq!(&wire[14..22], &[2, 0, 0, 0, 0, 0, 1, 44]);
    }

    #[test]
    fn raw_is_the_bytes_themselves() {
        assert_eq!(
            &Framing::Raw.encode(Output::Stderr, b"\x1b[1mtty")[..],
            b"\x1b[1mtty"
        );
        assert_eq!(
            Framing::for_tty(true).content_type(),
            "application/vnd.docker.raw-stream"
        );
        assert_eq!(
            Framing::for_tty(false).content_type(),
            "application/vnd.docker.multiplexed-stream"
        );
    }

    #[test]
    fn an_empty_chunk_is_nothing() {
        assert!(Framing::Multiplexed.encode(Output::Stdout, b"").is_empty());
    }
}
