//! Container commands: run, create, start, stop, kill, restart, rm, ps, logs, wait, inspect, exec, update.

use crate::args::*;
use crate::format;
use anyhow::{bail, Context, Result};
use bulkhead_engine::{logs, CreateOptions, Engine, EngineError, Isolation, Status};
use bulkhead_runtime::Resources;
use std::io::Write;
use std::path::Path;

fn create_options(engine: &Engine, a: CreateArgs) -> Result<CreateOptions> {
    let mut env = Vec::new();
    for file in &a.env_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading env file {}", file.display()))?;
        env.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    env.extend(a.env);
    let isolation: Isolation = a.isolation.parse().map_err(anyhow::Error::msg)?;
    ensure_image(engine, &a.image)?;
    Ok(CreateOptions {
        image: a.image,
        name: a.name,
        cmd: a.command,
        entrypoint: a.entrypoint,
        env,
        workdir: a.workdir,
        user: a.user,
        interactive: a.interactive,
        tty: a.tty,
        volumes: a.volume,
        tmpfs: a.tmpfs,
        read_only: a.read_only,
        hostname: a.hostname,
        memory: a.memory,
        cpus: a.cpus,
        pids_limit: a.pids_limit,
        network: a.network,
        isolation,
        userns: a.userns,
        cap_add: a.cap_add,
        cap_drop: a.cap_drop,
        security_opt: a.security_opt,
        privileged: a.privileged,
        auto_remove: a.rm,
        stop_signal: a.stop_signal,
        stop_timeout: a.stop_timeout,
        ulimits: a.ulimit,
        accel: a.accel,
        disk_size: a.disk_size,
    })
}

/// Like docker: an image that is not here is pulled first.
fn ensure_image(engine: &Engine, reference: &str) -> Result<()> {
    if engine.store().resolve(reference).is_ok() {
        return Ok(());
    }
    eprintln!("Unable to find image '{reference}' locally");
    crate::image_cmds::pull_into(
        engine,
        reference,
        &PullArgs {
            platform: None,
            insecure_registry: Vec::new(),
            quiet: false,
            reference: reference.to_string(),
        },
    )
    .with_context(|| format!("image {reference} is not in the store and could not be pulled"))?;
    Ok(())
}

pub fn create(root: &Path, a: CreateArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let c = engine.create(&create_options(&engine, a)?)?;
    println!("{}", c.config.id);
    Ok(0)
}

pub fn run(root: &Path, a: RunArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let (interactive, tty) = (a.create.interactive, a.create.tty);
    let c = engine.create(&create_options(&engine, a.create)?)?;
    if a.detach {
        engine.start(c.id(), false)?;
        println!("{}", c.config.id);
        return Ok(0);
    }
    let started = engine.start(c.id(), true)?;
    let session = bulkhead_engine::client::Session::connect(&started)?;
    Ok(exit_code(session.attach(interactive, tty)?))
}

/// The process' exit code; when the engine or the runtime ended it (125 to 127), the reason goes to stderr
/// first, as docker prints it.
fn exit_code(status: bulkhead_proto::ExitStatus) -> i32 {
    if let Some(reason) = status.reason.filter(|_| status.code >= 125) {
        eprintln!("bulkhead: {reason}");
    }
    status.code
}

pub fn start(root: &Path, a: StartArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    if a.attach || a.interactive {
        let [one] = a.containers.as_slice() else {
            bail!("start -a/-i takes exactly one container");
        };
        let c = engine.start(one, true)?;
        let tty = c.config.process.terminal;
        let status = bulkhead_engine::client::Session::connect(&c)?.attach(a.interactive, tty)?;
        return Ok(exit_code(status));
    }
    each(&a.containers, |key| {
        engine.start(key, false)?;
        println!("{key}");
        Ok(())
    })
}

/// Runs `f` on every container, reporting each failure like docker and failing at the end.
fn each(keys: &[String], mut f: impl FnMut(&str) -> Result<()>) -> Result<i32> {
    let mut failed = false;
    for key in keys {
        if let Err(e) = f(key) {
            eprintln!("bulkhead: {e:#}");
            failed = true;
        }
    }
    Ok(if failed { 1 } else { 0 })
}

pub fn stop(root: &Path, a: StopArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    each(&a.containers, |key| {
        engine.stop(key, a.time)?;
        println!("{key}");
        Ok(())
    })
}

