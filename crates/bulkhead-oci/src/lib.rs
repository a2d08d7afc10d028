//! `bulkhead-runc`: runc's command-line contract over the engine facade, so that podman, containerd and
//! Kubernetes (CRI, RuntimeClass) run their containers on bulkhead in either isolation mode.
//!
//! The static `bulkhead` binary takes this role when it is called through a link named `bulkhead-runc`
//! (process isolation unless the bundle or the policy says otherwise) or `bulkhead-runc-vm` (a VM
//! unless the bundle asks for process isolation). State lives under runc's `--root`, as an engine root of
//! its own; the isolation policy is the one of bulkhead's main root, so the operator's rule holds
//! whichever front end creates a container.
//!
//! The pid a caller gets (`--pid-file`, `state`) is the container's *relay* (module `relay`): a process
//! `create` forks, which holds the container's namespaces and the caller's stdio, attaches to the
//! container once it starts, and exits with its exit code, which is what containerd's shim and conmon
//! wait for as the container's init.

pub mod bundle;
mod cli;
mod commands;
mod console;
mod hooks;
mod isolation;
mod logging;
mod record;
mod relay;
mod status;

use std::process::ExitCode;

/// The link names this role answers to.
pub const PROGRAM: &str = "bulkhead-runc";
pub const PROGRAM_VM: &str = "bulkhead-runc-vm";

/// Whether `argv0` names this role.
pub fn is_runtime_name(argv0: &std::ffi::OsStr) -> bool {
    std::path::Path::new(argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == PROGRAM || n == PROGRAM_VM)
}

/// Runs one runtime command and returns the exit code, runc's way: 0, or 1 with the error on stderr and
/// as a JSON line with `"level":"error"` in `--log`.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let vm_default = args.first().is_some_and(|a| {
        std::path::Path::new(a)
            .file_name()
            .is_some_and(|n| n == PROGRAM_VM)
    });
    let cli = match <cli::Cli as clap::Parser>::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    let log = logging::init(&cli.global);
    match commands::run(cli, vm_default) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            log.error(&format!("{e:#}"));
            ExitCode::from(1)
        }
    }
}
