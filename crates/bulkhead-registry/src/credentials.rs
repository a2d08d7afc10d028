//! Registry credentials: bulkhead's own `<root>/auth.json` plus the Docker config fallback.
//!
//! The file uses the Docker `config.json` layout (`{"auths":{host:{"auth":base64(user:pass)}}}`)
//! so users can copy entries between tools. bulkhead only writes its own file (mode 0600,
//! replaced atomically); `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` is read
//! when bulkhead's file has no entry for a registry. Credential helpers (`credsStore`)
//! are not consulted.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::RegistryError;

/// A user name and password (or token used as password) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// Value of an `Authorization: Basic ...` header.
    pub(crate) fn basic_authorization(&self) -> String {
        format!("Basic {}", self.encoded())
    }

    fn encoded(&self) -> String {
        BASE64.encode(format!("{}:{}", self.username, self.password))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Reads and writes saved registry credentials.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    path: PathBuf,
    docker_config: Option<PathBuf>,
}

impl CredentialStore {
    /// Opens the credential store of the bulkhead root `root` (the file is created on
    /// the first `login`).
    pub fn open(root: &Path) -> Result<Self, RegistryError> {
        let docker_config = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir).join("config.json")),
            _ => std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|home| PathBuf::from(home).join(".docker/config.json")),
        };
        Ok(Self::with_paths(root.join("auth.json"), docker_config))
    }

    fn with_paths(path: PathBuf, docker_config: Option<PathBuf>) -> Self {
        CredentialStore {
            path,
            docker_config,
        }
    }

    /// Path of bulkhead's own credential file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Credentials saved for `registry` (e.g. `docker.io`, `localhost:5000`), looked up
    /// in bulkhead's file first, then in the Docker config.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        let wanted = normalise_registry(registry)?;
        if let Some(found) = lookup(&self.path, &wanted)? {
            return Ok(Some(found));
        }
        match &self.docker_config {
            Some(path) => lookup(path, &wanted),
            None => Ok(None),
        }
    }

    /// Saves credentials for `registry` after `verify` accepted them (typically
    /// [`crate::login`] against the registry).
    pub fn login(
        &self,
        registry: &str,
        username: &str,
        password: &str,
        verify: impl FnOnce(&Credentials) -> Result<(), RegistryError>,
    ) -> Result<(), RegistryError> {
        let key = normalise_registry(registry)?;
        let credentials = Credentials::new(username, password);
        verify(&credentials)?;
        let mut config = read_config(&self.path)?.unwrap_or_default();
        let auths = auths_mut(&mut config, &self.path)?;
        auths.retain(|k, _| normalise_registry(k).ok().as_deref() != Some(key.as_str()));
        let mut entry = Map::new();
        entry.insert("auth".into(), Value::String(credentials.encoded()));
        auths.insert(key, Value::Object(entry));
        self.write(&config)
    }

    /// Removes the saved credentials of `registry` from bulkhead's file; returns whether
    /// there were any. The Docker config is never modified.
    pub fn logout(&self, registry: &str) -> Result<bool, RegistryError> {
        let key = normalise_registry(registry)?;
        let Some(mut config) = read_config(&self.path)? else {
            return Ok(false);
        };
        let auths = auths_mut(&mut config, &self.path)?;
        let before = auths.len();
        auths.retain(|k, _| normalise_registry(k).ok().as_deref() != Some(key.as_str()));
        let removed = auths.len() != before;
        if removed {
            self.write(&config)?;
        }
        Ok(removed)
    }

    fn write(&self, config: &Map<String, Value>) -> Result<(), RegistryError> {
        let io_err = |source| RegistryError::CredentialsIo {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(io_err)?;
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(config).map_err(|e| io_err(io::Error::other(e)))?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err)?;
        file.write_all(&body)
            .and_then(|()| file.sync_all())
            .map_err(io_err)?;
        fs::rename(&tmp, &self.path).map_err(io_err)
    }
}

/// Canonical key of a registry: host[:port] without scheme or path, with Docker Hub's
/// historical names folded into `docker.io`.
fn normalise_registry(name: &str) -> Result<String, RegistryError> {
    let without_scheme = name
        .strip_prefix("https://")
        .or_else(|| name.strip_prefix("http://"))
        .unwrap_or(name);
    let host = without_scheme
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if host.is_empty() || host.chars().any(|c| c.is_whitespace()) {
        return Err(RegistryError::InvalidRegistry(name.to_owned()));
    }
    Ok(match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            bulkhead_image::DEFAULT_REGISTRY.to_owned()
        }
        _ => host,
    })
}

