//! A byte stream cut into data frames: what a tar streamed over a session becomes.

use crate::Message;
use std::io::{self, Write};

/// Buffers bytes written to it and sends them as messages of at most `chunk` bytes each, made by
/// `wrap` (e.g. `ExportData`, `ArchiveData`). `flush` sends what is buffered.
pub struct ChunkWriter<W: Write, F: FnMut(Vec<u8>) -> Message> {
    out: W,
    buf: Vec<u8>,
    chunk: usize,
    wrap: F,
}

impl<W: Write, F: FnMut(Vec<u8>) -> Message> ChunkWriter<W, F> {
    /// `chunk` must not exceed [`crate::MAX_PAYLOAD`], or sending fails.
    pub fn new(out: W, chunk: usize, wrap: F) -> Self {
        ChunkWriter {
            out,
            buf: Vec::with_capacity(chunk),
            chunk,
            wrap,
        }
    }
}

impl<W: Write, F: FnMut(Vec<u8>) -> Message> Write for ChunkWriter<W, F> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.chunk - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.chunk {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(self.chunk));
        (self.wrap)(data)
            .send(&mut self.out)
            .map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_out_as_bounded_frames_in_order() {
        let mut buf = Vec::new();
        let mut w = ChunkWriter::new(&mut buf, 4, |data| Message::ExportData { data });
        w.write_all(b"0123456789").unwrap();
        w.flush().unwrap();
        drop(w);
        let mut wire = buf.as_slice();
        let mut got = Vec::new();
        while let Ok(Message::ExportData { data }) = Message::recv(&mut wire) {
            assert!(data.len() <= 4);
            got.extend(data);
        }
        assert_eq!(got, b"0123456789");
    }
}
