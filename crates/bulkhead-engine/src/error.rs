//! Engine errors, each naming the container or file it is about.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    #[error("no such volume: {0}")]
    NoSuchVolume(String),
    #[error("volume {name} is in use by container(s) {}", containers.join(", "))]
    VolumeInUse {
        name: String,
        containers: Vec<String>,
    },
    #[error("container name \"{0}\" is already in use")]
    NameInUse(String),
    #[error("container id prefix {0} is ambiguous")]
    Ambiguous(String),
    #[error("container {id} is {status}: {what}")]
    WrongState {
        id: String,
        status: String,
        what: String,
    },
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("isolation policy {path}: {reason}")]
    Policy { path: PathBuf, reason: String },
    #[error("process isolation is refused for image {image} by the isolation policy: {rule}; run it with vm isolation")]
    PolicyRefused { image: String, rule: String },
    #[error(
        "container {id} has settings that only its VM confined: {}; with {target} isolation they \
         would be privileges on the host",
        settings.join("; ")
    )]
    WouldWidenPrivileges {
        id: String,
        target: crate::Isolation,
        settings: Vec<String>,
    },
    #[error("no guest kernel is built yet: run `bulkhead kernel build` once (about 9 minutes)")]
    NoGuestKernel,
    #[error(transparent)]
    Kernel(#[from] bulkhead_vm::kernel::KernelError),
    #[error(transparent)]
    Image(#[from] bulkhead_image::ImageError),
    #[error(transparent)]
    Registry(#[from] bulkhead_registry::RegistryError),
    #[error(transparent)]
    Runtime(#[from] bulkhead_runtime::RuntimeError),
    #[error(transparent)]
    Vm(#[from] bulkhead_vm::VmError),
    #[error(transparent)]
    FileBind(#[from] crate::isolation::FileBindError),
    #[error(transparent)]
    Initramfs(#[from] bulkhead_vm::initramfs::InitramfsError),
    #[error("talking to the monitor of {id}: {source}")]
    Monitor {
        id: String,
        source: bulkhead_proto::ProtoError,
    },
    #[error("container {id}: no such file or directory: {path}")]
    NoSuchPath { id: String, path: String },
    #[error("container {id}: {what} failed: {message}")]
    Introspection {
        id: String,
        what: &'static str,
        message: String,
    },
    #[error("monitor of {id} failed to start the container: {message}")]
    StartFailed { id: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: corrupt state file: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "container {id}: a VM wrote its disk, and taking the disk's content back for process \
         isolation failed (the disk is kept as it was): {source}"
    )]
    DiskExport {
        id: String,
        #[source]
        source: crate::isolation::ExportError,
    },
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error(transparent)]
    Net(#[from] bulkhead_net::NetError),
    #[error("the wait was cancelled by its caller")]
    Cancelled,
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    #[error("network with name {0} already exists")]
    NetworkExists(String),
    #[error("network {name} is in use by container(s) {}: remove them or disconnect them first", containers.join(", "))]
    NetworkInUse {
        name: String,
        containers: Vec<String>,
    },
}

impl EngineError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EngineError {
        let path = path.into();
        move |source| EngineError::Io { path, source }
    }

    pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> EngineError {
        let what = what.into();
        move |source| EngineError::Sys { what, source }
    }

    /// Docker's convention: 125 when the engine itself failed, or the runtime's hint (126/127).
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Runtime(e) => e.exit_code_hint(),
            _ => 125,
        }
    }
}
