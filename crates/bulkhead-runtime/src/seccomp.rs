//! Syscall filtering. The default policy is Docker's default profile as an allow list (the table in
//! [`default_profile`]): syscalls it does not know fail with ENOSYS, so a libc newer than the profile
//! falls back to older calls, and the ones it refuses fail with EPERM unless the container holds the
//! capability Docker ties them to. Arguments are filtered as Docker does: clone without namespace
//! flags, clone3 ENOSYS (so libc falls back to clone, whose flags can be inspected), five
//! personality values, and no AF_ALG or AF_VSOCK sockets. Docker-format JSON profiles are supported
//! too ([`docker_format`]).
//!
//! libseccomp compiles a policy to a classic BPF program; the runtime loads that program with
//! `seccomp(2)` itself, so a program compiled elsewhere ([`SeccompPolicy::Compiled`]) loads the same way.

mod default_profile;
mod docker_format;

use std::collections::BTreeSet;
use std::io::{Read, Seek};

use caps::CapsHashSet;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

use crate::error::RuntimeError;
use bulkhead_spec::{SeccompPolicy, SecuritySpec};
use default_profile::{
    allowed_on, ALLOWED, BY_CAPABILITY, CLONE_NAMESPACE_FLAGS, DENIED, DENIED_SOCKET_FAMILIES,
    PERSONALITIES,
};
use docker_format::profile_filter;
use nix::errno::Errno;
use nix::sys::memfd::MemFdCreateFlag;

/// The 32 bits the kernel reads of an `int` or `unsigned int` argument: filters compare only these,
/// so bits a caller sets above them cannot steer a rule (socket(0x1_0000_0026) is AF_ALG to the kernel).
const LOW32: u64 = 0xffff_ffff;

/// (mask, expected) pairs, masks within [`LOW32`], whose union matches exactly the values whose low
/// 32 bits are not in `excluded`. libseccomp compares an argument at most once per rule, so "none of
/// these values" is spelled as the complement of their binary prefix tree: at each bit, every branch
/// that no excluded value takes becomes one masked comparison.
fn low32_except(excluded: &[u64]) -> Vec<(u64, u64)> {
    let mut rules = Vec::new();
    for bit in (0..32).rev() {
        let mask = LOW32 & !((1u64 << bit) - 1);
        let parent_mask = mask & !(1u64 << bit);
        let parents: BTreeSet<u64> = excluded.iter().map(|v| v & parent_mask).collect();
        for parent in parents {
            for child in [parent, parent | 1u64 << bit] {
                if !excluded.iter().any(|v| v & mask == child) {
                    rules.push((mask, child));
                }
            }
        }
    }
    rules
}

fn seccomp_err(what: impl std::fmt::Display, e: libseccomp::error::SeccompError) -> RuntimeError {
    RuntimeError::Seccomp(format!("{what}: {e}"))
}

/// A compiled seccomp filter, ready to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program(Vec<libc::sock_filter>);

const INSN_SIZE: usize = std::mem::size_of::<libc::sock_filter>();

impl Program {
    /// Decodes `struct sock_filter` records as libseccomp exports them (native byte order).
    fn from_bytes(bytes: &[u8]) -> Result<Program, RuntimeError> {
        let count = bytes.len() / INSN_SIZE;
        if bytes.len() != count * INSN_SIZE || count == 0 || count > libc::BPF_MAXINSNS as usize {
            return Err(RuntimeError::Seccomp(format!(
                "a compiled filter of {} bytes is not 1 to {} BPF instructions",
                bytes.len(),
                libc::BPF_MAXINSNS
            )));
        }
        let insns = bytes
            .chunks_exact(INSN_SIZE)
            .map(|b| libc::sock_filter {
                code: u16::from_ne_bytes([b[0], b[1]]),
                jt: b[2],
                jf: b[3],
                k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
            })
            .collect();
        Ok(Program(insns))
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * INSN_SIZE);
        for insn in &self.0 {
            out.extend_from_slice(&insn.code.to_ne_bytes());
            out.extend_from_slice(&[insn.jt, insn.jf]);
            out.extend_from_slice(&insn.k.to_ne_bytes());
        }
        out
    }

    /// Compiles a libseccomp filter.
    fn compile(ctx: &ScmpFilterContext) -> Result<Program, RuntimeError> {
        let memfd = nix::sys::memfd::memfd_create(c"seccomp-bpf", MemFdCreateFlag::MFD_CLOEXEC)
            .map_err(|e| RuntimeError::sys("memfd_create", e))?;
        let mut file = std::fs::File::from(memfd);
        ctx.export_bpf(&mut file)
            .map_err(|e| seccomp_err("compiling the filter", e))?;
        let mut bytes = Vec::new();
        file.rewind()
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|e| RuntimeError::Seccomp(format!("reading the compiled filter: {e}")))?;
        Program::from_bytes(&bytes)
    }
}

