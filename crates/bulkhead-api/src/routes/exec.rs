//! Exec instances: `POST /containers/{id}/exec`, `POST /exec/{id}/start` (hijacked unless detached),
//! `POST /exec/{id}/resize`, `GET /exec/{id}/json`.

use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::execs::{ExecRecord, ExecSpec, ExecState};
use crate::hijack::{self, Connected, Ended, Hijack, Input, Relay};
use crate::http::{self, ApiResult, Query};
use crate::routes::attach;
use crate::stdcopy::Framing;
use bollard_stubs::models::{ExecConfig, ExecInspectResponse, ExecStartConfig, ProcessConfig};
use bulkhead_engine::{Engine, EngineError, ExecOptions, ExitStatus, Message, Session, Status};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use std::sync::Arc;

pub async fn route(ctx: &Arc<Ctx>, req: Request<Incoming>, segments: &[&str]) -> ApiResult {
    match (req.method(), segments) {
        (&Method::POST, ["containers", key, "exec"]) => create(ctx, req, key).await,
        (&Method::POST, ["exec", id, "start"]) => start(ctx, req, id).await,
        (&Method::POST, ["exec", id, "resize"]) => resize(ctx, &req, id).await,
        (&Method::GET, ["exec", id, "json"]) => inspect(ctx, id),
        _ => Err(ApiError::unsupported(req.method(), req.uri().path())),
    }
}

/// `POST /containers/{id}/exec`. Clients send fields the API model lacks and dockerd ignores: the
/// docker CLI `Detach` (the start request decides that), the Python SDK `Container` (the path names it)
/// and `detachKeys` in that spelling (Go's JSON matches names case-insensitively). They are taken out or
/// respelled before the strict parse.
async fn create(ctx: &Ctx, req: Request<Incoming>, key: &str) -> ApiResult {
    let mut body: serde_json::Map<String, serde_json::Value> = http::read_json(req).await?;
    body.remove("Detach");
    body.remove("Container");
    if let Some(keys) = body.remove("detachKeys") {
        body.insert("DetachKeys".into(), keys);
    }
    let config: ExecConfig = http::parse_json(&serde_json::to_vec(&body).unwrap_or_default())?;
    if config.privileged == Some(true) {
        return Err(ApiError::bad_request(
            "bulkhead does not run privileged exec sessions",
        ));
    }
    if config.detach_keys.as_ref().is_some_and(|k| !k.is_empty()) {
        return Err(ApiError::bad_request(
            "bulkhead does not support detach keys: detach by ending the client",
        ));
    }
    let args = config.cmd.unwrap_or_default();
    if args.is_empty() {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    let console_size = console_size(config.console_size.as_deref())?;
    let key = key.to_string();
    let container = ctx.blocking(move |engine| engine.find(&key)).await?;
    if container.state.status != Status::Running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            container.config.id
        )));
    }
    let id = ctx.execs.create(ExecSpec {
        container_id: container.config.id,
        options: ExecOptions {
            args,
            env: config.env.unwrap_or_default(),
            workdir: config.working_dir.filter(|w| !w.is_empty()),
            user: config.user.filter(|u| !u.is_empty()),
            tty: config.tty.unwrap_or(false),
            console_size,
        },
        stdin: config.attach_stdin.unwrap_or(false),
        stdout: config.attach_stdout.unwrap_or(false),
        stderr: config.attach_stderr.unwrap_or(false),
    })?;
    // Docker answers `{"Id": ...}`; the stub's IdResponse spells it "ID", which case-sensitive SDKs miss.
    http::json(StatusCode::CREATED, &serde_json::json!({ "Id": id }))
}

/// `[rows, cols]`, as docker's `ConsoleSize`.
pub(crate) fn console_size(size: Option<&[i32]>) -> Result<Option<(u16, u16)>, ApiError> {
    match size {
        None | Some([0, 0]) => Ok(None),
        Some(&[rows, cols]) => match (u16::try_from(rows), u16::try_from(cols)) {
            (Ok(rows), Ok(cols)) => Ok(Some((rows, cols))),
            _ => Err(ApiError::bad_request(format!(
                "invalid ConsoleSize [{rows}, {cols}]"
            ))),
        },
        Some(other) => Err(ApiError::bad_request(format!(
            "ConsoleSize has two numbers (rows, columns), not {}",
            other.len()
        ))),
    }
}

