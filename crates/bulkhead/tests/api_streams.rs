//! The Engine API's streams: hijacked attach and exec (docker's 8-byte framing, stdin and its half-close,
//! resize), logs, and clients that vanish or fall behind. Raw HTTP where the framing itself is checked,
//! the real docker CLI elsewhere; containers are made with the bulkhead CLI on the same root.

use bulkhead_testkit::{ApiServer, Root};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bulkhead");
const IMAGE: &str = "busybox";

fn root() -> Root {
    Root::with_demo_image(BIN, IMAGE)
}

/// A raw request asking for docker's connection upgrade: the response head and the connection.
fn hijack(server: &ApiServer, path: &str, body: &str) -> (String, UnixStream) {
    let mut s = UnixStream::connect(server.socket()).expect("connecting to the API");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).unwrap(),
            1,
            "connection closed in the head"
        );
        head.push(byte[0]);
    }
    (String::from_utf8_lossy(&head).into_owned(), s)
}

/// Reads one stdcopy frame: (stream, payload).
fn frame(s: &mut UnixStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 8];
    s.read_exact(&mut header).expect("a frame header");
    assert_eq!(&header[1..4], &[0, 0, 0], "{header:?}");
    let mut payload =
        vec![0u8; u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize];
    s.read_exact(&mut payload).expect("a frame payload");
    (header[0], payload)
}

