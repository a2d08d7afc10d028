//! The container endpoints of the Engine API, driven by the real docker CLI against `bulkhead serve` on a
//! scratch root: the lifecycle (create, start, wait, stop, kill, restart, rm), what `ps` and `inspect`
//! show, filters, update/rename/top/stats, clear 400s for what bulkhead does not do, and containers that
//! outlive the server.

use bulkhead_testkit::{stderr, stdout, vm_lock, ApiServer, Root};
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_bulkhead");

fn inspect(server: &ApiServer, key: &str) -> serde_json::Value {
    let text = server.docker_ok(&["inspect", key]);
    let mut list: Vec<serde_json::Value> = serde_json::from_str(&text).expect("inspect JSON");
    assert_eq!(list.len(), 1, "{text}");
    list.remove(0)
}

fn names(server: &ApiServer, filters: &[&str]) -> Vec<String> {
    let mut args = vec!["ps", "-a", "--format", "{{.Names}}"];
    for f in filters {
        args.extend(["--filter", f]);
    }
    let mut list: Vec<String> = server.docker_ok(&args).lines().map(String::from).collect();
    list.sort();
    list
}

#[test]
fn run_prints_output_and_returns_the_exit_code() {
    let root = Root::with_demo_image(BIN, "busybox");
    let server = ApiServer::start(&root);
    let out = server.docker_out(&["run", "--rm", "busybox", "echo", "hi"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hi\n");
    let out = server.docker_out(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo oops >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stderr(&out).trim(), "oops");
    assert!(names(&server, &[]).is_empty(), "--rm removed both");
    // Without --rm the CLI waits for the next exit, and the container stays.
    let out = server.docker_out(&["run", "--name", "kept", "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(names(&server, &["exited=7"]), ["kept"]);
}

#[test]
fn detached_run_ps_inspect_stop_rm() {
    let root = Root::with_demo_image(BIN, "busybox");
    let server = ApiServer::start(&root);
    let id = server
        .docker_ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "--label",
            "tier=front",
            "busybox",
            "sleep",
            "300",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    let ps = server.docker_ok(&["ps", "--format", "{{.ID}} {{.Names}} {{.Status}}"]);
    assert!(ps.starts_with(&format!("{} web Up", &id[..12])), "{ps}");

    let v = inspect(&server, "web");
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["Name"], "/web");
    assert_eq!(v["State"]["Status"], "running");
    assert_eq!(v["State"]["Running"], true);
    assert!(v["State"]["Pid"].as_i64().unwrap() > 0, "{v}");
    assert_eq!(v["Config"]["Labels"]["tier"], "front");
    assert_eq!(v["HostConfig"]["Isolation"], "process");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "no");
    assert_eq!(v["Platform"], "linux");
    assert!(v["Image"].as_str().unwrap().starts_with("sha256:"), "{v}");
    assert_eq!(v["Path"], "sleep");
    assert_eq!(v["Args"][0], "300");
    let bridge = &v["NetworkSettings"]["Networks"]["bridge"];
    assert!(
        bridge["IPAddress"].as_str().unwrap().starts_with("172."),
        "{v}"
    );
    assert!(!bridge["MacAddress"].as_str().unwrap().is_empty(), "{v}");

    // A second start is docker's 304, which the CLI accepts silently.
    server.docker_ok(&["start", "web"]);
    // busybox sleep as PID 1 ignores SIGTERM: -t 1 is the SIGKILL after a second.
    server.docker_ok(&["stop", "-t", "1", "web"]);
    let v = inspect(&server, "web");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 137);
    assert_ne!(v["State"]["FinishedAt"], "0001-01-01T00:00:00Z");
    server.docker_ok(&["rm", "web"]);
    let out = server.docker_out(&["container", "inspect", "web"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).to_lowercase().contains("no such container"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn wait_reports_exit_codes_and_kill_restart_rm_force() {
    let root = Root::with_demo_image(BIN, "busybox");
    let server = ApiServer::start(&root);
    let id = server
        .docker_ok(&["run", "-d", "busybox", "sh", "-c", "echo hi; exit 3"])
        .trim()
        .to_string();
    assert_eq!(server.docker_ok(&["wait", &id]).trim(), "3");
    assert_eq!(server.docker_ok(&["logs", &id]).trim(), "hi");
    assert_eq!(inspect(&server, &id)["State"]["ExitCode"], 3);

    let sleeper = server
        .docker_ok(&["run", "-d", "busybox", "sleep", "300"])
        .trim()
        .to_string();
    server.docker_ok(&["kill", "-s", "9", &sleeper]);
    assert_eq!(server.docker_ok(&["wait", &sleeper]).trim(), "137");
    let out = server.docker_out(&["kill", &sleeper]);
    assert!(!out.status.success(), "killing a stopped container");
    assert!(stderr(&out).contains("is exited"), "{}", stderr(&out));

    server.docker_ok(&["restart", "-t", "1", &sleeper]);
    assert_eq!(inspect(&server, &sleeper)["State"]["Status"], "running");
    assert_eq!(inspect(&server, &sleeper)["RestartCount"], 1);
    let out = server.docker_out(&["rm", &sleeper]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("force"), "{}", stderr(&out));
    server.docker_ok(&["rm", "-f", &sleeper]);
    assert_eq!(names(&server, &[]).len(), 1);
}

#[test]
fn ps_filters_and_prune() {
    let root = Root::with_demo_image(BIN, "busybox");
    let server = ApiServer::start(&root);
    server.docker_ok(&[
        "create", "--name", "made", "--label", "app=a", "busybox", "true",
    ]);
    server.docker_ok(&[
        "run", "-d", "--name", "done", "--label", "app=b", "busybox", "true",
    ]);
    server.docker_ok(&["wait", "done"]);
    server.docker_ok(&[
        "run", "-d", "--name", "up", "--label", "app=a", "--label", "keep", "busybox", "sleep",
        "300",
    ]);
    assert_eq!(names(&server, &["label=app=a"]), ["made", "up"]);
    assert_eq!(names(&server, &["label=keep"]), ["up"]);
    assert_eq!(names(&server, &["label=app"]), ["done", "made", "up"]);
    assert_eq!(names(&server, &["status=exited"]), ["done"]);
    assert_eq!(names(&server, &["status=created"]), ["made"]);
    assert_eq!(names(&server, &["exited=0"]), ["done"]);
    assert_eq!(names(&server, &["name=^/do"]), ["done"]);
    assert_eq!(names(&server, &["ancestor=busybox"]).len(), 3);
    assert_eq!(names(&server, &["network=bridge"]).len(), 3);
    assert!(names(&server, &["network=host"]).is_empty());
    assert_eq!(
        names(&server, &["isolation=process", "label=app=b"]),
        ["done"]
    );
    assert!(names(&server, &["isolation=hyperv"]).is_empty());
    // Without -a only running ones; a status filter lists stopped ones anyway, as dockerd does.
    assert_eq!(
        server.docker_ok(&["ps", "--format", "{{.Names}}"]).trim(),
        "up"
    );
    let out = server.docker_out(&["ps", "--filter", "colour=red"]);
    assert!(stderr(&out).contains("invalid filter"), "{}", stderr(&out));

    let pruned = server.docker_ok(&["container", "prune", "-f", "--filter", "label=app=a"]);
    assert!(pruned.contains("Deleted Containers"), "{pruned}");
    assert_eq!(names(&server, &[]), ["done", "up"]);
}

#[test]
fn bad_isolation_unsupported_fields_and_bad_bodies_are_named_400s() {
    let root = Root::with_demo_image(BIN, "busybox");
    let server = ApiServer::start(&root);
    let out = server.docker_out(&["run", "-d", "--isolation=bogus", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("invalid isolation \"bogus\""),
        "{}",
        stderr(&out)
    );
    let out = server.docker_out(&["create", "--device", "/dev/null", "busybox", "true"]);
    assert!(
        stderr(&out).contains("HostConfig.Devices is not supported by bulkhead"),
        "{}",
        stderr(&out)
    );
    let out = server.docker_out(&["create", "--restart", "always", "busybox", "true"]);
    assert!(stderr(&out).contains("RestartPolicy"), "{}", stderr(&out));
    // Case does not matter; nothing was left by the refusals.
    server.docker_ok(&[
        "create",
        "--name",
        "upper",
        "--isolation=PROCESS",
        "busybox",
        "true",
    ]);
    assert_eq!(names(&server, &[]), ["upper"]);

    let (status, body) = server.request("POST", "/v1.47/containers/create", b"{\"Image\":");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("malformed JSON"));
    let (status, body) = server.request(
        "POST",
        "/v1.47/containers/create",
        br#"{"Image":"busybox","HostConfig":{"Colour":"red"}}"#,
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("HostConfig.Colour"));
    let (status, body) = server.request(
        "POST",
        "/v1.47/containers/create",
        br#"{"Image":"nothere","Cmd":["true"]}"#,
    );
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("No such image: nothere"));
    let (status, _) = server.request("POST", "/v1.47/containers/upper/wait?condition=soon", b"");
    assert_eq!(status, 400);
    let (status, _) = server.request("GET", "/v1.47/containers/nothere/json", b"");
    assert_eq!(status, 404);
    // Only a running container can be paused.
    let (status, body) = server.request("POST", "/v1.47/containers/upper/pause", b"");
    assert_eq!(status, 409);
    assert!(String::from_utf8_lossy(&body).contains("paused"));
    let (status, body) = server.request("GET", "/v1.47/containers/upper/changes", b"");
    assert_eq!(status, 501);
    assert!(String::from_utf8_lossy(&body).contains("changes"));
}

#[test]
fn rename_update_top_stats_and_the_isolation_extension() {
    let root = Root::with_demo_image(BIN, "busybox");
    let server = ApiServer::start(&root);
    server.docker_ok(&["run", "-d", "--name", "old", "busybox", "sleep", "300"]);
    server.docker_ok(&["rename", "old", "new"]);
    assert_eq!(names(&server, &[]), ["new"]);

    server.docker_ok(&["update", "--memory", "64m", "--cpus", "0.5", "new"]);
    let v = inspect(&server, "new");
    assert_eq!(v["HostConfig"]["Memory"], 64 << 20);
    assert_eq!(v["HostConfig"]["NanoCpus"], 500_000_000);

    let top = server.docker_ok(&["top", "new"]);
    assert!(top.contains("PID") && top.contains("sleep 300"), "{top}");
    let stats = server.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}} {{.PIDs}}",
        "new",
    ]);
    assert!(stats.starts_with("new "), "{stats}");
    assert!(stats.contains("/ 64MiB"), "the limit set above: {stats}");
    assert!(stats.trim().ends_with(" 1"), "{stats}");

    // The extension: switch the isolation of a stopped container.
    let (status, _) = server.request("POST", "/v1.47/containers/new/update?isolation=vm", b"");
    assert_eq!(status, 409, "refused while it runs");
    server.docker_ok(&["kill", "new"]);
    server.docker_ok(&["wait", "new"]);
    // A stopped container's stats are dockerd's zeros, not an error.
    let (status, body) = server.request("GET", "/v1.47/containers/new/stats?stream=0", b"");
    assert_eq!(status, 200);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains(r#""read":"0001-01-01T00:00:00Z""#), "{body}");
    let (status, body) =
        server.request("POST", "/v1.47/containers/new/update?isolation=hyperv", b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(inspect(&server, "new")["HostConfig"]["Isolation"], "hyperv");
    let (status, _) = server.request("POST", "/v1.47/containers/new/update?isolation=moon", b"");
    assert_eq!(status, 400);
}

#[test]
fn containers_outlive_the_server_and_a_new_server_stops_them() {
    let root = Root::with_demo_image(BIN, "busybox");
    let mut server = ApiServer::start(&root);
    server.docker_ok(&[
        "run",
        "-d",
        "--name",
        "lasting",
        "busybox",
        "sh",
        "-c",
        "echo started; exec sleep 300",
    ]);
    let pid = inspect(&server, "lasting")["State"]["Pid"]
        .as_i64()
        .unwrap();
    server.kill();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the container died with the server"
    );
    server.restart(&root);
    let v = inspect(&server, "lasting");
    assert_eq!(v["State"]["Status"], "running");
    assert_eq!(v["State"]["Pid"], pid);
    assert_eq!(server.docker_ok(&["logs", "lasting"]).trim(), "started");
    server.docker_ok(&["stop", "-t", "1", "lasting"]);
    assert_eq!(inspect(&server, "lasting")["State"]["Status"], "exited");
}

