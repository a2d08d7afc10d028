//! The two isolation modes, for end-to-end tests that run one behaviour in both.

use std::sync::{Mutex, MutexGuard};

/// How a container is isolated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Namespaces and cgroups on the host kernel.
    Process,
    /// Its own QEMU microVM with the guest kernel.
    Vm,
}

impl Isolation {
    /// The `run`/`create` flag that chooses this mode.
    pub fn flag(self) -> &'static str {
        match self {
            Isolation::Process => "--isolation=process",
            Isolation::Vm => "--isolation=vm",
        }
    }

    /// The name `inspect` and `ps` show.
    pub fn name(self) -> &'static str {
        match self {
            Isolation::Process => "process",
            Isolation::Vm => "vm",
        }
    }
}

/// Held while a test's VMs run: one guest at a time per test process, since each TCG boot keeps a core
/// busy (cargo-nextest serialises `vm_` tests across processes, see .config/nextest.toml).
pub fn vm_lock() -> MutexGuard<'static, ()> {
    static VM_LOCK: Mutex<()> = Mutex::new(());
    // A test that failed while holding it leaves nothing for the next one to fear.
    VM_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
