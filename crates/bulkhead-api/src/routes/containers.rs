//! The container endpoints: create, list, inspect, start, stop, restart, kill, wait, remove, update,
//! rename, top, stats and prune, each one engine call (or a few) on the blocking pool. The streams of a
//! container (attach, logs, archive, exec) are in their own modules.

use super::container_create;
use super::container_filters::{labels_match, ListFilter};
use super::container_json::{self, NetworkNames};
use super::container_stats;
use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::http::{self, ApiResult, Query};
use bollard_stubs::models::{
    ContainerCreateResponse, ContainerPruneResponse, ContainerTopResponse, ContainerUpdateResponse,
    ContainerWaitExitError, ContainerWaitResponse, Resources,
};
use bulkhead_engine::{
    Engine, EngineError, ImageError, Isolation, Status, WaitCondition, WaitOutcome,
};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a streamed `stats` samples, and the gap between the two samples of a one-off one.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// `stop -t -1` waits as long as it takes; bounded so the deadline arithmetic cannot overflow.
const FOREVER: u64 = 100 * 365 * 24 * 3600;

pub async fn route(ctx: &Arc<Ctx>, req: Request<Incoming>, segments: &[&str]) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let method = req.method().clone();
    match (&method, segments) {
        (&Method::GET, ["containers", "json"]) => list(ctx, &q).await,
        (&Method::POST, ["containers", "create"]) => create(ctx, req, &q).await,
        (&Method::POST, ["containers", "prune"]) => prune(ctx, &q).await,
        (&Method::GET, ["containers", id, "json"]) => inspect(ctx, id, &q).await,
        (&Method::POST, ["containers", id, "start"]) => start(ctx, id).await,
        (&Method::POST, ["containers", id, "stop"]) => stop(ctx, id, &q).await,
        (&Method::POST, ["containers", id, "restart"]) => restart(ctx, id, &q).await,
        (&Method::POST, ["containers", id, "kill"]) => kill(ctx, id, &q).await,
        (&Method::POST, ["containers", id, "pause"]) => pause(ctx, id, true).await,
        (&Method::POST, ["containers", id, "unpause"]) => pause(ctx, id, false).await,
        (&Method::POST, ["containers", id, "wait"]) => wait(ctx, id, &q).await,
        (&Method::DELETE, ["containers", id]) => remove(ctx, id, &q).await,
        (&Method::POST, ["containers", id, "update"]) => update(ctx, req, id, &q).await,
        (&Method::POST, ["containers", id, "rename"]) => rename(ctx, id, &q).await,
        (&Method::GET, ["containers", id, "top"]) => top(ctx, id, &q).await,
        (&Method::GET, ["containers", id, "stats"]) => stats(ctx, id, &q).await,
        _ => Err(ApiError::unsupported(&method, req.uri().path())),
    }
}

/// The names of the networks `containers` are on, when one of them is not running (a running one's
/// state names its networks): listing networks writes the default one's record on first use.
fn network_names<'a>(
    engine: &Engine,
    mut containers: impl Iterator<Item = &'a bulkhead_engine::Container>,
) -> Result<NetworkNames, EngineError> {
    if !containers.any(|c| !c.config.networks.is_empty() && c.state.status != Status::Running) {
        return Ok(NetworkNames::new());
    }
    Ok(engine
        .network_list()?
        .into_iter()
        .map(|n| (n.id, n.name))
        .collect())
}

