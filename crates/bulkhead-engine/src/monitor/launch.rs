//! Both sides of starting a monitor: the engine spawns `bulkhead __monitor [OPTIONS] ID` (a new session,
//! outliving its caller) with a pipe on fd 3, and the monitor writes one line on it, `ok` or
//! `error: ...`, once the caller may proceed. The argv and the pipe are private to this module.

use crate::containers::Container;
use crate::engine::EngineConfig;
use crate::EngineError;
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The first argument that makes the `bulkhead` binary a monitor.
pub const ROLE_ARG: &str = "__monitor";

/// Where the monitor finds the ready pipe.
const READY_FD: i32 = 3;

/// A monitor just spawned, and the pipe it reports on.
pub struct Launch {
    pub pid: i32,
    ready: OwnedFd,
    monitor_log: PathBuf,
}

/// Spawns the monitor of `c` (the running binary, in a new session, stderr to the monitor log).
pub fn spawn(
    config: &EngineConfig,
    c: &Container,
    attach_first: bool,
) -> Result<Launch, EngineError> {
    let exe = std::env::current_exe().map_err(EngineError::io("/proc/self/exe"))?;
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(EngineError::sys("pipe"))?;
    let log = crate::logs::open_log(&c.paths.monitor_log())
        .map_err(EngineError::io(c.paths.monitor_log()))?;
    let mut cmd = Command::new(exe);
    cmd.arg(ROLE_ARG).arg("--root").arg(&config.root);
    if let Some(bytes) = config.max_unpacked_bytes {
        cmd.arg("--max-unpacked-bytes").arg(bytes.to_string());
    }
    if attach_first {
        cmd.arg("--attach-first");
    }
    cmd.arg(c.id())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let ready_raw = std::os::fd::AsRawFd::as_raw_fd(&ready_w);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            // dup2 clears close-on-exec on the ready fd only.
            if libc::dup2(ready_raw, READY_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(EngineError::io("spawning the monitor"))?;
    drop(ready_w);
    // The monitor is reparented to init when we exit; it is never waited on here.
    let pid = child.id() as i32;
    drop(child);
    Ok(Launch {
        pid,
        ready: ready_r,
        monitor_log: c.paths.monitor_log(),
    })
}

impl Launch {
    /// Blocks until the monitor reports; `Err` carries its message.
    pub fn wait_ready(self) -> Result<(), String> {
        let mut line = String::new();
        let _ = std::io::BufReader::new(std::fs::File::from(self.ready)).read_line(&mut line);
        match line.trim() {
            "ok" => Ok(()),
            "" => Err(format!(
                "the monitor exited without reporting (see {})",
                self.monitor_log.display()
            )),
            other => Err(other.trim_start_matches("error: ").to_string()),
        }
    }
}

/// The monitor's end of the pipe: reports once, then is gone.
pub struct Ready(Option<std::fs::File>);

impl Ready {
    pub fn report(&mut self, line: &str) {
        if let Some(mut r) = self.0.take() {
            let _ = writeln!(r, "{line}");
        }
    }
}

/// What the monitor was asked to do.
struct MonitorArgs {
    root: PathBuf,
    max_unpacked_bytes: Option<u64>,
    attach_first: bool,
    id: String,
}

fn parse(args: &[OsString]) -> Result<MonitorArgs, String> {
    let mut out = MonitorArgs {
        root: PathBuf::new(),
        max_unpacked_bytes: None,
        attach_first: false,
        id: String::new(),
    };
    let mut it = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--root" => out.root = it.next().ok_or("--root needs a value")?.into(),
            "--max-unpacked-bytes" => {
                let v = it.next().ok_or("--max-unpacked-bytes needs a value")?;
                out.max_unpacked_bytes =
                    Some(v.parse().map_err(|_| format!("bad byte count {v}"))?);
            }
            "--attach-first" => out.attach_first = true,
            id if !id.starts_with('-') && out.id.is_empty() => out.id = id.to_string(),
            other => return Err(format!("unexpected monitor argument {other}")),
        }
    }
    if out.root.as_os_str().is_empty() || out.id.is_empty() {
        return Err(
            "usage: bulkhead __monitor --root DIR [--max-unpacked-bytes N] [--attach-first] ID"
                .into(),
        );
    }
    Ok(out)
}

/// The monitor role's entry point; `args` follow [`ROLE_ARG`]. Returns the process exit code.
pub fn main(args: &[OsString]) -> i32 {
    // SAFETY: fd 3 is the ready pipe that `spawn` placed there; we take ownership of it once.
    let pipe = (nix::fcntl::fcntl(READY_FD, nix::fcntl::FcntlArg::F_GETFD).is_ok())
        .then(|| unsafe { std::fs::File::from_raw_fd(READY_FD) });
    let mut ready = Ready(pipe);
    let args = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bulkhead monitor: {e}");
            ready.report(&format!("error: {e}"));
            return 2;
        }
    };
    super::run(
        &args.root,
        args.max_unpacked_bytes,
        &args.id,
        args.attach_first,
        ready,
    )
}
