//! Namespaces a container joins by path instead of getting new ones ([`Workload::join_namespaces`]):
//! opened before the container exists, entered by the caller around the clone of its init (so the
//! namespaces it creates there, a user namespace above all, own nothing joined), and left right after.
//!
//! [`Workload::join_namespaces`]: bulkhead_spec::Workload::join_namespaces

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};
use nix::sys::stat::fstat;

use crate::error::RuntimeError;
use bulkhead_spec::{NamespaceKind, NamespacePath};

/// A namespace to join, opened.
#[derive(Debug)]
struct Join {
    kind: NamespaceKind,
    fd: OwnedFd,
    path: PathBuf,
}

/// The namespaces a container joins, opened.
#[derive(Debug, Default)]
pub(crate) struct Joins(Vec<Join>);

fn flag(kind: NamespaceKind) -> CloneFlags {
    match kind {
        NamespaceKind::Ipc => CloneFlags::CLONE_NEWIPC,
        NamespaceKind::Uts => CloneFlags::CLONE_NEWUTS,
    }
}

/// The name of `kind` under /proc/PID/ns.
pub(crate) fn proc_name(kind: NamespaceKind) -> &'static str {
    match kind {
        NamespaceKind::Ipc => "ipc",
        NamespaceKind::Uts => "uts",
    }
}

impl Joins {
    pub(crate) fn open(paths: &[NamespacePath]) -> Result<Joins, RuntimeError> {
        let mut joins: Vec<Join> = Vec::new();
        for NamespacePath { kind, path } in paths {
            if joins.iter().any(|j| j.kind == *kind) {
                return Err(RuntimeError::InvalidSpec(format!(
                    "the {} namespace is joined twice",
                    proc_name(*kind)
                )));
            }
            let fd = std::fs::File::open(path)
                .map_err(|e| RuntimeError::io("open namespace", path, e))?;
            joins.push(Join {
                kind: *kind,
                fd: fd.into(),
                path: path.clone(),
            });
        }
        Ok(Joins(joins))
    }

    /// Whether the container joins a namespace of `kind` rather than getting a new one.
    pub(crate) fn joins(&self, kind: NamespaceKind) -> bool {
        self.0.iter().any(|j| j.kind == kind)
    }

    /// The joined namespace of `kind`, if any.
    pub(crate) fn get(&self, kind: NamespaceKind) -> Option<&OwnedFd> {
        self.0.iter().find(|j| j.kind == kind).map(|j| &j.fd)
    }

    /// Moves the caller into the joined namespaces; [`Entered::leave`] moves it back.
    pub(crate) fn enter(&self) -> Result<Entered, RuntimeError> {
        let mut entered = Entered(Vec::new());
        for join in &self.0 {
            let name = proc_name(join.kind);
            let own = std::fs::File::open(format!("/proc/self/ns/{name}"))
                .map_err(|e| RuntimeError::io("open", format!("/proc/self/ns/{name}"), e))?;
            if let Err(e) = setns(&join.fd, flag(join.kind)) {
                // Back to where we were before reporting.
                let _ = entered.leave();
                return Err(RuntimeError::sys(
                    format!("joining the {name} namespace {}", join.path.display()),
                    e,
                ));
            }
            entered.0.push((own.into(), flag(join.kind)));
        }
        Ok(entered)
    }
}

/// The caller's own namespaces, to return to after the clone.
#[must_use]
pub(crate) struct Entered(Vec<(OwnedFd, CloneFlags)>);

impl Entered {
    pub(crate) fn leave(self) -> Result<(), RuntimeError> {
        for (fd, flag) in self.0.iter().rev() {
            setns(fd, *flag).map_err(|e| {
                RuntimeError::sys(format!("returning to our {flag:?} namespace"), e)
            })?;
        }
        Ok(())
    }
}

/// nsfs's filesystem magic number.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// The fixed inode numbers of the kernel's initial namespaces (`PROC_*_INIT_INO`). The initial network
/// namespace has one only on recent kernels; older ones number it dynamically from 0xF0000000, so the
/// constant never matches another namespace there.
fn initial_inode(name: &str) -> Option<u64> {
    match name {
        "ipc" => Some(0xEFFF_FFFF),
        "uts" => Some(0xEFFF_FFFE),
        "net" => Some(0xEFFF_FFF9),
        _ => None,
    }
}

/// Whether `ns` (a namespace descriptor) is the host's namespace `name`: the kernel's initial one, or
/// that of PID 1 (where this process may read it). Never when this process is PID 1 (a VM guest's
/// agent, whose kernel is the container's own).
pub(crate) fn is_hosts(ns: impl AsFd, name: &str) -> Result<bool, RuntimeError> {
    if std::process::id() == 1 {
        return Ok(false);
    }
    let ours = fstat(ns.as_fd().as_raw_fd())
        .map_err(|e| RuntimeError::sys(format!("stat of a {name} namespace"), e))?;
    let fs = nix::sys::statfs::fstatfs(ns.as_fd())
        .map_err(|e| RuntimeError::sys(format!("statfs of a {name} namespace"), e))?;
    if fs.filesystem_type().0 as i64 != NSFS_MAGIC {
        return Err(RuntimeError::InvalidSpec(format!(
            "the {name} namespace to join is not a namespace file"
        )));
    }
    if initial_inode(name) == Some(ours.st_ino) {
        return Ok(true);
    }
    // PID 1 of another user namespace (a sandbox's) may not be readable: then only the initial
    // namespaces above count as the host's.
    let path = format!("/proc/1/ns/{name}");
    match std::fs::metadata(&path) {
        Ok(host) => Ok(host.ino() == ours.st_ino && host.dev() == ours.st_dev),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(false),
        Err(e) => Err(RuntimeError::io("stat", &path, e)),
    }
}

/// [`is_hosts`] for a path.
pub(crate) fn path_is_hosts(path: &Path, name: &str) -> Result<bool, RuntimeError> {
    let fd = std::fs::File::open(path).map_err(|e| RuntimeError::io("open", path, e))?;
    is_hosts(&fd, name)
}
