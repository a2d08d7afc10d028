//! Compiled seccomp filters kept under `<root>/seccomp/<build>/`. Generating Docker's profile as an
//! allow list costs libseccomp some 30 ms (more on a loaded host) on every container start in both
//! modes, and the program depends only on the container's security settings and on the bulkhead build
//! that compiled it (its table and its libseccomp): `<build>` names this executable's identity, and a
//! new build removes the directories of older ones. Keeping a program is best effort: an unwritable
//! root costs the compile, never the start.

use crate::layout::Layout;
use crate::EngineError;
use bulkhead_fs::Durability;
use bulkhead_runtime::{SeccompPolicy, SecuritySpec};
use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The policy of `security` compiled ([`SeccompPolicy::Compiled`], or `Unconfined` when no filter
/// applies), from the cache when this build compiled it before.
pub(crate) fn compile(
    layout: &Layout,
    security: &SecuritySpec,
) -> Result<SeccompPolicy, EngineError> {
    let settings = serde_json::to_vec(security).expect("a SecuritySpec serialises");
    let cached = build_dir(layout).map(|dir| {
        let file = dir.join(format!(
            "{}.bpf",
            &hex::encode(Sha256::digest(&settings))[..32]
        ));
        (dir, file)
    });
    if let Some((_, file)) = &cached {
        if let Ok(program) = fs::read(file) {
            return Ok(SeccompPolicy::Compiled(program));
        }
    }
    let policy = bulkhead_runtime::compile_seccomp(security)?;
    if let (Some((dir, file)), SeccompPolicy::Compiled(program)) = (&cached, &policy) {
        let _ = bulkhead_fs::replace(file, program, dir, Durability::Data);
    }
    Ok(policy)
}

/// This build's directory, created (0700) if needed; `None` when the executable cannot be identified
/// or the directory cannot be made.
fn build_dir(layout: &Layout) -> Option<PathBuf> {
    let identity = bulkhead_fs::file_identity(Path::new("/proc/self/exe")).ok()?;
    let parent = layout.root().join("seccomp");
    let dir = parent.join(&hex::encode(Sha256::digest(identity.as_bytes()))[..16]);
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .ok()?;
        remove_other_builds(&parent, &dir);
    }
    Some(dir)
}

/// Best effort: the programs of older builds are never read again.
fn remove_other_builds(parent: &Path, keep: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.path() != keep {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_is_compiled_once_per_build_and_settings() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path());
        let stale = root.path().join("seccomp/0123456789abcdef");
        fs::create_dir_all(&stale).unwrap();
        let security = SecuritySpec::default();
        let first = compile(&layout, &security).unwrap();
        assert!(matches!(first, SeccompPolicy::Compiled(_)));
        assert!(!stale.exists(), "an older build's programs are removed");
        let dir = build_dir(&layout).unwrap();
        let files: Vec<_> = fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);
        // What is kept is what is served: replace it and the next start gets the replacement.
        fs::write(files[0].path(), [7u8; 8]).unwrap();
        assert_eq!(
            compile(&layout, &security).unwrap(),
            SeccompPolicy::Compiled(vec![7u8; 8])
        );
        let privileged = SecuritySpec {
            privileged: true,
            ..SecuritySpec::default()
        };
        assert_eq!(
            compile(&layout, &privileged).unwrap(),
            SeccompPolicy::Unconfined
        );
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    }
}
