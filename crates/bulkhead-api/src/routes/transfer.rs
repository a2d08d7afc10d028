//! Image archives in and out: an uploaded archive (`images/load`, `docker import`) is streamed to a
//! temporary file under the engine root with a size cap, never held in memory, and an exported one
//! (`docker save`) is streamed from such a file. The temporary files are removed when dropped, so a
//! client that leaves mid-transfer leaves nothing behind.

use crate::error::ApiError;
use crate::http::{self, Body};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::{Request, StatusCode};
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::AsyncWriteExt;

/// The largest archive a client may upload: bigger than any image we expect, small enough that a
/// runaway client cannot fill the disk holding the engine root.
pub const UPLOAD_LIMIT: u64 = 16 << 30;

/// Chunk size of a streamed download.
const CHUNK: usize = 256 << 10;

/// A file under `<root>/api-tmp/`, removed when dropped.
pub struct TempFile(PathBuf);

impl TempFile {
    /// A fresh, not yet created path for `what` (`load`, `save`, ...).
    pub fn new(root: &Path, what: &str) -> Result<TempFile, ApiError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = root.join("api-tmp");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&dir)
            .map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        if n == 0 {
            remove_orphans(&dir);
        }
        Ok(TempFile(
            dir.join(format!("{what}-{}-{n}.tar", std::process::id())),
        ))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// Removes the files a server that is gone (killed mid-upload) left, named by its pid: done once per
/// server, at its first transfer.
fn remove_orphans(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        let owner_alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !owner_alive {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the uploaded archive is larger than the {limit} byte limit"),
    )
}

/// Streams the request body into a new temporary file, refusing it past `limit` bytes (at once when
/// the declared length says so).
pub async fn upload(
    req: Request<Incoming>,
    root: &Path,
    what: &str,
    limit: u64,
) -> Result<TempFile, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let temp = TempFile::new(root, what)?;
    let io_error = |e: std::io::Error| ApiError::internal(format!("{}: {e}", temp.0.display()));
    let mut file = tokio::fs::File::create(&temp.0).await.map_err(io_error)?;
    let mut body = req.into_body();
    let mut written: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        written += data.len() as u64;
        if written > limit {
            return Err(too_large(limit));
        }
        file.write_all(&data).await.map_err(io_error)?;
    }
    file.flush().await.map_err(io_error)?;
    if written == 0 {
        return Err(ApiError::bad_request(
            "the request body is empty: expected a tar archive",
        ));
    }
    Ok(temp)
}

/// Reads and drops the request body (up to `limit` bytes), so that a client told no before its upload
/// was read gets the answer instead of a broken pipe while it is still writing.
pub async fn discard(req: Request<Incoming>, limit: u64) {
    let mut body = req.into_body();
    let mut read: u64 = 0;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            read += data.len() as u64;
            if read > limit {
                break;
            }
        }
    }
}

/// A body that streams `file` and removes it at the end (or when the client leaves).
pub fn download(file: TempFile) -> Result<Body, ApiError> {
    let mut reader = std::fs::File::open(file.path())
        .map_err(|e| ApiError::internal(format!("{}: {e}", file.path().display())))?;
    let (tx, body) = http::stream(4);
    tokio::task::spawn_blocking(move || {
        let _file = file;
        let mut buf = vec![0u8; CHUNK];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
                        break;
                    }
                }
            }
        }
    });
    Ok(body)
}
