//! Which isolation a bundle asks for: the annotation `io.bulkhead.isolation` (`process`, `vm`,
//! `hyperv`), else the name the runtime was called by (`bulkhead-runc-vm` asks for a VM), else nothing
//! (the operator's policy decides). The engine's isolation policy has the last word in every case.

use anyhow::{Context, Result};
use bulkhead_engine::Isolation;
use std::collections::BTreeMap;

pub const ANNOTATION: &str = "io.bulkhead.isolation";
/// containerd's CRI plugin: `sandbox` for a pod's sandbox, `container` for its others.
pub const CRI_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
/// containerd's CRI plugin: the image a container was created from (the policy matches it).
pub const CRI_IMAGE_NAME: &str = "io.kubernetes.cri.image-name";

pub fn requested(
    annotations: &BTreeMap<String, String>,
    vm_default: bool,
) -> Result<Option<Isolation>> {
    if let Some(value) = annotations.get(ANNOTATION) {
        let iso = value
            .parse::<Isolation>()
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("annotation {ANNOTATION}"))?;
        return Ok(Some(iso));
    }
    Ok(vm_default.then_some(Isolation::Vm))
}

pub fn is_sandbox(annotations: &BTreeMap<String, String>) -> bool {
    annotations.get(CRI_CONTAINER_TYPE).map(String::as_str) == Some("sandbox")
}

pub fn image_name(annotations: &BTreeMap<String, String>) -> Option<String> {
    annotations.get(CRI_IMAGE_NAME).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_annotation_wins_over_the_link_name() {
        let a = ann(&[(ANNOTATION, "process")]);
        assert_eq!(requested(&a, true).unwrap(), Some(Isolation::Process));
        let a = ann(&[(ANNOTATION, "hyperv")]);
        assert_eq!(requested(&a, false).unwrap(), Some(Isolation::Vm));
        assert_eq!(requested(&ann(&[]), true).unwrap(), Some(Isolation::Vm));
        assert_eq!(requested(&ann(&[]), false).unwrap(), None);
        let err = requested(&ann(&[(ANNOTATION, "kvm")]), false).unwrap_err();
        assert!(format!("{err:#}").contains(ANNOTATION), "{err:#}");
    }
}