pub fn restart(root: &Path, a: StopArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    each(&a.containers, |key| {
        engine.restart(key, a.time)?;
        println!("{key}");
        Ok(())
    })
}

pub fn kill(root: &Path, a: KillArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let signal = bulkhead_engine::lifecycle::parse_signal(&a.signal)?;
    each(&a.containers, |key| {
        engine.kill(key, signal)?;
        println!("{key}");
        Ok(())
    })
}

pub fn rm(root: &Path, a: RmArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    each(&a.containers, |key| {
        engine.remove(key, a.force)?;
        println!("{key}");
        Ok(())
    })
}

pub fn ps(root: &Path, a: PsArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let list = engine.list(a.all)?;
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for c in &list {
            writeln!(out, "{}", if a.no_trunc { c.id() } else { c.short_id() })?;
        }
        return Ok(0);
    }
    let mut rows = vec![vec![
        "CONTAINER ID".into(),
        "IMAGE".into(),
        "COMMAND".into(),
        "CREATED".into(),
        "STATUS".into(),
        "ISOLATION".into(),
        "NAMES".into(),
    ]];
    for c in &list {
        let cmd = format!("\"{}\"", c.config.process.args.join(" "));
        rows.push(vec![
            if a.no_trunc {
                c.id().to_string()
            } else {
                c.short_id().to_string()
            },
            c.config.image.clone(),
            if a.no_trunc {
                cmd
            } else {
                format::truncate(&cmd, 22)
            },
            format::ago(c.config.created),
            format::status(&c.state),
            c.config.isolation.to_string(),
            c.config.name.clone(),
        ]);
    }
    format::table(&mut out, &rows)?;
    Ok(0)
}

pub fn logs(root: &Path, a: LogsArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let c = engine.find(&a.container)?;
    let tail = match a.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse::<usize>()
                .with_context(|| format!("invalid --tail {n}"))?,
        ),
    };
    let id = c.config.id.clone();
    let running = || {
        engine
            .find(&id)
            .map(|c| c.state.status == Status::Running)
            .unwrap_or(false)
    };
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    logs::read(&c.paths.log(), tail, a.follow, running, |r| {
        let w: &mut dyn Write = match r.stream {
            logs::Stream::Stdout => &mut stdout,
            logs::Stream::Stderr => &mut stderr,
        };
        if a.timestamps {
            write!(w, "{} ", r.timestamp())?;
        }
        w.write_all(&r.bytes())?;
        w.flush()
    })?;
    Ok(0)
}

pub fn wait(root: &Path, a: NamesArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    each(&a.containers, |key| {
        println!("{}", engine.wait(key)?);
        Ok(())
    })
}

pub fn inspect(root: &Path, a: NamesArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let mut all = Vec::new();
    let mut failed = false;
    for key in &a.containers {
        match engine.inspect(key) {
            Ok(v) => all.push(v),
            Err(e) => {
                eprintln!("bulkhead: {e}");
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&all)?);
    Ok(if failed { 1 } else { 0 })
}

pub fn exec(root: &Path, a: ExecArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let c = engine.find(&a.container)?;
    if c.state.status != Status::Running {
        return Err(EngineError::WrongState {
            id: c.config.id.clone(),
            status: c.state.status.to_string(),
            what: "exec needs a running container".into(),
        }
        .into());
    }
    let process = engine.exec_process(&c, a.command, &a.env, a.workdir, a.user, a.tty && !a.detach);
    let session = bulkhead_engine::client::Session::connect(&c)?;
    if a.detach {
        session.exec_detached(&process)?;
        return Ok(0);
    }
    Ok(exit_code(session.exec(&process, a.interactive)?))
}

pub fn update(root: &Path, a: UpdateArgs) -> Result<i32> {
    let engine = Engine::open(root)?;
    let isolation = match &a.isolation {
        Some(i) => Some(i.parse::<Isolation>().map_err(anyhow::Error::msg)?),
        None => None,
    };
    let resources = Resources {
        memory_bytes: a.memory,
        cpus: a.cpus,
        pids_limit: a.pids_limit,
    };
    each(&a.containers, |key| {
        engine.update(key, resources, isolation)?;
        println!("{key}");
        Ok(())
    })
}
