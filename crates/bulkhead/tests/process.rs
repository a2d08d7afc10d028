//! End-to-end tests of `--isolation=process` through the real `bulkhead` binary, as root, against real
//! namespaces, cgroups, loop devices and overlay mounts (issue 3). Each test has its own bulkhead root.

mod common;

use common::{stderr, stdout, wait_output, Root, IMAGE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

// ---- output and exit codes ----

#[test]
fn output_and_own_exit_code() {
    let r = Root::new();
    let out = r.bh(&[
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err"), "stderr: {}", stderr(&out));
}

#[test]
fn exit_codes_for_missing_and_non_executable_commands() {
    let r = Root::new();
    assert_eq!(
        r.bh(&["run", "--rm", IMAGE, "no-such-command"])
            .status
            .code(),
        Some(127)
    );
    assert_eq!(
        r.bh(&["run", "--rm", IMAGE, "/etc/motd"]).status.code(),
        Some(126)
    );
}

#[test]
fn exit_code_128_plus_signal() {
    let r = Root::new();
    let id = r.detached(&[IMAGE, "sleep", "1000"]);
    r.ok(&["kill", "-s", "SIGKILL", &id]);
    assert_eq!(r.ok(&["wait", &id]).trim(), "137");
    let id = r.detached(&[
        IMAGE,
        "sh",
        "-c",
        "trap 'kill -s USR1 $child' TERM; sleep 1000 & child=$!; wait $child; wait $child; exit $?",
    ]);
    r.ok(&["kill", "-s", "TERM", &id]);
    // The shell reports its child's death by SIGUSR1 (10) as 128+10.
    assert_eq!(r.ok(&["wait", &id]).trim(), "138");
}

#[test]
fn engine_errors_exit_125() {
    let r = Root::new();
    let out = r.bh(&["run", "--no-such-flag", IMAGE, "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let out = r.bh(&["run", "--rm", "localhost:1/no/such-image:1", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let out = r.bh(&["run", "--rm", "-u", "no-such-user", IMAGE, "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
}

// ---- process settings ----

#[test]
fn environment_from_flags_files_and_image() {
    let r = Root::new();
    let file = r.path().join("env.list");
    std::fs::write(&file, "# comment\nFROM_FILE=2\n\nSHARED=file\n").unwrap();
    let out = r.ok(&[
        "run",
        "--rm",
        "-e",
        "FROM_FLAG=1",
        "--env-file",
        file.to_str().unwrap(),
        "-e",
        "SHARED=flag",
        IMAGE,
        "env",
    ]);
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
}

#[test]
fn user_resolution() {
    let r = Root::new();
    assert_eq!(r.ok(&["run", "--rm", IMAGE, "id", "-u"]).trim(), "0");
    assert_eq!(
        r.ok(&[
            "run",
            "--rm",
            "-u",
            "user",
            IMAGE,
            "sh",
            "-c",
            "echo $(id -u):$(id -g)"
        ])
        .trim(),
        "1000:1000"
    );
    assert_eq!(
        r.ok(&[
            "run",
            "--rm",
            "-u",
            "1234:5678",
            IMAGE,
            "sh",
            "-c",
            "echo $(id -u):$(id -g)"
        ])
        .trim(),
        "1234:5678"
    );
    assert_eq!(
        r.ok(&["run", "--rm", "-u", "user:users", IMAGE, "id", "-g"])
            .trim(),
        "100"
    );
}

#[test]
fn workdir_and_entrypoint() {
    let r = Root::new();
    assert_eq!(
        r.ok(&["run", "--rm", "-w", "/home/user", IMAGE, "pwd"])
            .trim(),
        "/home/user"
    );
    assert_eq!(
        r.ok(&[
            "run",
            "--rm",
            "--entrypoint",
            "echo",
            IMAGE,
            "via",
            "entrypoint"
        ])
        .trim(),
        "via entrypoint"
    );
}

#[test]
fn stdin_with_interactive() {
    let r = Root::new();
    let mut child = r
        .cmd(&[
            "run",
            "--rm",
            "-i",
            IMAGE,
            "sh",
            "-c",
            "tr a-z A-Z; echo done",
        ])
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
        r.ok(&["run", "--rm", IMAGE, "sh", "-c", "cat; echo end"]),
        "end\n"
    );
}

#[test]
fn tty_allocation() {
    let r = Root::new();
    let script = |flags: &str| {
        let line = format!(
            "{} --root {} run --rm {flags} {IMAGE} sh -c 'if test -t 1; then echo IS-TTY; tty; else echo NO-TTY; fi'",
            common::bin(),
            r.path().display()
        );
        let child = std::process::Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script(1) from bsdutils");
        stdout(&wait_output(child, "script"))
    };
    let with = script("-t");
    assert!(
        with.contains("IS-TTY") && with.contains("/dev/pts/"),
        "{with}"
    );
    let without = script("");
    assert!(without.contains("NO-TTY"), "{without}");
}

// ---- stopping and signals ----

#[test]
fn stop_delivers_sigterm_then_sigkill() {
    let r = Root::new();
    let handled = r.detached(&[
        IMAGE,
        "sh",
        "-c",
        "trap 'echo got-term; exit 7' TERM; echo up; while :; do sleep 0.1; done",
    ]);
    r.ok(&["stop", &handled]);
    let v = r.inspect(&handled);
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 7);
    assert!(r.ok(&["logs", &handled]).contains("got-term"));

    let stubborn = r.detached(&[
        IMAGE,
        "sh",
        "-c",
        "trap '' TERM; while :; do sleep 0.1; done",
    ]);
    r.ok(&["stop", "-t", "1", &stubborn]);
    assert_eq!(r.inspect(&stubborn)["State"]["ExitCode"], 137);
}

#[test]
fn kill_with_signal() {
    let r = Root::new();
    let id = r.detached(&[
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 42' USR1; while :; do sleep 0.1; done",
    ]);
    r.ok(&["kill", "-s", "USR1", &id]);
    assert_eq!(r.ok(&["wait", &id]).trim(), "42");
    let out = r.bh(&["kill", &id]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "killing an exited container must fail"
    );
}

#[test]
fn foreground_run_forwards_signals() {
    let r = Root::new();
    let mut child = r
        .cmd(&[
            "run",
            "--rm",
            IMAGE,
            "sh",
            "-c",
            "trap 'echo TERMED; exit 9' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(rest, "TERMED\n");
    assert_eq!(status.code(), Some(9));
}

// ---- detached, logs ----

#[test]
fn detached_logs_tail_and_timestamps() {
    let r = Root::new();
    let id = r.detached(&[
        IMAGE,
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2",
    ]);
    assert_eq!(id.len(), 64, "run -d prints the full id: {id}");
    assert_eq!(r.ok(&["wait", &id]).trim(), "0");
    let all = r.bh(&["logs", &id]);
    assert_eq!(stdout(&all), "line1\nline2\nline3\nline4\nline5\n");
    assert_eq!(stderr(&all), "oops\n");
    let tail = r.bh(&["logs", "--tail", "2", &id]);
    assert_eq!(
        stdout(&tail),
        "line5\n",
        "the last two records are line5 and oops"
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

#[test]
fn logs_follow_ends_with_the_container() {
    let r = Root::new();
    let id = r.detached(&[IMAGE, "sh", "-c", "echo first; sleep 1; echo second"]);
    let child = r
        .cmd(&["logs", "-f", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_output(child, "logs -f");
    assert!(out.status.success());
    assert_eq!(stdout(&out), "first\nsecond\n");
}

// ---- exec ----

#[test]
fn exec_shares_the_container() {
    let r = Root::new();
    let id = r.detached(&["--hostname", "box", "-e", "BASE=1", IMAGE, "sleep", "1000"]);
    assert_eq!(r.ok(&["exec", &id, "hostname"]).trim(), "box");
    assert_eq!(
        r.ok(&["exec", &id, "cat", "/proc/1/cmdline"]),
        "sleep\u{0}1000\u{0}"
    );
    assert_eq!(
        r.bh(&["exec", &id, "sh", "-c", "exit 5"]).status.code(),
        Some(5)
    );
    assert_eq!(
        r.ok(&["exec", "-e", "X=y", &id, "sh", "-c", "echo $X$BASE"])
            .trim(),
        "y1"
    );
    assert_eq!(
        r.ok(&["exec", "-u", "1000", &id, "id", "-u"]).trim(),
        "1000"
    );
    assert_eq!(r.ok(&["exec", "-w", "/tmp", &id, "pwd"]).trim(), "/tmp");
    assert_eq!(
        r.bh(&["exec", &id, "no-such-command"]).status.code(),
        Some(127)
    );
    r.ok(&["kill", &id]);
    r.wait_status(&id, "exited");
    assert_eq!(r.bh(&["exec", &id, "true"]).status.code(), Some(125));
}

// ---- ps, inspect, wait, restart, rm, names ----

#[test]
fn ps_lists_running_and_all() {
    let r = Root::new();
    let running = r.detached(&["--name", "runner", IMAGE, "sleep", "1000"]);
    let done = r.detached(&["--name", "finisher", IMAGE, "true"]);
    r.ok(&["wait", &done]);
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
    assert!(!r.ok(&["ps"]).contains("finisher"));
}

#[test]
fn inspect_fields_wait_and_restart() {
    let r = Root::new();
    let id = r.detached(&[IMAGE, "sh", "-c", "sleep 0.5; exit 4"]);
    let v = r.inspect(&id);
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["Isolation"], "process");
    assert_eq!(v["State"]["Status"], "running");
    assert!(v["State"]["Pid"].as_i64().unwrap() > 0);
    assert_eq!(r.ok(&["wait", &id]).trim(), "4");
    let v = r.inspect(&id);
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 4);
    assert_eq!(v["State"]["OOMKilled"], false);

    let id = r.detached(&[IMAGE, "sleep", "1000"]);
    let before = r.inspect(&id)["State"]["Pid"].as_i64().unwrap();
    r.ok(&["restart", "-t", "0", &id]);
    let v = r.inspect(&id);
    assert_eq!(v["State"]["Status"], "running");
    assert_eq!(v["RestartCount"], 1);
    assert_ne!(v["State"]["Pid"].as_i64().unwrap(), before);
}

#[test]
fn rm_rules_and_auto_remove() {
    let r = Root::new();
    let id = r.detached(&[IMAGE, "sleep", "1000"]);
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

    r.ok(&["run", "--rm", "--name", "ephemeral", IMAGE, "true"]);
    assert!(r.all_ids().is_empty(), "--rm leaves no container");
    let out = r.bh(&["inspect", "ephemeral"]);
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn name_conflicts_are_refused() {
    let r = Root::new();
    r.ok(&["create", "--name", "taken", IMAGE, "true"]);
    let out = r.bh(&["create", "--name", "taken", IMAGE, "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert_eq!(r.all_ids().len(), 1);
    let out = r.bh(&["create", "--name", "bad/name", IMAGE, "true"]);
    assert_eq!(out.status.code(), Some(125));
}

// ---- resource limits ----

#[test]
fn memory_limit_oom_kills() {
    let r = Root::new();
    let out = r.bh(&[
        "run",
        "--name",
        "hog",
        "--memory",
        "32m",
        "--entrypoint",
        "tail",
        IMAGE,
        "/dev/zero",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    let v = r.inspect("hog");
    assert_eq!(v["State"]["OOMKilled"], true);
    assert_eq!(v["State"]["ExitCode"], 137);
}

/// Largest count the script printed before fork failed.
fn forks_before_limit(r: &Root, extra: &[&str]) -> u32 {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        IMAGE,
        "sh",
        "-c",
        "i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); echo $i; done",
    ]);
    let out = r.bh(&args);
    stdout(&out)
        .lines()
        .filter_map(|l| l.parse().ok())
        .max()
        .unwrap_or(0)
}

#[test]
fn pids_limit_stops_forks() {
    let r = Root::new();
    let n = forks_before_limit(&r, &["--pids-limit", "20"]);
    assert!(
        (1..20).contains(&n),
        "{n} background processes under --pids-limit 20"
    );
    assert_eq!(
        forks_before_limit(&r, &[]),
        60,
        "without a limit all forks succeed"
    );
}

/// The container's cgroup directories (v1: one per controller; v2: one).
fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut bases = vec![PathBuf::from("/sys/fs/cgroup/bulkhead")];
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        bases.extend(entries.flatten().map(|e| e.path().join("bulkhead")));
    }
    for base in bases {
        let dir = base.join(id);
        if dir.is_dir() {
            found.push(dir);
        }
    }
    found
}

fn read_cgroup(id: &str, v1: &str, v2: &str) -> String {
    for dir in cgroup_dirs(id) {
        for file in [v1, v2] {
            if let Ok(s) = std::fs::read_to_string(dir.join(file)) {
                return s.trim().to_string();
            }
        }
    }
    panic!("no {v1} or {v2} for container {id}");
}

#[test]
fn update_resources_live() {
    let r = Root::new();
    let id = r.detached(&[
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        IMAGE,
        "sleep",
        "1000",
    ]);
    assert_eq!(
        read_cgroup(&id, "memory.limit_in_bytes", "memory.max"),
        (64u64 << 20).to_string()
    );
    r.ok(&["update", "--memory", "48m", "--pids-limit", "4", &id]);
    assert_eq!(
        read_cgroup(&id, "memory.limit_in_bytes", "memory.max"),
        (48u64 << 20).to_string()
    );
    assert_eq!(read_cgroup(&id, "pids.max", "pids.max"), "4");
    let out = r.bh(&[
        "exec",
        &id,
        "sh",
        "-c",
        "i=0; while [ $i -lt 10 ]; do sleep 30 & i=$((i+1)); echo $i; done",
    ]);
    let n: u32 = stdout(&out)
        .lines()
        .filter_map(|l| l.parse().ok())
        .max()
        .unwrap_or(0);
    assert!(n < 4, "{n} forks succeeded after update --pids-limit 4");
    assert_eq!(r.inspect(&id)["HostConfig"]["Memory"], 48u64 << 20);
}

// ---- isolation of hostname, pids, mounts, filesystems, network ----

#[test]
fn hostname_and_pid_namespaces() {
    let r = Root::new();
    assert_eq!(
        r.ok(&["run", "--rm", "-h", "inner", IMAGE, "hostname"])
            .trim(),
        "inner"
    );
    assert_eq!(
        r.ok(&["run", "--rm", IMAGE, "sh", "-c", "echo $$"]).trim(),
        "1"
    );
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let id = r.detached(&[IMAGE, "sleep", "1000"]);
    let inner = r.ok(&["exec", &id, "hostname"]);
    assert_ne!(inner.trim(), host);
    assert_eq!(inner.trim(), &id[..12], "default hostname is the short id");
    let procs = r.ok(&["exec", &id, "ps", "-o", "pid,comm"]);
    assert!(
        procs.lines().count() <= 3,
        "only the container's processes are visible: {procs}"
    );
}

fn host_mounts_mentioning(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(String::from)
        .collect()
}

#[test]
fn mounts_stay_inside_and_go_away() {
    let r = Root::new();
    let id = r.detached(&["--tmpfs", "/scratch-marker-dir", IMAGE, "sleep", "1000"]);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains("/scratch-marker-dir"),
        "the container's tmpfs leaked to the host"
    );
    assert!(r
        .ok(&["exec", &id, "cat", "/proc/self/mountinfo"])
        .contains("/scratch-marker-dir"));
    r.ok(&["rm", "-f", &id]);
    assert_eq!(host_mounts_mentioning(r.path()), Vec::<String>::new());
}

#[test]
fn read_only_root_tmpfs_and_binds() {
    let r = Root::new();
    let out = r.bh(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch",
        IMAGE,
        "sh",
        "-c",
        "touch /scratch/ok && touch /nope",
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("Read-only"), "{}", stderr(&out));
    assert_eq!(
        r.ok(&[
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/scratch",
            IMAGE,
            "sh",
            "-c",
            "touch /scratch/ok && echo yes"
        ])
        .trim(),
        "yes"
    );
    assert_eq!(
        r.ok(&[
            "run",
            "--rm",
            IMAGE,
            "sh",
            "-c",
            "touch /writable && echo yes"
        ])
        .trim(),
        "yes"
    );

    let host = r.path().join("shared");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("from-host"), "hello").unwrap();
    let ro = format!("{}:/data:ro", host.display());
    let out = r.bh(&[
        "run",
        "--rm",
        "-v",
        &ro,
        IMAGE,
        "sh",
        "-c",
        "cat /data/from-host; touch /data/x",
    ]);
    assert_eq!(stdout(&out), "hello");
    assert_ne!(out.status.code(), Some(0));
    assert!(!host.join("x").exists());
    let rw = format!("{}:/data", host.display());
    r.ok(&[
        "run",
        "--rm",
        "-v",
        &rw,
        IMAGE,
        "sh",
        "-c",
        "echo back > /data/from-container",
    ]);
    assert_eq!(
        std::fs::read_to_string(host.join("from-container")).unwrap(),
        "back\n"
    );
}

fn interfaces(proc_net_dev: &str) -> Vec<String> {
    let mut names: Vec<String> = proc_net_dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn network_none_and_host() {
    let r = Root::new();
    let none = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        IMAGE,
        "cat",
        "/proc/net/dev",
    ]);
    assert_eq!(interfaces(&none), vec!["lo"]);
    let default = r.ok(&["run", "--rm", IMAGE, "cat", "/proc/net/dev"]);
    assert_eq!(
        interfaces(&default),
        vec!["lo"],
        "the default network is none"
    );
    let host = r.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        IMAGE,
        "cat",
        "/proc/net/dev",
    ]);
    let ours = interfaces(&std::fs::read_to_string("/proc/net/dev").unwrap());
    assert!(ours.len() > 1, "the host has more than lo: {ours:?}");
    assert_eq!(interfaces(&host), ours);
}

// ---- security defaults ----

/// Runs a shell snippet and returns (exit code, combined output).
fn sh(r: &Root, flags: &[&str], script: &str) -> (Option<i32>, String) {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[IMAGE, "sh", "-c", script]);
    let out = r.bh(&args);
    (out.status.code(), stdout(&out) + &stderr(&out))
}

#[test]
fn hostile_actions_fail_under_defaults() {
    let r = Root::new();
    for (what, script) in [
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
    ] {
        let (code, out) = sh(&r, &[], script);
        assert_ne!(code, Some(0), "{what} succeeded: {out}");
    }
    let (_, out) = sh(&r, &["--network", "host"], "unshare -U true; echo rc=$?");
    assert!(out.contains("rc=1"), "unshare -U with host network: {out}");
    let (code, out) = sh(&r, &[], "head -c 64 /proc/kcore 2>/dev/null | wc -c");
    assert!(
        code != Some(0) || out.trim() == "0",
        "/proc/kcore is readable: {out}"
    );
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/domainname")
            .unwrap()
            .trim(),
        "evil"
    );
}

#[test]
fn privileged_turns_defaults_off() {
    let r = Root::new();
    let (code, out) = sh(
        &r,
        &["--privileged"],
        "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && grep -c ' /tmp/m ' /proc/self/mountinfo",
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.trim(), "1");
}

#[test]
fn capabilities_and_seccomp_options() {
    let r = Root::new();
    assert_eq!(sh(&r, &[], "chown 1000 /tmp").0, Some(0));
    let (code, out) = sh(&r, &["--cap-drop", "ALL"], "chown 1000 /tmp");
    assert_ne!(code, Some(0), "chown without CAP_CHOWN: {out}");
    let field = |flags: &[&str]| sh(&r, flags, "grep '^Seccomp:' /proc/self/status").1;
    assert!(
        field(&[]).contains('2'),
        "default seccomp filter: {}",
        field(&[])
    );
    let unconfined = field(&["--security-opt", "seccomp=unconfined"]);
    assert!(unconfined.contains('0'), "unconfined: {unconfined}");
}

// ---- durable state ----

fn alive(pid: i64) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

fn assert_nothing_left(r: &Root, id: &str) {
    assert!(!r.path().join("containers").join(id).exists());
    assert!(!Path::new("/run/bulkhead").join(&id[..16]).exists());
    assert_eq!(cgroup_dirs(id), Vec::<PathBuf>::new());
    assert_eq!(host_mounts_mentioning(r.path()), Vec::<String>::new());
}

#[test]
fn survives_a_killed_monitor() {
    let r = Root::new();
    let id = r.detached(&[IMAGE, "sleep", "1000"]);
    let state = r.state(&id);
    let monitor = state["monitor_pid"].as_i64().unwrap();
    let pid = state["pid"].as_i64().unwrap();
    kill(Pid::from_raw(monitor as i32), Signal::SIGKILL).unwrap();
    while alive(monitor) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(r.ok(&["ps", "-a", "-q", "--no-trunc"]).contains(&id));
    assert_eq!(
        r.inspect(&id)["State"]["Status"],
        "running",
        "the process still runs unattended"
    );
    r.ok(&["stop", "-t", "1", &id]);
    assert!(!alive(pid), "stop reached the unattended process");
    assert_eq!(r.inspect(&id)["State"]["Status"], "exited");
    r.ok(&["rm", "-f", &id]);
    assert_nothing_left(&r, &id);

    // Monitor and process both gone: the container reads as exited, and rm -f cleans up.
    let id = r.detached(&[IMAGE, "sleep", "1000"]);
    let state = r.state(&id);
    let (monitor, pid) = (
        state["monitor_pid"].as_i64().unwrap(),
        state["pid"].as_i64().unwrap(),
    );
    kill(Pid::from_raw(monitor as i32), Signal::SIGKILL).unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let v = r.wait_status(&id, "exited");
    assert_ne!(v["State"]["ExitCode"], 0);
    assert!(!r.ok(&["ps", "-q"]).contains(&id[..12]));
    r.ok(&["rm", "-f", &id]);
    assert_nothing_left(&r, &id);
}

#[test]
fn concurrent_starts_one_wins() {
    let r = Root::new();
    let id = r.ok(&["create", IMAGE, "sleep", "1000"]).trim().to_string();
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

// ---- rm leaves nothing behind ----

/// `bulkhead __monitor` processes of this root: every process still running the binary with that
/// command line (the monitor and, before it execs the container's command, its fork).
fn monitor_processes(root: &Path) -> Vec<(u32, u32)> {
    let root = root.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.contains(&&b"__monitor"[..]) && args.contains(&root.as_bytes())
        })
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat[stat.rfind(')')? + 2..]
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect()
}

