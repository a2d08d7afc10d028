//! The last stage of every container process (init or exec), run inside the container's
//! namespaces: rlimits, user and groups, capabilities, working directory, descriptor
//! hygiene, no_new_privs, seccomp, and finally execve of the user's command.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use caps::CapsHashSet;
use nix::errno::Errno;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::{Gid, Uid};

use crate::capabilities;
use crate::error::RuntimeError;
use crate::seccomp;
use crate::users;
use bulkhead_spec::{ProcessSpec, Rlimit};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Security settings computed by the caller before forking.
pub(crate) struct Confinement {
    pub caps: CapsHashSet,
    pub seccomp: Option<seccomp::Program>,
    pub no_new_privs: bool,
}

/// Restores default dispositions and an empty mask: the caller's (e.g. Rust's ignored
/// SIGPIPE) must not leak into the container.
pub(crate) fn reset_signals() -> Result<(), RuntimeError> {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP)) {
        // SAFETY: installing SIG_DFL has no memory-safety implications.
        unsafe { sigaction(sig, &default) }
            .map_err(|e| RuntimeError::sys(format!("resetting {sig}"), e))?;
    }
    SigSet::empty()
        .thread_set_mask()
        .map_err(|e| RuntimeError::sys("clearing the signal mask", e))
}

/// Makes the process non-dumpable so the container cannot open its /proc entries
/// (notably /proc/PID/exe, the runtime binary) before the final execve.
pub(crate) fn set_non_dumpable() -> Result<(), RuntimeError> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(RuntimeError::sys("PR_SET_DUMPABLE", Errno::last()));
    }
    Ok(())
}

fn prctl(option: libc::c_int, arg: libc::c_ulong, what: &str) -> Result<(), RuntimeError> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(option, arg, 0, 0, 0) } != 0 {
        return Err(RuntimeError::sys(what, Errno::last()));
    }
    Ok(())
}

fn rlimit_resource(kind: &str) -> Result<libc::__rlimit_resource_t, RuntimeError> {
    let short = kind.trim().to_ascii_uppercase();
    let short = short.strip_prefix("RLIMIT_").unwrap_or(&short);
    Ok(match short {
        "AS" => libc::RLIMIT_AS,
        "CORE" => libc::RLIMIT_CORE,
        "CPU" => libc::RLIMIT_CPU,
        "DATA" => libc::RLIMIT_DATA,
        "FSIZE" => libc::RLIMIT_FSIZE,
        "LOCKS" => libc::RLIMIT_LOCKS,
        "MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "NICE" => libc::RLIMIT_NICE,
        "NOFILE" => libc::RLIMIT_NOFILE,
        "NPROC" => libc::RLIMIT_NPROC,
        "RSS" => libc::RLIMIT_RSS,
        "RTPRIO" => libc::RLIMIT_RTPRIO,
        "RTTIME" => libc::RLIMIT_RTTIME,
        "SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "STACK" => libc::RLIMIT_STACK,
        _ => return Err(RuntimeError::UnknownRlimit(kind.to_string())),
    })
}

/// Validates rlimit names early, in the caller.
pub(crate) fn validate_rlimits(rlimits: &[Rlimit]) -> Result<(), RuntimeError> {
    rlimits
        .iter()
        .try_for_each(|r| rlimit_resource(&r.kind).map(drop))
}

fn apply_rlimits(rlimits: &[Rlimit]) -> Result<(), RuntimeError> {
    for r in rlimits {
        let limit = libc::rlimit {
            rlim_cur: r.soft,
            rlim_max: r.hard,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(rlimit_resource(&r.kind)?, &limit) } != 0 {
            return Err(RuntimeError::sys(
                format!("setrlimit {}", r.kind),
                Errno::last(),
            ));
        }
    }
    Ok(())
}

fn switch_user(user: &users::ExecUser) -> Result<(), RuntimeError> {
    let gids: Vec<Gid> = std::iter::once(user.gid)
        .chain(user.additional_gids.iter().copied())
        .map(Gid::from_raw)
        .collect();
    nix::unistd::setgroups(&gids).map_err(|e| RuntimeError::sys("setgroups", e))?;
    let gid = Gid::from_raw(user.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| RuntimeError::sys("setresgid", e))?;
    let uid = Uid::from_raw(user.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| RuntimeError::sys("setresuid", e))
}

fn cstr(s: &str, what: &str) -> Result<CString, RuntimeError> {
    CString::new(s).map_err(|_| RuntimeError::InvalidSpec(format!("{what} contains a NUL byte")))
}

/// execvp-like lookup of `command` with the container's PATH, as the final user.
fn find_command(command: &str, env: &[String]) -> Result<String, RuntimeError> {
    if command.contains('/') {
        return Ok(command.to_string());
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let mut found_not_executable = None;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = format!("{dir}/{command}");
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        if nix::unistd::access(candidate.as_str(), nix::unistd::AccessFlags::X_OK).is_ok() {
            return Ok(candidate);
        }
        found_not_executable.get_or_insert(candidate);
    }
    match found_not_executable {
        Some(path) => Err(RuntimeError::NotExecutable {
            path,
            reason: "permission denied".into(),
        }),
        None => Err(RuntimeError::CommandNotFound {
            command: command.to_string(),
        }),
    }
}

