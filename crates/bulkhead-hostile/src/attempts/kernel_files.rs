//! Kernel interfaces under /proc and /sys that a container must not write, or must see masked (as
//! Docker masks them: bound over by /dev/null or an empty read-only tmpfs).

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use super::sys::{errno_name, is_dev_null};
use crate::report::Row;

/// Opens each path for writing, never writes: any open that succeeds on the real file is a hole.
fn writable(attempt: &str, paths: &[&str]) -> Row {
    let mut opened = Vec::new();
    let mut refused = Vec::new();
    for path in paths {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) if is_dev_null(f.as_raw_fd()) => refused.push(format!("{path}: masked")),
            Ok(_) => opened.push(*path),
            Err(e) => refused.push(format!("{path}: {}", io_errno(&e))),
        }
    }
    if opened.is_empty() {
        Row::blocked(attempt, refused.join(", "))
    } else {
        Row::escaped(
            attempt,
            format!("opened for writing: {}", opened.join(", ")),
        )
    }
}

fn io_errno(e: &std::io::Error) -> String {
    e.raw_os_error().map_or_else(|| e.to_string(), errno_name)
}

/// Writes `h` (the help text, harmless) if it can open the trigger.
pub fn sysrq_trigger() -> Row {
    const PATH: &str = "/proc/sysrq-trigger";
    match std::fs::OpenOptions::new().write(true).open(PATH) {
        Ok(f) if is_dev_null(f.as_raw_fd()) => Row::blocked("proc-sysrq-trigger", "masked"),
        Ok(mut f) => match std::io::Write::write_all(&mut f, b"h") {
            Ok(()) => Row::escaped("proc-sysrq-trigger", "wrote a sysrq command"),
            Err(e) => Row::blocked("proc-sysrq-trigger", format!("write: {}", io_errno(&e))),
        },
        Err(e) => Row::blocked("proc-sysrq-trigger", io_errno(&e)),
    }
}

pub fn proc_sys_write() -> Row {
    writable(
        "proc-sys-write",
        &[
            "/proc/sys/kernel/core_pattern",
            "/proc/sys/kernel/modprobe",
            "/proc/sys/vm/drop_caches",
            "/proc/sys/fs/binfmt_misc/register",
        ],
    )
}

pub fn sys_write() -> Row {
    writable(
        "sys-write",
        &[
            "/sys/kernel/uevent_helper",
            "/sys/kernel/mm/transparent_hugepage/enabled",
            "/sys/power/state",
            "/sys/fs/cgroup/cgroup.procs",
            "/sys/class/net/lo/mtu",
        ],
    )
}

/// The kernel's memory as an ELF core: masked, it reads as empty.
pub fn kcore() -> Row {
    let mut byte = [0u8; 1];
    match std::fs::File::open("/proc/kcore") {
        Ok(mut f) => match f.read(&mut byte) {
            Ok(1) => Row::escaped("proc-kcore", "read kernel memory"),
            Ok(_) => Row::blocked("proc-kcore", "masked: reads empty"),
            Err(e) => Row::blocked("proc-kcore", format!("read: {}", io_errno(&e))),
        },
        Err(e) => Row::blocked("proc-kcore", io_errno(&e)),
    }
}

/// Host-wide kernel state that Docker masks: files must read empty, directories must list empty.
pub fn masked() -> Row {
    let mut leaked = Vec::new();
    let mut hidden = Vec::new();
    for path in [
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/latency_stats",
        "/proc/interrupts",
        "/proc/acpi",
        "/proc/scsi",
        "/proc/asound",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ] {
        let shown = match std::fs::read_dir(path) {
            Ok(entries) => entries.count(),
            Err(_) => match std::fs::read(path) {
                Ok(content) => content.len(),
                Err(e) => {
                    hidden.push(format!("{path}: {}", io_errno(&e)));
                    continue;
                }
            },
        };
        if shown == 0 {
            hidden.push(format!("{path}: empty"));
        } else {
            leaked.push(path);
        }
    }
    if leaked.is_empty() {
        Row::blocked("proc-masked", hidden.join(", "))
    } else {
        Row::escaped("proc-masked", format!("readable: {}", leaked.join(", ")))
    }
}
