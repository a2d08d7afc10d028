//! Real Docker clients other than the CLI against bulkhead's Engine API: the Python SDK (Debian's
//! python3-docker 5.0.3, run by /usr/bin/python3: the `python3` on PATH may be another interpreter with
//! another `docker` package) in both isolation modes, and a docker-compose 1.29 project whose two
//! services, one of them a VM, reach each other by name on the project's network.

use bulkhead_testkit::{stderr, stdout, vm_lock, wait_output, ApiServer, Root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bulkhead");
const PYTHON: &str = "/usr/bin/python3";
const COMPOSE: &str = "/usr/bin/docker-compose";

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

/// A client program with the server's DOCKER_HOST and nothing of the host's docker settings.
fn client(server: &ApiServer, root: &Root, program: &str) -> Command {
    let mut c = Command::new(program);
    c.env("DOCKER_HOST", server.docker_host())
        .env("DOCKER_CONFIG", root.path().join("docker-config"))
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("PYTHONPATH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn run(mut c: Command, what: &str) -> Output {
    wait_output(c.spawn().unwrap_or_else(|e| panic!("{what}: {e}")), what)
}

fn ok(c: Command, what: &str) -> String {
    let out = run(c, what);
    assert!(
        out.status.success(),
        "{what} failed ({:?})\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn host_kernel() -> String {
    nix::sys::utsname::uname()
        .unwrap()
        .release()
        .to_string_lossy()
        .into_owned()
}

/// Runs tests/sdk/containers.py in one isolation mode; the kernel its containers saw.
fn python_sdk(mode: &str) -> String {
    let root = Root::with_demo_image(BIN, "demo");
    let server = ApiServer::start(&root);
    let mut c = client(&server, &root, PYTHON);
    c.arg(sdk_dir().join("containers.py")).args(["demo", mode]);
    let out = ok(c, &format!("python SDK, {mode}"));
    assert!(root.all_ids().is_empty(), "containers left behind");
    out.trim()
        .strip_prefix(&format!("{mode} "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string()
}

#[test]
fn python_sdk_runs_containers_in_process_isolation() {
    assert_eq!(python_sdk("process"), host_kernel());
}

#[test]
fn vm_python_sdk_runs_a_hyperv_container() {
    let _vm = vm_lock();
    let kernel = python_sdk("hyperv");
    assert!(!kernel.is_empty() && kernel != host_kernel(), "{kernel}");
}

fn compose(server: &ApiServer, root: &Root, project: &str, args: &[&str]) -> Command {
    let mut c = client(server, root, COMPOSE);
    c.arg("-f")
        .arg(sdk_dir().join("compose.yml"))
        .args(["-p", project])
        .args(args);
    c
}

/// The project's network is a host bridge: a failed test must not leave it behind.
struct ComposeDown<'a> {
    server: &'a ApiServer,
    root: &'a Root,
    project: &'a str,
}

impl Drop for ComposeDown<'_> {
    fn drop(&mut self) {
        let _ = run(
            compose(self.server, self.root, self.project, &["down", "-t", "0"]),
            "compose down (cleanup)",
        );
    }
}

#[test]
fn vm_compose_project_with_a_hyperv_service_up_check_down() {
    let _vm = vm_lock();
    let root = Root::with_demo_image(BIN, "demo");
    let server = ApiServer::start(&root);
    let project = format!("bhsdk{}", std::process::id());
    let _cleanup = ComposeDown {
        server: &server,
        root: &root,
        project: &project,
    };
    ok(
        compose(&server, &root, &project, &["up", "-d"]),
        "compose up",
    );
    let ps = ok(compose(&server, &root, &project, &["ps"]), "compose ps");
    for service in ["web", "client"] {
        let line = ps
            .lines()
            .find(|l| l.starts_with(&format!("{project}_{service}_1")))
            .unwrap_or_else(|| panic!("no {service} in:\n{ps}"));
        assert!(line.contains("Up"), "{line}");
    }
    let isolation = server.docker_ok(&[
        "inspect",
        "--format",
        "{{.HostConfig.Isolation}}",
        &format!("{project}_client_1"),
    ]);
    assert_eq!(isolation.trim(), "hyperv");
    // The VM service fetched the page from the process one by its service name.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let logs = ok(
            compose(&server, &root, &project, &["logs", "--no-color", "client"]),
            "compose logs",
        );
        if logs.contains("hello-from-web") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "client never reached web:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    ok(
        compose(&server, &root, &project, &["down", "-t", "1"]),
        "compose down",
    );
    assert!(root.all_ids().is_empty(), "containers left behind");
    let networks = server.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!networks.contains(&project), "{networks}");
}
