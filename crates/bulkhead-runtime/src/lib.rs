//! bulkhead-runtime: the container "user mode" shared by both isolation levels.
//!
//! The host monitor calls it for `--isolation=process`; the VM agent (PID 1 in the
//! guest, the same static binary) calls it unchanged inside the guest. It therefore
//! relies on no host-only path and no NSS, and works when the caller is PID 1.
//!
//! [`spawn`] and [`Container::exec`] must be called from a single-threaded process.

pub mod cgroups;
pub mod netlink;
pub mod rootfs;

mod capabilities;
mod channel;
mod container;
mod container_fs;
mod copy_up;
mod error;
mod mount_api;
mod namespaces;
mod network;
mod process_setup;
mod pty;
mod safe_path;
mod seccomp;
mod sysctls;
#[cfg(test)]
mod test_child;
mod users;

pub use bulkhead_spec::{
    ContainerSpec, IdMap, MountSpec, NamespaceKind, NamespacePath, NetworkMode, ProcessSpec,
    Resources, Rlimit, SeccompPolicy, SecuritySpec, Workload,
};
pub use cgroups::CgroupVersion;
pub use container::{exit_code, spawn, Container, ExecProcess, Stdio};
pub use error::RuntimeError;
pub use network::bring_loopback_up;
pub use nix::sys::signal::Signal;
pub use nix::sys::wait::WaitStatus;
pub use nix::unistd::Pid;
pub use pty::resize_pty;
pub use safe_path::open_in_root;
pub use seccomp::compile as compile_seccomp;
pub use seccomp::{
    allowlist as seccomp_allowlist, load as load_seccomp, ArgBitsRefused, Program as SeccompProgram,
};
