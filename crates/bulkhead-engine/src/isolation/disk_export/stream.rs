//! The export guest's frames as the bytes of one tar. Every byte comes from a guest whose kernel may be
//! compromised: frames are bounded by the protocol, anything but `ExportData` and `ExportEnd` ends the
//! export, a silent or slow guest runs into a timeout, and what went wrong is kept so that the error
//! names the guest's fault rather than the unpacker's view of a broken read.

use super::ExportError;
use bulkhead_proto::{bounded_peer_message, Message, ProtoError};
use std::io::{self, ErrorKind, Read};
use std::time::Instant;

/// Bytes the guest may send after the tar's end-of-archive blocks (the writer's final padding is at most
/// one record of 10 KiB).
const MAX_TRAILING: u64 = 64 * 1024;

/// Reads the tar out of `ExportData` frames until `ExportEnd`.
pub(crate) struct ExportStream<R> {
    frames: R,
    data: Vec<u8>,
    pos: usize,
    ended: bool,
    deadline: Instant,
    failure: Option<ExportError>,
}

impl<R: Read> ExportStream<R> {
    /// `frames` should have a read timeout: a guest that stops sending must not stall the start.
    pub(crate) fn new(frames: R, deadline: Instant) -> Self {
        ExportStream {
            frames,
            data: Vec::new(),
            pos: 0,
            ended: false,
            deadline,
            failure: None,
        }
    }

    /// What made a read fail, if the stream was the cause (rather than the tar's content).
    pub(crate) fn take_failure(&mut self) -> Option<ExportError> {
        self.failure.take()
    }

    /// Checks that the guest ended the export properly once the tar has been read: `ExportEnd`, after
    /// at most a little padding.
    pub(crate) fn finish(mut self) -> Result<(), ExportError> {
        let trailing = io::copy(&mut (&mut self).take(MAX_TRAILING + 1), &mut io::sink());
        if let Some(failure) = self.failure.take() {
            return Err(failure);
        }
        match trailing {
            Ok(n) if n > MAX_TRAILING => Err(ExportError::TrailingData(MAX_TRAILING)),
            Ok(_) => Ok(()),
            Err(e) => Err(ExportError::Read(e)),
        }
    }

    fn fail(&mut self, failure: ExportError) -> io::Error {
        let e = io::Error::other(failure.to_string());
        self.failure = Some(failure);
        e
    }

    /// Receives the next frame; false at the end of the export.
    fn next_frame(&mut self) -> io::Result<bool> {
        if self.failure.is_some() {
            return Err(io::Error::other("the export already failed"));
        }
        if Instant::now() >= self.deadline {
            return Err(self.fail(ExportError::TimedOut));
        }
        match Message::recv(&mut self.frames) {
            Ok(Message::ExportData { data }) => {
                self.data = data;
                self.pos = 0;
                Ok(true)
            }
            Ok(Message::ExportEnd) => {
                self.ended = true;
                Ok(false)
            }
            Ok(Message::Error { message, .. }) => {
                Err(self.fail(ExportError::Guest(bounded_peer_message(&message))))
            }
            Ok(other) => {
                let kind = other
                    .to_frame()
                    .map(|f| format!("{:?}", f.kind))
                    .unwrap_or_else(|_| "oversized".into());
                Err(self.fail(ExportError::Unexpected(kind)))
            }
            Err(ProtoError::Closed) => Err(self.fail(ExportError::Truncated)),
            Err(ProtoError::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                Err(self.fail(ExportError::TimedOut))
            }
            Err(e) => Err(self.fail(ExportError::Protocol(e))),
        }
    }
}

impl<R: Read> Read for ExportStream<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.data.len() {
            if self.ended || !self.next_frame()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.data.len() - self.pos);
        out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stream(messages: &[Message]) -> ExportStream<io::Cursor<Vec<u8>>> {
        let mut wire = Vec::new();
        for m in messages {
            m.send(&mut wire).unwrap();
        }
        ExportStream::new(
            io::Cursor::new(wire),
            Instant::now() + Duration::from_secs(60),
        )
    }

    fn data(bytes: &[u8]) -> Message {
        Message::ExportData {
            data: bytes.to_vec(),
        }
    }

    #[test]
    fn joins_data_frames_until_the_end() {
        let mut s = stream(&[data(b"ab"), data(b""), data(b"cd"), Message::ExportEnd]);
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"abcd");
        s.finish().unwrap();
    }

    #[test]
    fn a_stream_without_its_end_is_truncated() {
        let mut s = stream(&[data(b"ab")]);
        assert!(s.read_to_end(&mut Vec::new()).is_err());
        assert!(matches!(s.take_failure(), Some(ExportError::Truncated)));
    }

    #[test]
    fn the_guests_error_and_other_frames_end_the_export() {
        let mut s = stream(&[Message::Error {
            stream: 0,
            message: "disk \x1b[31m broken".into(),
        }]);
        assert!(s.read(&mut [0; 4]).is_err());
        match s.take_failure() {
            Some(ExportError::Guest(m)) => assert_eq!(m, "disk \\u{1b}[31m broken"),
            other => panic!("{other:?}"),
        }
        let mut s = stream(&[Message::Started { stream: 0, pid: 1 }]);
        assert!(s.read(&mut [0; 4]).is_err());
        assert!(matches!(s.take_failure(), Some(ExportError::Unexpected(_))));
        let mut garbage = stream(&[]);
        garbage.frames = io::Cursor::new(b"\xff\xff\xff\xffgarbage".to_vec());
        assert!(garbage.read(&mut [0; 4]).is_err());
        assert!(matches!(
            garbage.take_failure(),
            Some(ExportError::Protocol(ProtoError::Oversized { .. }))
        ));
    }

    #[test]
    fn too_much_after_the_tar_is_refused() {
        let big = vec![0u8; MAX_TRAILING as usize + 1];
        let s = stream(&[data(&big), Message::ExportEnd]);
        assert!(matches!(s.finish(), Err(ExportError::TrailingData(_))));
    }
}
