//! End-to-end behaviours every container honours whatever its isolation, through the real `bulkhead`
//! binary as root. Each is written once, as a function of the isolation, and runs twice: as
//! `process_mode::NAME` (namespaces and cgroups on the host kernel) and as `vm_mode::NAME` (a QEMU guest
//! with its own kernel). A VM boot costs seconds of a core under TCG, so each behaviour groups its
//! assertions into as few containers as its meaning allows.

mod common;

use bulkhead_testkit::output::HANG_LIMIT;
use common::host::{alive, host_mounts_mentioning, monitor_pids};
use common::{interfaces, stderr, stdout, wait_output, Isolation, Root, IMAGE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

/// Generates `process_mode::NAME` and `vm_mode::NAME` tests for each behaviour `NAME(Isolation)`. The
/// `vm_` prefix is what .config/nextest.toml serialises on.
macro_rules! in_both_modes {
    ($($behaviour:ident),* $(,)?) => {
        mod process_mode {
            $(
                #[test]
                fn $behaviour() {
                    super::$behaviour(super::Isolation::Process);
                }
            )*
        }

        mod vm_mode {
            $(
                #[test]
                fn $behaviour() {
                    let _one_guest_at_a_time = bulkhead_testkit::vm_lock();
                    super::$behaviour(super::Isolation::Vm);
                }
            )*
        }
    };
}

in_both_modes!(
    output_and_exit_codes,
    engine_errors_exit_125,
    environment_user_workdir_and_entrypoint,
    stdin_only_with_interactive,
    terminal_allocation_and_size,
    stop_and_kill,
    foreground_run_forwards_signals,
    detached_logs_tail_timestamps_and_follow,
    exec_shares_the_container,
    ps_inspect_wait_and_restart,
    rm_rules_and_auto_remove,
    name_conflicts_are_refused,
    read_only_root_and_tmpfs,
    security_defaults_and_options,
    device_nodes_can_be_made_but_not_opened,
    pids_limit_stops_forks,
    concurrent_starts_one_wins,
    hosts_and_resolv_conf,
);

/// `run --rm ISOLATION ARGS...`.
fn run_args<'a>(iso: Isolation, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["run", "--rm", iso.flag()];
    all.extend_from_slice(args);
    all
}

/// `run -d ISOLATION ARGS...`, returning the full container id.
fn run_detached(r: &Root, iso: Isolation, args: &[&str]) -> String {
    let mut all = vec![iso.flag()];
    all.extend_from_slice(args);
    r.detached(&all)
}

