//! The relay: the process whose pid the caller gets and waits on as the container's init (containerd's
//! shim and conmon are subreapers, so it becomes their child once `create` exits).
//!
//! `create` forks it. It leads a session of its own, holds the container's network, IPC and UTS
//! namespaces (joined from the bundle's paths, or new), so that `/proc/<pid>/ns/*`, which CRI hands to a
//! pod's other containers, are the pod's and never the host's; keeps the caller's stdio, or takes the
//! slave of a pty whose master went to `--console-socket`; and blocks on the start fifo. Released by
//! `start`, it attaches to the container through the engine, relays its stdio, and exits with its exit
//! code. A pod's sandbox relay runs nothing: it holds the namespaces until it is signalled, as the pause
//! container would. An exec relay does the same for one exec session.

use crate::console;
use anyhow::{bail, Context, Result};
use bulkhead_engine::{relay, Engine, EngineConfig, ExecOptions};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};
use std::io::{BufRead, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

/// How the relay gets one kind of namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ns {
    /// The caller's (the spec has no entry of this kind: host networking, say).
    Keep,
    New,
    Join(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Namespaces {
    pub net: Ns,
    pub ipc: Ns,
    pub uts: Ns,
}

/// What the relay does once released.
pub enum Job {
    /// Attach to the container's main process.
    Container,
    /// Hold the pod's namespaces until signalled.
    Sandbox,
    /// Run one exec session.
    Exec(ExecOptions),
}

pub struct RelaySpec {
    pub name: String,
    pub engine: EngineConfig,
    /// The fifo `start` opens; `None`: run the job at once (exec).
    pub fifo: Option<PathBuf>,
    pub namespaces: Namespaces,
    pub console_socket: Option<PathBuf>,
    pub tty: bool,
    pub job: Job,
}

/// Forks the relay and returns its pid once it has set itself up (for an exec: once the process runs).
pub fn spawn(spec: &RelaySpec) -> Result<Pid> {
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("making a pipe")?;
    // SAFETY: the runtime CLI is single-threaded; the child only runs the relay and `_exit`s.
    match unsafe { fork() }.context("forking the relay")? {
        ForkResult::Child => {
            drop(ready_r);
            let code = child(spec, ready_w);
            // SAFETY: leaving the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            let mut line = String::new();
            let _ = std::io::BufReader::new(std::fs::File::from(ready_r)).read_line(&mut line);
            match line.trim() {
                "ok" => Ok(child),
                other => {
                    let _ = waitpid(child, None);
                    let why = other.strip_prefix("error: ").unwrap_or(other);
                    if why.is_empty() {
                        bail!("the relay process ended while setting up");
                    }
                    bail!("{why}")
                }
            }
        }
    }
}

/// The relay's life; returns its exit code.
fn child(spec: &RelaySpec, ready: OwnedFd) -> i32 {
    // The relay outlives `create` and must hold nothing of it (the engine's locks, the caller's pid
    // file or log), only the container's stdio.
    bulkhead_engine::close_all_but(ready.as_raw_fd());
    let mut ready = std::fs::File::from(ready);
    let setup = set_up(spec);
    let setup = setup.and_then(|()| match &spec.job {
        Job::Exec(opts) => start_exec(spec, opts).map(Some),
        _ => Ok(None),
    });
    let exec = match setup {
        Ok(exec) => {
            let _ = writeln!(ready, "ok");
            exec
        }
        Err(e) => {
            let _ = writeln!(ready, "error: {e:#}");
            return 1;
        }
    };
    drop(ready);
    let outcome = match (&spec.job, exec) {
        (_, Some((session, stream))) => {
            relay::started_exec(session, stream, true, spec.tty).map_err(anyhow::Error::from)
        }
        (Job::Sandbox, None) => return hold(spec),
        (_, None) => attach(spec),
    };
    match outcome {
        Ok(status) => {
            // Why the engine (not the process) ended the run: the caller shows the container's stderr.
            if let Some(reason) = &status.reason {
                let _ = writeln!(std::io::stderr(), "bulkhead-runc: {reason}");
            }
            status.code.clamp(0, 255)
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "bulkhead-runc: {e:#}");
            125
        }
    }
}

fn set_up(spec: &RelaySpec) -> Result<()> {
    nix::unistd::setsid().context("setsid")?;
    enter(&spec.namespaces)?;
    if let Some(socket) = &spec.console_socket {
        console::take(console::hand_over(socket)?)?;
    }
    Ok(())
}

/// Joins or makes the relay's namespaces: network first (a path under /proc of another relay is read
/// before this one leaves its own).
fn enter(ns: &Namespaces) -> Result<()> {
    let kinds = [
        (&ns.net, CloneFlags::CLONE_NEWNET, "network"),
        (&ns.ipc, CloneFlags::CLONE_NEWIPC, "ipc"),
        (&ns.uts, CloneFlags::CLONE_NEWUTS, "uts"),
    ];
    for (how, flag, kind) in kinds {
        match how {
            Ns::Keep => {}
            Ns::New => {
                unshare(flag).with_context(|| format!("making a {kind} namespace"))?;
                if flag == CloneFlags::CLONE_NEWNET {
                    bulkhead_engine::bring_loopback_up()
                        .context("bringing up lo in the new network namespace")?;
                }
            }
            Ns::Join(path) => {
                let file = std::fs::File::open(path)
                    .with_context(|| format!("opening the {kind} namespace {}", path.display()))?;
                setns(file, flag)
                    .with_context(|| format!("joining the {kind} namespace {}", path.display()))?;
            }
        }
    }
    Ok(())
}

/// Blocks until `start` opens the fifo (runc's `exec.fifo` handshake).
fn wait_for_start(spec: &RelaySpec) -> Result<()> {
    let Some(fifo) = &spec.fifo else {
        return Ok(());
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(fifo)
        .with_context(|| format!("opening {}", fifo.display()))?;
    f.write_all(b"0").context("releasing start")
}

fn attach(spec: &RelaySpec) -> Result<bulkhead_engine::ExitStatus> {
    wait_for_start(spec)?;
    let engine = Engine::open(spec.engine.clone())?;
    let session = engine.attach(&spec.name, true)?;
    Ok(relay::attached(session, true, spec.tty)?)
}

fn start_exec(spec: &RelaySpec, opts: &ExecOptions) -> Result<(bulkhead_engine::Session, u32)> {
    let engine = Engine::open(spec.engine.clone())?;
    let (mut session, process) = engine.exec(&spec.name, opts)?;
    match session.start_exec(&process)? {
        Ok(stream) => Ok((session, stream)),
        Err(status) => bail!(
            "exec failed: {}",
            status
                .reason
                .unwrap_or_else(|| format!("the process exited with {}", status.code))
        ),
    }
}

/// The sandbox's life after `start`: holds the namespaces until SIGTERM, SIGINT or SIGKILL, and exits 0
/// as the pause container does.
fn hold(spec: &RelaySpec) -> i32 {
    if let Err(e) = wait_for_start(spec) {
        let _ = writeln!(std::io::stderr(), "bulkhead-runc: {e:#}");
        return 1;
    }
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    if set.thread_block().is_err() {
        return 1;
    }
    let _ = set.wait();
    0
}
