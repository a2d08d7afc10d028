//! `create`: the bundle read and checked, the relay forked (it holds the namespaces and the caller's
//! stdio), the engine's container made from the bundle's directory and workload, the create hooks run,
//! and the pid file written last: a failure at any step leaves nothing behind.

use super::Ctx;
use crate::bundle;
use crate::hooks::{self, Phase};
use crate::isolation;
use crate::record::RelayInfo;
use crate::relay::{self, Job, Namespaces, Ns, RelaySpec};
use anyhow::{bail, Context, Result};
use bulkhead_engine::{BundleCreate, NetworkMode};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::path::{Path, PathBuf};

/// What `create` and `run` share.
pub struct CreateArgs {
    pub id: String,
    pub bundle: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: i32,
}

impl From<liboci_cli::Create> for CreateArgs {
    fn from(a: liboci_cli::Create) -> Self {
        CreateArgs {
            id: a.container_id,
            bundle: a.bundle,
            console_socket: a.console_socket,
            pid_file: a.pid_file,
            no_pivot: a.no_pivot,
            preserve_fds: a.preserve_fds,
        }
    }
}

impl From<&liboci_cli::Run> for CreateArgs {
    fn from(a: &liboci_cli::Run) -> Self {
        CreateArgs {
            id: a.container_id.clone(),
            bundle: a.bundle.clone(),
            console_socket: a.console_socket.clone(),
            pid_file: a.pid_file.clone(),
            no_pivot: a.no_pivot,
            preserve_fds: a.preserve_fds,
        }
    }
}

/// Creates the container; returns the relay's pid.
pub fn create(ctx: &Ctx, a: &CreateArgs) -> Result<Pid> {
    if a.preserve_fds > 0 {
        bail!(
            "--preserve-fds is not supported: a container's stdio reaches it through the relay and the \
             engine's monitor (or a VM), which cannot carry other file descriptors"
        );
    }
    if a.no_pivot {
        bail!("--no-pivot is not supported: bulkhead always enters the root with pivot_root");
    }
    let record = ctx.record(&a.id)?;
    let bundle_dir = std::fs::canonicalize(&a.bundle)
        .with_context(|| format!("bundle {}", a.bundle.display()))?;
    let bundle = bundle::load(&bundle_dir)?;
    let spec = &bundle.spec;
    hooks::check(spec.hooks().as_ref())?;
    let annotations = bundle::annotations(spec);
    let sandbox = isolation::is_sandbox(&annotations);
    let requested = isolation::requested(&annotations, ctx.vm_default)?;
    let tty = spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal().unwrap_or(false));
    if tty && a.console_socket.is_none() && !nix::unistd::isatty(0).unwrap_or(false) {
        bail!(
            "the bundle asks for a terminal (process.terminal) but no --console-socket was given and \
             stdin is not a terminal"
        );
    }
    if a.console_socket.is_some() && !tty {
        bail!("--console-socket was given but the bundle asks for no terminal (process.terminal)");
    }
    record.create()?;
    let made = (|| -> Result<Pid> {
        let namespaces = relay_namespaces(spec)?;
        let pid = relay::spawn(&RelaySpec {
            name: a.id.clone(),
            engine: ctx.engine_config().clone(),
            fifo: Some(record.fifo()),
            namespaces: namespaces.clone(),
            console_socket: a.console_socket.clone(),
            tty,
            job: if sandbox {
                Job::Sandbox
            } else {
                Job::Container
            },
        })?;
        let info = RelayInfo {
            pid: pid.as_raw(),
            start: bulkhead_engine::state::start_time(pid.as_raw()),
            bundle: bundle_dir.clone(),
            rootfs: bundle.rootfs.clone(),
            created: chrono::Utc::now(),
            annotations: annotations.clone(),
            hooks: spec.hooks().clone(),
            sandbox,
        };
        let made = (|| -> Result<()> {
            if !sandbox {
                let mut workload = bundle::workload(spec, pid.as_raw())?;
                // A new network namespace is the relay's, so a pod's other containers (which CRI
                // points at /proc/<pid>/ns/net) join the same one.
                if namespaces.net == Ns::New {
                    workload.network = NetworkMode::Namespace(format!("/proc/{pid}/ns/net").into());
                }
                ctx.engine()?.create_bundle(&BundleCreate {
                    name: a.id.clone(),
                    rootfs: bundle.rootfs.clone(),
                    workload,
                    isolation: requested,
                    image_name: isolation::image_name(&annotations),
                    labels: annotations.clone(),
                    open_stdin: true,
                })?;
            }
            record.save(&info)?;
            let state = ctx.load(&a.id)?.state_json();
            hooks::run(info.hooks.as_ref(), Phase::Create, &state)?;
            if let Some(path) = &a.pid_file {
                write_pid_file(path, pid)?;
            }
            Ok(())
        })();
        if let Err(e) = made {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            if !sandbox {
                let _ = ctx.engine().and_then(|e| Ok(e.remove(&a.id, true, false)?));
            }
            return Err(e);
        }
        Ok(pid)
    })();
    if made.is_err() {
        let _ = record.remove();
    }
    made
}

/// The relay's network, IPC and UTS namespaces, from the spec's: a path is joined, an entry without
/// one is new, no entry is the caller's (host networking, say).
fn relay_namespaces(spec: &Spec) -> Result<Namespaces> {
    let entries = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let of = |kind: LinuxNamespaceType| -> Ns {
        match entries.iter().find(|n| n.typ() == kind) {
            None => Ns::Keep,
            Some(n) => match n.path() {
                Some(path) => Ns::Join(path.clone()),
                None => Ns::New,
            },
        }
    };
    Ok(Namespaces {
        net: of(LinuxNamespaceType::Network),
        ipc: of(LinuxNamespaceType::Ipc),
        uts: of(LinuxNamespaceType::Uts),
    })
}

/// Written through a temporary file and renamed, so a caller never reads half a pid.
pub(super) fn write_pid_file(path: &Path, pid: Pid) -> Result<()> {
    let tmp = path.with_extension("bulkhead-tmp");
    std::fs::write(&tmp, pid.to_string()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
