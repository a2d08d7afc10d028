//! podman (Debian's 4.3) running its containers on `bulkhead-runc` through `--runtime`: run with output
//! and exit codes, detached containers with logs, exec and stop, terminals, and podman's own view (`ps`,
//! `inspect`) agreeing with what ran, in process mode and (through the annotation) in VM mode.
//! `BULKHEAD_OCI_TEST_RUNTIME=/usr/sbin/runc` runs the same against runc (VM assertions skipped).

use std::path::Path;

use bulkhead_testkit::oci_runtime::podman::BUSYBOX;
use bulkhead_testkit::oci_runtime::{host_kernel, Podman, RuntimeLinks, ISOLATION_ANNOTATION};
use bulkhead_testkit::{stderr, stdout, vm_lock, Terminal};

fn links() -> RuntimeLinks {
    RuntimeLinks::for_tests(Path::new(env!("CARGO_BIN_EXE_bulkhead")))
}

/// A container that says it started and on which kernel, in one write (a second line could reach the
/// log after the first was seen), then exits 7 on SIGTERM.
const SERVICE: &str =
    "echo \"started $(uname -r)\"; trap 'echo stopping; exit 7' TERM; while true; do sleep 0.1; done";

/// Waits until `podman logs NAME` shows `text` (hang-guarded); returns the logs.
fn wait_logs(podman: &Podman, name: &str, text: &str) -> String {
    let deadline = std::time::Instant::now() + bulkhead_testkit::output::HANG_LIMIT;
    loop {
        let logs = podman.ok(&["logs", name]);
        if logs.contains(text) {
            return logs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{text:?} never logged: {logs:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `podman ps -a` as `NAME running|exited EXITCODE` lines, from its JSON (the text form's State is
/// "Up 2 seconds ago").
fn ps_all(podman: &Podman) -> String {
    let listed: serde_json::Value =
        serde_json::from_str(&podman.ok(&["ps", "-a", "--format", "json"])).expect("ps JSON");
    let mut lines = String::new();
    for c in listed.as_array().expect("ps array") {
        let state = if c["Exited"] == true {
            "exited"
        } else {
            c["State"].as_str().unwrap_or_default()
        };
        let name = c["Names"][0].as_str().unwrap_or_default();
        lines += &format!("{name} {state} {}\n", c["ExitCode"]);
    }
    lines
}

/// `-d` + `logs` + `exec` + `stop`, with podman's view checked at each step. `extra` are run flags (the
/// isolation annotation); returns the kernel release the container saw.
fn detached_lifecycle(podman: &Podman, extra: &[&str]) -> String {
    let mut args = vec!["-d", "--name", "svc"];
    args.extend(extra);
    args.extend([BUSYBOX, "sh", "-c", SERVICE]);
    let out = podman.run(&args);
    assert!(out.status.success(), "run -d: {}", stderr(&out));
    let logs = wait_logs(podman, "svc", "started");
    let kernel = logs
        .lines()
        .find_map(|l| l.strip_prefix("started "))
        .unwrap_or_default()
        .to_string();
    assert_eq!(ps_all(podman).trim(), "svc running 0");

    let exec = podman.out(&[
        "exec",
        "svc",
        "sh",
        "-c",
        "echo in-exec; echo to-err >&2; exit 5",
    ]);
    assert_eq!(exec.status.code(), Some(5), "{}", stderr(&exec));
    assert_eq!(stdout(&exec), "in-exec\n");
    assert!(stderr(&exec).contains("to-err"), "{}", stderr(&exec));
    // The exec runs beside the container's process, in its namespaces and on its kernel.
    let exec_kernel = podman.ok(&["exec", "svc", "uname", "-r"]);
    assert_eq!(exec_kernel.trim(), kernel);

    podman.ok(&["stop", "-t", "20", "svc"]);
    assert_eq!(ps_all(podman).trim(), "svc exited 7");
    assert_eq!(
        podman
            .ok(&["inspect", "--format", "{{.State.ExitCode}}", "svc"])
            .trim(),
        "7"
    );
    assert!(
        wait_logs(podman, "svc", "stopping").ends_with("stopping\n"),
        "the trap's output is the last line"
    );
    podman.ok(&["rm", "svc"]);
    assert_eq!(ps_all(podman).trim(), "");
    kernel
}

/// `run --rm -it` on a 40x100 terminal resized to 50x120: the container sees a terminal of each size in
/// turn and its exit code comes back. `extra` are run flags; returns what the terminal showed.
fn run_on_terminal(podman: &Podman, extra: &[&str]) -> String {
    // The terminal gets the client's size through conmon once the container runs: wait for it.
    let script = "test -t 0 && echo IS-TTY; uname -r; \
                  while [ \"$(stty size 2>/dev/null)\" != '40 100' ]; do sleep 0.05; done; \
                  echo \"first $(stty size)\"; \
                  while [ \"$(stty size)\" = '40 100' ]; do sleep 0.05; done; stty size; exit 4";
    let mut args = vec!["--rm", "-it"];
    args.extend(extra);
    args.extend([BUSYBOX, "sh", "-c", script]);
    let mut term = Terminal::spawn(podman.run_cmd(&args), 40, 100);
    term.wait_for("first 40 100");
    term.resize(50, 120);
    let (code, seen) = term.finish();
    assert_eq!(code, Some(4), "{seen:?}");
    assert!(
        seen.contains("IS-TTY") && seen.contains("50 120"),
        "{seen:?}"
    );
    seen
}

#[test]
fn podman_run_rm_output_and_exit_codes() {
    let links = links();
    let podman = Podman::new(&links.process());
    let out = podman.run(&[
        "--rm",
        BUSYBOX,
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "to-out\n");
    assert!(stderr(&out).contains("to-err"), "{}", stderr(&out));
    let ok = podman.run(&["--rm", BUSYBOX, "true"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert_eq!(ps_all(&podman).trim(), "", "--rm left containers");
    // Killed by a signal: 128 + SIGKILL, in podman's view and for a waiting `podman wait`.
    let out = podman.run(&["-d", "--name", "victim", BUSYBOX, "sleep", "1000"]);
    assert!(out.status.success(), "run -d: {}", stderr(&out));
    podman.ok(&["kill", "victim"]);
    assert_eq!(podman.ok(&["wait", "victim"]).trim(), "137");
    assert_eq!(ps_all(&podman).trim(), "victim exited 137");
}

#[test]
fn podman_detached_logs_exec_stop() {
    let links = links();
    let podman = Podman::new(&links.process());
    let kernel = detached_lifecycle(&podman, &[]);
    assert_eq!(
        kernel,
        host_kernel(),
        "a process container runs on the host's kernel"
    );
}

#[test]
fn podman_interactive_terminals() {
    let links = links();
    let podman = Podman::new(&links.process());
    run_on_terminal(&podman, &[]);

    let out = podman.run(&["-d", "--name", "box", BUSYBOX, "sleep", "1000"]);
    assert!(out.status.success(), "run -d: {}", stderr(&out));
    let mut term = Terminal::spawn(
        podman.cmd(&[
            "exec",
            "-it",
            "box",
            "sh",
            "-c",
            "test -t 1 && echo EXEC-TTY; exit 6",
        ]),
        24,
        80,
    );
    term.wait_for("EXEC-TTY");
    let (code, seen) = term.finish();
    assert_eq!(code, Some(6), "{seen:?}");
    podman.ok(&["rm", "-f", "-t", "0", "box"]);
}

/// VM isolation asked for with the annotation: the same lifecycle on the guest's kernel (one boot), a
/// `run --rm` whose exit code comes back from the guest (a second), and `run --rm -it` (a third).
#[test]
fn vm_podman_annotation() {
    let _vm = vm_lock();
    let links = links();
    let podman = Podman::new(&links.process());
    let annotation = format!("{ISOLATION_ANNOTATION}=vm");
    let kernel = detached_lifecycle(&podman, &["--annotation", &annotation]);
    let out = podman.run(&[
        "--rm",
        "--annotation",
        &annotation,
        BUSYBOX,
        "sh",
        "-c",
        "uname -r; exit 9",
    ]);
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    let on_terminal = run_on_terminal(&podman, &["--annotation", &annotation]);
    if links.is_bulkhead() {
        assert_ne!(kernel, host_kernel(), "the VM runs the guest's kernel");
        assert_eq!(stdout(&out).trim(), kernel);
        assert!(on_terminal.contains(&kernel), "{on_terminal:?}");
    }
}