/// `POST /exec/{id}/start`: detached, the process is started and left to run; otherwise the connection
/// is hijacked and relayed until it exits.
async fn start(ctx: &Arc<Ctx>, mut req: Request<Incoming>, id: &str) -> ApiResult {
    let hijack = Hijack::take(&mut req);
    let start: Option<ExecStartConfig> = http::read_json(req).await?;
    let start = start.unwrap_or_default();
    let mut spec = ctx.execs.get(id)?.spec;
    let container_id = spec.container_id.clone();
    let container = ctx
        .blocking(move |engine| engine.find(&container_id))
        .await?;
    if container.state.status != Status::Running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            container.config.id
        )));
    }
    // The size at start is the client's latest; the pty has it before the process starts.
    if let Some(size) = console_size(start.console_size.as_deref())? {
        spec.options.console_size = Some(size);
    }
    if start.detach.unwrap_or(false) {
        ctx.execs.begin(id, None)?;
        let ctx2 = ctx.clone();
        let exec_id = id.to_string();
        let started = ctx
            .blocking(move |engine| start_detached(&ctx2, engine, &exec_id, &spec))
            .await;
        if started.is_err() {
            ctx.execs.finish(id, None);
        }
        started?;
        return http::empty(StatusCode::OK);
    }
    let (input_tx, input_rx) = hijack::input_channel();
    ctx.execs.begin(id, Some(input_tx.clone()))?;
    let framing = Framing::for_tty(spec.options.tty);
    let mut relay = Relay::with_input(framing, (input_tx, input_rx));
    relay.stdin = spec.stdin;
    relay.stdout = spec.stdout;
    relay.stderr = spec.stderr;
    let (execs, exec_id) = (ctx.clone(), id.to_string());
    relay.on_exit = Some(Box::new(move |status: Option<&ExitStatus>| {
        execs.execs.finish(&exec_id, status.map(|s| s.code));
    }));
    let engine = ctx.engine.clone();
    let connect = async move {
        let started = tokio::task::spawn_blocking(move || run_exec(&engine, &spec)).await;
        match started {
            Ok(Ok(Ok(connected))) => Ok(connected),
            Ok(Ok(Err(status))) => Err(Ended {
                message: status.reason.clone(),
                status: Some(status),
            }),
            Ok(Err(e)) => Err(Ended {
                status: None,
                message: Some(e.to_string()),
            }),
            Err(e) => Err(Ended {
                status: None,
                message: Some(format!("starting the exec failed: {e}")),
            }),
        }
    };
    Ok(hijack.answer(framing, move |client| relay.run(client, connect)))
}

/// Starts the exec's process; `Ok(Err(status))` if it ended at once (a command that is not found).
fn run_exec(
    engine: &Engine,
    spec: &ExecSpec,
) -> Result<Result<Connected, ExitStatus>, EngineError> {
    let (mut session, process) = engine.exec(&spec.container_id, &spec.options)?;
    let stream = match session.start_exec(&process)? {
        Ok(stream) => stream,
        Err(status) => return Ok(Err(status)),
    };
    if !spec.stdin {
        session.send(&Message::StdinClose { stream })?;
    }
    Ok(Ok(Connected { session, stream }))
}

/// Starts the process and keeps reading its session on a thread of its own, for its exit code.
fn start_detached(
    ctx: &Arc<Ctx>,
    engine: &Engine,
    exec_id: &str,
    spec: &ExecSpec,
) -> Result<(), EngineError> {
    let spec = ExecSpec {
        stdin: false,
        ..spec.clone()
    };
    match run_exec(engine, &spec)? {
        Err(status) => ctx.execs.finish(exec_id, Some(status.code)),
        Ok(Connected { session, .. }) => {
            let (ctx, exec_id) = (ctx.clone(), exec_id.to_string());
            std::thread::Builder::new()
                .name("bulkhead-exec".into())
                .spawn(move || {
                    let code = drain(session);
                    ctx.execs.finish(&exec_id, code);
                })
                .map_err(|e| EngineError::StartFailed {
                    id: spec.container_id.clone(),
                    message: format!("watching a detached exec: {e}"),
                })?;
        }
    }
    Ok(())
}

/// Reads and drops a detached exec's output until it exits.
fn drain(mut session: Session) -> Option<i32> {
    loop {
        match session.recv() {
            Ok(Message::Exited { status, .. }) => return Some(status.code),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// `POST /exec/{id}/resize?h=&w=`.
async fn resize(ctx: &Ctx, req: &Request<Incoming>, id: &str) -> ApiResult {
    let (rows, cols) = attach::size(&Query::parse(req.uri().query()))?;
    let input = ctx.execs.input(id)?;
    input
        .send(Input::Resize { rows, cols })
        .await
        .map_err(|_| ApiError::conflict(format!("exec instance {id} is not running")))?;
    http::empty(StatusCode::OK)
}

/// `GET /exec/{id}/json`.
fn inspect(ctx: &Ctx, id: &str) -> ApiResult {
    let ExecRecord {
        id, spec, state, ..
    } = ctx.execs.get(id)?;
    let (running, exit_code) = match state {
        ExecState::Created => (false, None),
        ExecState::Running { .. } => (true, None),
        ExecState::Finished { code, .. } => (false, code),
    };
    let mut args = spec.options.args.clone();
    let entrypoint = if args.is_empty() {
        String::new()
    } else {
        args.remove(0)
    };
    let response = ExecInspectResponse {
        can_remove: Some(false),
        detach_keys: Some(String::new()),
        id: Some(id),
        running: Some(running),
        exit_code: exit_code.map(i64::from),
        process_config: Some(ProcessConfig {
            privileged: Some(false),
            user: Some(spec.options.user.clone().unwrap_or_default()),
            tty: Some(spec.options.tty),
            entrypoint: Some(entrypoint),
            arguments: Some(args),
        }),
        open_stdin: Some(spec.stdin),
        open_stderr: Some(spec.stderr),
        open_stdout: Some(spec.stdout),
        container_id: Some(spec.container_id),
        pid: None,
    };
    http::json(StatusCode::OK, &response)
}