/// Builds the filter for a container; `None` when no filter applies (unconfined or
/// privileged). Built by the caller before forking: the child only loads it.
pub(crate) fn build(
    policy: &SeccompPolicy,
    privileged: bool,
    caps: &CapsHashSet,
) -> Result<Option<Program>, RuntimeError> {
    if privileged {
        return Ok(None);
    }
    let ctx = match policy {
        SeccompPolicy::Unconfined => return Ok(None),
        SeccompPolicy::Compiled(bytes) => return Program::from_bytes(bytes).map(Some),
        SeccompPolicy::Default => default_filter(caps)?,
        SeccompPolicy::Profile(json) => profile_filter(json, caps)?,
    };
    Program::compile(&ctx).map(Some)
}

/// The policy in `security` compiled for the capabilities it grants: [`SeccompPolicy::Compiled`], or
/// [`SeccompPolicy::Unconfined`] when no filter applies.
pub fn compile(security: &SecuritySpec) -> Result<SeccompPolicy, RuntimeError> {
    let caps = crate::capabilities::resolve(security)?;
    Ok(
        match build(&security.seccomp, security.privileged, &caps)? {
            Some(program) => SeccompPolicy::Compiled(program.to_bytes()),
            None => SeccompPolicy::Unconfined,
        },
    )
}

/// A syscall allowed only while some bits of one argument are clear; with any of them set it fails
/// with EPERM.
#[derive(Debug, Clone, Copy)]
pub struct ArgBitsRefused {
    pub name: &'static str,
    /// The argument's index (0-based).
    pub arg: u32,
    /// Each bit refused on its own.
    pub bits: &'static [u64],
}

/// An allow list for the native architecture only (other architectures' calls are killed): the syscalls
/// in `allowed` are allowed, those in `unsupported` fail with ENOSYS (so callers fall back as on an older
/// kernel), those in `guarded` are allowed unless a refused bit is set (then EPERM), every other one gets
/// `default`. Names this kernel does not know are skipped.
pub fn allowlist(
    allowed: &[&str],
    unsupported: &[&str],
    guarded: &[ArgBitsRefused],
    default: ScmpAction,
) -> Result<Program, RuntimeError> {
    let mut ctx = ScmpFilterContext::new_filter(default)
        .map_err(|e| seccomp_err("creating the filter", e))?;
    let rules = [
        (allowed, ScmpAction::Allow),
        (unsupported, ScmpAction::Errno(libc::ENOSYS)),
    ];
    for (names, action) in rules {
        for sc in names.iter().filter_map(|n| syscall(n)) {
            ctx.add_rule(action, sc)
                .map_err(|e| seccomp_err(format!("adding {sc}"), e))?;
        }
    }
    for g in guarded {
        let Some(sc) = syscall(g.name) else { continue };
        let all: u64 = g.bits.iter().fold(0, |a, b| a | b);
        // Disjoint conditions: none of the bits set, or a given one set.
        let mut conditions = vec![(
            ScmpAction::Allow,
            ScmpArgCompare::new(g.arg, ScmpCompareOp::MaskedEqual(all), 0),
        )];
        for bit in g.bits {
            conditions.push((
                ScmpAction::Errno(libc::EPERM),
                ScmpArgCompare::new(g.arg, ScmpCompareOp::MaskedEqual(*bit), *bit),
            ));
        }
        for (action, compare) in conditions {
            ctx.add_rule_conditional(action, sc, &[compare])
                .map_err(|e| seccomp_err(format!("adding {sc}"), e))?;
        }
    }
    Program::compile(&ctx)
}

/// Loads `program` into the calling thread. Needs no_new_privs (or CAP_SYS_ADMIN), like any filter.
/// Only a system call, and the error is the bare errno: safe between `clone` and `exec`, where nothing
/// may allocate.
pub fn load(program: &Program) -> Result<(), Errno> {
    let fprog = libc::sock_fprog {
        // from_bytes bounds the length by BPF_MAXINSNS.
        len: program.0.len() as u16,
        filter: program.0.as_ptr().cast_mut(),
    };
    // SAFETY: fprog points at `len` valid instructions that outlive the call; the kernel copies them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    Errno::result(rc).map(drop)
}

