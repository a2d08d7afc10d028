//! Length-prefixed frames with a hard size bound, read without trusting the peer.

use crate::ProtoError;
use std::io::{ErrorKind, Read, Write};

/// Largest payload either side accepts. Stdio is chunked below it; control JSON is far smaller.
pub const MAX_PAYLOAD: usize = 256 * 1024;
const HEADER: usize = 5; // kind + stream, counted in `len`

/// What a frame carries. Values are part of the wire format: append, never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Hello = 1,
    Start = 2,
    Started = 3,
    Stdin = 4,
    StdinClose = 5,
    Stdout = 6,
    Stderr = 7,
    Resize = 8,
    Signal = 9,
    Exec = 10,
    Exited = 11,
    Error = 12,
    Update = 13,
    Attach = 14,
    Export = 15,
    ExportData = 16,
    ExportEnd = 17,
    Top = 18,
    TopResult = 19,
    Stats = 20,
    StatsResult = 21,
    ArchiveStat = 22,
    ArchiveGet = 23,
    ArchivePut = 24,
    PathStat = 25,
    NoSuchPath = 26,
    ArchiveData = 27,
    ArchiveAck = 28,
    ArchiveEnd = 29,
}

impl TryFrom<u8> for Kind {
    type Error = ProtoError;
    fn try_from(v: u8) -> Result<Self, ProtoError> {
        use Kind::*;
        Ok(match v {
            1 => Hello,
            2 => Start,
            3 => Started,
            4 => Stdin,
            5 => StdinClose,
            6 => Stdout,
            7 => Stderr,
            8 => Resize,
            9 => Signal,
            10 => Exec,
            11 => Exited,
            12 => Error,
            13 => Update,
            14 => Attach,
            15 => Export,
            16 => ExportData,
            17 => ExportEnd,
            18 => Top,
            19 => TopResult,
            20 => Stats,
            21 => StatsResult,
            22 => ArchiveStat,
            23 => ArchiveGet,
            24 => ArchivePut,
            25 => PathStat,
            26 => NoSuchPath,
            27 => ArchiveData,
            28 => ArchiveAck,
            29 => ArchiveEnd,
            other => return Err(ProtoError::UnknownKind(other)),
        })
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    pub stream: u32,
    pub payload: Vec<u8>,
}

/// Reads one frame. A clean end of stream before the first header byte is [`ProtoError::Closed`].
pub fn read_frame(r: &mut impl Read) -> Result<Frame, ProtoError> {
    let mut len_buf = [0u8; 4];
    read_exact_or_closed(r, &mut len_buf)?;
    let len = u32::from_be_bytes(len_buf) as usize;
    if len < HEADER {
        return Err(ProtoError::Truncated(len));
    }
    if len - HEADER > MAX_PAYLOAD {
        return Err(ProtoError::Oversized {
            len,
            max: MAX_PAYLOAD + HEADER,
        });
    }
    let mut header = [0u8; HEADER];
    r.read_exact(&mut header)?;
    let kind = Kind::try_from(header[0])?;
    let stream = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let mut payload = vec![0u8; len - HEADER];
    r.read_exact(&mut payload)?;
    Ok(Frame {
        kind,
        stream,
        payload,
    })
}

/// Writes one frame in a single `write_all`, so frames from one writer never interleave on the wire.
pub fn write_frame(w: &mut impl Write, frame: &Frame) -> Result<(), ProtoError> {
    if frame.payload.len() > MAX_PAYLOAD {
        return Err(ProtoError::Oversized {
            len: frame.payload.len(),
            max: MAX_PAYLOAD,
        });
    }
    let mut buf = Vec::with_capacity(4 + HEADER + frame.payload.len());
    buf.extend_from_slice(&((HEADER + frame.payload.len()) as u32).to_be_bytes());
    buf.push(frame.kind as u8);
    buf.extend_from_slice(&frame.stream.to_be_bytes());
    buf.extend_from_slice(&frame.payload);
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

fn read_exact_or_closed(r: &mut impl Read, buf: &mut [u8]) -> Result<(), ProtoError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Err(ProtoError::Closed),
            Ok(0) => return Err(ProtoError::Truncated(filled)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let f = Frame {
            kind: Kind::Stdout,
            stream: 7,
            payload: b"hello".to_vec(),
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &f).unwrap();
        assert_eq!(read_frame(&mut buf.as_slice()).unwrap(), f);
    }

    #[test]
    fn rejects_oversized_before_allocating() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&u32::MAX.to_be_bytes());
        buf.push(Kind::Stdout as u8);
        assert!(matches!(
            read_frame(&mut buf.as_slice()),
            Err(ProtoError::Oversized { .. })
        ));
    }

    #[test]
    fn rejects_unknown_kind_and_short_frames() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&5u32.to_be_bytes());
        buf.extend_from_slice(&[200, 0, 0, 0, 0]);
        assert!(matches!(
            read_frame(&mut buf.as_slice()),
            Err(ProtoError::UnknownKind(200))
        ));
        let short = 3u32.to_be_bytes();
        assert!(matches!(
            read_frame(&mut short.as_slice()),
            Err(ProtoError::Truncated(3))
        ));
        let cut = [0u8, 0];
        assert!(matches!(
            read_frame(&mut cut.as_slice()),
            Err(ProtoError::Truncated(2))
        ));
        assert!(matches!(
            read_frame(&mut [].as_slice()),
            Err(ProtoError::Closed)
        ));
    }
}
