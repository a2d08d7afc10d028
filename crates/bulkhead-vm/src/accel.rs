//! Chooses how QEMU executes the guest: KVM when the host can really run a Linux guest under it, else
//! TCG (binary translation; slower, same isolation).
//!
//! KVM counts as usable only when (1) a hardware KVM module (`kvm_intel` or `kvm_amd`) is loaded, (2)
//! `/dev/kvm` opens and speaks API version 12, and (3) a one-instruction VM actually runs: a vCPU is
//! created and executes `hlt` at the reset vector, exiting with `KVM_EXIT_HLT`. The last step costs a few
//! milliseconds and catches a `/dev/kvm` that opens but cannot run guests (nested setups, seccomp'd
//! containers). A full Linux boot would be a stronger probe but costs seconds on every `bulkhead info`.
//! Nested paravirtual KVM (`kvm_pvm`) passes (2) and (3) but cannot run a standard Linux guest, so
//! criterion (1) rejects it explicitly.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::str::FromStr;

/// The accelerator QEMU uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelKind {
    Kvm,
    Tcg,
}

impl AccelKind {
    /// The name used on the command line and in `bulkhead info`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccelKind::Kvm => "kvm",
            AccelKind::Tcg => "tcg",
        }
    }
}

/// What the user asked for with `--accel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

impl FromStr for AccelChoice {
    type Err = AccelError;
    fn from_str(s: &str) -> Result<Self, AccelError> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            other => Err(AccelError::UnknownChoice(other.to_string())),
        }
    }
}

/// The decision and why it was taken (shown by `bulkhead info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accel {
    pub kind: AccelKind,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AccelError {
    #[error("unknown accelerator {0:?} (expected auto, kvm or tcg)")]
    UnknownChoice(String),
    #[error("the KVM accelerator was requested but KVM is unusable here: {0}")]
    KvmUnusable(String),
}

/// Resolves the accelerator choice: `auto` picks KVM when usable else TCG, `kvm` fails when KVM is unusable, `tcg`
/// always uses TCG.
pub fn detect(choice: AccelChoice) -> Result<Accel, AccelError> {
    if choice == AccelChoice::Tcg {
        return Ok(Accel {
            kind: AccelKind::Tcg,
            reason: "TCG was requested".to_string(),
        });
    }
    match (choice, kvm_usable()) {
        (_, Ok(reason)) => Ok(Accel {
            kind: AccelKind::Kvm,
            reason,
        }),
        (AccelChoice::Kvm, Err(why)) => Err(AccelError::KvmUnusable(why)),
        (_, Err(why)) => Ok(Accel {
            kind: AccelKind::Tcg,
            reason: why,
        }),
    }
}

/// `Ok(reason)` when KVM can run a Linux guest, `Err(why not)` otherwise.
fn kvm_usable() -> Result<String, String> {
    let hardware = ["kvm_intel", "kvm_amd"]
        .into_iter()
        .find(|m| Path::new("/sys/module").join(m).exists());
    let Some(module) = hardware else {
        if Path::new("/sys/module/kvm_pvm").exists() {
            return Err(
                "nested paravirtual KVM (kvm_pvm) cannot run a standard Linux guest".to_string(),
            );
        }
        return Err("no hardware KVM module (kvm_intel or kvm_amd) is loaded".to_string());
    };
    run_probe_vm().map_err(|e| format!("{module} is loaded but /dev/kvm cannot run a VM: {e}"))?;
    Ok(format!("{module} loaded and a probe VM ran on /dev/kvm"))
}

// KVM ioctl numbers from <linux/kvm.h>.
const KVMIO: u8 = 0xAE;
nix::ioctl_none!(kvm_get_api_version, KVMIO, 0x00);
nix::ioctl_none!(kvm_create_vm, KVMIO, 0x01);
nix::ioctl_none!(kvm_get_vcpu_mmap_size, KVMIO, 0x04);
nix::ioctl_none!(kvm_create_vcpu, KVMIO, 0x41);
nix::ioctl_write_ptr!(kvm_set_user_memory_region, KVMIO, 0x46, UserMemoryRegion);
nix::ioctl_none!(kvm_run, KVMIO, 0x80);

const KVM_API_VERSION: i32 = 12;
const KVM_EXIT_HLT: u32 = 5;
/// Offset of `exit_reason` in `struct kvm_run`.
const KVM_RUN_EXIT_REASON: usize = 8;
/// A vCPU starts at physical 0xffff_fff0 (CS base 0xffff_0000, IP 0xfff0); we map the last page below
/// 4 GiB and put `hlt` there.
const RESET_PAGE: u64 = 0xffff_f000;
const RESET_OFFSET: usize = 0xff0;
const HLT: u8 = 0xf4;

