//! One unprivileged uid (and the gid of the same number) per running VM, leased from a reserved range
//! with a lock file per uid. The kernel drops a `flock` when its holder dies, and QEMU dies with its
//! monitor (parent-death signal), so a crashed monitor never leaves a uid taken; two roots or two
//! concurrent starts never share one.

use super::JailError;
use bulkhead_fs::Lock;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

/// First uid of the range: just above systemd's container range (524288–1879048191) and below 2^31,
/// which some tools treat as negative.
pub const FIRST_UID: u32 = 0x7000_0000;
/// How many VMs can run at once on this host.
pub const UID_COUNT: u32 = 65536;
/// Where the per-uid lock files live (shared by every root, like the uids).
const LEASE_DIR: &str = "/run/bulkhead-jail-uids";

/// A uid held for one VM; released when dropped.
pub struct UidLease {
    uid: u32,
    _lock: Lock,
}

impl std::fmt::Debug for UidLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UidLease({})", self.uid)
    }
}

impl UidLease {
    /// Takes the lowest free uid. Always starting at the bottom keeps the lock files as few as the most
    /// VMs that ever ran at once; a held lock costs one non-blocking `flock` to skip.
    pub fn acquire() -> Result<UidLease, JailError> {
        let dir = Path::new(LEASE_DIR);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| JailError::io("creating", dir, e))?;
        for uid in FIRST_UID..FIRST_UID + UID_COUNT {
            let path = dir.join(uid.to_string());
            if let Some(lock) =
                Lock::try_exclusive(&path).map_err(|e| JailError::io("locking", &path, e))?
            {
                return Ok(UidLease { uid, _lock: lock });
            }
        }
        Err(JailError::NoFreeUid)
    }

    pub fn uid(&self) -> u32 {
        self.uid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_leases_differ_and_are_reused() {
        let a = UidLease::acquire().unwrap();
        let b = UidLease::acquire().unwrap();
        assert_ne!(a.uid(), b.uid());
        assert!((FIRST_UID..FIRST_UID + UID_COUNT).contains(&a.uid()));
        drop(a);
        let c = UidLease::acquire().unwrap();
        assert_ne!(c.uid(), b.uid());
    }
}
