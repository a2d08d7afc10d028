//! A real Distribution registry (Debian's `docker-registry`, distribution 2.8) on
//! 127.0.0.1 with a free port and temporary storage, killed when dropped.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::token::{self, TokenServer};

/// How the registry authenticates clients.
pub enum Auth<'a> {
    Anonymous,
    Htpasswd(&'a Account),
    /// Bearer tokens from a [`TokenServer`] checking these credentials.
    Token(&'a Account),
}

/// A user name and password of a test registry.
pub struct Account {
    pub user: &'static str,
    pub password: &'static str,
}

pub struct Registry {
    child: Child,
    port: u16,
    push_creds: Option<String>,
    token_server: Option<TokenServer>,
    dir: TempDir,
}

impl Registry {
    pub fn start(auth: Auth<'_>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        let mut token_server = None;
        let push_creds = match auth {
            Auth::Anonymous => None,
            Auth::Htpasswd(creds) => {
                let hash = bcrypt::hash(creds.password, 5).unwrap();
                let htpasswd = dir.path().join("htpasswd");
                fs::write(&htpasswd, format!("{}:{hash}\n", creds.user)).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: bulkhead-test\n    path: {}\n",
                    htpasswd.display()
                ));
                Some(creds)
            }
            Auth::Token(creds) => {
                let server = TokenServer::start(dir.path(), creds.user, creds.password);
                config.push_str(&token::registry_auth_config(&server));
                token_server = Some(server);
                Some(creds)
            }
        };
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn /usr/bin/docker-registry");
        let mut registry = Registry {
            child,
            port,
            dir,
            push_creds: push_creds.map(|c| format!("{}:{}", c.user, c.password)),
            token_server,
        };
        registry.wait_listening();
        registry
    }

    fn wait_listening(&mut self) {
        // A liveness guard against a registry that never comes up, not a timing check.
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = !matches!(self.child.try_wait(), Ok(None));
            assert!(
                !exited && Instant::now() < deadline,
                "docker-registry did not start: {}",
                self.log()
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`, the registry part of references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes tag `tag` of the OCI layout `layout` as `name:tag` (all platforms).
    pub fn push(&self, layout: &Path, tag: &str, name: &str) {
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "-q",
        ]);
        if let Some(creds) = &self.push_creds {
            cmd.args(["--dest-creds", creds]);
        }
        let out = cmd
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{name}:{tag}", self.host()))
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Tokens the registry's token server issued so far (0 without token auth).
    pub fn tokens_issued(&self) -> usize {
        self.token_server.as_ref().map_or(0, TokenServer::issued)
    }

    /// Access-log lines of successful blob GETs so far.
    pub fn blob_downloads(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| {
                l.contains("\"GET /v2/")
                    && l.contains("/blobs/sha256:")
                    && l.contains("HTTP/1.1\" 200")
            })
            .count()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (the OS does not hand it out again right away).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
