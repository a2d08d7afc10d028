//! What lies outside the container: fds it inherited, the host's processes and the host's files.

use super::sys::{self, errno, errno_name, scratch_dir};
use crate::env;
use crate::report::Row;

/// Any fd beyond stdin, stdout and stderr is a way out (an fd of a host directory reaches the host's
/// tree with openat; CVE-2024-21626 class): each is reported with what it points to.
pub fn leaked_fds() -> Row {
    let dir = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir,
        Err(e) => return Row::blocked("leaked-fds", format!("/proc/self/fd: {e}")),
    };
    let mut leaked = Vec::new();
    for entry in dir.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            // The directory's own fd, closed by the time it is looked at.
            continue;
        };
        if fd > 2 && !target.starts_with("/proc/") {
            leaked.push(format!("{fd} -> {}", target.display()));
        }
    }
    if leaked.is_empty() {
        Row::blocked("leaked-fds", "only 0, 1 and 2")
    } else {
        Row::escaped("leaked-fds", leaked.join(", "))
    }
}

/// The suite's host process (a `sleep` outside every container): signalling, tracing or opening it
/// succeeds only if the container shares the host's pid namespace.
pub fn host_pid() -> Row {
    let (Some(pid), Ok(cmdline)) = (
        std::env::var(env::HOST_PID)
            .ok()
            .and_then(|p| p.parse::<libc::pid_t>().ok()),
        std::env::var(env::HOST_PID_CMDLINE),
    ) else {
        return Row::blocked("host-pid", format!("{} not given", env::HOST_PID));
    };
    // A pid of the same number inside the container is a different process.
    let seen = std::fs::read(format!("/proc/{pid}/cmdline")).map(|c| {
        String::from_utf8_lossy(&c)
            .replace('\0', " ")
            .trim()
            .to_string()
    });
    if seen.as_deref().ok() != Some(cmdline.trim()) {
        return Row::blocked(
            "host-pid",
            format!("pid {pid} is not the host's process here"),
        );
    }
    let mut reached = Vec::new();
    // SAFETY: signal 0 only checks permission.
    if unsafe { libc::kill(pid, 0) } == 0 {
        reached.push("kill".to_string());
    }
    // SAFETY: seize without stopping, detached again below.
    if unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0) } == 0 {
        reached.push("ptrace".to_string());
        // SAFETY: detaches the tracee just seized.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
    } else {
        reached.push(format!("(ptrace {})", errno_name(errno())));
    }
    Row::escaped(
        "host-pid",
        format!("sees pid {pid}: {}", reached.join(", ")),
    )
}

/// The suite's marker file on the host, by every path the probe can think of: directly, through any
/// process's root in /proc, and by mounting the host's file shares (9p, virtiofs) a VM might have.
pub fn host_files() -> Row {
    let (Ok(path), Ok(text)) = (
        std::env::var(env::MARKER_PATH),
        std::env::var(env::MARKER_TEXT),
    ) else {
        return Row::blocked("host-files", format!("{} not given", env::MARKER_PATH));
    };
    let mut candidates = vec![path.clone()];
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.bytes().all(|b| b.is_ascii_digit()) {
            candidates.push(format!("/proc/{name}/root{path}"));
        }
    }
    let mut tried = Vec::new();
    for share in shares() {
        let mounted = share.as_ref().map_or_else(
            |e| {
                tried.push(e.clone());
                None
            },
            |dir| Some(dir.clone()),
        );
        if let Some(dir) = mounted {
            candidates.push(format!("{}{path}", dir.display()));
        }
    }
    let found: Vec<String> = candidates
        .into_iter()
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|c| c.contains(&text)))
        .collect();
    if found.is_empty() {
        Row::blocked(
            "host-files",
            format!("marker unreadable; {}", tried.join(", ")),
        )
    } else {
        let first: Vec<&str> = found.iter().take(3).map(String::as_str).collect();
        Row::escaped(
            "host-files",
            format!(
                "read the marker at {} ({} paths)",
                first.join(", "),
                found.len()
            ),
        )
    }
}

/// Mount attempts of the file shares QEMU can offer a guest, by the tags commonly used: the mount
/// points that worked, or why each did not.
fn shares() -> Vec<Result<std::path::PathBuf, String>> {
    let mut out = Vec::new();
    for (fstype, options) in [("9p", "trans=virtio,version=9p2000.L"), ("virtiofs", "")] {
        for tag in ["host", "hostshare", "share", "rootfs", "root", "fs0"] {
            let attempt = format!("{fstype} {tag}");
            let dir = match scratch_dir(&format!("{fstype}-{tag}")) {
                Ok(dir) => dir,
                Err(e) => {
                    out.push(Err(format!("{attempt}: {e}")));
                    continue;
                }
            };
            let ret = sys::mount(tag, &dir, fstype, libc::MS_RDONLY, options);
            if ret == 0 {
                out.push(Ok(dir));
            } else {
                out.push(Err(format!("{attempt}: {}", errno_name(errno()))));
                let _ = std::fs::remove_dir(&dir);
            }
        }
    }
    out
}