/// `POST /containers/create?name=`: 201 with the id. A missing image is docker's 404 "No such image",
/// on which the docker CLI pulls it and asks again.
async fn create(ctx: &Arc<Ctx>, req: Request<Incoming>, q: &Query) -> ApiResult {
    if let Some(p) = q
        .get("platform")
        .filter(|p| !p.is_empty() && !p.starts_with("linux"))
    {
        return Err(ApiError::bad_request(format!(
            "platform {p} is not supported: bulkhead runs linux containers"
        )));
    }
    let body = http::read_body(req, http::JSON_BODY_LIMIT).await?;
    let opts = container_create::options(&body, q.get("name"))?;
    let image = opts.image.clone();
    match ctx.blocking(move |e| Ok(e.create(&opts, &|_| {}))).await? {
        Ok(c) => http::json(
            StatusCode::CREATED,
            &ContainerCreateResponse {
                id: c.config.id,
                warnings: Vec::new(),
            },
        ),
        Err(EngineError::Image(ImageError::NotFound { .. })) => {
            Err(ApiError::not_found(format!("No such image: {image}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /containers/json?all=&limit=&size=&filters=`.
async fn list(ctx: &Arc<Ctx>, q: &Query) -> ApiResult {
    let filter = ListFilter::parse(q.filters()?)?;
    let limit = q.number::<i64>("limit")?.filter(|l| *l > 0);
    let all = q.flag("all")? || limit.is_some() || filter.implies_all();
    let size = q.flag("size")?;
    let rows = ctx
        .blocking(move |e| {
            let containers = e.list(all)?;
            let names = network_names(e, containers.iter())?;
            Ok(containers
                .iter()
                .filter(|c| filter.matches(c, &names))
                .take(limit.map_or(usize::MAX, |l| l as usize))
                .map(|c| container_json::summary(c, &names, size))
                .collect::<Vec<_>>())
        })
        .await?;
    http::json(StatusCode::OK, &rows)
}

async fn inspect(ctx: &Arc<Ctx>, id: &str, q: &Query) -> ApiResult {
    let (id, size) = (id.to_string(), q.flag("size")?);
    let json = ctx
        .blocking(move |e| {
            let details = e.inspect(&id)?;
            let names = network_names(e, std::iter::once(&details.container))?;
            Ok(container_json::inspect(&details, &names, size))
        })
        .await?;
    http::json(StatusCode::OK, &json)
}

/// 204, or 304 when it already runs. Through the pending attaches, so a `docker run` that attached
/// first gets the container's first output.
async fn start(ctx: &Arc<Ctx>, id: &str) -> ApiResult {
    let (id, shared) = (id.to_string(), ctx.clone());
    let started = ctx
        .blocking(move |e| {
            if e.find(&id)?.state.status == Status::Running {
                return Ok(false);
            }
            shared.attaches.start(e, &id).map(|_| true)
        })
        .await?;
    http::empty(if started {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    })
}

/// `t`: seconds before SIGKILL (`-1`: no limit); absent, the container's own stop timeout.
fn stop_timeout(q: &Query) -> Result<Option<u64>, ApiError> {
    Ok(q.number::<i64>("t")?
        .map(|t| u64::try_from(t).unwrap_or(FOREVER)))
}

fn signal(q: &Query) -> Result<Option<nix::sys::signal::Signal>, ApiError> {
    q.get("signal")
        .filter(|s| !s.is_empty())
        .map(|s| bulkhead_engine::parse_signal(s).map_err(ApiError::from))
        .transpose()
}

/// `docker stop --signal`: that signal instead of the container's stop signal, then the usual SIGKILL
/// once `timeout` has passed.
fn stop_with_signal(
    engine: &Engine,
    id: &str,
    signal: nix::sys::signal::Signal,
    timeout: Option<u64>,
) -> Result<(), EngineError> {
    let c = engine.find(id)?;
    let grace = Duration::from_secs(timeout.unwrap_or(c.config.stop_timeout));
    match engine.kill(c.id(), signal) {
        Ok(()) => {}
        // It ended meanwhile.
        Err(EngineError::WrongState { .. }) => return Ok(()),
        Err(e) => return Err(e),
    }
    let deadline = Instant::now() + grace;
    match engine.wait_for(c.id(), WaitCondition::NotRunning, &|| {
        Instant::now() < deadline
    }) {
        Ok(_) => Ok(()),
        Err(EngineError::Cancelled) => engine.stop(c.id(), Some(0)).map(drop),
        Err(e) => Err(e),
    }
}

/// 204 once it has exited, 304 when it was not running.
async fn stop(ctx: &Arc<Ctx>, id: &str, q: &Query) -> ApiResult {
    let (id, timeout, signal) = (id.to_string(), stop_timeout(q)?, signal(q)?);
    let stopped = ctx
        .blocking(move |e| {
            if e.find(&id)?.state.status != Status::Running {
                return Ok(false);
            }
            match signal {
                Some(s) => stop_with_signal(e, &id, s, timeout)?,
                None => drop(e.stop(&id, timeout)?),
            }
            Ok(true)
        })
        .await?;
    http::empty(if stopped {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    })
}

async fn restart(ctx: &Arc<Ctx>, id: &str, q: &Query) -> ApiResult {
    let (id, timeout, signal) = (id.to_string(), stop_timeout(q)?, signal(q)?);
    ctx.blocking(move |e| match signal {
        None => e.restart(&id, timeout).map(drop),
        Some(s) => {
            stop_with_signal(e, &id, s, timeout)?;
            e.start(&id, bulkhead_engine::StartMode::Detached).map(drop)
        }
    })
    .await?;
    http::empty(StatusCode::NO_CONTENT)
}

/// `signal` by name (`KILL`, `SIGKILL`) or number; SIGKILL by default. 409 when it is not running.
async fn kill(ctx: &Arc<Ctx>, id: &str, q: &Query) -> ApiResult {
    let signal = signal(q)?.unwrap_or(nix::sys::signal::Signal::SIGKILL);
    let id = id.to_string();
    ctx.blocking(move |e| e.kill(&id, signal)).await?;
    http::empty(StatusCode::NO_CONTENT)
}

/// Freezes or thaws the container; 409 unless it is running (and not already so).
async fn pause(ctx: &Arc<Ctx>, id: &str, paused: bool) -> ApiResult {
    let id = id.to_string();
    ctx.blocking(move |e| if paused { e.pause(&id) } else { e.unpause(&id) }.map(drop))
        .await?;
    http::empty(StatusCode::NO_CONTENT)
}

fn wait_condition(q: &Query) -> Result<WaitCondition, ApiError> {
    match q.get("condition").unwrap_or("") {
        "" | "not-running" => Ok(WaitCondition::NotRunning),
        "next-exit" => Ok(WaitCondition::NextExit),
        "removed" => Ok(WaitCondition::Removed),
        other => Err(ApiError::bad_request(format!(
            "invalid condition \"{other}\" (expected not-running, next-exit or removed)"
        ))),
    }
}

fn wait_body(result: Result<WaitOutcome, ApiError>) -> Bytes {
    let response = match result {
        Ok(outcome) => ContainerWaitResponse {
            status_code: outcome.exit_code as i64,
            error: outcome
                .error
                .map(|m| ContainerWaitExitError { message: Some(m) }),
        },
        Err(e) => ContainerWaitResponse {
            status_code: -1,
            error: Some(ContainerWaitExitError {
                message: Some(e.message),
            }),
        },
    };
    let mut value = serde_json::to_value(&response).unwrap_or_default();
    // dockerd writes `"Error": null` when there is none; some clients index it.
    value
        .as_object_mut()
        .map(|o| o.entry("Error").or_insert(serde_json::Value::Null));
    Bytes::from(format!("{value}\n"))
}

/// `POST /containers/{id}/wait?condition=`: the 200 head goes out as soon as the wait has taken its
/// starting point (the docker CLI starts the container only after it has the head, so a quick exit is
/// never missed), the body `{"StatusCode":N,"Error":...}` at the exit. A client that leaves ends the
/// wait.
async fn wait(ctx: &Arc<Ctx>, id: &str, q: &Query) -> ApiResult {
    let condition = wait_condition(q)?;
    let probe = id.to_string();
    let id = ctx.blocking(move |e| Ok(e.find(&probe)?.config.id)).await?;
    let (tx, body) = http::stream(1);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let client = tx.clone();
    let waiting = ctx.clone();
    let mut task = tokio::spawn(async move {
        let ready = std::sync::Mutex::new(Some(ready_tx));
        waiting
            .blocking(move |e| {
                e.wait_for(&id, condition, &|| {
                    if let Some(r) = ready.lock().ok().and_then(|mut r| r.take()) {
                        let _ = r.send(());
                    }
                    !client.is_closed()
                })
            })
            .await
    });
    tokio::select! {
        _ = ready_rx => {
            tokio::spawn(async move {
                let result = task
                    .await
                    .unwrap_or_else(|e| Err(ApiError::internal(format!("wait failed: {e}"))));
                let _ = tx.send(wait_body(result)).await;
            });
            Ok(http::with_type(StatusCode::OK, body, "application/json"))
        }
        // Done before the wait first polled (the condition held at once, or it failed).
        result = &mut task => {
            let result = result
                .unwrap_or_else(|e| Err(ApiError::internal(format!("wait failed: {e}"))));
            Ok(http::with_type(StatusCode::OK, http::full(wait_body(result)), "application/json"))
        }
    }
}

/// `DELETE /containers/{id}?force=&v=`.
async fn remove(ctx: &Arc<Ctx>, id: &str, q: &Query) -> ApiResult {
    if q.flag("link")? {
        return Err(ApiError::bad_request(
            "container links are not supported by bulkhead",
        ));
    }
    let (force, volumes) = (q.flag("force")?, q.flag("v")?);
    let id = id.to_string();
    ctx.blocking(move |e| e.remove(&id, force, volumes)).await?;
    http::empty(StatusCode::NO_CONTENT)
}

/// `Resources` fields `update` applies (the rest must be left empty, as the docker CLI leaves them).
const UPDATE_MAPPED: &[&str] = &["Memory", "NanoCpus", "CpuQuota", "CpuPeriod", "PidsLimit"];

/// `POST /containers/{id}/update`: memory, CPUs and the pids limit, live if it runs. The bulkhead
/// extension `?isolation=process|vm|hyperv` (with `force=1` to accept settings a VM confined becoming
/// host privileges) switches a stopped container's isolation level.
async fn update(ctx: &Arc<Ctx>, req: Request<Incoming>, id: &str, q: &Query) -> ApiResult {
    let isolation = q
        .get("isolation")
        .filter(|i| !i.is_empty())
        .map(|i| i.parse::<Isolation>().map_err(ApiError::bad_request))
        .transpose()?;
    let force = q.flag("force")?;
    let body = http::read_body(req, http::JSON_BODY_LIMIT).await?;
    let mut raw = match http::parse_json::<Option<serde_json::Value>>(&body)? {
        None => serde_json::Map::new(),
        Some(serde_json::Value::Object(o)) => o,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "the update body must be a JSON object, not {other}"
            )))
        }
    };
    if let Some(policy) = raw.remove("RestartPolicy") {
        let name = policy.get("Name").and_then(|n| n.as_str()).unwrap_or("");
        if !matches!(name, "" | "no") {
            return Err(ApiError::bad_request(format!(
                "RestartPolicy \"{name}\" is not supported by bulkhead (only \"no\")"
            )));
        }
    }
    let resources: Resources = container_create::strict(&raw, "")?;
    container_create::refuse_unsupported("Resources", &raw, UPDATE_MAPPED)?;
    let wanted = bulkhead_engine::Resources {
        memory_bytes: resources.memory.filter(|m| *m > 0).map(|m| m as u64),
        cpus: container_create::cpus_of(
            resources.nano_cpus,
            resources.cpu_quota,
            resources.cpu_period,
        )?,
        pids_limit: resources.pids_limit.filter(|p| *p != 0),
    };
    let id = id.to_string();
    ctx.blocking(move |e| e.update(&id, wanted, isolation, force))
        .await?;
    http::json(
        StatusCode::OK,
        &ContainerUpdateResponse {
            warnings: Some(Vec::new()),
        },
    )
}

async fn rename(ctx: &Arc<Ctx>, id: &str, q: &Query) -> ApiResult {
    let name = q
        .get("name")
        .map(|n| n.trim_start_matches('/').to_string())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("rename needs a new name (name=)"))?;
    let id = id.to_string();
    ctx.blocking(move |e| e.rename(&id, &name)).await?;
    http::empty(StatusCode::NO_CONTENT)
}

async fn top(ctx: &Arc<Ctx>, id: &str, q: &Query) -> ApiResult {
    if let Some(args) = q.get("ps_args").filter(|a| !a.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "ps_args ({args}) are not supported by bulkhead: top shows docker's default columns"
        )));
    }
    let id = id.to_string();
    let table = ctx.blocking(move |e| e.top(&id)).await?;
    http::json(
        StatusCode::OK,
        &ContainerTopResponse {
            titles: Some(table.titles),
            processes: Some(table.processes),
        },
    )
}