/// The i386 ABI next to x86_64 (int 0x80 works from any process). Unlike Docker's profile, not x32:
/// it doubles the time libseccomp takes to generate the filter (some 40 ms per container start), and
/// an x32 syscall then meets libseccomp's bad-architecture action, which kills the thread.
fn add_compat_arches(ctx: &mut ScmpFilterContext) -> Result<(), RuntimeError> {
    if ScmpArch::native() == ScmpArch::X8664 {
        ctx.add_arch(ScmpArch::X86)
            .map_err(|e| seccomp_err("adding arch X86", e))?;
    }
    Ok(())
}

/// Resolves a syscall name; names unknown to this architecture are skipped as docker does.
fn syscall(name: &str) -> Option<ScmpSyscall> {
    ScmpSyscall::from_name(name).ok()
}

/// Adds a rule for `name`; a name the linked libseccomp does not know (a syscall newer than it) is
/// skipped and so stays under the ENOSYS default.
fn add(
    ctx: &mut ScmpFilterContext,
    action: ScmpAction,
    name: &str,
    cmps: &[ScmpArgCompare],
) -> Result<(), RuntimeError> {
    let Some(sc) = syscall(name) else {
        return Ok(());
    };
    ctx.add_rule_conditional(action, sc, cmps)
        .map_err(|e| seccomp_err(format!("rule for {name}"), e))
}

/// Adds one rule per masked comparison of argument 0.
fn add_masked(
    ctx: &mut ScmpFilterContext,
    action: ScmpAction,
    name: &str,
    rules: &[(u64, u64)],
) -> Result<(), RuntimeError> {
    for (mask, datum) in rules {
        let cmp = ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(*mask), *datum);
        add(ctx, action, name, &[cmp])?;
    }
    Ok(())
}

