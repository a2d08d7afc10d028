//! `POST /containers/{id}/attach` (hijacked) and `POST /containers/{id}/resize`.
//!
//! `docker run` and `docker start -a` attach before they start the container: such an attach is answered
//! at once and waits in `ctx.attaches` for the session `start` hands it. It also looks at the container
//! every [`START_POLL`] (later [`SLOW_START_POLL`]), in case another front end (the bulkhead CLI, a
//! second server) starts it.

use crate::ctx::{Ctx, Registration};
use crate::error::ApiError;
use crate::hijack::{Connected, Ended, Hijack, Relay, Replay};
use crate::http::{self, ApiResult, Query};
use crate::stdcopy::{Framing, Output};
use bulkhead_engine::{logs::Stream, Engine, LogOptions, Message, Status};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use std::sync::Arc;
use std::time::Duration;

const START_POLL: Duration = Duration::from_millis(200);
/// After this long waiting, the container is looked at every [`SLOW_START_POLL`] only: a client that
/// vanished before the start (which a half-closed connection does not tell) costs little.
const START_POLL_FAST_FOR: Duration = Duration::from_secs(60);
const SLOW_START_POLL: Duration = Duration::from_secs(2);

pub async fn route(ctx: &Arc<Ctx>, req: Request<Incoming>, segments: &[&str]) -> ApiResult {
    match (req.method(), segments) {
        (&Method::POST, ["containers", key, "attach"]) => attach(ctx, req, key).await,
        (&Method::POST, ["containers", key, "resize"]) => resize(ctx, &req, key).await,
        _ => Err(ApiError::unsupported(req.method(), req.uri().path())),
    }
}

async fn attach(ctx: &Arc<Ctx>, mut req: Request<Incoming>, key: &str) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let (stream, logs) = (q.flag("stream")?, q.flag("logs")?);
    if q.get("detachKeys").is_some_and(|k| !k.is_empty()) {
        return Err(ApiError::bad_request(
            "bulkhead does not support detach keys: detach by ending the client",
        ));
    }
    if !stream && !logs {
        return Err(ApiError::bad_request(
            "either the logs or the stream parameter must be set",
        ));
    }
    let key = key.to_string();
    let container = ctx.blocking(move |engine| engine.find(&key)).await?;
    let id = container.config.id.clone();
    let framing = Framing::for_tty(container.config.workload.process.terminal);
    let mut relay = Relay::new(framing);
    relay.stdin = q.flag("stdin")?;
    relay.stdout = q.flag("stdout")?;
    relay.stderr = q.flag("stderr")?;
    if logs {
        relay.replay = Some(replay_log(ctx.engine.clone(), id.clone()));
    }
    let hijack = Hijack::take(&mut req);
    let ctx = ctx.clone();
    let stdin = relay.stdin;
    let connect: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> = if !stream {
        Box::pin(async { Err(Ended::default()) })
    } else if container.state.status == Status::Running {
        Box::pin(async move { attach_now(&ctx, id, stdin).await })
    } else {
        // Registered before the answer: the client starts the container as soon as it has it.
        let registration = ctx.attaches.register(&id, stdin);
        let started_at = container.state.started_at;
        Box::pin(async move { wait_for_start(&ctx, id, stdin, registration, started_at).await })
    };
    Ok(hijack.answer(framing, move |client| relay.run(client, connect)))
}

async fn attach_now(ctx: &Ctx, id: String, stdin: bool) -> Result<Connected, Ended> {
    match ctx.blocking(move |engine| engine.attach(&id, stdin)).await {
        Ok(session) => Ok(Connected { session, stream: 0 }),
        Err(e) => Err(Ended {
            status: None,
            message: Some(e.message),
        }),
    }
}

/// Waits for the session `start` delivers, or attaches itself once someone else started the container.
/// Ends quietly if the container went, or ran and exited unseen, or its start failed (the client that
/// started it was told why).
async fn wait_for_start(
    ctx: &Ctx,
    id: String,
    stdin: bool,
    registration: Registration,
    started_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Connected, Ended> {
    let Registration {
        token,
        mut delivered,
    } = registration;
    let mut poll = tokio::time::interval(START_POLL);
    let slow_from = tokio::time::Instant::now() + START_POLL_FAST_FOR;
    loop {
        if tokio::time::Instant::now() > slow_from && poll.period() == START_POLL {
            poll = tokio::time::interval(SLOW_START_POLL);
        }
        tokio::select! {
            session = &mut delivered => {
                return match session {
                    Ok(Ok(session)) => Ok(Connected { session, stream: 0 }),
                    _ => Err(Ended::default()),
                };
            }
            _ = poll.tick() => {
                let key = id.clone();
                let found = ctx.blocking(move |engine| engine.find(&key)).await;
                let unstarted = matches!(&found, Ok(c) if c.state.status != Status::Running
                    && c.state.started_at == started_at);
                // Started (running, or already exited) or gone. When a start of this server took the
                // registration, its session is on the way (or its failure): keep waiting for that.
                if unstarted || !ctx.attaches.withdraw(&id, token) {
                    continue;
                }
                return match found {
                    Ok(c) if c.state.status == Status::Running => attach_now(ctx, id, stdin).await,
                    _ => Err(Ended::default()),
                };
            }
        }
    }
}

/// The container's log so far, for `logs=1`.
fn replay_log(engine: Arc<Engine>, id: String) -> Replay {
    Box::new(move |emit| {
        let result = engine.logs(&id, LogOptions::default(), |record| {
            let output = match record.stream {
                Stream::Stdout => Output::Stdout,
                Stream::Stderr => Output::Stderr,
            };
            if emit(output, &record.bytes()) {
                Ok(())
            } else {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
        });
        if let Err(e) = result {
            tracing::debug!("replaying the log of {id}: {e}");
        }
    })
}

/// `POST /containers/{id}/resize?h=&w=`: the main process's terminal size.
async fn resize(ctx: &Ctx, req: &Request<Incoming>, key: &str) -> ApiResult {
    let (rows, cols) = size(&Query::parse(req.uri().query()))?;
    let key = key.to_string();
    ctx.blocking(move |engine| {
        // Only an attached client may resize; this one goes right after.
        let mut session = engine.attach(&key, false)?;
        session.send(&Message::Resize {
            stream: 0,
            rows,
            cols,
        })
    })
    .await?;
    http::empty(StatusCode::OK)
}

/// `h` and `w` of a resize request.
pub fn size(q: &Query) -> Result<(u16, u16), ApiError> {
    match (q.number::<u16>("h")?, q.number::<u16>("w")?) {
        (Some(rows), Some(cols)) => Ok((rows, cols)),
        _ => Err(ApiError::bad_request(
            "resize needs both h and w (the terminal's rows and columns)",
        )),
    }
}
