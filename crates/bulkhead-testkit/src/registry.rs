//! A real Distribution registry (Debian's `docker-registry`, distribution 2.8) on 127.0.0.1 with a free
//! port and storage in a scratch directory, anonymous or with htpasswd or token authentication; images
//! get into it with `skopeo copy`. Killed when dropped.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::oci::{write_layout, Layout, Platform};
use crate::token::TokenServer;

/// How the registry authenticates clients.
pub enum Auth<'a> {
    Anonymous,
    Htpasswd(&'a Account),
    /// Bearer tokens from a token server checking these credentials.
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
        let dir = tempfile::tempdir().expect("registry scratch dir");
        let port = free_port();
        // `info` logs every request: the access log is how tests count blob downloads.
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        let mut token_server = None;
        let account = match auth {
            Auth::Anonymous => None,
            Auth::Htpasswd(account) => {
                let hash = bcrypt::hash(account.password, 5).expect("bcrypt");
                let htpasswd = dir.path().join("htpasswd");
                fs::write(&htpasswd, format!("{}:{hash}\n", account.user)).expect("htpasswd");
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: bulkhead-test\n    path: {}\n",
                    htpasswd.display()
                ));
                Some(account)
            }
            Auth::Token(account) => {
                let server = TokenServer::start(dir.path(), account.user, account.password);
                config.push_str(&server.registry_auth_config());
                token_server = Some(server);
                Some(account)
            }
        };
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).expect("registry config");
        let log = fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("registry log"))
            .stderr(log)
            .spawn()
            .expect("docker-registry (Debian package docker-registry)");
        let mut registry = Registry {
            child,
            port,
            dir,
            push_creds: account.map(|a| format!("{}:{}", a.user, a.password)),
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

    /// Pushes an image of these platforms (an index when there are several) as `name:tag`, digests as
    /// written, and returns what was written.
    pub fn push(&self, name: &str, tag: &str, platforms: &[Platform]) -> Layout {
        let dir = tempfile::tempdir().expect("layout scratch dir");
        let layout = write_layout(dir.path(), Some(tag), platforms);
        self.skopeo_copy(
            &format!("oci:{}:{tag}", dir.path().display()),
            &format!("{name}:{tag}"),
        );
        layout
    }

    /// Pushes the image of an OCI archive (as `bulkhead image export` writes) as `name_tag`.
    pub fn push_archive(&self, archive: &Path, name_tag: &str) {
        self.skopeo_copy(&format!("oci-archive:{}", archive.display()), name_tag);
    }

    fn skopeo_copy(&self, source: &str, name_tag: &str) {
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
            .arg(source)
            .arg(format!("docker://{}/{name_tag}", self.host()))
            .output()
            .expect("skopeo (Debian package skopeo)");
        assert!(
            out.status.success(),
            "skopeo copy {source} failed: {}",
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
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago (the OS does not hand it out again right away): for a
/// server to bind, or for a registry that is not there.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a loopback port")
        .port()
}
