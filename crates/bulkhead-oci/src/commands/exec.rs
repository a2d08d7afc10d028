//! `exec`: one more process in a running container, from `--process FILE` (the runtime spec's process
//! JSON, as containerd sends it) or from the command line. An exec relay (module `relay`) runs the
//! session: with `--detach` its pid goes to `--pid-file` and the caller waits on it; without, this
//! command waits and exits with the process's code.

use super::Ctx;
use crate::relay::{self, Job, Namespaces, Ns, RelaySpec};
use crate::status::Status;
use anyhow::{bail, Context, Result};
use bulkhead_engine::ExecOptions;
use nix::sys::wait::{waitpid, WaitStatus};
use oci_spec::runtime::Process;

pub fn exec(ctx: &Ctx, a: &liboci_cli::Exec) -> Result<u8> {
    refuse_unsupported(a)?;
    let loaded = ctx.load(&a.container_id)?;
    if loaded.container.is_none() {
        bail!(
            "cannot exec in a pod sandbox: bulkhead holds its namespaces without running its image"
        );
    }
    if loaded.status() != Status::Running {
        bail!("cannot exec in a stopped container");
    }
    let opts = match &a.process {
        Some(path) => from_process_file(path)?,
        None => from_flags(a)?,
    };
    if opts.args.is_empty() {
        bail!("exec needs a command (arguments or --process with process.args)");
    }
    let tty = opts.tty;
    if tty && a.console_socket.is_none() && !nix::unistd::isatty(0).unwrap_or(false) {
        bail!("a terminal was asked for but no --console-socket was given and stdin is not a terminal");
    }
    let pid = relay::spawn(&RelaySpec {
        name: a.container_id.clone(),
        engine: ctx.engine_config().clone(),
        fifo: None,
        namespaces: Namespaces {
            net: Ns::Keep,
            ipc: Ns::Keep,
            uts: Ns::Keep,
        },
        console_socket: a.console_socket.clone(),
        tty,
        job: Job::Exec(opts),
    })?;
    if let Some(path) = &a.pid_file {
        super::create::write_pid_file(path, pid)?;
    }
    if a.detach {
        return Ok(0);
    }
    Ok(match waitpid(pid, None).context("waiting for the exec")? {
        WaitStatus::Exited(_, code) => code.clamp(0, 255) as u8,
        WaitStatus::Signaled(_, signal, _) => (128 + signal as i32).clamp(0, 255) as u8,
        _ => 1,
    })
}

/// runc flags whose meaning bulkhead has no equivalent for.
fn refuse_unsupported(a: &liboci_cli::Exec) -> Result<()> {
    let refused = [
        (a.process_label.is_some(), "--process-label (no SELinux)"),
        (a.apparmor.is_some(), "--apparmor (no AppArmor)"),
        (
            !a.cap.is_empty(),
            "--cap (an exec has the container's capabilities)",
        ),
        (a.preserve_fds > 0, "--preserve-fds (stdio is relayed)"),
        (
            a.cgroup.is_some(),
            "--cgroup (an exec runs in the container's cgroup)",
        ),
        (!a.additional_gids.is_empty(), "--additional-gids"),
    ];
    if let Some((_, what)) = refused.iter().find(|(set, _)| *set) {
        bail!("exec {what} is not supported by bulkhead-runc");
    }
    Ok(())
}

fn from_process_file(path: &std::path::Path) -> Result<ExecOptions> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let p: Process = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a runtime-spec process", path.display()))?;
    let user = p.user();
    // containerd lists the primary group among the additional ones: only others are unsupported.
    if user
        .additional_gids()
        .as_ref()
        .is_some_and(|g| g.iter().any(|&g| g != user.gid()))
    {
        bail!("process.user.additionalGids of an exec is not supported by bulkhead-runc");
    }
    Ok(ExecOptions {
        args: p.args().clone().unwrap_or_default(),
        env: p.env().clone().unwrap_or_default(),
        workdir: Some(p.cwd().to_string_lossy().into_owned()),
        user: Some(format!("{}:{}", user.uid(), user.gid())),
        tty: p.terminal().unwrap_or(false),
        console_size: p
            .console_size()
            .map(|s| (s.height() as u16, s.width() as u16)),
    })
}

fn from_flags(a: &liboci_cli::Exec) -> Result<ExecOptions> {
    Ok(ExecOptions {
        args: a.command.clone(),
        env: a.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        workdir: a.cwd.as_ref().map(|c| c.to_string_lossy().into_owned()),
        user: a.user.map(|(uid, gid)| match gid {
            Some(gid) => format!("{uid}:{gid}"),
            None => uid.to_string(),
        }),
        tty: a.tty,
        console_size: None,
    })
}