/// `GET /containers/{id}/stats?stream=&one-shot=`: a sample a second while streaming; without
/// streaming, two samples a second apart (so CPU use can be computed), or one with `one-shot`. A
/// container that is not running gets dockerd's object of zeros.
async fn stats(ctx: &Arc<Ctx>, id: &str, q: &Query) -> ApiResult {
    let streaming = q.get("stream").is_none() || q.flag("stream")?;
    let one_shot = q.flag("one-shot")?;
    let probe = id.to_string();
    let (id, name, running) = ctx
        .blocking(move |e| {
            let c = e.find(&probe)?;
            let running = c.state.status == Status::Running;
            Ok((c.config.id, c.config.name, running))
        })
        .await?;
    if !running {
        return http::json(StatusCode::OK, &container_stats::not_running(&id, &name));
    }
    let sample = {
        let (ctx, id) = (ctx.clone(), id.clone());
        move || {
            let (ctx, id) = (ctx.clone(), id.clone());
            async move { ctx.blocking(move |e| e.stats(&id)).await }
        }
    };
    let first = sample().await?;
    if !streaming {
        let (previous, now) = if one_shot {
            (None, first)
        } else {
            tokio::time::sleep(STATS_INTERVAL).await;
            (Some(first), sample().await?)
        };
        let json = container_stats::render(&id, &name, &now, previous.as_ref());
        return http::json(StatusCode::OK, &json);
    }
    let (tx, body) = http::stream(2);
    tokio::spawn(async move {
        let mut previous = None;
        let mut now = first;
        loop {
            let json = container_stats::render(&id, &name, &now, previous.as_ref());
            let line = serde_json::to_string(&json).unwrap_or_default() + "\n";
            if tx.send(Bytes::from(line)).await.is_err() {
                return;
            }
            tokio::time::sleep(STATS_INTERVAL).await;
            // A container that stopped ends the stream.
            match sample().await {
                Ok(next) => previous = Some(std::mem::replace(&mut now, next)),
                Err(_) => return,
            }
        }
    });
    Ok(http::with_type(StatusCode::OK, body, "application/json"))
}

