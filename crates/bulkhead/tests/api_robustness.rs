//! The Engine API server under bad input and load: malformed and oversized bodies, unknown fields and
//! isolation values get named 4xx errors and create nothing; 50 concurrent `docker run --rm` clients
//! all get their output and leave no container, monitor or mount behind.

use bulkhead_testkit::{ApiServer, Root};

const BIN: &str = env!("CARGO_BIN_EXE_bulkhead");

fn message(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "error body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    v["message"].as_str().expect("a message").to_string()
}

#[test]
fn bad_create_requests_are_named_errors_and_create_nothing() {
    let root = Root::with_demo_image(BIN, "busybox");
    let server = ApiServer::start(&root);
    let create = |body: &[u8]| server.request("POST", "/v1.47/containers/create", body);

    let (status, body) = create(b"{\"Image\": \"busybox\", ");
    assert_eq!(status, 400);
    assert!(
        message(&body).contains("malformed JSON"),
        "{}",
        message(&body)
    );

    for (body, field) in [
        (&br#"{"Image": "busybox", "Bogus": 1}"#[..], "Bogus"),
        (
            br#"{"Image": "busybox", "HostConfig": {"AlsoBogus": true}}"#,
            "HostConfig.AlsoBogus",
        ),
    ] {
        let (status, body) = create(body);
        assert_eq!(status, 400);
        assert!(message(&body).contains(field), "{}", message(&body));
    }

    let (status, body) = create(br#"{"Image": "busybox", "HostConfig": {"Isolation": "hyperx"}}"#);
    assert_eq!(status, 400);
    assert!(message(&body).contains("hyperx"), "{}", message(&body));

    let huge = format!(
        r#"{{"Image": "busybox", "Env": ["A={}"]}}"#,
        "x".repeat(2 << 20)
    );
    let (status, body) = create(huge.as_bytes());
    assert_eq!(status, 413);
    assert!(message(&body).contains("larger than"), "{}", message(&body));

    let (status, body) = create(br#"{"Image": "no-such-image"}"#);
    assert_eq!(status, 404);
    assert!(message(&body).to_lowercase().contains("no such image"));

    assert!(
        root.all_ids().is_empty(),
        "a refused create left a container"
    );
    // The server is still serving.
    assert_eq!(server.request("GET", "/_ping", b"").0, 200);
}

#[test]
fn isolation_is_case_insensitive() {
    let root = Root::with_demo_image(BIN, "busybox");
    let server = ApiServer::start(&root);
    let (status, body) = server.request(
        "POST",
        "/v1.47/containers/create",
        br#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Isolation": "Process", "NetworkMode": "none"}}"#,
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let id: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = id["Id"].as_str().unwrap();
    let inspect = server.docker_ok(&["inspect", "--format", "{{.HostConfig.Isolation}}", id]);
    assert_eq!(inspect.trim(), "process");
}

#[test]
fn fifty_concurrent_docker_runs_all_answer_and_leave_nothing() {
    let root = Root::with_demo_image(BIN, "busybox");
    let server = ApiServer::start(&root);
    let children: Vec<_> = (0..50)
        .map(|i| {
            server
                .docker(&[
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    "busybox",
                    "echo",
                    &format!("client-{i}"),
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawning docker")
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = bulkhead_testkit::wait_output(child, "docker run");
        assert!(
            out.status.success(),
            "client {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("client-{i}")
        );
    }
    // --rm containers are removed by their monitors once the exit is recorded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !root.all_ids().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "containers left: {:?}",
            root.all_ids()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root_path = root.path().to_str().unwrap();
    assert!(!mounts.contains(root_path), "mounts left under the root");
    assert_eq!(server.request("GET", "/_ping", b"").0, 200);
}
