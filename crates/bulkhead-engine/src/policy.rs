//! The isolation policy: which isolation a container gets, whatever front end asked for it.
//!
//! An operator writes `<root>/policy.json` to say "untrusted images always get their own kernel":
//!
//! ```json
//! {
//!   "default_isolation": "process",
//!   "force_vm": ["registry.example.com/*", "docker.io/someone/*"],
//!   "process_allowed": ["docker.io/library/*", "localhost/*"]
//! }
//! ```
//!
//! - `default_isolation` (`process` or `vm`) applies when the caller does not choose.
//! - `force_vm`: an image with a name matching one of these patterns always runs in a VM.
//! - `process_allowed` (optional): when present, only images with a name matching one of these patterns
//!   may run with process isolation; every other image runs in a VM.
//!
//! Patterns are matched against an image's names without tag or digest (`REGISTRY/REPOSITORY`, e.g.
//! `docker.io/library/busybox`), where `*` stands for any run of characters. The name matched is the one
//! the caller used; a caller that names the image by id or digest gets every name the store has for it
//! matched, so an untrusted image cannot slip past a rule by being run by id. `force_vm` wins over
//! `process_allowed`. An explicit request for process
//! isolation that the policy forbids is refused with the rule that forbids it; it is never quietly
//! turned into a VM. A file that does not parse is an error when the engine opens, never a silent default.

use crate::{EngineError, Isolation};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The policy file as written by the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub default_isolation: Isolation,
    #[serde(default)]
    pub force_vm: Vec<String>,
    #[serde(default)]
    pub process_allowed: Option<Vec<String>>,
}

/// The policy in force, with the file it came from (for messages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IsolationPolicy {
    pub rules: PolicyFile,
    /// `None` when no policy file exists (the built-in policy: process by default, no rules).
    pub source: Option<PathBuf>,
}

/// Why an image must run in a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmRequirement {
    /// A `force_vm` pattern matched this name.
    Forced { pattern: String, name: String },
    /// `process_allowed` exists and no name matched it.
    NotAllowed,
}

impl IsolationPolicy {
    /// Reads `path`; a missing file is the built-in policy, a malformed one an error naming the cause.
    pub fn load(path: &Path) -> Result<IsolationPolicy, EngineError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(IsolationPolicy::default())
            }
            Err(e) => return Err(EngineError::io(path)(e)),
        };
        let bad = |reason: String| EngineError::Policy {
            path: path.to_path_buf(),
            reason,
        };
        let rules: PolicyFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let patterns = rules
            .force_vm
            .iter()
            .chain(rules.process_allowed.iter().flatten());
        for p in patterns {
            if p.is_empty() || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(bad(format!("invalid image pattern {p:?}")));
            }
        }
        Ok(IsolationPolicy {
            rules,
            source: Some(path.to_path_buf()),
        })
    }

    pub fn default_isolation(&self) -> Isolation {
        self.rules.default_isolation
    }

    /// Whether an image known by `names` (`REGISTRY/REPOSITORY`) must run in a VM, and why.
    pub fn requirement(&self, names: &[String]) -> Option<VmRequirement> {
        for pattern in &self.rules.force_vm {
            if let Some(name) = names.iter().find(|n| glob_match(pattern, n)) {
                return Some(VmRequirement::Forced {
                    pattern: pattern.clone(),
                    name: name.clone(),
                });
            }
        }
        match &self.rules.process_allowed {
            Some(allowed)
                if !names
                    .iter()
                    .any(|n| allowed.iter().any(|p| glob_match(p, n))) =>
            {
                Some(VmRequirement::NotAllowed)
            }
            _ => None,
        }
    }

    /// The isolation a container of an image known by `names` gets when `requested` (`None`: the
    /// caller did not choose). Refuses an explicit process request that a rule forbids. `names` is only
    /// asked for when a rule could apply (finding them reads the image store, on every `start`).
    pub fn decide(
        &self,
        image: &str,
        names: impl FnOnce() -> Vec<String>,
        requested: Option<Isolation>,
    ) -> Result<Isolation, EngineError> {
        let no_rules = self.rules.force_vm.is_empty() && self.rules.process_allowed.is_none();
        if no_rules || requested == Some(Isolation::Vm) {
            return Ok(requested.unwrap_or(self.default_isolation()));
        }
        let required = self.requirement(&names());
        match (requested, required) {
            (Some(Isolation::Process), Some(why)) => Err(EngineError::PolicyRefused {
                image: image.to_string(),
                rule: self.describe(&why),
            }),
            (_, Some(_)) => Ok(Isolation::Vm),
            (Some(chosen), None) => Ok(chosen),
            (None, None) => Ok(self.default_isolation()),
        }
    }

    /// Names the rule behind `why`, and the file it is in.
    pub fn describe(&self, why: &VmRequirement) -> String {
        let file = self
            .source
            .as_ref()
            .map(|p| format!(" in {}", p.display()))
            .unwrap_or_default();
        match why {
            VmRequirement::Forced { pattern, name } => {
                format!("force_vm rule \"{pattern}\"{file} matches {name}")
            }
            VmRequirement::NotAllowed => {
                format!("no process_allowed pattern{file} matches the image")
            }
        }
    }
}