/// `POST /containers/prune?filters=`: removes every container that is not running (matching `label`,
/// and not matching `label!`).
async fn prune(ctx: &Arc<Ctx>, q: &Query) -> ApiResult {
    let filters = q.filters()?;
    filters.only(&["label", "label!"])?;
    let report = ctx
        .blocking(move |e| {
            let mut deleted = Vec::new();
            let mut reclaimed = 0;
            for c in e.list(true)? {
                let labels = &c.config.labels;
                let excluded = filters
                    .values("label!")
                    .iter()
                    .any(|l| labels_match(labels, std::slice::from_ref(l)));
                if c.state.status == Status::Running
                    || !labels_match(labels, filters.values("label"))
                    || excluded
                {
                    continue;
                }
                let size = container_json::size_rw(&c).unwrap_or(0);
                match e.remove(c.id(), false, false) {
                    Ok(id) => {
                        deleted.push(id);
                        reclaimed += size;
                    }
                    // Started or removed meanwhile: not this prune's.
                    Err(EngineError::WrongState { .. } | EngineError::NoSuchContainer(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(ContainerPruneResponse {
                containers_deleted: Some(deleted),
                space_reclaimed: Some(reclaimed),
            })
        })
        .await?;
    http::json(StatusCode::OK, &report)
}
