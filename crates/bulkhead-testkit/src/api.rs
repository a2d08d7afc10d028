//! `bulkhead serve` for a scratch root, and the real docker CLI pointed at it. The server listens on a
//! socket inside the root's directory and is stopped (SIGKILL if it must) when dropped; the CLI gets a
//! config directory of its own, so the host's docker settings and credential helpers play no part.

use crate::output::{stdout, wait_output};
use crate::root::Root;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct ApiServer {
    child: Option<Child>,
    socket: PathBuf,
    docker_config: PathBuf,
}

impl ApiServer {
    /// Starts `bulkhead --root ROOT serve -H unix://ROOT/api.sock` and waits until it answers `/_ping`.
    pub fn start(root: &Root) -> ApiServer {
        let socket = root.path().join("api.sock");
        let docker_config = root.path().join("docker-config");
        std::fs::create_dir_all(&docker_config).expect("docker config dir");
        let mut server = ApiServer {
            child: None,
            socket,
            docker_config,
        };
        server.restart(root);
        server
    }

    /// Starts the server again (after [`ApiServer::kill`] or [`ApiServer::stop`]).
    pub fn restart(&mut self, root: &Root) {
        let host = format!("unix://{}", self.socket.display());
        let child = root
            .cmd(&["serve", "-H", &host])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning bulkhead serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.request("GET", "/_ping", b"").0 != 200 {
            assert!(Instant::now() < deadline, "bulkhead serve did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `DOCKER_HOST` for clients of this server.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The docker CLI talking to this server, stdin closed, not yet started.
    pub fn docker(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", self.docker_host())
            .env("DOCKER_CONFIG", &self.docker_config)
            .env_remove("DOCKER_CONTEXT")
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs the docker CLI to completion (hang-guarded), whatever its exit code.
    pub fn docker_out(&self, args: &[&str]) -> Output {
        let child = self
            .docker(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning docker");
        wait_output(child, &format!("docker {args:?}"))
    }

    /// Runs the docker CLI with `input` on its stdin (then closed), to completion, whatever its exit code.
    pub fn docker_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .docker(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning docker");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input)
            .expect("writing docker's stdin");
        wait_output(child, &format!("docker {args:?}"))
    }

    /// Runs the docker CLI, asserts success, returns stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker_out(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed with {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out)
    }

    /// One raw HTTP/1.1 request on a new connection: the status and the body (read to the end: the
    /// request says `Connection: close`). For bad-input tests the docker CLI cannot send.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let Ok(mut s) = UnixStream::connect(&self.socket) else {
            return (0, Vec::new());
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        // A server that refuses an oversized body answers and closes before it has all been sent:
        // the answer is still there to read.
        let _ = s.write_all(head.as_bytes()).and_then(|_| s.write_all(body));
        let mut response = Vec::new();
        let _ = s.read_to_end(&mut response);
        parse_response(&response)
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and waits for the server to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Status and de-chunked body of a raw HTTP/1.1 response.
fn parse_response(raw: &[u8]) -> (u16, Vec<u8>) {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, Vec::new());
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || data.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[(eol + 4 + size).min(data.len())..];
    }
    out
}
