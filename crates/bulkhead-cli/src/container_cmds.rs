//! Container commands: run, create, start, stop, kill, restart, rm, ps, logs, wait, inspect, exec, update.

use crate::args::*;
use crate::{format, inspect};
use anyhow::{bail, Context, Result};
use bulkhead_engine::relay;
use bulkhead_engine::{
    logs, CreateOptions, Engine, EngineError, ExecOptions, ExitStatus, Isolation, LogOptions,
    PullSettings, Resources, StartMode, WaitCondition,
};
use std::io::Write;

/// Parses `--isolation`; `None` leaves the choice to the engine's isolation policy.
fn isolation(value: Option<&str>) -> Result<Option<Isolation>> {
    value
        .map(|v| v.parse::<Isolation>().map_err(anyhow::Error::msg))
        .transpose()
}

/// `-e` and `--env-file` entries as the engine takes them: a bare `KEY` is looked up in this process's
/// environment and left out when unset, as the docker CLI does.
fn resolve_env(entries: impl IntoIterator<Item = String>) -> Vec<String> {
    entries
        .into_iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e)
            } else {
                std::env::var(&e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect()
}

/// `--security-opt seccomp=FILE` becomes `seccomp=<the file's JSON>`, as the docker CLI sends it.
fn resolve_security_opts(opts: Vec<String>) -> Result<Vec<String>> {
    opts.into_iter()
        .map(|o| match o.split_once(['=', ':']) {
            Some(("seccomp", file)) if !file.is_empty() && file != "unconfined" => {
                let json = std::fs::read_to_string(file)
                    .with_context(|| format!("reading seccomp profile {file}"))?;
                Ok(format!("seccomp={json}"))
            }
            _ => Ok(o),
        })
        .collect()
}

fn create_options(a: CreateArgs) -> Result<CreateOptions> {
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
    Ok(CreateOptions {
        isolation: isolation(a.isolation.as_deref())?,
        // Like docker: an image that is not here is pulled first.
        pull: Some(PullSettings::default()),
        image: a.image,
        name: a.name,
        cmd: a.command,
        // `--entrypoint ""` clears the image's; otherwise it is one word, as in docker.
        entrypoint: a
            .entrypoint
            .map(|e| if e.is_empty() { Vec::new() } else { vec![e] }),
        labels: parse_labels(&a.label).map_err(anyhow::Error::msg)?,
        env: resolve_env(env),
        workdir: a.workdir,
        user: a.user,
        interactive: a.interactive,
        tty: a.tty,
        console_size: a
            .tty
            .then(|| relay::terminal_size(std::os::fd::AsFd::as_fd(&std::io::stdout())))
            .flatten(),
        volumes: a.volume,
        mounts: a.mount,
        tmpfs: a.tmpfs,
        read_only: a.read_only,
        hostname: a.hostname,
        memory: a.memory,
        cpus: a.cpus,
        pids_limit: a.pids_limit,
        network: a.network,
        network_aliases: a.network_alias,
        publish: a.publish,
        publish_all: a.publish_all,
        userns: a.userns,
        cap_add: a.cap_add,
        cap_drop: a.cap_drop,
        security_opt: resolve_security_opts(a.security_opt)?,
        privileged: a.privileged,
        auto_remove: a.rm,
        stop_signal: a.stop_signal,
        stop_timeout: a.stop_timeout,
        ulimits: a.ulimit,
        accel: a.accel,
        disk_size: a.disk_size,
        add_hosts: a.add_host,
        dns: a.dns,
        dns_search: a.dns_search,
        dns_options: a.dns_option,
    })
}

fn create_container(engine: &Engine, a: CreateArgs) -> Result<bulkhead_engine::Container> {
    let opts = create_options(a)?;
    let progress = crate::pull_progress::PullProgress::new(false);
    Ok(engine.create(&opts, &|e| progress.show_engine_event(e))?)
}

pub fn create(engine: &Engine, a: CreateArgs) -> Result<i32> {
    let c = create_container(engine, a)?;
    println!("{}", c.config.id);
    Ok(0)
}

pub fn run(engine: &Engine, a: RunArgs) -> Result<i32> {
    let (interactive, tty) = (a.create.interactive, a.create.tty);
    let c = create_container(engine, a.create)?;
    if a.detach {
        engine.start(c.id(), StartMode::Detached)?;
        println!("{}", c.config.id);
        return Ok(0);
    }
    engine.start(c.id(), StartMode::AttachFirst)?;
    let session = engine.attach(c.id(), interactive)?;
    Ok(exit_code(relay::attached(session, interactive, tty)?))
}

/// The process' exit code; when the engine or the runtime ended it (125 to 127), the reason goes to stderr
/// first, as docker prints it.
fn exit_code(status: ExitStatus) -> i32 {
    if let Some(reason) = status.reason.filter(|_| status.code >= 125) {
        eprintln!("bulkhead: {reason}");
    }
    status.code
}

pub fn start(engine: &Engine, a: StartArgs) -> Result<i32> {
    if a.attach || a.interactive {
        let [one] = a.containers.as_slice() else {
            bail!("start -a/-i takes exactly one container");
        };
        let c = engine.start(one, StartMode::AttachFirst)?;
        let tty = c.config.workload.process.terminal;
        let session = engine.attach(c.id(), a.interactive)?;
        return Ok(exit_code(relay::attached(session, a.interactive, tty)?));
    }
    each(&a.containers, |key| {
        engine.start(key, StartMode::Detached)?;
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

pub fn stop(engine: &Engine, a: StopArgs) -> Result<i32> {
    each(&a.containers, |key| {
        engine.stop(key, a.time)?;
        println!("{key}");
        Ok(())
    })
}

pub fn restart(engine: &Engine, a: StopArgs) -> Result<i32> {
    each(&a.containers, |key| {
        engine.restart(key, a.time)?;
        println!("{key}");
        Ok(())
    })
}

pub fn kill(engine: &Engine, a: KillArgs) -> Result<i32> {
    let signal = bulkhead_engine::parse_signal(&a.signal)?;
    each(&a.containers, |key| {
        engine.kill(key, signal)?;
        println!("{key}");
        Ok(())
    })
}

pub fn pause(engine: &Engine, a: NamesArgs, paused: bool) -> Result<i32> {
    each(&a.containers, |key| {
        if paused {
            engine.pause(key)?;
        } else {
            engine.unpause(key)?;
        }
        println!("{key}");
        Ok(())
    })
}

pub fn rm(engine: &Engine, a: RmArgs) -> Result<i32> {
    each(&a.containers, |key| {
        engine.remove(key, a.force, a.volumes)?;
        println!("{key}");
        Ok(())
    })
}

pub fn ps(engine: &Engine, a: PsArgs) -> Result<i32> {
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
        "PORTS".into(),
        "ISOLATION".into(),
        "NAMES".into(),
    ]];
    for c in &list {
        let cmd = format!("\"{}\"", c.config.workload.process.args.join(" "));
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
            format::ports(&c.state),
            c.config.isolation.to_string(),
            c.config.name.clone(),
        ]);
    }
    format::table(&mut out, &rows)?;
    Ok(0)
}

