//! The probe can see an escape: run as root on the bare host, where nothing confines it, the attempts
//! that are harmless there must all report ESCAPED. Without this, a probe broken in some way (a wrong
//! syscall number, a misread errno) would report "blocked" in every container and the suite would pass.

use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use bulkhead_hostile::{env, Outcome, Row};

/// What a root process on a Linux host can do and this probe does harmlessly (the machine's own sandbox
/// refuses kexec, modules and port I/O even to root, so those are left out).
const ESCAPE_ON_A_HOST: &[&str] = &[
    "mount",
    "unshare-user",
    "unshare-mount",
    "unshare-net",
    "keyctl",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "open_by_handle_at",
    "syslog-read",
    "reboot",
    "proc-sys-write",
    "sys-write",
    "mknod-host-disk",
    "leaked-fds",
    "host-pid",
    "host-files",
];

#[test]
fn the_probe_sees_every_escape_of_an_unconfined_root_process() {
    let mut sleeper = Command::new("sleep")
        .arg("600")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut marker = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut marker, b"probe-marker").unwrap();
    // An fd without close-on-exec, as a careless runtime would leak it.
    let leaked = nix::unistd::dup(std::io::stdin().as_raw_fd()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_escape-probe"))
        .args(ESCAPE_ON_A_HOST)
        .env(env::HOST_PID, sleeper.id().to_string())
        .env(env::HOST_PID_CMDLINE, "sleep 600")
        .env(env::MARKER_PATH, marker.path())
        .env(env::MARKER_TEXT, "probe-marker")
        .output()
        .unwrap();
    let _ = nix::unistd::close(leaked);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Row> = stdout.lines().filter_map(Row::parse).collect();
    let names: Vec<&str> = rows.iter().map(|r| r.attempt.as_str()).collect();
    assert_eq!(names, ESCAPE_ON_A_HOST, "{stdout}");
    let missed: Vec<&Row> = rows
        .iter()
        .filter(|r| r.outcome != Outcome::Escaped)
        .collect();
    assert!(missed.is_empty(), "the probe missed escapes: {missed:?}");
}

#[test]
fn unknown_attempts_are_refused_by_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_escape-probe"))
        .args(["mount", "no-such-attempt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-attempt"));
    assert!(out.stdout.is_empty());
}
