//! Reading a bundle: its config.json parsed (with the failing field named) and its rootfs resolved.

use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use super::BundleError;

/// A config.json larger than this is refused rather than read whole (real ones are a few KiB; a seccomp
/// profile makes them about 30 KiB).
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// The namespace types of the runtime spec (oci-spec's spellings included).
const NAMESPACE_TYPES: [&str; 10] = [
    "pid", "network", "net", "mount", "mnt", "ipc", "uts", "user", "cgroup", "time",
];

/// A bundle as `create` reads it.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory, with symlinks resolved.
    pub dir: PathBuf,
    /// The root filesystem directory, with symlinks resolved: inside `dir`, or the absolute path given.
    pub rootfs: PathBuf,
    pub spec: Spec,
}

/// Reads and checks `<bundle>/config.json` and resolves its `root.path`.
pub fn load(bundle: &Path) -> Result<Bundle, BundleError> {
    let dir = std::fs::canonicalize(bundle).map_err(|source| BundleError::Bundle {
        path: bundle.to_path_buf(),
        source,
    })?;
    if !dir.is_dir() {
        return Err(BundleError::BundleNotDirectory { path: dir });
    }
    let config = dir.join("config.json");
    let bytes = read_config(&config)?;
    let spec = parse(&bytes)?;
    let rootfs = rootfs(&dir, &spec)?;
    Ok(Bundle { dir, rootfs, spec })
}

fn read_config(path: &Path) -> Result<Vec<u8>, BundleError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BundleError::MissingConfig {
                path: path.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(BundleError::ReadConfig {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| BundleError::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(BundleError::invalid(
            "config.json",
            format!("larger than {MAX_CONFIG_BYTES} bytes"),
        ));
    }
    Ok(bytes)
}

/// Parses config.json's bytes. An unknown namespace type is named as such (oci-spec would only say
/// "unknown variant"); any other mismatch names the field's path.
pub fn parse(bytes: &[u8]) -> Result<Spec, BundleError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed {
            field: "config.json".into(),
            reason: e.to_string(),
        })?;
    if !value.is_object() {
        return Err(BundleError::Malformed {
            field: "config.json".into(),
            reason: "not a JSON object".into(),
        });
    }
    check_namespace_types(&value)?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        BundleError::Malformed {
            field: if field == "." {
                "config.json".into()
            } else {
                field
            },
            reason: e.into_inner().to_string(),
        }
    })
}

fn check_namespace_types(config: &serde_json::Value) -> Result<(), BundleError> {
    let Some(namespaces) = config
        .pointer("/linux/namespaces")
        .and_then(|n| n.as_array())
    else {
        return Ok(());
    };
    for (index, ns) in namespaces.iter().enumerate() {
        if let Some(kind) = ns.get("type").and_then(|t| t.as_str()) {
            if !NAMESPACE_TYPES.contains(&kind) {
                return Err(BundleError::UnknownNamespace {
                    index,
                    kind: kind.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// `root.path`: relative to the bundle and inside it once symlinks are resolved, or (as runc allows)
/// an absolute path to an existing directory.
fn rootfs(dir: &Path, spec: &Spec) -> Result<PathBuf, BundleError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or(BundleError::MissingField("root"))?;
    let path = root.path();
    if path.as_os_str().is_empty() {
        return Err(BundleError::MissingField("root.path"));
    }
    let joined = dir.join(path);
    let resolved = std::fs::canonicalize(&joined).map_err(|e| BundleError::Rootfs {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if path.is_relative() && !resolved.starts_with(dir) {
        return Err(BundleError::RootfsOutsideBundle {
            rootfs: path.clone(),
            resolved,
            bundle: dir.to_path_buf(),
        });
    }
    if !resolved.is_dir() {
        return Err(BundleError::Rootfs {
            path: path.clone(),
            reason: "not a directory".into(),
        });
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bundle_with(config: &serde_json::Value) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        dir
    }

    fn minimal(root: &str) -> serde_json::Value {
        json!({"ociVersion": "1.0.2", "root": {"path": root}, "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}})
    }

    #[test]
    fn loads_a_relative_rootfs() {
        let dir = bundle_with(&minimal("rootfs"));
        let bundle = load(dir.path()).unwrap();
        let canonical = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(bundle.rootfs, canonical.join("rootfs"));
        assert_eq!(bundle.dir, canonical);
    }

    #[test]
    fn absolute_rootfs_must_be_an_existing_directory() {
        let other = tempfile::tempdir().unwrap();
        let abs = other.path().to_str().unwrap().to_string();
        let dir = bundle_with(&minimal(&abs));
        assert_eq!(
            load(dir.path()).unwrap().rootfs,
            std::fs::canonicalize(other.path()).unwrap()
        );
        let dir = bundle_with(&minimal(&format!("{abs}/missing")));
        assert!(matches!(load(dir.path()), Err(BundleError::Rootfs { .. })));
        std::fs::write(other.path().join("file"), "").unwrap();
        let dir = bundle_with(&minimal(&format!("{abs}/file")));
        let err = load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn refuses_a_rootfs_escaping_the_bundle() {
        let dir = bundle_with(&minimal("../"));
        assert!(matches!(
            load(dir.path()),
            Err(BundleError::RootfsOutsideBundle { .. })
        ));
        let outside = tempfile::tempdir().unwrap();
        let dir = bundle_with(&minimal("link"));
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(matches!(err, BundleError::RootfsOutsideBundle { .. }));
        assert!(err.to_string().contains("outside the bundle"), "{err}");
    }

    #[test]
    fn missing_and_malformed_configs() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(BundleError::MissingConfig { .. })
        ));
        std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(matches!(err, BundleError::Malformed { .. }), "{err}");
        assert!(matches!(
            load(&dir.path().join("nope")),
            Err(BundleError::Bundle { .. })
        ));
        assert!(matches!(
            load(&dir.path().join("config.json")),
            Err(BundleError::BundleNotDirectory { .. })
        ));
    }

    #[test]
    fn malformed_fields_are_named() {
        let mut config = minimal("rootfs");
        config["process"]["rlimits"] = json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]);
        let err = parse(config.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("process.rlimits[0].type"), "{err}");
        let mut config = minimal("rootfs");
        config["process"]["capabilities"] = json!({"bounding": ["CAP_NOPE"]});
        let err = parse(config.to_string().as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("process.capabilities.bounding"),
            "{err}"
        );
        let err = parse(b"[]").unwrap_err();
        assert!(err.to_string().contains("at config.json"), "{err}");
        let err = parse(br#"{"process": 1}"#).unwrap_err();
        assert!(err.to_string().contains("at process:"), "{err}");
    }

    #[test]
    fn unknown_namespace_type_is_named() {
        let mut config = minimal("rootfs");
        config["linux"] = json!({"namespaces": [{"type": "pid"}, {"type": "bogus"}]});
        let err = parse(config.to_string().as_bytes()).unwrap_err();
        assert!(matches!(
            &err,
            BundleError::UnknownNamespace { index: 1, kind } if kind == "bogus"
        ));
        assert_eq!(
            err.to_string(),
            "linux.namespaces[1]: unknown namespace type \"bogus\""
        );
    }

    #[test]
    fn missing_root() {
        let dir = bundle_with(&json!({"ociVersion": "1.0.2"}));
        assert!(matches!(
            load(dir.path()),
            Err(BundleError::MissingField("root"))
        ));
    }
}