#[test]
fn a_server_killed_mid_create_leaves_no_half_created_container() {
    let root = Root::with_demo_image(BIN, "busybox");
    let mut server = ApiServer::start(&root);
    // One whole create, timed from the client's start: kills spread over 0 to 1.2 times that land
    // before, during and after the server's part of it, and each must leave a whole container or none.
    let started = Instant::now();
    server.docker_ok(&["create", "busybox", "true"]);
    let whole = started.elapsed();
    for step in 0..12u32 {
        let delay = whole * step / 10;
        let mut client = server
            .docker(&["create", "busybox", "true"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker create");
        std::thread::sleep(delay);
        server.kill();
        let _ = client.wait();
        server.restart(&root);
    }
    let listed: Vec<String> = server
        .docker_ok(&["ps", "-aq", "--no-trunc"])
        .lines()
        .map(String::from)
        .collect();
    for id in &listed {
        assert!(
            root.path()
                .join("containers")
                .join(id)
                .join("rw.img")
                .exists(),
            "{id} is listed without its disk"
        );
        server.docker_ok(&["start", id]);
        assert_eq!(server.docker_ok(&["wait", id]).trim(), "0");
        server.docker_ok(&["rm", id]);
    }
    let leftovers: Vec<String> = std::fs::read_dir(root.path().join("containers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "unlisted containers: {leftovers:?}");
}

#[test]
fn vm_docker_isolation_chooses_the_kernel() {
    let _vm = vm_lock();
    let root = Root::with_demo_image(BIN, "busybox");
    let server = ApiServer::start(&root);
    let host = nix::sys::utsname::uname().unwrap();
    let host = host.release().to_string_lossy().into_owned();
    let kernel_of = |isolation: &str| {
        server
            .docker_ok(&["run", "--rm", isolation, "busybox", "uname", "-r"])
            .trim()
            .to_string()
    };
    assert_eq!(kernel_of("--isolation=process"), host);
    let guest = kernel_of("--isolation=hyperv");
    assert!(!guest.is_empty());
    assert_ne!(guest, host, "a hyperv container runs the guest kernel");
    assert!(names(&server, &[]).is_empty(), "--rm removed both");
}
