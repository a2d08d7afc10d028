//! `bulkhead-runc`: runc's command-line contract over the engine facade, so that podman, containerd and
//! Kubernetes (CRI, RuntimeClass) run their containers on bulkhead in either isolation mode.

pub mod bundle;