#[repr(C)]
struct UserMemoryRegion {
    slot: u32,
    flags: u32,
    guest_phys_addr: u64,
    memory_size: u64,
    userspace_addr: u64,
}

/// An anonymous private mapping, unmapped on drop.
struct Mapping {
    addr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn new(len: usize, fd: Option<&OwnedFd>) -> Result<Mapping, String> {
        let (flags, raw) = match fd {
            Some(fd) => (libc::MAP_SHARED, fd.as_raw_fd()),
            None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a fresh mapping chosen by the kernel; checked for MAP_FAILED below.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                raw,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        Ok(Mapping { addr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the region we mapped.
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

fn ioctl_fd(what: &str, r: nix::Result<i32>) -> Result<OwnedFd, String> {
    let fd = r.map_err(|e| format!("{what}: {e}"))?;
    // SAFETY: the ioctl returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates a VM with one page of memory holding `hlt` at the reset vector and runs its vCPU once.
fn run_probe_vm() -> Result<(), String> {
    let kvm = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("opening /dev/kvm: {e}"))?;
    // SAFETY: KVM ioctls without arguments on the fds they are defined for.
    let version = unsafe { kvm_get_api_version(kvm.as_raw_fd()) }.map_err(|e| e.to_string())?;
    if version != KVM_API_VERSION {
        return Err(format!(
            "KVM API version {version}, expected {KVM_API_VERSION}"
        ));
    }
    // Declared before the VM so it is unmapped only after the VM is gone.
    let page = Mapping::new(4096, None)?;
    // SAFETY: as above.
    let vm = ioctl_fd("KVM_CREATE_VM", unsafe { kvm_create_vm(kvm.as_raw_fd()) })?;
    // SAFETY: `page` is a live 4096-byte writable mapping.
    unsafe { *(page.addr as *mut u8).add(RESET_OFFSET) = HLT };
    let region = UserMemoryRegion {
        slot: 0,
        flags: 0,
        guest_phys_addr: RESET_PAGE,
        memory_size: 4096,
        userspace_addr: page.addr as u64,
    };
    // SAFETY: `region` describes `page`, which outlives the VM fd.
    unsafe { kvm_set_user_memory_region(vm.as_raw_fd(), &region) }
        .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION: {e}"))?;
    // SAFETY: KVM ioctls without pointer arguments.
    let vcpu = ioctl_fd("KVM_CREATE_VCPU", unsafe {
        kvm_create_vcpu(vm.as_raw_fd())
    })?;
    // SAFETY: as above.
    let run_size = unsafe { kvm_get_vcpu_mmap_size(kvm.as_raw_fd()) }
        .map_err(|e| format!("KVM_GET_VCPU_MMAP_SIZE: {e}"))?;
    let run_size = usize::try_from(run_size)
        .ok()
        .filter(|&n| n > KVM_RUN_EXIT_REASON + 4)
        .ok_or_else(|| format!("implausible kvm_run size {run_size}"))?;
    let run = Mapping::new(run_size, Some(&vcpu))?;
    // SAFETY: KVM_RUN takes no argument; results land in the `run` mapping.
    unsafe { kvm_run(vcpu.as_raw_fd()) }.map_err(|e| format!("KVM_RUN: {e}"))?;
    // SAFETY: exit_reason is a u32 inside the mapping, whose size was checked above.
    let exit_reason = unsafe {
        std::ptr::read_volatile((run.addr as *const u8).add(KVM_RUN_EXIT_REASON) as *const u32)
    };
    if exit_reason != KVM_EXIT_HLT {
        return Err(format!(
            "probe vCPU exited with reason {exit_reason}, expected HLT"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_choices() {
        assert_eq!("auto".parse::<AccelChoice>().unwrap(), AccelChoice::Auto);
        assert_eq!("kvm".parse::<AccelChoice>().unwrap(), AccelChoice::Kvm);
        assert_eq!("tcg".parse::<AccelChoice>().unwrap(), AccelChoice::Tcg);
        assert!(matches!(
            "hvf".parse::<AccelChoice>(),
            Err(AccelError::UnknownChoice(s)) if s == "hvf"
        ));
    }

    #[test]
    fn forced_tcg_is_always_tcg() {
        let accel = detect(AccelChoice::Tcg).unwrap();
        assert_eq!(accel.kind, AccelKind::Tcg);
    }
}
