//! A Docker token-auth server for the real registry's `auth: token:` mode.
//!
//! It checks basic credentials and issues RS256 JWTs the way Docker Hub's auth.docker.io does: signed
//! by a key whose self-signed certificate is the registry's `rootcertbundle`, carried in the `x5c`
//! header, granting the requested repository scopes. Keys come from the `openssl` CLI, which also signs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::json;

use crate::http::{Response, Server};

const ISSUER: &str = "bulkhead-test-issuer";
const SERVICE: &str = "bulkhead-test-registry";

pub struct TokenServer {
    server: Server,
    cert: PathBuf,
    issued: Arc<AtomicUsize>,
}

struct Signer {
    key: PathBuf,
    cert_der: String,
    basic: String,
    user: String,
}

impl TokenServer {
    /// Generates a key pair in `dir` and serves `/token` for `user`/`password`.
    pub fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        let key = dir.join("token-key.pem");
        let cert = dir.join("token-cert.pem");
        let status = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=bulkhead-test-token-issuer", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run openssl req");
        assert!(status.success(), "openssl req failed");
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .expect("run openssl x509");
        assert!(der.status.success(), "openssl x509 failed");
        let signer = Signer {
            key,
            cert_der: STANDARD.encode(&der.stdout),
            basic: format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))),
            user: user.to_owned(),
        };
        let issued = Arc::new(AtomicUsize::new(0));
        let counter = issued.clone();
        let server = Server::start(move |request| {
            if request.headers.get("authorization") != Some(&signer.basic) {
                return Response::new(401, br#"{"details":"invalid credentials"}"#.to_vec());
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let token = signer.token(&request.query("scope"));
            Response::new(200, json!({ "token": token }).to_string().into_bytes())
                .header("Content-Type", "application/json")
        });
        TokenServer {
            server,
            cert,
            issued,
        }
    }

    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }

    /// The registry config section that delegates authentication to this server.
    pub fn registry_auth_config(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.server.port(),
            self.cert.display()
        )
    }
}

impl Signer {
    /// A JWT granting every requested `repository:NAME:ACTIONS` scope.
    fn token(&self, scopes: &[String]) -> String {
        let access: Vec<_> = scopes
            .iter()
            .flat_map(|s| s.split(' '))
            .filter_map(|scope| {
                let (kind, rest) = scope.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [self.cert_der]});
        let claims = json!({
            "iss": ISSUER, "sub": self.user, "aud": SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now,
            "jti": format!("{now}-{}", access.len()), "access": access,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut openssl = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run openssl dgst");
        openssl
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("feeding openssl");
        let signature = openssl.wait_with_output().expect("openssl dgst");
        assert!(signature.status.success(), "openssl dgst failed");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.stdout))
    }
}