/// `*` matches any run of characters (including none and including `/`); everything else itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let tail: Vec<&str> = parts.collect();
    let Some((last, middle)) = tail.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> Result<IsolationPolicy, EngineError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        std::fs::write(&path, json).unwrap();
        IsolationPolicy::load(&path)
    }

    #[test]
    fn globs() {
        assert!(glob_match(
            "docker.io/library/*",
            "docker.io/library/busybox"
        ));
        assert!(glob_match("*", "x"));
        assert!(glob_match("*/evil/*", "ghcr.io/evil/tool"));
        assert!(glob_match("a*b*c", "abc"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(!glob_match(
            "docker.io/library/*",
            "docker.io/libraryx/busybox"
        ));
        assert!(glob_match(
            "docker.io/library/demo",
            "docker.io/library/demo"
        ));
        assert!(!glob_match(
            "docker.io/library/demo",
            "docker.io/library/demo2"
        ));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn missing_file_is_the_built_in_policy() {
        let p = IsolationPolicy::load(Path::new("/nonexistent/policy.json")).unwrap();
        assert_eq!(p.default_isolation(), Isolation::Process);
        assert_eq!(p.decide("x", Vec::new, None).unwrap(), Isolation::Process);
        assert_eq!(
            p.decide("x", Vec::new, Some(Isolation::Vm)).unwrap(),
            Isolation::Vm
        );
    }

    #[test]
    fn malformed_files_are_errors_naming_the_cause() {
        let e = policy("{\"force_vm\": [").unwrap_err().to_string();
        assert!(e.contains("policy.json") && e.contains("EOF"), "{e}");
        let e = policy("{\"force-vm\": []}").unwrap_err().to_string();
        assert!(e.contains("unknown field"), "{e}");
        let e = policy("{\"default_isolation\": \"kvm\"}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant"), "{e}");
        let e = policy("{\"force_vm\": [\"\"]}").unwrap_err().to_string();
        assert!(e.contains("invalid image pattern"), "{e}");
    }

    #[test]
    fn rules_force_vm_and_refuse_explicit_process() {
        let p = policy(
            r#"{"force_vm": ["registry.example.com/*"], "process_allowed": ["docker.io/library/*"]}"#,
        )
        .unwrap();
        let untrusted = ["registry.example.com/ci/job".to_string()];
        let trusted = ["docker.io/library/busybox".to_string()];
        let unknown = ["docker.io/someone/tool".to_string()];
        assert_eq!(
            p.decide("i", || untrusted.to_vec(), None).unwrap(),
            Isolation::Vm
        );
        let e = p
            .decide("i", || untrusted.to_vec(), Some(Isolation::Process))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("force_vm rule \"registry.example.com/*\""),
            "{e}"
        );
        assert_eq!(
            p.decide("i", || trusted.to_vec(), None).unwrap(),
            Isolation::Process
        );
        assert_eq!(
            p.decide("i", || trusted.to_vec(), Some(Isolation::Process))
                .unwrap(),
            Isolation::Process
        );
        assert_eq!(
            p.decide("i", || unknown.to_vec(), None).unwrap(),
            Isolation::Vm
        );
        let e = p
            .decide("i", || unknown.to_vec(), Some(Isolation::Process))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no process_allowed pattern"), "{e}");
        // A forced name wins even if another name of the same image is allowed.
        let both = [trusted[0].clone(), untrusted[0].clone()];
        assert_eq!(
            p.decide("i", || both.to_vec(), None).unwrap(),
            Isolation::Vm
        );
    }

    #[test]
    fn default_isolation_applies_only_without_a_choice() {
        let p = policy(r#"{"default_isolation": "vm"}"#).unwrap();
        assert_eq!(p.decide("i", Vec::new, None).unwrap(), Isolation::Vm);
        assert_eq!(
            p.decide("i", Vec::new, Some(Isolation::Process)).unwrap(),
            Isolation::Process
        );
    }
}