fn exec_error(path: &str, e: Errno) -> RuntimeError {
    match e {
        Errno::ENOENT => RuntimeError::CommandNotFound {
            command: path.to_string(),
        },
        Errno::EACCES | Errno::ENOEXEC | Errno::EISDIR | Errno::EPERM => {
            RuntimeError::NotExecutable {
                path: path.to_string(),
                reason: e.desc().to_string(),
            }
        }
        other => RuntimeError::sys(format!("execve {path}"), other),
    }
}

/// Changes to `cwd` (created first when `create`, as root) and verifies the result is
/// reachable from the container root (CVE-2024-21626: a leaked host directory fd as cwd).
fn enter_cwd(cwd: &str) -> Result<(), RuntimeError> {
    let bad = |reason: String| RuntimeError::BadCwd {
        cwd: cwd.to_string(),
        reason,
    };
    if !cwd.starts_with('/') {
        return Err(bad("must be an absolute path".into()));
    }
    nix::unistd::chdir(cwd).map_err(|e| bad(e.desc().to_string()))?;
    let actual = nix::unistd::getcwd().map_err(|e| bad(format!("unreachable: {e}")))?;
    if !actual.starts_with("/") {
        return Err(bad("outside the container root".into()));
    }
    Ok(())
}

/// Creates a missing working directory owned by the process user, as docker does.
fn create_cwd(cwd: &str, user: &users::ExecUser) -> Result<(), RuntimeError> {
    if !cwd.starts_with('/') || Path::new(cwd).exists() {
        return Ok(());
    }
    std::fs::create_dir_all(cwd).map_err(|e| RuntimeError::BadCwd {
        cwd: cwd.to_string(),
        reason: e.to_string(),
    })?;
    let meta = std::fs::metadata(cwd).map_err(|e| RuntimeError::io("stat", cwd, e))?;
    if meta.uid() != user.uid {
        nix::unistd::chown(
            cwd,
            Some(Uid::from_raw(user.uid)),
            Some(Gid::from_raw(user.gid)),
        )
        .map_err(|e| RuntimeError::sys(format!("chown {cwd}"), e))?;
    }
    std::fs::set_permissions(cwd, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| RuntimeError::io("chmod", cwd, e))
}

/// Runs the final stage and execs `process.args`. Only returns on failure.
pub(crate) fn exec_process(
    process: &ProcessSpec,
    confinement: &Confinement,
    create_missing_cwd: bool,
) -> Result<Infallible, RuntimeError> {
    let passwd = users::read_db(Path::new("/etc/passwd"))?;
    let group = users::read_db(Path::new("/etc/group"))?;
    let user = users::resolve(&process.user, &passwd, &group)?;
    let mut env = process.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    if process.terminal && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".to_string());
    }
    if create_missing_cwd {
        create_cwd(&process.cwd, &user)?;
    }
    apply_rlimits(&process.rlimits)?;

    capabilities::limit_bounding(&confinement.caps)?;
    prctl(libc::PR_SET_KEEPCAPS, 1, "PR_SET_KEEPCAPS")?;
    switch_user(&user)?;
    prctl(libc::PR_SET_KEEPCAPS, 0, "PR_SET_KEEPCAPS")?;
    capabilities::apply(&confinement.caps)?;

    enter_cwd(&process.cwd)?;
    let command = process
        .args
        .first()
        .ok_or_else(|| RuntimeError::InvalidSpec("empty command".into()))?;
    let path = find_command(command, &env)?;
    let c_path = cstr(&path, "command")?;
    let c_args = process
        .args
        .iter()
        .map(|a| cstr(a, "argument"))
        .collect::<Result<Vec<_>, _>>()?;
    let c_env = env
        .iter()
        .map(|e| cstr(e, "environment"))
        .collect::<Result<Vec<_>, _>>()?;

    // Everything but stdio is close-on-exec from here on; the setup channel already is,
    // so a successful execve closes it and tells the caller the command runs.
    // SAFETY: close_range with a flag that only marks descriptors.
    if unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int) } != 0 {
        return Err(RuntimeError::sys("close_range", Errno::last()));
    }
    if confinement.no_new_privs {
        prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "PR_SET_NO_NEW_PRIVS")?;
    }
    if let Some(filter) = &confinement.seccomp {
        seccomp::load(filter)
            .map_err(|e| RuntimeError::sys("seccomp(SECCOMP_SET_MODE_FILTER)", e))?;
    }
    let err = nix::unistd::execve(&c_path, &c_args, &c_env)
        .err()
        .unwrap_or(Errno::EINVAL);
    Err(exec_error(&path, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlimit_names() {
        assert!(validate_rlimits(&[Rlimit {
            kind: "RLIMIT_NOFILE".into(),
            soft: 1,
            hard: 2
        }])
        .is_ok());
        assert!(rlimit_resource("nproc").is_ok());
        assert!(matches!(
            rlimit_resource("bogus"),
            Err(RuntimeError::UnknownRlimit(_))
        ));
    }

    #[test]
    fn command_lookup() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        assert!(find_command("sh", &env).unwrap().ends_with("/sh"));
        assert!(matches!(
            find_command("no-such-command-here", &env),
            Err(RuntimeError::CommandNotFound { .. })
        ));
        assert_eq!(find_command("./x", &env).unwrap(), "./x");
    }
}
