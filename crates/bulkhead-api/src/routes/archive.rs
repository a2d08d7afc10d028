//! `docker cp`: `HEAD|GET|PUT /containers/{id}/archive?path=`. The path's stat goes in the
//! `X-Docker-Container-Path-Stat` header (base64 of docker's JSON, its mode in Go's `os.FileMode` bits);
//! archives are tars streamed between the client and the engine through bounded channels, never held
//! whole in memory.

use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::http::{self, ApiResult, Query};
use base64::Engine as _;
use bulkhead_engine::PathStat;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The largest tar a `PUT` may send.
const PUT_LIMIT: u64 = 1 << 30;
/// Chunks of an archive in flight between the engine and the client.
const CHUNKS: usize = 16;
/// The size of a chunk sent to a `GET` client.
const CHUNK: usize = 64 * 1024;
const STAT_HEADER: &str = "x-docker-container-path-stat";

pub async fn route(ctx: &Arc<Ctx>, req: Request<Incoming>, segments: &[&str]) -> ApiResult {
    let ["containers", key, "archive"] = segments else {
        return Err(ApiError::unsupported(req.method(), req.uri().path()));
    };
    let q = Query::parse(req.uri().query());
    let path = q
        .get("path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad_request("the path parameter is required"))?
        .to_string();
    let key = key.to_string();
    match req.method().clone() {
        Method::HEAD => {
            let stat = ctx
                .blocking(move |engine| engine.archive_stat(&key, &path))
                .await?;
            let mut response = http::empty(StatusCode::OK)?;
            response
                .headers_mut()
                .insert(STAT_HEADER, stat_header(&stat)?);
            Ok(response)
        }
        Method::GET => get(ctx, key, path).await,
        Method::PUT => put(ctx, req, key, path).await,
        _ => Err(ApiError::unsupported(req.method(), req.uri().path())),
    }
}

/// The tar of `path`: its stat first (a missing path is a 404 before any byte of body), then the tar,
/// streamed as the engine writes it.
async fn get(ctx: &Ctx, key: String, path: String) -> ApiResult {
    let (k, p) = (key.clone(), path.clone());
    let stat = ctx
        .blocking(move |engine| engine.archive_stat(&k, &p))
        .await?;
    let (tx, body) = http::stream(CHUNKS);
    let engine = ctx.engine.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = BodyWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        // A failure after the head is sent can only cut the body short: the client's tar reader sees it.
        if let Err(e) = engine.archive_get(&key, &path, &mut out) {
            tracing::debug!("archive of {path} in {key}: {e}");
        }
    });
    let mut response = http::with_type(StatusCode::OK, body, "application/x-tar");
    response
        .headers_mut()
        .insert(STAT_HEADER, stat_header(&stat)?);
    Ok(response)
}

/// Extracts the request's tar into the directory `path`, read from the body as the engine asks for it.
/// `noOverwriteDirNonDir` and `copyUIDGID` are not read: the engine always keeps the tar's owners, and
/// its extraction fails on a member whose type differs from the directory or file already there.
async fn put(ctx: &Ctx, req: Request<Incoming>, key: String, path: String) -> ApiResult {
    let (tx, rx) = mpsc::channel(CHUNKS);
    let too_large = Arc::new(AtomicBool::new(false));
    let feeder = tokio::spawn(feed_body(req.into_body(), tx, too_large.clone()));
    let mut reader = BodyReader {
        rx,
        current: Bytes::new(),
    };
    let result = ctx
        .blocking(move |engine| engine.archive_put(&key, &path, &mut reader))
        .await;
    feeder.abort();
    if too_large.load(Ordering::Acquire) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the archive is larger than {PUT_LIMIT} bytes"),
        ));
    }
    result?;
    http::empty(StatusCode::OK)
}

/// Moves the request body into the channel the engine's reader takes it from, up to [`PUT_LIMIT`].
async fn feed_body(
    mut body: Incoming,
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    too_large: Arc<AtomicBool>,
) {
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let chunk = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
            Err(e) => {
                let _ = tx.send(Err(std::io::Error::other(e))).await;
                return;
            }
        };
        total += chunk.len() as u64;
        if total > PUT_LIMIT {
            too_large.store(true, Ordering::Release);
            let _ = tx
                .send(Err(std::io::Error::other("the archive is too large")))
                .await;
            return;
        }
        if tx.send(Ok(chunk)).await.is_err() {
            return;
        }
    }
}

/// The request body as a blocking reader, for the engine.
struct BodyReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// The response body as a blocking writer, for the engine: full chunks go out, a gone client is an error.
struct BodyWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::ErrorKind::BrokenPipe.into())
    }
}

/// Docker's stat JSON, base64-encoded for the header.
fn stat_header(stat: &PathStat) -> Result<HeaderValue, ApiError> {
    let json = serde_json::json!({
        "name": stat.name,
        "size": stat.size,
        "mode": go_file_mode(stat.mode),
        "mtime": stat.mtime.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "linkTarget": stat.link_target,
    });
    let encoded = base64::engine::general_purpose::STANDARD.encode(json.to_string());
    HeaderValue::from_str(&encoded).map_err(|e| ApiError::internal(format!("stat header: {e}")))
}

/// `st_mode` as Go's `os.FileMode`: the permission bits, and the type and special bits where Go keeps them.
fn go_file_mode(mode: u32) -> u32 {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const DEVICE: u32 = 1 << 26;
    const NAMED_PIPE: u32 = 1 << 25;
    const SOCKET: u32 = 1 << 24;
    const SETUID: u32 = 1 << 23;
    const SETGID: u32 = 1 << 22;
    const CHAR_DEVICE: u32 = 1 << 21;
    const STICKY: u32 = 1 << 20;
    let kind = match mode & libc::S_IFMT {
        libc::S_IFDIR => DIR,
        libc::S_IFLNK => SYMLINK,
        libc::S_IFBLK => DEVICE,
        libc::S_IFCHR => DEVICE | CHAR_DEVICE,
        libc::S_IFIFO => NAMED_PIPE,
        libc::S_IFSOCK => SOCKET,
        _ => 0,
    };
    let special = [
        (libc::S_ISUID, SETUID),
        (libc::S_ISGID, SETGID),
        (libc::S_ISVTX, STICKY),
    ]
    .iter()
    .filter(|(bit, _)| mode & bit != 0)
    .fold(0, |acc, (_, go)| acc | go);
    kind | special | (mode & 0o777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_modes_in_go_bits() {
        assert_eq!(go_file_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_file_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(go_file_mode(libc::S_IFREG | 0o4755), (1 << 23) | 0o755);
        assert_eq!(
            go_file_mode(libc::S_IFCHR | 0o666),
            (1 << 26) | (1 << 21) | 0o666
        );
    }

    #[test]
    fn stat_header_is_base64_json() {
        let stat = PathStat {
            name: "etc".into(),
            size: 4096,
            mode: libc::S_IFDIR | 0o755,
            mtime: chrono::DateTime::from_timestamp(1_700_000_000, 5).unwrap(),
            link_target: String::new(),
        };
        let header = stat_header(&stat).unwrap();
        let json: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(header.as_bytes())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(json["name"], "etc");
        assert_eq!(json["mode"], (1u64 << 31) | 0o755);
        assert_eq!(json["mtime"], "2023-11-14T22:13:20.000000005Z");
        assert_eq!(json["linkTarget"], "");
    }
}
