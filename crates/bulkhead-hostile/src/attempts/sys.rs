//! Small wrappers over raw syscalls: the errno and its name, a verdict from a return value, a child
//! process for attempts that would change the probe itself, and scratch paths.

use std::ffi::CString;

use crate::report::Row;

pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

pub fn errno_name(e: i32) -> String {
    format!("{:?}", nix::errno::Errno::from_raw(e))
}

/// The errnos by which the kernel refuses a caller before doing anything: no permission (capability,
/// seccomp, LSM), or no such syscall.
pub const REFUSED: &[i32] = &[libc::EPERM, libc::EACCES, libc::ENOSYS];

/// Verdict on a raw syscall's return: success escaped; an errno of `refused` is blocked; any other errno
/// came from past the permission check, so the call itself was allowed (the probe's arguments are chosen
/// so that the kernel then rejects them).
pub fn judge(attempt: &str, ret: i64, refused: &[i32]) -> Row {
    if ret >= 0 {
        return Row::escaped(attempt, "succeeded");
    }
    let e = errno();
    if refused.contains(&e) {
        Row::blocked(attempt, errno_name(e))
    } else {
        Row::escaped(
            attempt,
            format!(
                "allowed: rejected only past the permission check ({})",
                errno_name(e)
            ),
        )
    }
}

/// Runs `f` in a forked child (the probe is single-threaded) and returns its result: 0, or the errno.
/// For attempts that would change the probe's own namespaces or keyrings.
pub fn in_child(f: impl FnOnce() -> i64) -> i64 {
    // SAFETY: fork in a single-threaded process; the child only makes raw syscalls, then _exit.
    match unsafe { libc::fork() } {
        -1 => -1,
        0 => {
            let code = if f() >= 0 { 0 } else { errno() };
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
        pid => {
            let mut status = 0;
            // SAFETY: waits for the child just forked.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            match libc::WEXITSTATUS(status) {
                0 => 0,
                e => {
                    // The caller reads the child's errno as its own.
                    // SAFETY: errno is thread-local.
                    unsafe { *libc::__errno_location() = e };
                    -1
                }
            }
        }
    }
}

pub fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in a probe path")
}

/// A fresh scratch directory of this probe under /tmp.
pub fn scratch_dir(name: &str) -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("escape-probe-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Whether the open file is the null device (what a masked path is bound to).
pub fn is_dev_null(fd: i32) -> bool {
    // SAFETY: fstat into a zeroed stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open, st is valid for writes.
    let ok = unsafe { libc::fstat(fd, &mut st) } == 0;
    ok && st.st_mode & libc::S_IFMT == libc::S_IFCHR
        && libc::major(st.st_rdev) == 1
        && libc::minor(st.st_rdev) == 3
}

/// mount(2) with the probe's strings: 0, or -1 with errno set.
pub fn mount(
    source: &str,
    target: &std::path::Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> i64 {
    let (source, fstype, data) = (cstr(source), cstr(fstype), cstr(data));
    let target = cstr(target.to_str().unwrap_or_default());
    // SAFETY: valid C strings that outlive the call.
    unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    }
    .into()
}
