//! What a process forked to outlive its parent's work (the process-mode agent, the OCI runtime's relay)
//! does first: let go of every descriptor it inherited but stdio and the one it keeps.

use std::os::fd::RawFd;

/// Closes every fd above stderr except `keep`.
pub fn close_all_but(keep: RawFd) {
    // SAFETY: close_range on fd ranges of our own process; `keep` stays open.
    unsafe {
        if keep > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, (keep - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32);
    }
}
