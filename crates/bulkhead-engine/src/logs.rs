//! Container logs: one JSON record per output chunk, appended by the monitor and read by `logs`.
//!
//! Output is bytes, not text: a chunk that is not UTF-8 is stored base64-encoded, so `logs` gives back
//! exactly what the container wrote.

use crate::EngineError;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One chunk of output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub time: DateTime<Utc>,
    pub stream: Stream,
    pub log: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub b64: bool,
}

impl Record {
    pub fn new(stream: Stream, data: &[u8]) -> Record {
        let (log, b64) = match std::str::from_utf8(data) {
            Ok(s) => (s.to_string(), false),
            Err(_) => (base64::engine::general_purpose::STANDARD.encode(data), true),
        };
        Record {
            time: Utc::now(),
            stream,
            log,
            b64,
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        if self.b64 {
            base64::engine::general_purpose::STANDARD
                .decode(&self.log)
                .unwrap_or_default()
        } else {
            self.log.as_bytes().to_vec()
        }
    }

    /// Docker's `-t` timestamp format.
    pub fn timestamp(&self) -> String {
        self.time.to_rfc3339_opts(SecondsFormat::Nanos, true)
    }
}

/// Opens (creating) a log for appending, mode 0640 even if it existed: what a container prints may be
/// secret, so other users do not read it (a group the owner chooses may).
pub(crate) fn open_log(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o640))?;
    Ok(file)
}

/// Appends records; each is one `write`, so concurrent readers never see half a line.
pub struct Writer {
    file: File,
    path: PathBuf,
}

impl Writer {
    pub fn open(path: &Path) -> Result<Writer, EngineError> {
        let file = open_log(path).map_err(EngineError::io(path))?;
        Ok(Writer {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn write(&mut self, stream: Stream, data: &[u8]) -> Result<(), EngineError> {
        let mut line = serde_json::to_vec(&Record::new(stream, data)).map_err(|source| {
            EngineError::Corrupt {
                path: self.path.clone(),
                source,
            }
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(EngineError::io(&self.path))
    }
}

/// Reads the log: the last `tail` lines (all if None), then, with `follow`, new records until
/// `running()` turns false and nothing more arrives. A torn last line (a crash mid-write) is skipped.
pub fn read(
    path: &Path,
    tail: Option<usize>,
    follow: bool,
    running: impl Fn() -> bool,
    mut out: impl FnMut(&Record) -> std::io::Result<()>,
) -> Result<(), EngineError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !follow => return Ok(()),
        Err(e) => return Err(EngineError::io(path)(e)),
    };
    let mut reader = BufReader::new(file);
    let mut records = Vec::new();
    let mut pos = read_complete_lines(&mut reader, &mut records, path)?;
    let records = split_lines(records);
    let skip = tail.map(|t| records.len().saturating_sub(t)).unwrap_or(0);
    for r in &records[skip..] {
        if out(r).is_err() {
            return Ok(());
        }
    }
    if !follow {
        return Ok(());
    }
    loop {
        let still_running = running();
        reader
            .seek(SeekFrom::Start(pos))
            .map_err(EngineError::io(path))?;
        let mut fresh = Vec::new();
        pos += read_complete_lines(&mut reader, &mut fresh, path)?;
        let fresh = split_lines(fresh);
        for r in &fresh {
            if out(r).is_err() {
                return Ok(());
            }
        }
        if !still_running && fresh.is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Splits chunk records into one record per output line, as docker's `--tail` and `-t` count them.
fn split_lines(records: Vec<Record>) -> Vec<Record> {
    let mut lines = Vec::with_capacity(records.len());
    for r in records {
        let bytes = r.bytes();
        if bytes.iter().filter(|b| **b == b'\n').count() <= 1 {
            lines.push(r);
            continue;
        }
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            lines.push(Record {
                time: r.time,
                ..Record::new(r.stream, line)
            });
        }
    }
    lines
}

/// Parses whole JSON lines from the reader's position; returns the bytes consumed (a partial last line is
/// not). A damaged line is skipped with a warning. The event log is read this way too.
pub(crate) fn read_complete_lines<T: serde::de::DeserializeOwned>(
    reader: &mut BufReader<File>,
    out: &mut Vec<T>,
    path: &Path,
) -> Result<u64, EngineError> {
    let mut consumed = 0u64;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(EngineError::io(path))?;
        if n == 0 || !line.ends_with('\n') {
            return Ok(consumed);
        }
        consumed += n as u64;
        match serde_json::from_str::<T>(&line) {
            Ok(r) => out.push(r),
            Err(e) => tracing::warn!("{}: skipping a damaged line: {e}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_bytes_and_tails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = Writer::open(&path).unwrap();
        w.write(Stream::Stdout, b"one\n").unwrap();
        w.write(Stream::Stderr, &[0xff, 0x00]).unwrap();
        w.write(Stream::Stdout, b"three\n").unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"torn")
            .unwrap();
        let mut got = Vec::new();
        read(
            &path,
            Some(2),
            false,
            || false,
            |r| {
                got.push((r.stream, r.bytes()));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                (Stream::Stderr, vec![0xff, 0x00]),
                (Stream::Stdout, b"three\n".to_vec())
            ]
        );
    }

    #[test]
    fn tails_lines_not_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = Writer::open(&path).unwrap();
        w.write(Stream::Stdout, b"a\nb\nc\npartial").unwrap();
        let mut got = Vec::new();
        read(
            &path,
            Some(2),
            false,
            || false,
            |r| {
                got.push(r.bytes());
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, vec![b"c\n".to_vec(), b"partial".to_vec()]);
    }
}