/// All frames of a finished stream, the same stream's neighbours joined (chunking is not fixed).
fn demux(mut wire: &[u8]) -> Vec<(u8, String)> {
    let mut out: Vec<(u8, String)> = Vec::new();
    while wire.len() >= 8 {
        let len = u32::from_be_bytes([wire[4], wire[5], wire[6], wire[7]]) as usize;
        let text = String::from_utf8_lossy(&wire[8..8 + len]).into_owned();
        match out.last_mut() {
            Some((stream, joined)) if *stream == wire[0] => joined.push_str(&text),
            _ => out.push((wire[0], text)),
        }
        wire = &wire[8 + len..];
    }
    assert!(wire.is_empty(), "a torn frame: {wire:?}");
    out
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn attach_frames_output_and_half_close_ends_stdin() {
    let root = root();
    let server = ApiServer::start(&root);
    let id = root.detached(&["-i", IMAGE, "sh", "-c", "cat; echo done >&2"]);
    let (head, mut s) = hijack(
        &server,
        &format!("/v1.47/containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1"),
        "",
    );
    assert!(head.starts_with("HTTP/1.1 101 UPGRADED\r\n"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("upgrade: tcp"), "{head}");
    assert!(
        head.contains("content-type: application/vnd.docker.multiplexed-stream"),
        "{head}"
    );
    s.write_all(b"hello\n").unwrap();
    assert_eq!(frame(&mut s), (1, b"hello\n".to_vec()));
    // Half-close: the container's stdin ends, its output still arrives, then the server closes.
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert_eq!(demux(&rest), vec![(2, "done\n".to_string())]);
    let state = root.wait_status(&id, "exited");
    assert_eq!(state["State"]["ExitCode"], 0);
}

#[test]
fn a_vanished_or_stalled_client_leaves_the_container_and_the_server_running() {
    let root = root();
    let server = ApiServer::start(&root);
    let ticker = root.detached(&[
        IMAGE,
        "sh",
        "-c",
        "while true; do echo tick; sleep 0.1; done",
    ]);
    let attach = format!("/v1.47/containers/{ticker}/attach?stream=1&stdout=1&stderr=1");
    let (_, mut s) = hijack(&server, &attach, "");
    assert_eq!(frame(&mut s), (1, b"tick\n".to_vec()));
    drop(s);
    // A client that reads nothing while the container floods: dropped once it is 16 MiB behind.
    let flood = root.detached(&[IMAGE, "yes", "0123456789abcdef"]);
    let (_, mut stalled) = hijack(
        &server,
        &format!("/v1.47/containers/{flood}/attach?stream=1&stdout=1"),
        "",
    );
    // Until the container has written well over the server's 16 MiB bound (its log is a JSON line per
    // chunk, larger than the output it holds).
    let log = root
        .path()
        .join("containers")
        .join(&flood)
        .join("container.log");
    eventually("32 MiB of output", || {
        std::fs::metadata(&log).is_ok_and(|m| m.len() > 48 << 20)
    });
    let mut got = Vec::new();
    stalled.read_to_end(&mut got).unwrap();
    assert!(got.len() < 64 << 20, "read {} bytes", got.len());
    for id in [&ticker, &flood] {
        assert_eq!(root.inspect(id)["State"]["Status"], "running");
    }
    let (_, mut again) = hijack(&server, &attach, "");
    assert_eq!(frame(&mut again), (1, b"tick\n".to_vec()));
    assert_eq!(server.request("GET", "/_ping", b"").0, 200);
}

#[test]
fn logs_over_http_are_framed_tailed_stamped_and_filtered() {
    let root = root();
    let server = ApiServer::start(&root);
    let id = root.detached(&[
        IMAGE,
        "sh",
        "-c",
        "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three",
    ]);
    root.wait_status(&id, "exited");
    let logs = |query: &str| {
        let (status, body) =
            server.request("GET", &format!("/v1.47/containers/{id}/logs?{query}"), b"");
        assert_eq!(status, 200, "{query}: {}", String::from_utf8_lossy(&body));
        demux(&body)
    };
    let all = logs("stdout=1&stderr=1");
    assert_eq!(
        all,
        vec![
            (1, "one\n".into()),
            (2, "two\n".into()),
            (1, "three\n".into())
        ]
    );
    assert_eq!(
        logs("stdout=1&stderr=1&tail=1"),
        vec![(1, "three\n".into())]
    );
    assert_eq!(logs("stdout=1"), vec![(1, "one\nthree\n".into())]);
    let stamped = logs("stderr=1&timestamps=1");
    let (time, line) = stamped[0].1.split_once(' ').unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok() && line == "two\n",
        "{stamped:?}"
    );
    let future = chrono::Utc::now().timestamp() + 3600;
    assert!(logs(&format!("stdout=1&stderr=1&since={future}.5")).is_empty());
    assert_eq!(logs("stdout=1&stderr=1&until=1000000000"), vec![]);
    // An attach that does not ask for the upgrade (older SDKs) gets a 200 stream: here the log only.
    let (status, body) = server.request(
        "POST",
        &format!("/v1.47/containers/{id}/attach?logs=1&stdout=1&stderr=1"),
        b"",
    );
    assert_eq!((status, demux(&body)), (200, all.clone()));
    let (status, _) = server.request("GET", &format!("/v1.47/containers/{id}/logs"), b"");
    assert_eq!(status, 400);
    let (status, _) = server.request("GET", "/v1.47/containers/nosuch/logs?stdout=1", b"");
    assert_eq!(status, 404);

    let follow = root.detached(&[IMAGE, "sh", "-c", "echo a; sleep 1; echo b"]);
    let (status, body) = server.request(
        "GET",
        &format!("/v1.47/containers/{follow}/logs?stdout=1&follow=1"),
        b"",
    );
    assert_eq!((status, demux(&body)), (200, vec![(1, "a\nb\n".into())]));
}

#[test]
fn exec_over_http_relays_output_and_records_the_exit_code() {
    let root = root();
    let server = ApiServer::start(&root);
    let id = root.detached(&[IMAGE, "sleep", "1000"]);
    let create = |config: serde_json::Value| {
        let (status, body) = server.request(
            "POST",
            &format!("/v1.47/containers/{id}/exec"),
            config.to_string().as_bytes(),
        );
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        json(&body)["Id"].as_str().unwrap().to_string()
    };
    let inspect = |exec: &str| {
        let (status, body) = server.request("GET", &format!("/v1.47/exec/{exec}/json"), b"");
        assert_eq!(status, 200);
        json(&body)
    };
    let exec = create(serde_json::json!({
        "Cmd": ["sh", "-c", "echo $X $(pwd) $(id -u); echo err >&2; exit 3"],
        "Env": ["X=42"], "WorkingDir": "/tmp", "User": "1000",
        "AttachStdout": true, "AttachStderr": true, "Detach": false,
        "Container": id, "Privileged": false,
    }));
    assert_eq!(inspect(&exec)["Running"], false);
    let (head, mut s) = hijack(
        &server,
        &format!("/v1.47/exec/{exec}/start"),
        r#"{"Detach":false,"Tty":false}"#,
    );
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut wire = Vec::new();
    s.read_to_end(&mut wire).unwrap();
    assert_eq!(
        demux(&wire),
        vec![(1, "42 /tmp 1000\n".into()), (2, "err\n".into())]
    );
    let done = inspect(&exec);
    assert_eq!(
        (done["Running"].clone(), done["ExitCode"].clone()),
        (false.into(), 3.into())
    );
    assert_eq!(done["ContainerID"], id.as_str());
    assert_eq!(done["ProcessConfig"]["entrypoint"], "sh");
    let (status, _) = server.request(
        "POST",
        &format!("/v1.47/exec/{exec}/start"),
        br#"{"Detach":true}"#,
    );
    assert_eq!(status, 409, "an exec starts once");

    let detached = create(serde_json::json!({"Cmd": ["sh", "-c", "sleep 0.5; exit 7"]}));
    let (status, _) = server.request(
        "POST",
        &format!("/v1.47/exec/{detached}/start"),
        br#"{"Detach":true}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(inspect(&detached)["Running"], true);
    eventually("the detached exec's exit", || {
        inspect(&detached)["ExitCode"] == 7
    });

    let (status, body) = server.request(
        "POST",
        &format!("/v1.47/containers/{id}/exec"),
        br#"{"Cmd":["true"],"Bogus":1}"#,
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("Bogus"));
    let (status, _) = server.request("GET", "/v1.47/exec/nosuch/json", b"");
    assert_eq!(status, 404);
}

// ---- the docker CLI (needs the container endpoints for its inspect and wait calls) ----

#[test]
fn docker_logs_tail_timestamps_since_and_follow() {
    let root = root();
    let server = ApiServer::start(&root);
    let id = root.detached(&[
        IMAGE,
        "sh",
        "-c",
        "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three",
    ]);
    root.wait_status(&id, "exited");
    let out = server.docker_out(&["logs", &id]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\nthree\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "two\n");
    assert_eq!(server.docker_ok(&["logs", "--tail", "1", &id]), "three\n");
    let stamped = server.docker_ok(&["logs", "-t", "--tail", "1", &id]);
    let (time, line) = stamped.split_once(' ').unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok(),
        "{stamped}"
    );
    assert_eq!(line, "three\n");
    assert_eq!(
        server.docker_ok(&["logs", "--since", "2099-01-01T00:00:00Z", &id]),
        ""
    );
    assert_eq!(
        server.docker_ok(&["logs", "--since", "10m", &id]),
        "one\nthree\n"
    );

    let follow = root.detached(&[IMAGE, "sh", "-c", "echo a; sleep 1; echo b"]);
    assert_eq!(server.docker_ok(&["logs", "-f", &follow]), "a\nb\n");
}

#[test]
fn docker_attach_relays_piped_stdin_until_its_end() {
    let root = root();
    let server = ApiServer::start(&root);
    let id = root.detached(&["-i", IMAGE, "sh", "-c", "cat; echo bye"]);
    let out = server.docker_with_stdin(&["attach", &id], b"hi\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\nbye\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn docker_exec_output_exit_code_env_workdir_user_and_detach() {
    let root = root();
    let server = ApiServer::start(&root);
    let id = root.detached(&[IMAGE, "sleep", "1000"]);
    let out = server.docker_out(&[
        "exec",
        "-e",
        "X=42",
        "-w",
        "/tmp",
        "-u",
        "1000",
        &id,
        "sh",
        "-c",
        "echo $X $(pwd) $(id -u); echo oops >&2; exit 3",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "42 /tmp 1000\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    assert_eq!(out.status.code(), Some(3));
    let out = server.docker_with_stdin(&["exec", "-i", &id, "cat"], b"through exec\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through exec\n");
    server.docker_ok(&[
        "exec",
        "-d",
        &id,
        "sh",
        "-c",
        "sleep 0.3; echo done > /tmp/flag",
    ]);
    eventually("the detached exec's file", || {
        server.docker_out(&["exec", &id, "cat", "/tmp/flag"]).stdout == b"done\n"
    });
}

/// Waits for the client's first terminal size and prints it (the create's `ConsoleSize` gives it from the
/// start; the wait keeps the check independent of how the size arrives).
const FIRST_SIZE: &str =
    "while [ \"$(stty size 2>/dev/null)\" != '40 100' ]; do sleep 0.05; done; stty size;";

#[test]
fn docker_exec_it_on_a_terminal_follows_its_resize() {
    let root = root();
    let server = ApiServer::start(&root);
    let id = root.detached(&[IMAGE, "sleep", "1000"]);
    // An exec's pty has the client's size before the process starts: the first look shows it.
    let script = "test -t 1 && echo IS-TTY; echo \"first $(stty size)\"; \
                  while [ \"$(stty size)\" = '40 100' ]; do sleep 0.05; done; stty size";
    let mut term = bulkhead_testkit::Terminal::spawn(
        server.docker(&["exec", "-it", &id, "sh", "-c", script]),
        40,
        100,
    );
    term.wait_for("first 40 100");
    term.resize(50, 120);
    let (code, seen) = term.finish();
    assert_eq!(code, Some(0), "{seen:?}");
    assert!(
        seen.contains("IS-TTY") && seen.contains("50 120"),
        "{seen:?}"
    );
}

#[test]
fn docker_cp_both_ways() {
    let root = root();
    let server = ApiServer::start(&root);
    let id = root.detached(&[IMAGE, "sleep", "1000"]);
    let host = tempfile::tempdir().unwrap();
    let file = host.path().join("greeting");
    std::fs::write(&file, "hello from the host\n").unwrap();
    server.docker_ok(&["cp", file.to_str().unwrap(), &format!("{id}:/tmp/")]);
    assert_eq!(
        root.ok(&["exec", &id, "cat", "/tmp/greeting"]),
        "hello from the host\n"
    );

    root.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "mkdir -p /data/sub && echo deep > /data/sub/f",
    ]);
    let back = host.path().join("back");
    server.docker_ok(&["cp", &format!("{id}:/data"), back.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(back.join("sub/f")).unwrap(),
        "deep\n"
    );
    // A file larger than any buffer on the way, both ways.
    let big: Vec<u8> = (0..24u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(host.path().join("big"), &big).unwrap();
    let big_path = host.path().join("big");
    server.docker_ok(&["cp", big_path.to_str().unwrap(), &format!("{id}:/tmp/big")]);
    let again = host.path().join("big-again");
    server.docker_ok(&["cp", &format!("{id}:/tmp/big"), again.to_str().unwrap()]);
    assert!(std::fs::read(&again).unwrap() == big, "the copy differs");
    let missing = server.docker_out(&["cp", &format!("{id}:/nosuch"), back.to_str().unwrap()]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("No such")
            || String::from_utf8_lossy(&missing.stderr).contains("no such"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

#[test]
fn docker_run_attaches_before_start_with_and_without_stdin() {
    let root = root();
    let server = ApiServer::start(&root);
    let out = server.docker_out(&[
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "echo hi; echo err >&2; exit 4",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert_eq!(out.status.code(), Some(4));
    let out = server.docker_with_stdin(
        &["run", "--rm", "-i", IMAGE, "sh", "-c", "cat; echo end"],
        b"typed early\n",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "typed early\nend\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(root.all_ids().is_empty(), "--rm left {:?}", root.all_ids());
}

#[test]
fn docker_run_it_on_a_terminal_follows_its_resize() {
    let root = root();
    let server = ApiServer::start(&root);
    let script = format!(
        "test -t 0 && echo IS-TTY; {FIRST_SIZE} \
                  while [ \"$(stty size)\" = '40 100' ]; do sleep 0.05; done; stty size; exit 5"
    );
    let mut term = bulkhead_testkit::Terminal::spawn(
        server.docker(&["run", "--rm", "-it", IMAGE, "sh", "-c", &script]),
        40,
        100,
    );
    term.wait_for("40 100");
    term.resize(50, 120);
    let (code, seen) = term.finish();
    assert_eq!(code, Some(5), "{seen:?}");
    assert!(
        seen.contains("IS-TTY") && seen.contains("50 120"),
        "{seen:?}"
    );
}

#[test]
fn docker_start_attaches_before_the_start_with_and_without_stdin() {
    let root = root();
    let server = ApiServer::start(&root);
    let id = root.ok(&["create", IMAGE, "sh", "-c", "echo hi; echo err >&2; exit 4"]);
    let out = server.docker_out(&["start", "-a", id.trim()]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert_eq!(out.status.code(), Some(4));
    let id = root.ok(&["create", "-i", IMAGE, "sh", "-c", "cat; echo end"]);
    let out = server.docker_with_stdin(&["start", "-ai", id.trim()], b"typed early\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "typed early\nend\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn docker_start_ai_on_a_terminal_follows_its_resize() {
    let root = root();
    let server = ApiServer::start(&root);
    let script = format!(
        "test -t 0 && echo IS-TTY; {FIRST_SIZE} \
                  while [ \"$(stty size)\" = '40 100' ]; do sleep 0.05; done; stty size; exit 5"
    );
    let id = root.ok(&["create", "-it", IMAGE, "sh", "-c", &script]);
    let mut term =
        bulkhead_testkit::Terminal::spawn(server.docker(&["start", "-ai", id.trim()]), 40, 100);
    term.wait_for("40 100");
    term.resize(50, 120);
    let (code, seen) = term.finish();
    assert_eq!(code, Some(5), "{seen:?}");
    assert!(
        seen.contains("IS-TTY") && seen.contains("50 120"),
        "{seen:?}"
    );
}

#[test]
fn vm_container_exec_and_logs() {
    let _one_guest_at_a_time = bulkhead_testkit::vm_lock();
    let root = root();
    let server = ApiServer::start(&root);
    let id = root.detached(&[
        "--isolation=vm",
        IMAGE,
        "sh",
        "-c",
        "echo booted; sleep 1000",
    ]);
    eventually("the guest's first line", || {
        let (_, body) =
            server.request("GET", &format!("/v1.47/containers/{id}/logs?stdout=1"), b"");
        demux(&body) == vec![(1, "booted\n".to_string())]
    });
    let (status, body) = server.request(
        "POST",
        &format!("/v1.47/containers/{id}/exec"),
        br#"{"Cmd":["sh","-c","cat /proc/version; exit 9"],"AttachStdout":true}"#,
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let exec = json(&body)["Id"].as_str().unwrap().to_string();
    // Without the upgrade the output comes as the 200 body.
    let (status, body) = server.request(
        "POST",
        &format!("/v1.47/exec/{exec}/start"),
        br#"{"Detach":false}"#,
    );
    assert_eq!(status, 200);
    let guest = demux(&body);
    let host = std::fs::read_to_string("/proc/version").unwrap();
    assert!(
        guest.len() == 1 && guest[0].0 == 1 && guest[0].1 != host,
        "{guest:?}"
    );
    let (_, body) = server.request("GET", &format!("/v1.47/exec/{exec}/json"), b"");
    assert_eq!(json(&body)["ExitCode"], 9);
}