/// The monitors themselves: monitor processes whose parent is not one.
fn monitor_pids(root: &Path) -> Vec<u32> {
    let all = monitor_processes(root);
    all.iter()
        .filter(|(_, ppid)| !all.iter().any(|(pid, _)| pid == ppid))
        .map(|(pid, _)| *pid)
        .collect()
}

fn loop_devices_backed_by(root: &Path) -> usize {
    let root = root.to_string_lossy().into_owned();
    std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("loop/backing_file"))
                .is_ok_and(|f| f.starts_with(&root))
        })
        .count()
}

fn open_fds() -> Vec<String> {
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    fds.sort();
    fds
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            out.push(e.path());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(files_under(&e.path()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn rm_leaves_nothing_after_many_cycles() {
    let r = Root::new();
    let containers = r.path().join("containers");
    // Under cargo-nextest every test is its own process, so all of our fds must be back; under the
    // plain harness other tests share the process, so only fds into our root count.
    let own_process = std::env::var_os("NEXTEST_RUN_ID").is_some();
    let our_fds = || -> Vec<String> {
        let root = r.path().to_string_lossy().into_owned();
        open_fds()
            .into_iter()
            .filter(|f| own_process || f.contains(&root))
            .collect()
    };
    // One cycle first: the first create makes the root's lock file, which is no leak.
    let warm = r.ok(&["create", IMAGE, "true"]).trim().to_string();
    r.ok(&["rm", &warm]);
    let mounts_before = host_mounts_mentioning(r.path());
    let fds_before = our_fds();
    let files_before = files_under(&containers);
    let mut ids = Vec::new();
    for i in 0..200 {
        let id = r.ok(&["create", IMAGE, "true"]).trim().to_string();
        let out = r.bh(&["start", "-a", &id]);
        assert_eq!(out.status.code(), Some(0), "cycle {i}: {}", stderr(&out));
        r.ok(&["rm", &id]);
        ids.push(id);
    }
    assert_eq!(host_mounts_mentioning(r.path()), mounts_before);
    assert_eq!(loop_devices_backed_by(r.path()), 0);
    for id in &ids {
        assert_eq!(cgroup_dirs(id), Vec::<PathBuf>::new(), "cgroup of {id}");
        assert!(
            !Path::new("/run/bulkhead").join(&id[..16]).exists(),
            "run dir of {id}"
        );
    }
    assert_eq!(monitor_processes(r.path()), Vec::<(u32, u32)>::new());
    assert_eq!(our_fds(), fds_before);
    assert_eq!(files_under(&containers), files_before);
    assert!(r.all_ids().is_empty());
}

/// `-it` follows the terminal's size: the initial size reaches the container, and a resize of the local
/// terminal (SIGWINCH to the CLI) resizes the container's pty while it runs.
#[test]
fn tty_size_follows_the_terminal() {
    use nix::pty::{openpty, Winsize};
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    let r = Root::new();
    let size = |rows, cols| Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size(40, 100)), None).expect("openpty");
    let slave = std::fs::File::from(pty.slave);
    let mut cmd = r.cmd(&[
        "run",
        "--rm",
        "-it",
        IMAGE,
        "sh",
        "-c",
        "stty size; while [ \"$(stty size)\" = '40 100' ]; do sleep 0.05; done; stty size",
    ]);
    cmd.stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave);
    // SAFETY: only async-signal-safe calls between fork and exec: make the pty our controlling terminal.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawning bulkhead");
    // The command holds copies of the slave; only the child may keep it open, or the master never sees EOF.
    drop(cmd);
    let master = std::fs::File::from(pty.master);
    let master_fd = master.as_raw_fd();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut master = master;
        let mut buf = [0u8; 1024];
        // EIO once the last slave closes.
        while let Ok(n) = std::io::Read::read(&mut master, &mut buf) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !seen.contains("40 100") {
        assert!(
            std::time::Instant::now() < deadline,
            "initial size never shown: {seen:?}"
        );
        if let Ok(chunk) = rx.recv_timeout(std::time::Duration::from_millis(100)) {
            seen.push_str(&chunk);
        }
    }
    // Resizing the terminal signals the CLI (the foreground process group) with SIGWINCH.
    let new = size(50, 120);
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer we pass; the master fd is open.
    assert_eq!(unsafe { libc::ioctl(master_fd, libc::TIOCSWINSZ, &new) }, 0);
    let status = wait_output_status(&mut child);
    while let Ok(chunk) = rx.recv_timeout(std::time::Duration::from_millis(500)) {
        seen.push_str(&chunk);
    }
    drop(rx);
    let _ = reader.join();
    assert_eq!(status, Some(0), "{seen:?}");
    assert!(
        seen.contains("50 120"),
        "the container never saw the new size: {seen:?}"
    );
}

/// Waits (hang-guarded) for a child whose stdio is not piped.
fn wait_output_status(child: &mut std::process::Child) -> Option<i32> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("waiting") {
            return status.code();
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            panic!("bulkhead run -it hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
