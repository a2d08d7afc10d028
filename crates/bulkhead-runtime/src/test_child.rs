//! Test helper: runs raw syscalls in a forked child (under a seccomp filter, in a cgroup...) and
//! collects the numbers it reports.

use std::io::Read;
use std::os::fd::FromRawFd;

/// Forks. The parent runs `admit(child_pid)` (e.g. moves it into a cgroup) and only then lets the
/// child run `child(report)`, which reports i32 words with [`report`]; the child then exits. Returns
/// the words. The child must make raw syscalls only (no allocation, no locks): the test harness's
/// other threads do not exist in it.
pub(crate) fn in_child(admit: impl FnOnce(i32), child: impl FnOnce(i32)) -> Vec<i32> {
    let (mut go, mut words) = ([0; 2], [0; 2]);
    // SAFETY: pipes and fork; the child makes raw syscalls on descriptors created here and exits.
    unsafe {
        assert_eq!(libc::pipe(go.as_mut_ptr()), 0);
        assert_eq!(libc::pipe(words.as_mut_ptr()), 0);
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            libc::close(go[1]);
            libc::close(words[0]);
            let mut byte = 0u8;
            if libc::read(go[0], (&mut byte as *mut u8).cast(), 1) != 1 {
                libc::_exit(100);
            }
            child(words[1]);
            libc::_exit(0);
        }
        libc::close(go[0]);
        libc::close(words[1]);
        admit(pid);
        assert_eq!(libc::write(go[1], [1u8].as_ptr().cast(), 1), 1);
        libc::close(go[1]);
        let mut bytes = Vec::new();
        std::fs::File::from_raw_fd(words[0])
            .read_to_end(&mut bytes)
            .unwrap();
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child status {status:#x}"
        );
        bytes
            .chunks_exact(4)
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
}

/// Reports one word to the parent; in the child only.
pub(crate) fn report(fd: i32, word: i32) {
    // SAFETY: writes 4 bytes from a local to the report pipe.
    unsafe { libc::write(fd, (&word as *const i32).cast(), 4) };
}

/// 0 if the raw syscall result `rc` is a success, else the errno it left.
pub(crate) fn errno_of(rc: i64) -> i32 {
    if rc < 0 {
        Errno::last_raw()
    } else {
        0
    }
}

use nix::errno::Errno;