fn read_config(path: &Path) -> Result<Option<Map<String, Value>>, RegistryError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RegistryError::CredentialsIo {
                path: path.to_owned(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| RegistryError::CredentialsFormat {
            path: path.to_owned(),
            source,
        })
}

fn auths_mut<'a>(
    config: &'a mut Map<String, Value>,
    path: &Path,
) -> Result<&'a mut Map<String, Value>, RegistryError> {
    match config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()))
    {
        Value::Object(auths) => Ok(auths),
        _ => Err(RegistryError::CredentialsEntry {
            registry: "*".into(),
            path: path.to_owned(),
            reason: "\"auths\" is not an object".into(),
        }),
    }
}

fn lookup(path: &Path, registry: &str) -> Result<Option<Credentials>, RegistryError> {
    let Some(config) = read_config(path)? else {
        return Ok(None);
    };
    let Some(Value::Object(auths)) = config.get("auths") else {
        return Ok(None);
    };
    let entry = auths
        .iter()
        .find(|(k, _)| normalise_registry(k).ok().as_deref() == Some(registry));
    match entry {
        Some((_, value)) => parse_entry(value).map_err(|reason| RegistryError::CredentialsEntry {
            registry: registry.to_owned(),
            path: path.to_owned(),
            reason,
        }),
        None => Ok(None),
    }
}

/// Parses one `auths` entry: `{"auth": base64(user:pass)}` or `{"username","password"}`.
/// An entry without either (e.g. only an identity token) yields `None`.
fn parse_entry(value: &Value) -> Result<Option<Credentials>, String> {
    if let Some(auth) = value
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        let decoded = BASE64
            .decode(auth.trim())
            .map_err(|e| format!("\"auth\" is not base64: {e}"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| "\"auth\" is not UTF-8".to_owned())?;
        let (user, pass) = decoded
            .split_once(':')
            .ok_or_else(|| "\"auth\" is not user:password".to_owned())?;
        return Ok(Some(Credentials::new(user, pass)));
    }
    match (
        value.get("username").and_then(Value::as_str),
        value.get("password").and_then(Value::as_str),
    ) {
        (Some(user), Some(pass)) => Ok(Some(Credentials::new(user, pass))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn login_get_logout_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::with_paths(dir.path().join("auth.json"), None);
        assert_eq!(store.get("localhost:5000").unwrap(), None);
        store
            .login("https://localhost:5000/v2/", "alice", "s3:cret", |c| {
                assert_eq!(c.username, "alice");
                Ok(())
            })
            .unwrap();
        let mode = fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let got = store.get("localhost:5000").unwrap().unwrap();
        assert_eq!(got, Credentials::new("alice", "s3:cret"));
        assert!(store.logout("localhost:5000").unwrap());
        assert!(!store.logout("localhost:5000").unwrap());
        assert_eq!(store.get("localhost:5000").unwrap(), None);
    }

    #[test]
    fn failed_verification_saves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::with_paths(dir.path().join("auth.json"), None);
        let err = store
            .login("reg.example", "bob", "wrong", |_| {
                Err(RegistryError::InvalidRegistry("reg.example".into()))
            })
            .unwrap_err();
        assert!(matches!(err, RegistryError::InvalidRegistry(_)));
        assert!(!store.path().exists());
    }

    #[test]
    fn falls_back_to_docker_config_and_docker_hub_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let docker = dir.path().join("config.json");
        fs::write(
            &docker,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},"other.io":{"username":"u","password":"p"}},"credsStore":"desktop"}"#,
        )
        .unwrap();
        let store = CredentialStore::with_paths(dir.path().join("auth.json"), Some(docker));
        assert_eq!(
            store.get("docker.io").unwrap(),
            Some(Credentials::new("user", "pass"))
        );
        assert_eq!(
            store.get("other.io").unwrap(),
            Some(Credentials::new("u", "p"))
        );
        assert_eq!(store.get("third.io").unwrap(), None);
        // bulkhead's own file wins over the Docker config.
        store.login("docker.io", "mine", "pw", |_| Ok(())).unwrap();
        assert_eq!(
            store.get("index.docker.io").unwrap(),
            Some(Credentials::new("mine", "pw"))
        );
    }

    #[test]
    fn malformed_files_are_reported_with_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        fs::write(&path, "{not json").unwrap();
        let store = CredentialStore::with_paths(path.clone(), None);
        let err = store.get("x.io").unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        fs::write(&path, r#"{"auths":{"x.io":{"auth":"!!!"}}}"#).unwrap();
        let err = store.get("x.io").unwrap_err().to_string();
        assert!(err.contains("x.io") && err.contains("base64"), "{err}");
    }
}
