//! `GET /containers/{id}/logs`: the container's log, framed as docker's stdcopy unless the container has
//! a TTY, streamed from a blocking reader of the engine's log. A follow ends when the container stops,
//! when `until` passes, or when the client goes away.

use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::http::{self, ApiResult, Query};
use crate::stdcopy::{Framing, Output};
use bulkhead_engine::logs::{Record, Stream};
use bulkhead_engine::LogOptions;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use std::cell::RefCell;
use std::sync::Arc;

/// Chunks buffered between the log reader and a slow client (the reader waits beyond that).
const STREAM_CHUNKS: usize = 16;
/// The size of a chunk of log sent at once.
const BATCH: usize = 64 * 1024;

pub async fn route(ctx: &Arc<Ctx>, req: Request<Incoming>, segments: &[&str]) -> ApiResult {
    match (req.method(), segments) {
        (&Method::GET, ["containers", key, "logs"]) => logs(ctx, &req, key).await,
        _ => Err(ApiError::unsupported(req.method(), req.uri().path())),
    }
}

/// What the query asks of the log.
#[derive(Debug, Clone)]
struct LogQuery {
    options: LogOptions,
    stdout: bool,
    stderr: bool,
    timestamps: bool,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

impl LogQuery {
    fn parse(q: &Query) -> Result<LogQuery, ApiError> {
        let (stdout, stderr) = (q.flag("stdout")?, q.flag("stderr")?);
        if !stdout && !stderr {
            return Err(ApiError::bad_request(
                "Bad parameters: you must choose at least one stream",
            ));
        }
        let tail = match q.get("tail") {
            None | Some("") | Some("all") => None,
            Some(n) => match n.parse::<i64>() {
                Ok(n) if n < 0 => None,
                Ok(n) => Some(n as usize),
                Err(_) => {
                    return Err(ApiError::bad_request(format!(
                        "invalid value {n:?} for tail: expected \"all\" or a number"
                    )))
                }
            },
        };
        Ok(LogQuery {
            options: LogOptions {
                tail,
                follow: q.flag("follow")?,
            },
            stdout,
            stderr,
            timestamps: q.flag("timestamps")?,
            since: time(q, "since")?,
            until: time(q, "until")?,
        })
    }

    /// The record as it goes to the client, or None if the query leaves it out.
    fn encode(&self, framing: Framing, record: &Record) -> Option<Bytes> {
        let output = match record.stream {
            Stream::Stdout if self.stdout => Output::Stdout,
            Stream::Stderr if self.stderr => Output::Stderr,
            _ => return None,
        };
        if self.since.is_some_and(|since| record.time < since)
            || self.until.is_some_and(|until| record.time > until)
        {
            return None;
        }
        let mut data = record.bytes();
        if self.timestamps {
            data.splice(0..0, format!("{} ", record.timestamp()).into_bytes());
        }
        Some(framing.encode(output, &data))
    }
}

/// `since`/`until`: unix seconds with an optional fraction (what the docker CLI sends), or RFC 3339.
/// Zero or empty means no bound.
fn time(q: &Query, key: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    Ok(q.time(key)?
        .filter(|t| t.timestamp() != 0 || t.timestamp_subsec_nanos() != 0))
}

async fn logs(ctx: &Arc<Ctx>, req: &Request<Incoming>, key: &str) -> ApiResult {
    let query = LogQuery::parse(&Query::parse(req.uri().query()))?;
    let key = key.to_string();
    let container = ctx.blocking(move |engine| engine.find(&key)).await?;
    let framing = Framing::for_tty(container.config.workload.process.terminal);
    let id = container.config.id;
    let (tx, body) = http::stream(STREAM_CHUNKS);
    let engine = ctx.engine.clone();
    tokio::task::spawn_blocking(move || {
        // Records are sent in batches of up to BATCH bytes (a line per chunk costs as much again in
        // framing and wake-ups); a follow sends what it has before each wait for more.
        let batch = RefCell::new(Vec::with_capacity(BATCH));
        let send = || -> std::io::Result<()> {
            let chunk = std::mem::replace(&mut *batch.borrow_mut(), Vec::with_capacity(BATCH));
            if chunk.is_empty() {
                return Ok(());
            }
            tx.blocking_send(Bytes::from(chunk))
                .map_err(|_| std::io::ErrorKind::BrokenPipe.into())
        };
        let until = query.until;
        let keep_following =
            || send().is_ok() && !tx.is_closed() && until.is_none_or(|until| Utc::now() <= until);
        let result = engine.logs_while(&id, query.options, keep_following, |record| {
            if let Some(chunk) = query.encode(framing, record) {
                batch.borrow_mut().extend_from_slice(&chunk);
            }
            if batch.borrow().len() >= BATCH {
                send()?;
            }
            Ok(())
        });
        match result.map(|()| send()) {
            Err(e) => tracing::debug!("logs of {id}: {e}"),
            Ok(Err(e)) => tracing::debug!("logs of {id}: the client went: {e}"),
            Ok(Ok(())) => {}
        }
    });
    Ok(http::with_type(
        StatusCode::OK,
        body,
        framing.content_type(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_docker_spellings() {
        let q = Query::parse(Some(
            "since=1700000000.5&until=2024-01-02T03%3A04%3A05Z&tail=all&stdout=1",
        ));
        let since = time(&q, "since").unwrap().unwrap();
        assert_eq!(since.timestamp(), 1_700_000_000);
        assert_eq!(since.timestamp_subsec_nanos(), 500_000_000);
        let until = time(&q, "until").unwrap().unwrap();
        assert_eq!(until.to_rfc3339(), "2024-01-02T03:04:05+00:00");
        assert!(time(&Query::parse(Some("since=0")), "since")
            .unwrap()
            .is_none());
        assert!(time(&Query::parse(Some("since=yesterday")), "since").is_err());
        let parsed = LogQuery::parse(&q).unwrap();
        assert_eq!(parsed.options.tail, None);
        assert!(LogQuery::parse(&Query::parse(Some("tail=3"))).is_err());
        let tail = LogQuery::parse(&Query::parse(Some("tail=3&stderr=1"))).unwrap();
        assert_eq!(tail.options.tail, Some(3));
    }

    #[test]
    fn records_are_filtered_stamped_and_framed() {
        let q = LogQuery::parse(&Query::parse(Some(
            "stdout=1&timestamps=1&since=1700000000",
        )))
        .unwrap();
        let mut record = Record::new(Stream::Stdout, b"hi\n");
        let wire = q.encode(Framing::Raw, &record).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&wire),
            format!("{} hi\n", record.timestamp())
        );
        assert!(q
            .encode(Framing::Raw, &Record::new(Stream::Stderr, b"x"))
            .is_none());
        record.time = DateTime::from_timestamp(1_600_000_000, 0).unwrap();
        assert!(q.encode(Framing::Multiplexed, &record).is_none());
    }
}
