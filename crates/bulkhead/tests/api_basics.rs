//! The Engine API server's frame: version negotiation with the real docker CLI, dockerd's headers, and
//! clear errors for what it does not serve.

use bulkhead_testkit::{ApiServer, Root};

const BIN: &str = env!("CARGO_BIN_EXE_bulkhead");

#[test]
fn docker_cli_negotiates_the_api_version() {
    let root = Root::empty(BIN);
    let server = ApiServer::start(&root);
    let out = server.docker_ok(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Os}}",
    ]);
    assert_eq!(out.trim(), "1.47 linux");
}

#[test]
fn unsupported_and_out_of_range_requests_are_named_errors() {
    let root = Root::empty(BIN);
    let server = ApiServer::start(&root);
    let (status, body) = server.request("POST", "/v1.47/swarm/init", b"{}");
    assert_eq!(status, 501);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("POST /v1.47/swarm/init"), "{body}");
    let (status, body) = server.request("GET", "/v1.99/info", b"");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("too new"));
}

#[test]
fn socket_is_group_only_and_a_live_socket_is_not_taken_over() {
    use std::os::unix::fs::PermissionsExt;
    let root = Root::empty(BIN);
    let server = ApiServer::start(&root);
    let mode = std::fs::metadata(server.socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);
    let host = server.docker_host();
    let second = root.bh(&["serve", "-H", &host]);
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("another server is listening"));
    let tcp = root.bh(&["serve", "-H", "tcp://0.0.0.0:23999"]);
    assert!(String::from_utf8_lossy(&tcp.stderr).contains("loopback"));
}