/// Polls `logs` until it contains `text` (a hang guard, not a timing assertion).
fn wait_for_log(r: &Root, key: &str, text: &str) {
    let deadline = Instant::now() + HANG_LIMIT;
    while !r.ok(&["logs", key]).contains(text) {
        assert!(Instant::now() < deadline, "{key} never logged {text:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- output and exit codes ----

fn output_and_exit_codes(iso: Isolation) {
    let r = Root::new();
    let out = r.bh(&run_args(
        iso,
        &[IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3"],
    ));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err"), "stderr: {}", stderr(&out));
    let code = |args: &[&str]| r.bh(&run_args(iso, args)).status.code();
    assert_eq!(code(&[IMAGE, "no-such-command"]), Some(127));
    assert_eq!(code(&[IMAGE, "/etc/motd"]), Some(126));
}

fn engine_errors_exit_125(iso: Isolation) {
    let r = Root::new();
    for args in [
        &["--no-such-flag", IMAGE, "true"][..],
        &["localhost:1/no/such-image:1", "true"],
        &["-u", "no-such-user", IMAGE, "true"],
    ] {
        let out = r.bh(&run_args(iso, args));
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", stderr(&out));
    }
}

// ---- process settings ----

fn environment_user_workdir_and_entrypoint(iso: Isolation) {
    let r = Root::new();
    let file = r.path().join("env.list");
    std::fs::write(&file, "# comment\nFROM_FILE=2\n\nSHARED=file\n").unwrap();
    // Without -u the process is root.
    let out = r.ok(&run_args(
        iso,
        &[
            "-e",
            "FROM_FLAG=1",
            "--env-file",
            file.to_str().unwrap(),
            "-e",
            "SHARED=flag",
            IMAGE,
            "sh",
            "-c",
            "env; echo uid=$(id -u)",
        ],
    ));
    let vars: Vec<&str> = out.lines().collect();
    assert!(vars.contains(&"FROM_FLAG=1"), "{out}");
    assert!(vars.contains(&"FROM_FILE=2"), "{out}");
    assert!(
        vars.contains(&"SHARED=flag"),
        "a flag overrides the file: {out}"
    );
    assert!(
        vars.iter()
            .any(|v| v.starts_with("PATH=") && v.contains("/bin")),
        "image PATH: {out}"
    );
    assert!(!vars.iter().any(|v| v.starts_with("# comment")), "{out}");
    assert!(vars.contains(&"uid=0"), "{out}");

    // A user name takes its group from /etc/passwd; the working directory is set.
    let out = r.ok(&run_args(
        iso,
        &[
            "-u",
            "user",
            "-w",
            "/home/user",
            IMAGE,
            "sh",
            "-c",
            "echo $(id -u):$(id -g); pwd",
        ],
    ));
    assert_eq!(out, "1000:1000\n/home/user\n");
    // Numeric ids need no entry; the entrypoint replaces the image's, the arguments follow it.
    let out = r.ok(&run_args(
        iso,
        &[
            "-u",
            "1234:5678",
            "--entrypoint",
            "sh",
            IMAGE,
            "-c",
            "echo via entrypoint $(id -u):$(id -g)",
        ],
    ));
    assert_eq!(out.trim(), "via entrypoint 1234:5678");
    let gid = r.ok(&run_args(iso, &["-u", "user:users", IMAGE, "id", "-g"]));
    assert_eq!(gid.trim(), "100");
}

fn stdin_only_with_interactive(iso: Isolation) {
    let r = Root::new();
    let mut child = r
        .cmd(&run_args(
            iso,
            &["-i", IMAGE, "sh", "-c", "tr a-z A-Z; echo done"],
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello\nworld\n").unwrap();
    drop(stdin);
    let out = wait_output(child, "run -i");
    assert_eq!(stdout(&out), "HELLO\nWORLD\ndone\n", "{}", stderr(&out));
    // Without -i the container's stdin is empty.
    assert_eq!(
        r.ok(&run_args(iso, &[IMAGE, "sh", "-c", "cat; echo end"])),
        "end\n"
    );
}

/// `-t` gives the container a pty of its own that follows the terminal's size: the initial size reaches
/// the container, and a resize of the local terminal (SIGWINCH to the CLI) resizes it while it runs.
/// Without `-t` the container has no terminal, even when the CLI has one.
fn terminal_allocation_and_size(iso: Isolation) {
    let r = Root::new();
    let script = "test -t 1 && echo IS-TTY; tty; stty size; \
                  while [ \"$(stty size)\" = '40 100' ]; do sleep 0.05; done; stty size";
    let mut term = bulkhead_testkit::Terminal::spawn(
        r.cmd(&run_args(iso, &["-it", IMAGE, "sh", "-c", script])),
        40,
        100,
    );
    term.wait_for("40 100");
    term.resize(50, 120);
    let (code, seen) = term.finish();
    assert_eq!(code, Some(0), "{seen:?}");
    assert!(
        seen.contains("IS-TTY") && seen.contains("/dev/pts/0"),
        "{seen:?}"
    );
    assert!(
        seen.contains("50 120"),
        "the container never saw the new size: {seen:?}"
    );

    let script = "if test -t 1; then echo IS-TTY; else echo NO-TTY; fi";
    let term = bulkhead_testkit::Terminal::spawn(
        r.cmd(&run_args(iso, &[IMAGE, "sh", "-c", script])),
        40,
        100,
    );
    let (_, seen) = term.finish();
    assert!(seen.contains("NO-TTY"), "{seen:?}");
}

// ---- stopping and signals ----

fn stop_and_kill(iso: Isolation) {
    let r = Root::new();
    // `kill` delivers the signal asked for; `stop` sends SIGTERM first.
    let handled = run_detached(
        &r,
        iso,
        &[
            IMAGE,
            "sh",
            "-c",
            "trap 'echo got-usr1' USR1; trap 'echo got-term; exit 7' TERM; echo up; \
             while :; do sleep 0.1; done",
        ],
    );
    wait_for_log(&r, &handled, "up");
    // Paused (its cgroup, or its VM's, frozen: `pause` returns once the kernel says so), it refuses
    // signals as docker does; unpaused, it takes them again.
    r.ok(&["pause", &handled]);
    let v = r.inspect(&handled);
    assert_eq!(v["State"]["Status"], "paused");
    assert_eq!(v["State"]["Paused"], true);
    for refused in [
        &["kill", "-s", "USR1", &handled][..],
        &["stop", &handled][..],
    ] {
        let out = r.bh(refused);
        assert_ne!(
            out.status.code(),
            Some(0),
            "{refused:?} of a paused container"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("paused"));
    }
    r.ok(&["unpause", &handled]);
    assert_eq!(r.inspect(&handled)["State"]["Paused"], false);
    r.ok(&["kill", "-s", "USR1", &handled]);
    wait_for_log(&r, &handled, "got-usr1");
    r.ok(&["stop", &handled]);
    let v = r.inspect(&handled);
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 7);
    assert!(r.ok(&["logs", &handled]).contains("got-term"));
    let out = r.bh(&["kill", &handled]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "killing an exited container must fail"
    );

    // A process that ignores SIGTERM is killed when the timeout ends; rm then takes all of it away.
    let stubborn = run_detached(
        &r,
        iso,
        &[
            IMAGE,
            "sh",
            "-c",
            "trap '' TERM; echo up; while :; do sleep 0.1; done",
        ],
    );
    wait_for_log(&r, &stubborn, "up");
    let pid = r.inspect(&stubborn)["State"]["Pid"].as_i64().unwrap();
    r.ok(&["stop", "-t", "1", &stubborn]);
    assert_eq!(r.inspect(&stubborn)["State"]["ExitCode"], 137);
    r.ok(&["rm", &stubborn]);
    assert!(!r.path().join("containers").join(&stubborn).exists());
    assert!(!alive(pid), "the container's process (or VM) outlived rm");

    // Death by a signal is 128 + its number.
    let id = run_detached(&r, iso, &[IMAGE, "sleep", "1000"]);
    r.ok(&["kill", "-s", "SIGKILL", &id]);
    assert_eq!(r.ok(&["wait", &id]).trim(), "137");
}

/// SIGTERM to a foreground `run` reaches the container's process; the run exits with its code, here a
/// shell reporting its child's death by SIGUSR1 (10) as 128+10.
fn foreground_run_forwards_signals(iso: Isolation) {
    let r = Root::new();
    let mut child = r
        .cmd(&run_args(
            iso,
            &[
                IMAGE,
                "sh",
                "-c",
                "trap 'echo TERMED; kill -s USR1 $child' TERM; sleep 1000 & child=$!; echo ready; \
                 wait $child; wait $child; exit $?",
            ],
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = channel();
    let out = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = lines.recv_timeout(HANG_LIMIT);
    assert_eq!(first.as_deref(), Ok("ready"));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let out = wait_output(child, "run with a forwarded SIGTERM");
    let rest: Vec<String> = lines.iter().collect();
    assert_eq!(rest, ["TERMED"], "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(138));
}

// ---- detached, logs ----

fn detached_logs_tail_timestamps_and_follow(iso: Isolation) {
    let r = Root::new();
    let id = run_detached(
        &r,
        iso,
        &[
            IMAGE,
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2; sleep 1; echo line6",
        ],
    );
    assert_eq!(id.len(), 64, "run -d prints the full id: {id}");
    // Following while it runs ends when the container does.
    let follow = r
        .cmd(&["logs", "-f", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let followed = wait_output(follow, "logs -f");
    assert!(followed.status.success());
    assert_eq!(
        stdout(&followed),
        "line1\nline2\nline3\nline4\nline5\nline6\n"
    );
    assert_eq!(r.ok(&["wait", &id]).trim(), "0");
    let all = r.bh(&["logs", &id]);
    assert_eq!(stdout(&all), "line1\nline2\nline3\nline4\nline5\nline6\n");
    assert_eq!(stderr(&all), "oops\n");
    let tail = r.bh(&["logs", "--tail", "2", &id]);
    assert_eq!(
        stdout(&tail),
        "line6\n",
        "the last two records are oops and line6"
    );
    assert_eq!(stderr(&tail), "oops\n");
    let stamped = r.ok(&["logs", "-t", &id]);
    for line in stamped.lines() {
        let (ts, text) = line.split_once(' ').unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
            "timestamp {ts:?}"
        );
        assert!(text.starts_with("line"), "{line}");
    }
}

// ---- exec, and what the container sees ----

/// One long-running container: exec shares its hostname, environment, namespaces and mounts, with its
/// own user, directory and exit code; its tmpfs stays inside; the isolation cannot change while it runs.
fn exec_shares_the_container(iso: Isolation) {
    let r = Root::new();
    let id = run_detached(
        &r,
        iso,
        &[
            "-h",
            "box",
            "-e",
            "BASE=1",
            "--network",
            "none",
            "--tmpfs",
            "/scratch-marker-dir",
            IMAGE,
            "sleep",
            "1000",
        ],
    );
    let exec = |args: &[&str]| {
        let mut all = vec!["exec"];
        all.extend_from_slice(args);
        r.ok(&all)
    };
    let code = |args: &[&str]| {
        let mut all = vec!["exec"];
        all.extend_from_slice(args);
        r.bh(&all).status.code()
    };
    assert_eq!(exec(&[&id, "hostname"]).trim(), "box");
    // The command is PID 1 of its own PID namespace, which shows nothing else.
    assert_eq!(
        exec(&[&id, "cat", "/proc/1/cmdline"]),
        "sleep\u{0}1000\u{0}"
    );
    let procs = exec(&[&id, "ps", "-o", "pid,comm"]);
    assert!(
        procs.lines().count() <= 3,
        "only the container's processes are visible: {procs}"
    );
    assert_eq!(exec(&[&id, "sh", "-c", "echo $((6*7))"]).trim(), "42");
    assert_eq!(code(&[&id, "sh", "-c", "exit 5"]), Some(5));
    assert_eq!(
        exec(&["-e", "X=y", &id, "sh", "-c", "echo $X$BASE"]).trim(),
        "y1"
    );
    assert_eq!(exec(&["-u", "1000", &id, "id", "-u"]).trim(), "1000");
    assert_eq!(exec(&["-w", "/tmp", &id, "pwd"]).trim(), "/tmp");
    assert_eq!(code(&[&id, "no-such-command"]), Some(127));
    assert_eq!(
        exec(&[&id, "sh", "-c", "touch /writable && echo yes"]).trim(),
        "yes",
        "the root filesystem is writable by default"
    );
    assert_eq!(interfaces(&exec(&[&id, "cat", "/proc/net/dev"])), ["lo"]);
    assert!(
        !std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains("/scratch-marker-dir"),
        "the container's tmpfs leaked to the host"
    );
    assert!(exec(&[&id, "cat", "/proc/self/mountinfo"]).contains("/scratch-marker-dir"));
    let other = match iso {
        Isolation::Process => Isolation::Vm,
        Isolation::Vm => Isolation::Process,
    };
    let update = format!("--isolation={}", other.name());
    assert_ne!(
        r.bh(&["update", &update, &id]).status.code(),
        Some(0),
        "isolation cannot change while it runs"
    );
    r.ok(&["kill", &id]);
    r.wait_status(&id, "exited");
    assert_eq!(code(&[&id, "true"]), Some(125));
    r.ok(&["rm", "-f", &id]);
    assert_eq!(host_mounts_mentioning(r.path()), Vec::<String>::new());
}

// ---- ps, inspect, wait, restart, rm, names ----

fn ps_inspect_wait_and_restart(iso: Isolation) {
    let r = Root::new();
    let running = run_detached(&r, iso, &["--name", "runner", IMAGE, "sleep", "1000"]);
    // Runs until told to end, so that it is inspected while running whatever the boot time. (Not
    // released by an exec: the container's end may cut that exec short.)
    let done = run_detached(
        &r,
        iso,
        &[
            "--name",
            "finisher",
            IMAGE,
            "sh",
            "-c",
            "trap 'exit 4' USR1; echo up; while :; do sleep 0.05; done",
        ],
    );
    wait_for_log(&r, &done, "up");
    let v = r.inspect(&done);
    assert_eq!(v["Id"], done.as_str());
    assert_eq!(v["Isolation"], iso.name());
    assert_eq!(v["State"]["Status"], "running");
    assert!(v["State"]["Pid"].as_i64().unwrap() > 0);
    r.ok(&["kill", "-s", "USR1", &done]);
    assert_eq!(r.ok(&["wait", &done]).trim(), "4");
    let v = r.inspect(&done);
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 4);
    assert_eq!(v["State"]["OOMKilled"], false);

    let quiet = r.ok(&["ps", "-q"]);
    assert_eq!(quiet.lines().collect::<Vec<_>>(), vec![&running[..12]]);
    let all = r.ok(&["ps", "-a", "-q", "--no-trunc"]);
    assert!(
        all.lines().any(|l| l == running) && all.lines().any(|l| l == done),
        "{all}"
    );
    let table = r.ok(&["ps", "-a"]);
    assert!(table.starts_with("CONTAINER ID"), "{table}");
    assert!(
        table.contains("runner") && table.contains("finisher"),
        "{table}"
    );
    let isolation = format!(" {} ", iso.name());
    assert!(
        table
            .lines()
            .any(|l| l.contains("runner") && l.contains(&isolation)),
        "{table}"
    );
    assert!(!r.ok(&["ps"]).contains("finisher"));

    // Defaults: the short id as host name, the default bridge network, and an up loopback
    // (IFF_UP | IFF_LOOPBACK).
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let inner = r.ok(&["exec", &running, "hostname"]);
    assert_ne!(inner.trim(), host);
    assert_eq!(
        inner.trim(),
        &running[..12],
        "default hostname is the short id"
    );
    let net = r.ok(&["exec", &running, "cat", "/proc/net/dev"]);
    // A VM's NIC is a tap mirrored to the namespace's veth: the container sees eth0 in both modes.
    assert_eq!(
        interfaces(&net),
        ["eth0", "lo"],
        "the default network is bridge"
    );
    let flags = r.ok(&["exec", &running, "cat", "/sys/class/net/lo/flags"]);
    assert_eq!(flags.trim(), "0x9");

    let before = r.inspect(&running)["State"]["Pid"].as_i64().unwrap();
    r.ok(&["restart", "-t", "0", &running]);
    let v = r.inspect(&running);
    assert_eq!(v["State"]["Status"], "running");
    assert_eq!(v["RestartCount"], 1);
    assert_ne!(v["State"]["Pid"].as_i64().unwrap(), before);
}

fn rm_rules_and_auto_remove(iso: Isolation) {
    let r = Root::new();
    let id = run_detached(&r, iso, &[IMAGE, "sleep", "1000"]);
    let pid = r.inspect(&id)["State"]["Pid"].as_i64().unwrap();
    assert!(alive(pid));
    let out = r.bh(&["rm", &id]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "rm of a running container must be refused"
    );
    assert_eq!(r.inspect(&id)["State"]["Status"], "running");
    r.ok(&["rm", "-f", &id]);
    assert!(r.all_ids().is_empty());
    assert!(!r.path().join("containers").join(&id).exists());
    assert!(
        !alive(pid),
        "the container's process (or VM) outlived rm -f"
    );

    r.ok(&run_args(iso, &["--name", "ephemeral", IMAGE, "true"]));
    assert!(r.all_ids().is_empty(), "--rm leaves no container");
    let out = r.bh(&["inspect", "ephemeral"]);
    assert_ne!(out.status.code(), Some(0));
}

fn name_conflicts_are_refused(iso: Isolation) {
    let r = Root::new();
    let create = |name: &str| r.bh(&["create", iso.flag(), "--name", name, IMAGE, "true"]);
    assert!(create("taken").status.success());
    let out = create("taken");
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert_eq!(r.all_ids().len(), 1);
    assert_eq!(create("bad/name").status.code(), Some(125));
}

// ---- filesystems ----

fn read_only_root_and_tmpfs(iso: Isolation) {
    let r = Root::new();
    let out = r.bh(&run_args(
        iso,
        &[
            "--read-only",
            "--tmpfs",
            "/scratch",
            IMAGE,
            "sh",
            "-c",
            "touch /scratch/ok && echo yes; touch /nope",
        ],
    ));
    assert_eq!(stdout(&out), "yes\n", "the tmpfs is writable");
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("Read-only"), "{}", stderr(&out));
}

// ---- security defaults ----

/// What a default container must not be able to do, each tried in a subshell of one container.
const HOSTILE: [(&str, &str); 8] = [
    ("mount", "mkdir -p /tmp/mm && mount -t tmpfs none /tmp/mm"),
    ("unshare -U", "unshare -U true"),
    ("unshare -r", "unshare -r true"),
    ("reboot", "reboot -f"),
    (
        "module load",
        "head -c 4096 /bin/busybox > /tmp/m.ko && insmod /tmp/m.ko",
    ),
    ("write /proc/sys", "echo evil > /proc/sys/kernel/domainname"),
    ("write /sys", "echo 1 > /sys/kernel/mm/ksm/run"),
    (
        "sethostname via /proc/sys",
        "echo evil > /proc/sys/kernel/hostname",
    ),
];

/// The `Seccomp:` mode in a /proc/PID/status listing (0 none, 2 filter).
fn seccomp_mode(status: &str) -> &str {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no Seccomp line in {status}"))
}

fn security_defaults_and_options(iso: Isolation) {
    let r = Root::new();
    let mut script = String::new();
    for (what, action) in HOSTILE {
        script.push_str(&format!(
            "( {action} ) >/dev/null 2>&1; echo \"{what}=$?\"\n"
        ));
    }
    script.push_str("echo kcore=$(head -c 64 /proc/kcore 2>/dev/null | wc -c)\n");
    script.push_str("chown 1000 /tmp; echo chown=$?\n");
    script.push_str("grep '^Seccomp:' /proc/self/status\n");
    let out = r.ok(&run_args(iso, &[IMAGE, "sh", "-c", &script]));
    let result = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key} in {out}"))
    };
    for (what, _) in HOSTILE {
        assert_ne!(result(what), "0", "{what} succeeded: {out}");
    }
    assert_eq!(result("kcore"), "0", "/proc/kcore is readable: {out}");
    assert_eq!(result("chown"), "0", "root has CAP_CHOWN by default: {out}");
    assert_eq!(seccomp_mode(&out), "2", "default seccomp filter: {out}");
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/domainname")
            .unwrap()
            .trim(),
        "evil"
    );

    let out = r.ok(&run_args(
        iso,
        &[
            "--privileged",
            IMAGE,
            "sh",
            "-c",
            "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && grep -c ' /tmp/m ' /proc/self/mountinfo",
        ],
    ));
    assert_eq!(out.trim(), "1", "--privileged turns the defaults off");

    let out = r.ok(&run_args(
        iso,
        &[
            "--cap-drop",
            "ALL",
            "--security-opt",
            "seccomp=unconfined",
            IMAGE,
            "sh",
            "-c",
            "chown 1000 /tmp; echo chown=$?; grep '^Seccomp:' /proc/self/status",
        ],
    ));
    assert!(
        !out.contains("chown=0"),
        "chown without CAP_CHOWN succeeded: {out}"
    );
    assert_eq!(seccomp_mode(&out), "0", "unconfined: {out}");
}

/// Makes device nodes in /w, a tmpfs mounted with `dev` (the rootfs is nodev), and opens each for
/// reading (the shell's `<` only opens and closes: no byte of a disk is read), printing
/// `NAME=MKNOD/OPEN MESSAGE` per node.
const DEVICE_NODES: &str = "
for node in 'null c 1 3' 'sda b 8 0' 'mem c 1 1'; do
    set -- $node
    mknod /w/$1 $2 $3 $4; made=$?
    msg=$( (: < /w/$1) 2>&1 ); echo \"$1=$made/$? $msg\"
done
";

/// Docker's device rules: a default container may make any node (images ship them) but open only
/// the standard character devices, so a node of the host's (or guest's) disk stays unusable even
/// where nodes work; `--privileged` lifts the rule.
fn device_nodes_can_be_made_but_not_opened(iso: Isolation) {
    let r = Root::new();
    let result = |out: &str, node: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(node)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {node} in {out}"))
            .to_string()
    };
    let run = |extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend_from_slice(&["--tmpfs", "/w:dev", IMAGE, "sh", "-c", DEVICE_NODES]);
        r.ok(&run_args(iso, &args))
    };
    let out = run(&[]);
    assert_eq!(result(&out, "null"), "0/0 ", "/dev/null's numbers: {out}");
    for node in ["sda", "mem"] {
        let got = result(&out, node);
        assert!(
            got.starts_with("0/1 ") && got.contains("Operation not permitted"),
            "{node} must be made but not opened: {out}"
        );
    }

    let out = run(&["--privileged"]);
    for node in ["null", "sda", "mem"] {
        let got = result(&out, node);
        // Opened, or refused by the device itself (no such disk), never by the device rules.
        assert!(
            got.starts_with("0/") && !got.contains("Operation not permitted"),
            "{node} under --privileged: {out}"
        );
    }
}

// ---- resource limits ----

/// Largest count the script printed before fork failed.
fn forks_before_limit(r: &Root, iso: Isolation, extra: &[&str]) -> u32 {
    let mut args = extra.to_vec();
    args.extend_from_slice(&[
        IMAGE,
        "sh",
        "-c",
        "i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); echo $i; done",
    ]);
    let out = r.bh(&run_args(iso, &args));
    stdout(&out)
        .lines()
        .filter_map(|l| l.parse().ok())
        .max()
        .unwrap_or(0)
}

fn pids_limit_stops_forks(iso: Isolation) {
    let r = Root::new();
    let n = forks_before_limit(&r, iso, &["--pids-limit", "20"]);
    assert!(
        (1..20).contains(&n),
        "{n} background processes under --pids-limit 20"
    );
    assert_eq!(
        forks_before_limit(&r, iso, &[]),
        60,
        "without a limit all forks succeed"
    );
}

// ---- concurrency ----

fn concurrent_starts_one_wins(iso: Isolation) {
    let r = Root::new();
    let id = r
        .ok(&["create", iso.flag(), IMAGE, "sleep", "1000"])
        .trim()
        .to_string();
    let spawn = || {
        r.cmd(&["start", &id])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (wait_output(a, "start a"), wait_output(b, "start b"));
    let wins = [&a, &b].iter().filter(|o| o.status.success()).count();
    assert_eq!(wins, 1, "a: {} / b: {}", stderr(&a), stderr(&b));
    assert_eq!(r.inspect(&id)["State"]["Status"], "running");
    let monitors = monitor_pids(r.path());
    assert_eq!(monitors.len(), 1, "exactly one monitor: {monitors:?}");
}

// ---- /etc/hosts and /etc/resolv.conf ----

fn hosts_and_resolv_conf(iso: Isolation) {
    let r = Root::new();
    let out = r.ok(&run_args(
        iso,
        &[
            "--network",
            "none",
            "--add-host",
            "a:10.1.2.3",
            "--add-host",
            "b.example:[2001:db8::5]",
            "--dns",
            "10.9.9.9",
            "--dns-search",
            "x.test",
            "--dns-option",
            "ndots:2",
            IMAGE,
            "sh",
            "-c",
            "cat /etc/hosts; echo ---; cat /etc/resolv.conf",
        ],
    ));
    let (hosts, resolv) = out.split_once("---\n").expect(&out);
    let lines: Vec<&str> = hosts.lines().collect();
    assert_eq!(lines[0], "127.0.0.1\tlocalhost", "{hosts}");
    assert_eq!(
        lines[1], "::1\tlocalhost ip6-localhost ip6-loopback",
        "{hosts}"
    );
    assert!(
        lines.ends_with(&["10.1.2.3\ta", "2001:db8::5\tb.example"]),
        "{hosts}"
    );
    assert_eq!(
        resolv,
        "nameserver 10.9.9.9\nsearch x.test\noptions ndots:2\n"
    );
    // The options are kept in the definition, as docker's inspect shows them.
    let id = r.ok(&[
        "create",
        "--network",
        "none",
        "--dns",
        "10.9.9.9",
        "--add-host",
        "a:10.1.2.3",
        IMAGE,
    ]);
    let v = r.inspect(id.trim());
    assert_eq!(v["HostConfig"]["Dns"][0], "10.9.9.9");
    assert_eq!(v["HostConfig"]["ExtraHosts"][0], "a:10.1.2.3");
    // Bad input: a clear error and no container.
    for (flag, value, says) in [
        ("--add-host", "a:10.1.2", "not an IP address"),
        ("--add-host", "bad name:10.1.2.3", "not a valid host name"),
        ("--add-host", "nocolon", "expected HOST:IP"),
        ("--dns", "dns.example", "not an IP address"),
        ("--dns-search", "a b", "not a domain name"),
    ] {
        let out = r.bh(&["create", iso.flag(), "--name", "bad", flag, value, IMAGE]);
        assert_eq!(out.status.code(), Some(125), "{flag} {value}");
        assert!(
            stderr(&out).contains(says),
            "{flag} {value}: {}",
            stderr(&out)
        );
    }
    assert!(!r.ok(&["ps", "-a"]).contains("bad"));
}
