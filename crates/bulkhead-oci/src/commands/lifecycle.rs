//! `start`, `kill`, `delete` and `run`, with runc's rules: start only a created container, kill only a
//! created or running one, delete a running one only with `--force`.

use super::create::{self, CreateArgs};
use super::Ctx;
use crate::hooks::{self, Phase};
use crate::status::Status;
use anyhow::{bail, Context, Result};
use bulkhead_engine::StartMode;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill as signal_pid, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;

/// How long `start` waits for the relay to take the release.
const RELEASE_WAIT_MS: u16 = 10_000;

pub fn start(ctx: &Ctx, id: &str) -> Result<()> {
    let loaded = ctx.load(id)?;
    match loaded.status() {
        Status::Created => {}
        Status::Running | Status::Paused => bail!("cannot start an already running container"),
        Status::Stopped => bail!("cannot start a container that has stopped"),
    }
    if let Some(c) = &loaded.container {
        // The monitor holds the process until the relay attaches, so no output is lost.
        ctx.engine()?.start(c.id(), StartMode::AttachFirst)?;
    }
    release(&loaded.record.fifo())?;
    let state = ctx.load(id)?.state_json();
    if let Err(e) = hooks::run(loaded.relay.hooks.as_ref(), Phase::Poststart, &state) {
        // The runtime spec has a failing poststart hook logged, not fail the start.
        eprintln!("bulkhead-runc: {e:#}");
    }
    Ok(())
}

/// Opens the start fifo, which releases the relay blocked in opening its other end, and takes the byte
/// it writes; the fifo is removed then, which is how `state` knows a start happened.
fn release(fifo: &std::path::Path) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
        .with_context(|| format!("opening {}", fifo.display()))?;
    let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLIN)];
    let ready = poll(&mut fds, PollTimeout::from(RELEASE_WAIT_MS)).context("poll")?;
    let mut byte = [0u8; 1];
    if ready == 0 || f.read(&mut byte).unwrap_or(0) != 1 {
        bail!("the container's relay process did not take the start (it has ended)");
    }
    std::fs::remove_file(fifo).with_context(|| format!("removing {}", fifo.display()))
}

pub fn kill(ctx: &Ctx, a: &liboci_cli::Kill) -> Result<()> {
    let signal = bulkhead_engine::parse_signal(&a.signal)?;
    let loaded = ctx.load(&a.container_id)?;
    match (loaded.status(), &loaded.container) {
        (Status::Stopped, _) => bail!("container not running"),
        // The relay stands for a created container's init (and is a sandbox's only process).
        (Status::Created, _) | (Status::Running, None) => {
            signal_pid(Pid::from_raw(loaded.relay.pid), signal).context("signalling")
        }
        // `--all` reaches the same processes: the others die with the container's init (its own pid
        // namespace), in a VM with the guest.
        (Status::Running, Some(c)) => Ok(ctx.engine()?.kill(c.id(), signal)?),
        (Status::Paused, _) => bail!("container {} is paused: resume it first", a.container_id),
    }
}

pub fn delete(ctx: &Ctx, a: &liboci_cli::Delete) -> Result<()> {
    let loaded = match ctx.load(&a.container_id) {
        Ok(l) => l,
        // runc: deleting a container that does not exist succeeds with --force, which also clears
        // what a create killed half-way left (a record without relay.json, an engine container).
        Err(_) if a.force && ctx.record(&a.container_id)?.load().is_err() => {
            if let Ok(engine) = ctx.engine() {
                let _ = engine.remove(&a.container_id, true, false);
            }
            return ctx.record(&a.container_id)?.remove();
        }
        Err(e) => return Err(e),
    };
    let status = loaded.status();
    if matches!(status, Status::Running | Status::Paused) && !a.force {
        bail!(
            "cannot delete container {} that is not stopped: {status}",
            a.container_id
        );
    }
    let state = loaded.state_json();
    if let Some(c) = &loaded.container {
        ctx.engine()?.remove(c.id(), true, false)?;
    }
    if loaded.relay.alive() {
        let _ = signal_pid(Pid::from_raw(loaded.relay.pid), Signal::SIGKILL);
    }
    if let Err(e) = hooks::run(loaded.relay.hooks.as_ref(), Phase::Poststop, &state) {
        eprintln!("bulkhead-runc: {e:#}");
    }
    loaded.record.remove()
}

/// `run`: create and start; in the foreground, wait for the relay (our child) and remove the container
/// unless `--keep`, exiting with its code.
pub fn run(ctx: &Ctx, a: &liboci_cli::Run) -> Result<u8> {
    let relay = create::create(ctx, &CreateArgs::from(a))?;
    start(ctx, &a.container_id)?;
    if a.detach {
        return Ok(0);
    }
    let code = match waitpid(relay, None).context("waiting for the container")? {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
        _ => 1,
    };
    if !a.keep {
        delete(
            ctx,
            &liboci_cli::Delete {
                container_id: a.container_id.clone(),
                force: true,
            },
        )?;
    }
    Ok(code.clamp(0, 255) as u8)
}

/// `pause` (freeze) and `resume` (thaw).
pub fn pause(ctx: &Ctx, id: &str, paused: bool) -> Result<()> {
    let loaded = ctx.load(id)?;
    let Some(c) = &loaded.container else {
        bail!("a pod sandbox cannot be paused: bulkhead holds it without running its image");
    };
    let engine = ctx.engine()?;
    if paused {
        engine.pause(c.id())?;
    } else {
        engine.unpause(c.id())?;
    }
    Ok(())
}
