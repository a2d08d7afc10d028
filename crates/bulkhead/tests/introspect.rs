//! Looking into and copying into and out of running containers (`top`, `stats`, `cp`) through the real
//! binary, in process mode, and once in VM mode: the same agent code answers in both.

mod common;

use common::{stderr, stdout, Root, IMAGE};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Stdio;

/// A host tree with a file of mode 0750, a symlink to it, and an empty directory.
fn host_tree(dir: &Path) -> std::path::PathBuf {
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("sub")).unwrap();
    fs::write(tree.join("f"), b"payload\n").unwrap();
    fs::set_permissions(tree.join("f"), fs::Permissions::from_mode(0o750)).unwrap();
    symlink("f", tree.join("link")).unwrap();
    tree
}

/// `cp - CONTAINER:DIR` with `tar` on stdin.
fn cp_tar_in(r: &Root, dest: &str, tar: &[u8]) -> std::process::Output {
    let mut child = r
        .cmd(&["cp", "-", dest])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(tar).unwrap();
    common::wait_output(child, "cp -")
}

/// The tree copied in and out again, compared on both sides.
fn copies_both_ways(r: &Root, name: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let tree = host_tree(scratch.path());
    r.ok(&["cp", tree.to_str().unwrap(), &format!("{name}:/tmp")]);
    let inside = r.ok(&[
        "exec",
        name,
        "sh",
        "-c",
        "stat -c %a /tmp/tree/f; readlink /tmp/tree/link; cat /tmp/tree/f; test -d /tmp/tree/sub && echo dir",
    ]);
    assert_eq!(inside, "750\nf\npayload\ndir\n");

    let out = scratch.path().join("out");
    fs::create_dir(&out).unwrap();
    r.ok(&["cp", &format!("{name}:/tmp/tree"), out.to_str().unwrap()]);
    let f = out.join("tree/f");
    assert_eq!(fs::read(&f).unwrap(), b"payload\n");
    assert_eq!(
        fs::metadata(&f).unwrap().permissions().mode() & 0o7777,
        0o750
    );
    assert_eq!(
        fs::read_link(out.join("tree/link")).unwrap(),
        Path::new("f")
    );
    assert!(out.join("tree/sub").is_dir());

    // A file to a new name, and a tar to stdout.
    let renamed = scratch.path().join("hostname-copy");
    r.ok(&[
        "cp",
        &format!("{name}:/etc/hostname"),
        renamed.to_str().unwrap(),
    ]);
    assert!(!fs::read_to_string(&renamed).unwrap().trim().is_empty());
    let tar = r.bh(&["cp", &format!("{name}:/tmp/tree/f"), "-"]);
    assert!(tar.status.success(), "{}", stderr(&tar));
    let mut archive = tar::Archive::new(tar.stdout.as_slice());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["f"]);
}

#[test]
fn top_lists_the_containers_processes() {
    let r = Root::new();
    let script = "sleep 1001 & sleep 1002; echo done";
    r.detached(&["--name", "t", IMAGE, "sh", "-c", script]);
    let out = r.ok(&["top", "t"]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{out}");
    let sh = format!("sh -c {script}");
    for cmd in [sh.as_str(), "sleep 1001", "sleep 1002"] {
        let row = rows.iter().find(|l| l.ends_with(cmd)).expect(cmd);
        // Host pids in process mode: the pid is the host's process of that command.
        let pid = row.split_whitespace().nth(1).unwrap();
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .trim_end(),
            cmd
        );
        assert!(row.starts_with("0 "), "{row}");
    }
    r.ok(&["rm", "-f", "t"]);
}