/// Docker's default profile for a container holding `caps` (see the module docs).
fn default_filter(caps: &CapsHashSet) -> Result<ScmpFilterContext, RuntimeError> {
    let eperm = ScmpAction::Errno(libc::EPERM);
    let mut ctx = ScmpFilterContext::new_filter(ScmpAction::Errno(libc::ENOSYS))
        .map_err(|e| seccomp_err("creating the filter", e))?;
    add_compat_arches(&mut ctx)?;
    // libseccomp's binary-tree layout (SCMP_FLTATR_CTL_OPTIMIZE 2) would shorten the syscall lookup
    // but takes it about twice as long to generate (~100 ms more per container start), so the
    // default layout stays, as runc keeps it.

    let granted = BY_CAPABILITY
        .iter()
        .filter(|(cap, _)| caps.contains(cap))
        .flat_map(|(_, names)| names.iter());
    let allowed: BTreeSet<&str> = ALLOWED
        .iter()
        .chain(allowed_on(ScmpArch::native()))
        .chain(granted)
        .copied()
        .collect();
    // Handled below with argument filters when not allowed outright.
    let filtered = ["clone", "clone3"];
    let refused: BTreeSet<&str> = DENIED
        .iter()
        .chain(BY_CAPABILITY.iter().flat_map(|(_, names)| names.iter()))
        .copied()
        .filter(|name| !allowed.contains(name) && !filtered.contains(name))
        .collect();
    for name in &allowed {
        add(&mut ctx, ScmpAction::Allow, name, &[])?;
    }
    for name in &refused {
        add(&mut ctx, eperm, name, &[])?;
    }

    // Without CAP_SYS_ADMIN: clone without namespace flags (EPERM with any), and clone3, whose
    // flags sit behind a pointer, falls to the ENOSYS default so libc retries with clone.
    if !allowed.contains("clone") {
        let none = ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(CLONE_NAMESPACE_FLAGS), 0);
        add(&mut ctx, ScmpAction::Allow, "clone", &[none])?;
        for bit in (0..32).map(|b| 1u64 << b) {
            if CLONE_NAMESPACE_FLAGS & bit != 0 {
                let set = ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(bit), bit);
                add(&mut ctx, eperm, "clone", &[set])?;
            }
        }
    }

    let personalities: Vec<(u64, u64)> = PERSONALITIES.iter().map(|p| (LOW32, *p)).collect();
    add_masked(&mut ctx, ScmpAction::Allow, "personality", &personalities)?;
    add_masked(
        &mut ctx,
        eperm,
        "personality",
        &low32_except(&PERSONALITIES),
    )?;

    let families: Vec<(u64, u64)> = DENIED_SOCKET_FAMILIES.iter().map(|f| (LOW32, *f)).collect();
    add_masked(&mut ctx, eperm, "socket", &families)?;
    add_masked(
        &mut ctx,
        ScmpAction::Allow,
        "socket",
        &low32_except(&DENIED_SOCKET_FAMILIES),
    )?;
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_child::{errno_of, report};
    use caps::Capability;
    use libc::{c_long, syscall};

    #[test]
    fn default_filter_builds_with_and_without_caps() {
        for caps in [CapsHashSet::new(), caps::runtime::thread_all_supported()] {
            let program = Program::compile(&default_filter(&caps).unwrap()).unwrap();
            assert!(program.0.len() < libc::BPF_MAXINSNS as usize);
        }
    }

    #[test]
    fn compiled_programs_round_trip_and_bad_ones_are_refused() {
        let security = SecuritySpec::default();
        let SeccompPolicy::Compiled(bytes) = compile(&security).unwrap() else {
            panic!("the default policy compiles to a program");
        };
        let program = build(
            &SeccompPolicy::Compiled(bytes.clone()),
            false,
            &CapsHashSet::new(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(program.to_bytes(), bytes);
        // Same input, same program: the host's compile is what the runtime would have built.
        let caps = crate::capabilities::resolve(&security).unwrap();
        let direct = build(&SeccompPolicy::Default, false, &caps).unwrap();
        assert!(
            direct == Some(program),
            "the same policy compiled twice differs"
        );
        for bad in [
            vec![],
            vec![0u8; 7],
            vec![0u8; (libc::BPF_MAXINSNS as usize + 1) * 8],
        ] {
            assert!(build(&SeccompPolicy::Compiled(bad), false, &CapsHashSet::new()).is_err());
        }
        let privileged = SecuritySpec {
            privileged: true,
            ..SecuritySpec::default()
        };
        assert_eq!(compile(&privileged).unwrap(), SeccompPolicy::Unconfined);
    }

    #[test]
    fn low32_except_matches_exactly_the_complement() {
        for excluded in [&PERSONALITIES[..], &DENIED_SOCKET_FAMILIES[..], &[0][..]] {
            let rules = low32_except(excluded);
            let matched = |x: u64| rules.iter().any(|(mask, datum)| x & mask == *datum);
            for v in excluded {
                assert!(!matched(*v), "{v:#x} of {excluded:x?}");
                // The kernel reads the low 32 bits: bits above them change nothing.
                assert!(!matched(v | 1 << 32), "{v:#x} with a high bit");
            }
            for v in (0..70).chain([0x2_0009, 0x40_0000, 0x7fff_ffff, 0xffff_fffe]) {
                assert_eq!(
                    matched(v),
                    !excluded.contains(&v),
                    "{v:#x} of {excluded:x?}"
                );
            }
            // Disjoint rules: no value is counted twice.
            for v in [1u64, 39, 41, 0xffff_fffe] {
                let hits = rules.iter().filter(|(m, d)| v & m == *d).count();
                assert!(hits <= 1, "{v:#x} matches {hits} rules");
            }
        }
    }

    /// Runs each probe (a raw syscall) in a forked child under `program` and returns 0 for each one
    /// that succeeded or the errno it failed with.
    fn errnos_under(program: &Program, probes: &[Probe]) -> Vec<i32> {
        crate::test_child::in_child(drop, |fd| {
            // SAFETY: prctl with integer arguments; load() allocates only on failure.
            let nnp = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            if nnp != 0 || load(program).is_err() {
                // SAFETY: leaves the child at once.
                unsafe { libc::_exit(100) };
            }
            for probe in probes {
                report(fd, errno_of(probe()));
            }
        })
    }

    /// clone(2) with `flags` and no new stack (a fork); the child exits at once.
    fn clone_with(flags: c_long) -> c_long {
        // SAFETY: without CLONE_VM the child runs on a copy of this stack and exits immediately.
        unsafe {
            let rc = syscall(libc::SYS_clone, flags | libc::SIGCHLD as c_long, 0, 0, 0, 0);
            match rc {
                0 => libc::_exit(0),
                pid if pid > 0 => {
                    libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
                }
                _ => {}
            }
            rc
        }
    }

    fn socket(family: c_long) -> c_long {
        // SAFETY: socket(2) with integer arguments; a created descriptor is closed again.
        unsafe {
            let fd = syscall(libc::SYS_socket, family, libc::SOCK_STREAM as c_long, 0);
            if fd >= 0 {
                libc::close(fd as i32);
            }
            fd
        }
    }

    /// A raw syscall made in the filtered child.
    type Probe = fn() -> c_long;

    // Syscall numbers (x86_64) newer than the profile and than this libc crate.
    const SYS_LSM_GET_SELF_ATTR: c_long = 459;
    const SYS_OPEN_TREE_ATTR: c_long = 467;
    const SYS_FILE_SETATTR: c_long = 469;
    // i386 syscall numbers, made through `int 0x80` (the i386 ABI, open to any x86_64 process).
    const I386_GETPID: i32 = 20;
    const I386_SOCKETCALL: i32 = 102;
    const I386_SOCKET: i32 = 359;

    /// An i386 syscall from this 64-bit process; a failure sets errno like libc's syscall().
    #[cfg(target_arch = "x86_64")]
    fn int80(nr: i32, a: i32, b: i32, c: i32) -> c_long {
        let mut ret = nr;
        // SAFETY: a syscall with integer arguments; ebx cannot be an operand (LLVM reserves it), so
        // the first argument is swapped in and out; the kernel clobbers r8-r11 on this path.
        unsafe {
            std::arch::asm!(
                "xchg {a:e}, ebx",
                "int 0x80",
                "xchg {a:e}, ebx",
                a = inout(reg) a => _,
                inout("eax") ret,
                in("ecx") b,
                in("edx") c,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            );
            if ret < 0 {
                *libc::__errno_location() = -ret;
                return -1;
            }
            if nr == I386_SOCKET {
                libc::close(ret);
            }
        }
        c_long::from(ret)
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn default_profile_allows_the_ordinary_and_refuses_the_rest() {
        let caps = crate::capabilities::resolve(&SecuritySpec::default()).unwrap();
        assert!(!caps.contains(&Capability::CAP_SYS_ADMIN));
        let program = build(&SeccompPolicy::Default, false, &caps)
            .unwrap()
            .unwrap();
        // SAFETY (all probes): raw syscalls with integer or static-string arguments.
        let probes: &[(&str, Probe, i32)] = &[
            ("getpid", || unsafe { syscall(libc::SYS_getpid) }, 0),
            (
                "openat+read+write /dev/null",
                || unsafe {
                    let fd = syscall(
                        libc::SYS_openat,
                        libc::AT_FDCWD,
                        c"/dev/null".as_ptr(),
                        libc::O_RDWR,
                    );
                    if fd < 0 {
                        return fd;
                    }
                    let mut buf = [0u8; 1];
                    let read = syscall(libc::SYS_read, fd, buf.as_mut_ptr(), 1);
                    let written = syscall(libc::SYS_write, fd, buf.as_ptr(), 1);
                    libc::close(fd as i32);
                    if read < 0 {
                        read
                    } else {
                        written
                    }
                },
                0,
            ),
            ("socket(AF_INET)", || socket(libc::AF_INET as c_long), 0),
            ("socket(AF_UNIX)", || socket(libc::AF_UNIX as c_long), 0),
            (
                "socket(AF_ALG)",
                || socket(libc::AF_ALG as c_long),
                libc::EPERM,
            ),
            (
                "socket(AF_VSOCK)",
                || socket(libc::AF_VSOCK as c_long),
                libc::EPERM,
            ),
            (
                "socket(AF_ALG | 1<<32)",
                || socket(libc::AF_ALG as c_long | 1 << 32),
                libc::EPERM,
            ),
            ("clone (fork)", || clone_with(0), 0),
            (
                "clone(CLONE_NEWUSER)",
                || clone_with(libc::CLONE_NEWUSER as c_long),
                libc::EPERM,
            ),
            (
                "clone(CLONE_NEWNET)",
                || clone_with(libc::CLONE_NEWNET as c_long),
                libc::EPERM,
            ),
            (
                "clone3",
                || unsafe { syscall(libc::SYS_clone3, 0, 0) },
                libc::ENOSYS,
            ),
            (
                "unshare(0)",
                || unsafe { syscall(libc::SYS_unshare, 0) },
                libc::EPERM,
            ),
            (
                "mount",
                || unsafe { syscall(libc::SYS_mount, 0, 0, 0, 0, 0) },
                libc::EPERM,
            ),
            (
                "keyctl",
                || unsafe { syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0) },
                libc::EPERM,
            ),
            (
                "io_uring_setup",
                || unsafe { syscall(libc::SYS_io_uring_setup, 0, 0) },
                libc::EPERM,
            ),
            (
                "personality(query)",
                || unsafe { syscall(libc::SYS_personality, 0xffff_ffffu32 as c_long) },
                0,
            ),
            (
                "personality(PER_LINUX)",
                || unsafe { syscall(libc::SYS_personality, 0) },
                0,
            ),
            (
                "personality(PER_BSD)",
                || unsafe { syscall(libc::SYS_personality, 6) },
                libc::EPERM,
            ),
            (
                "lsm_get_self_attr",
                || unsafe { syscall(SYS_LSM_GET_SELF_ATTR, 0, 0, 0, 0) },
                libc::ENOSYS,
            ),
            (
                "open_tree_attr",
                || unsafe { syscall(SYS_OPEN_TREE_ATTR, 0, 0, 0, 0, 0) },
                libc::ENOSYS,
            ),
            (
                "file_setattr",
                || unsafe { syscall(SYS_FILE_SETATTR, 0, 0, 0, 0, 0) },
                libc::ENOSYS,
            ),
            ("syscall 1000", || unsafe { syscall(1000) }, libc::ENOSYS),
            ("i386 getpid", || int80(I386_GETPID, 0, 0, 0), 0),
            (
                "i386 socket(AF_INET)",
                || int80(I386_SOCKET, libc::AF_INET, 1, 0),
                0,
            ),
            (
                "i386 socket(AF_ALG)",
                || int80(I386_SOCKET, libc::AF_ALG, 1, 0),
                libc::EPERM,
            ),
            (
                "i386 socketcall",
                || int80(I386_SOCKETCALL, 1, 0, 0),
                libc::EPERM,
            ),
        ];
        let calls: Vec<Probe> = probes.iter().map(|(_, f, _)| *f).collect();
        let got = errnos_under(&program, &calls);
        let mismatches: Vec<String> = probes
            .iter()
            .zip(&got)
            .filter(|((_, _, want), got)| want != *got)
            .map(|((name, _, want), got)| format!("{name}: want errno {want}, got {got}"))
            .collect();
        assert!(mismatches.is_empty(), "{mismatches:#?}");
    }

    #[test]
    fn capabilities_unlock_their_groups() {
        let mut caps = crate::capabilities::resolve(&SecuritySpec::default()).unwrap();
        caps.insert(Capability::CAP_SYS_ADMIN);
        let program = build(&SeccompPolicy::Default, false, &caps)
            .unwrap()
            .unwrap();
        // SAFETY: unshare(0) changes nothing; clone as in clone_with.
        let probes: [fn() -> c_long; 3] = [
            || unsafe { syscall(libc::SYS_unshare, 0) },
            || clone_with(0),
            // A new user namespace is allowed by the filter now; the kernel may still refuse it.
            || match clone_with(libc::CLONE_NEWUSER as c_long) {
                rc if rc < 0 && unsafe { *libc::__errno_location() } == libc::EPERM => -1,
                _ => 0,
            },
        ];
        assert_eq!(errnos_under(&program, &probes), vec![0, 0, 0]);
    }

    #[test]
    fn docker_profiles_honour_default_errno_ret() {
        let json = r#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 95,
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
            "syscalls": [
                {"names": ["write", "exit_group", "getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["getuid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
            ]
        }"#;
        let ctx = profile_filter(json, &CapsHashSet::new()).unwrap();
        if ScmpArch::native() == ScmpArch::X8664 {
            assert!(ctx.is_arch_present(ScmpArch::X86).unwrap());
            assert!(!ctx.is_arch_present(ScmpArch::Arm).unwrap());
        }
        let program = Program::compile(&ctx).unwrap();
        // SAFETY: raw syscalls without arguments.
        let probes: [fn() -> c_long; 3] = [
            || unsafe { syscall(libc::SYS_getpid) },
            || unsafe { syscall(libc::SYS_getppid) },
            || unsafe { syscall(libc::SYS_getuid) },
        ];
        assert_eq!(errnos_under(&program, &probes), vec![0, 95, 13]);
    }
}
