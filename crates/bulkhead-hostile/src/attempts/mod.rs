//! The attempts, by what they go for: raw syscalls, kernel files under /proc and /sys, device nodes, and
//! what lies outside the container (fds, pids, files of the host). Each returns one [`Row`].

mod devices;
mod kernel_files;
mod outside;
mod sys;
mod syscalls;

pub use devices::flood_console;

use crate::report::Row;

/// An attempt: its name, and what makes it.
pub type Attempt = (&'static str, fn() -> Row);

/// Every attempt, in the order the probe makes them.
pub const ATTEMPTS: &[Attempt] = &[
    ("mount", syscalls::mount),
    ("unshare-user", syscalls::unshare_user),
    ("unshare-mount", syscalls::unshare_mount),
    ("unshare-net", syscalls::unshare_net),
    ("setns", syscalls::setns),
    ("keyctl", syscalls::keyctl),
    ("bpf", syscalls::bpf),
    ("perf_event_open", syscalls::perf_event_open),
    ("userfaultfd", syscalls::userfaultfd),
    ("kexec_load", syscalls::kexec_load),
    ("kexec_file_load", syscalls::kexec_file_load),
    ("init_module", syscalls::init_module),
    ("finit_module", syscalls::finit_module),
    ("open_by_handle_at", syscalls::open_by_handle_at),
    ("clock_settime", syscalls::clock_settime),
    ("iopl", syscalls::iopl),
    ("ioperm", syscalls::ioperm),
    ("syslog-read", syscalls::syslog_read),
    ("syslog-clear", syscalls::syslog_clear),
    ("reboot", syscalls::reboot),
    ("socket-vsock", syscalls::socket_vsock),
    ("socket-alg", syscalls::socket_alg),
    ("proc-sysrq-trigger", kernel_files::sysrq_trigger),
    ("proc-sys-write", kernel_files::proc_sys_write),
    ("proc-kcore", kernel_files::kcore),
    ("proc-masked", kernel_files::masked),
    ("sys-write", kernel_files::sys_write),
    ("mknod-host-disk", devices::mknod_host_disks),
    ("image-device-nodes", devices::image_device_nodes),
    ("leaked-fds", outside::leaked_fds),
    ("host-pid", outside::host_pid),
    ("host-files", outside::host_files),
];

/// Makes the named attempts (all when `names` is empty), in [`ATTEMPTS`] order; unknown names are an
/// error naming them.
pub fn run(names: &[String]) -> Result<Vec<Row>, String> {
    let unknown: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !ATTEMPTS.iter().any(|(name, _)| name == n))
        .collect();
    if !unknown.is_empty() {
        return Err(format!("unknown attempts: {}", unknown.join(", ")));
    }
    Ok(ATTEMPTS
        .iter()
        .filter(|(name, _)| names.is_empty() || names.iter().any(|n| n == name))
        .map(|(_, attempt)| attempt())
        .collect())
}