#[test]
fn stats_shows_memory_under_its_limit() {
    let r = Root::new();
    r.detached(&["--name", "s", "--memory", "64m", IMAGE, "sleep", "1000"]);
    let out = r.ok(&["stats", "--no-stream", "s"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("CONTAINER ID") && lines[0].contains("MEM USAGE / LIMIT"),
        "{out}"
    );
    assert_eq!(lines.len(), 2, "{out}");
    let row = lines[1];
    assert!(row.contains(" s "), "{row}");
    assert!(row.contains(" / 64MiB"), "{row}");
    // One process: sleep.
    assert!(row.trim_end().ends_with(" 1"), "{row}");
    // With no name: every running container, here the one.
    assert_eq!(r.ok(&["stats", "--no-stream"]).lines().count(), 2);
}

#[test]
fn cp_copies_both_ways_and_stays_inside_the_container() {
    let r = Root::new();
    r.detached(&["--name", "c", IMAGE, "sleep", "1000"]);
    copies_both_ways(&r, "c");

    // A member that climbs out of the destination is refused, naming it; nothing is written.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.as_old_mut().name[..4].copy_from_slice(b"../x");
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let out = cp_tar_in(&r, "c:/tmp", &b.into_inner().unwrap());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("../x refers to a parent directory"),
        "{}",
        stderr(&out)
    );
    assert!(!r.bh(&["exec", "c", "test", "-e", "/x"]).status.success());

    // A symlink to /etc inside the container is the container's /etc, not the host's.
    let probe = format!("bulkhead-cp-probe-{}", std::process::id());
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join(&probe);
    fs::write(&file, b"inside\n").unwrap();
    r.ok(&["exec", "c", "ln", "-s", "/etc", "/tmp/etc-link"]);
    r.ok(&["cp", file.to_str().unwrap(), "c:/tmp/etc-link/"]);
    assert!(!Path::new("/etc").join(&probe).exists());
    assert_eq!(
        r.ok(&["exec", "c", "cat", &format!("/etc/{probe}")]),
        "inside\n"
    );

    // A missing path is named.
    let out = r.bh(&["cp", "c:/no/such", scratch.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no such file or directory: /no/such"),
        "{}",
        stderr(&out)
    );
    r.ok(&["rm", "-f", "c"]);
}

#[test]
fn cp_in_a_user_namespace_shows_and_writes_the_containers_owners() {
    let r = Root::new();
    r.detached(&[
        "--name",
        "u",
        "--userns",
        "200000:200000:65536",
        IMAGE,
        "sleep",
        "1000",
    ]);
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("owned");
    fs::write(&file, b"x").unwrap();
    std::os::unix::fs::chown(&file, Some(1000), Some(1000)).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o4755)).unwrap();
    r.ok(&["cp", file.to_str().unwrap(), "u:/tmp/"]);
    // Container uid 1000 is host uid 201000; the setuid bit survives the owner change.
    assert_eq!(
        r.ok(&["exec", "u", "stat", "-c", "%u:%g %a", "/tmp/owned"]),
        "1000:1000 4755\n"
    );
    let tar = r.bh(&["cp", "u:/tmp/owned", "-"]);
    let mut archive = tar::Archive::new(tar.stdout.as_slice());
    let entry = archive.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(
        (entry.header().uid().unwrap(), entry.header().gid().unwrap()),
        (1000, 1000)
    );
    r.ok(&["rm", "-f", "u"]);
}

/// Children of `parent` (from /proc), other than `but`.
fn children_of(parent: i64, but: i64) -> Vec<i64> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
        .filter(|pid| *pid != but)
        .filter(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(") ")
                .and_then(|(_, t)| t.split_whitespace().nth(1));
            ppid == Some(parent.to_string().as_str())
        })
        .collect()
}

#[test]
fn an_archive_helper_that_dies_is_a_clear_error() {
    let r = Root::new();
    r.detached(&["--name", "h", IMAGE, "sleep", "1000"]);
    r.ok(&[
        "exec",
        "h",
        "dd",
        "if=/dev/zero",
        "of=/tmp/big",
        "bs=1M",
        "count=8",
    ]);
    let init = r.inspect("h")["State"]["Pid"].as_i64().unwrap();
    let stat = fs::read_to_string(format!("/proc/{init}/stat")).unwrap();
    let agent: i64 = stat
        .rsplit_once(") ")
        .unwrap()
        .1
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    // stdout is not read: the copy stalls after a pipe's worth, with the helper waiting on its chunk.
    let mut cp = r
        .cmd(&["cp", "h:/tmp/big", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let helper = loop {
        if let [helper] = children_of(agent, init)[..] {
            break helper;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no archive helper appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(helper as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let mut sink = Vec::new();
    std::io::Read::read_to_end(&mut cp.stdout.take().unwrap(), &mut sink).unwrap();
    let out = common::wait_output(cp, "cp");
    assert_eq!(out.status.code(), Some(125));
    // Killed between frames or inside one, it is named, with the signal.
    let err = stderr(&out);
    assert!(
        err.contains("copy from failed: the archive helper ended")
            && err.contains("(killed by signal 9)"),
        "{err}"
    );
    // The container and its monitor carry on.
    assert_eq!(r.ok(&["exec", "h", "echo", "still"]), "still\n");
    assert!(children_of(agent, init).is_empty());
    r.ok(&["rm", "-f", "h"]);
}

#[test]
fn introspection_of_a_stopped_container_is_a_clear_error() {
    let r = Root::new();
    r.ok(&["create", "--name", "idle", IMAGE, "true"]);
    for args in [
        vec!["cp", "idle:/etc/hostname", "-"],
        vec!["top", "idle"],
        vec!["stats", "--no-stream", "idle"],
    ] {
        let out = r.bh(&args);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        assert!(
            stderr(&out).contains("needs a running container"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn vm_top_stats_and_cp() {
    let _one_guest_at_a_time = bulkhead_testkit::vm_lock();
    let r = Root::new();
    r.detached(&[
        "--name",
        "v",
        "--isolation=vm",
        "--memory",
        "256m",
        IMAGE,
        "sleep",
        "1000",
    ]);
    let top = r.ok(&["top", "v"]);
    assert!(top.lines().any(|l| l.ends_with("sleep 1000")), "{top}");
    let stats = r.ok(&["stats", "--no-stream", "v"]);
    assert!(
        stats.lines().nth(1).unwrap().contains(" / 256MiB"),
        "{stats}"
    );
    copies_both_ways(&r, "v");
    r.ok(&["rm", "-f", "v"]);
}