pub fn logs(engine: &Engine, a: LogsArgs) -> Result<i32> {
    let tail = match a.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse::<usize>()
                .with_context(|| format!("invalid --tail {n}"))?,
        ),
    };
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    let opts = LogOptions {
        tail,
        follow: a.follow,
    };
    engine.logs(&a.container, opts, |r| {
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

pub fn wait(engine: &Engine, a: WaitArgs) -> Result<i32> {
    let condition = match a.condition.as_str() {
        "not-running" => WaitCondition::NotRunning,
        "next-exit" => WaitCondition::NextExit,
        "removed" => WaitCondition::Removed,
        other => bail!("invalid --condition {other} (not-running, next-exit or removed)"),
    };
    each(&a.containers, |key| {
        let outcome = engine.wait_for(key, condition, &|| true)?;
        println!("{}", outcome.exit_code);
        Ok(())
    })
}

pub fn rename(engine: &Engine, a: RenameArgs) -> Result<i32> {
    engine.rename(&a.container, &a.new_name)?;
    Ok(0)
}

pub fn inspect(engine: &Engine, a: NamesArgs) -> Result<i32> {
    let mut all = Vec::new();
    let mut failed = false;
    for key in &a.containers {
        match engine.inspect(key) {
            Ok(d) => all.push(inspect::container(&d)),
            Err(e) => {
                eprintln!("bulkhead: {e}");
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&all)?);
    Ok(if failed { 1 } else { 0 })
}

pub fn exec(engine: &Engine, a: ExecArgs) -> Result<i32> {
    let opts = ExecOptions {
        args: a.command,
        env: resolve_env(a.env),
        workdir: a.workdir,
        user: a.user,
        tty: a.tty && !a.detach,
        console_size: relay::terminal_size(std::os::fd::AsFd::as_fd(&std::io::stdout())),
    };
    let (session, process) = engine.exec(&a.container, &opts)?;
    if a.detach {
        relay::exec_detached(session, &process)?;
        return Ok(0);
    }
    Ok(exit_code(relay::exec(session, &process, a.interactive)?))
}

pub fn update(engine: &Engine, a: UpdateArgs) -> Result<i32> {
    let isolation = isolation(a.isolation.as_deref())?;
    let resources = Resources {
        memory_bytes: a.memory,
        cpus: a.cpus,
        pids_limit: a.pids_limit,
    };
    each(&a.containers, |key| {
        match engine.update(key, resources, isolation, a.force) {
            Err(e @ EngineError::WouldWidenPrivileges { .. }) => {
                Err(anyhow::Error::from(e).context("not switched (update --force switches anyway)"))
            }
            other => other.map_err(anyhow::Error::from),
        }?;
        println!("{key}");
        Ok(())
    })
}

pub fn port(engine: &Engine, a: PortArgs) -> Result<i32> {
    let c = engine.find(&a.container)?;
    let ports = c.state.network.map(|n| n.ports).unwrap_or_default();
    let wanted = a
        .port
        .as_deref()
        .map(|p| {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            port.parse::<u16>()
                .map(|port| (port, proto.to_string()))
                .with_context(|| format!("invalid port {p}"))
        })
        .transpose()?;
    let mut shown = 0;
    for p in &ports {
        let key = (p.container_port, p.protocol.to_string());
        match &wanted {
            Some(w) if *w != key => continue,
            Some(_) => println!("{}:{}", p.host_ip, p.host_port),
            None => println!(
                "{}/{} -> {}:{}",
                p.container_port, p.protocol, p.host_ip, p.host_port
            ),
        }
        shown += 1;
    }
    if let (Some(p), 0) = (&a.port, shown) {
        bail!("no public port {p} published for {}", c.config.name);
    }
    Ok(0)
}
