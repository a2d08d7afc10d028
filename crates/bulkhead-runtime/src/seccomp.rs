//! Syscall filtering. The default policy mirrors docker's default profile as a deny
//! list: everything is allowed except the syscalls below, which fail with EPERM unless
//! the container holds the capability that docker's profile ties them to. `clone3` fails
//! with ENOSYS so libc falls back to `clone`, whose namespace flags can be inspected.
//! Docker-format JSON profiles are supported too.
//!
//! libseccomp compiles a policy to a classic BPF program; the runtime loads that program with
//! `seccomp(2)` itself, so a program compiled elsewhere ([`SeccompPolicy::Compiled`]) loads the same way.

use std::collections::HashMap;
use std::io::{Read, Seek};

use caps::{Capability, CapsHashSet};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde::Deserialize;

use crate::error::RuntimeError;
use bulkhead_spec::{SeccompPolicy, SecuritySpec};
use nix::errno::Errno;
use nix::sys::memfd::MemFdCreateFlag;

/// Syscalls denied by the default policy, each with the capability that lifts the ban.
const DENIED: &[(&[&str], Option<Capability>)] = &[
    (
        &[
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "unshare",
            "setns",
            "quotactl",
            "quotactl_fd",
            "lookup_dcookie",
            "fanotify_init",
            "name_to_handle_at",
            "bpf",
            "perf_event_open",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "sethostname",
            "setdomainname",
        ],
        Some(Capability::CAP_SYS_ADMIN),
    ),
    (&["reboot"], Some(Capability::CAP_SYS_BOOT)),
    (
        &[
            "kexec_load",
            "kexec_file_load",
            "keyctl",
            "add_key",
            "request_key",
            "userfaultfd",
            "vm86",
            "vm86old",
            "uselib",
            "nfsservctl",
            "create_module",
            "get_kernel_syms",
            "query_module",
            "_sysctl",
            "sysfs",
            "ustat",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
        ],
        None,
    ),
    (
        &["init_module", "finit_module", "delete_module"],
        Some(Capability::CAP_SYS_MODULE),
    ),
    (
        &["ptrace", "process_vm_readv", "process_vm_writev", "kcmp"],
        Some(Capability::CAP_SYS_PTRACE),
    ),
    (&["acct"], Some(Capability::CAP_SYS_PACCT)),
    (&["swapon", "swapoff"], Some(Capability::CAP_SYS_ADMIN)),
    (&["syslog"], Some(Capability::CAP_SYSLOG)),
    (
        &["settimeofday", "stime", "clock_settime"],
        Some(Capability::CAP_SYS_TIME),
    ),
    (&["iopl", "ioperm"], Some(Capability::CAP_SYS_RAWIO)),
    (
        &["mbind", "move_pages", "set_mempolicy", "migrate_pages"],
        Some(Capability::CAP_SYS_NICE),
    ),
    (
        &["open_by_handle_at"],
        Some(Capability::CAP_DAC_READ_SEARCH),
    ),
];

/// clone flags that create namespaces.
const NAMESPACE_FLAGS: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];

/// Bits of the personality(2) values docker allows besides the 0xffffffff query:
/// PER_LINUX (0), PER_LINUX32 (0x8), UNAME26 (0x20000) and their union.
const ALLOWED_PERSONALITY_BITS: u64 = 0x20008;

/// (mask, expected) pairs whose union matches exactly the personality values docker
/// denies. libseccomp compares an argument at most once per rule and refuses allow rules
/// in an allow-by-default filter, so "not one of the five values" is spelled with single
/// masked comparisons on the 32-bit argument: a value is denied iff it has a bit outside
/// ALLOWED_PERSONALITY_BITS set and is not the query (which has every bit set). That is:
/// (a) bit 0 clear and some other disallowed bit j set, or (b) bit 0 set (itself
/// disallowed) and some bit i clear.
fn personality_denials() -> Vec<(u64, u64)> {
    let bit = |n: u32| 1u64 << n;
    let clear_bit0_set_j = (1..32)
        .filter(|j| bit(*j) & ALLOWED_PERSONALITY_BITS == 0)
        .map(|j| (bit(j) | 1, bit(j)));
    let set_bit0_clear_i = (1..32).map(|i| (bit(i) | 1, 1));
    clear_bit0_set_j.chain(set_bit0_clear_i).collect()
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

/// An allow list for the native architecture only (other architectures' calls are killed): the syscalls
/// in `allowed` are allowed, those in `unsupported` fail with ENOSYS (so callers fall back as on an older
/// kernel), every other one gets `default`. Names this kernel does not know are skipped.
pub fn allowlist(
    allowed: &[&str],
    unsupported: &[&str],
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

fn add_compat_arches(ctx: &mut ScmpFilterContext) -> Result<(), RuntimeError> {
    if ScmpArch::native() == ScmpArch::X8664 {
        for arch in [ScmpArch::X86, ScmpArch::X32] {
            ctx.add_arch(arch)
                .map_err(|e| seccomp_err(format!("adding arch {arch:?}"), e))?;
        }
    }
    Ok(())
}

/// Resolves a syscall name; names unknown to this architecture are skipped as docker does.
fn syscall(name: &str) -> Option<ScmpSyscall> {
    ScmpSyscall::from_name(name).ok()
}

fn default_filter(caps: &CapsHashSet) -> Result<ScmpFilterContext, RuntimeError> {
    let eperm = ScmpAction::Errno(libc::EPERM);
    let mut ctx = ScmpFilterContext::new_filter(ScmpAction::Allow)
        .map_err(|e| seccomp_err("creating the filter", e))?;
    add_compat_arches(&mut ctx)?;
    for (names, lifting_cap) in DENIED {
        if lifting_cap.is_some_and(|c| caps.contains(&c)) {
            continue;
        }
        for sc in names.iter().filter_map(|n| syscall(n)) {
            ctx.add_rule(eperm, sc)
                .map_err(|e| seccomp_err(format!("denying {sc:?}"), e))?;
        }
    }
    if !caps.contains(&Capability::CAP_SYS_ADMIN) {
        if let Some(clone) = syscall("clone") {
            for flag in NAMESPACE_FLAGS {
                let cmp = ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(flag), flag);
                ctx.add_rule_conditional(eperm, clone, &[cmp])
                    .map_err(|e| seccomp_err("restricting clone flags", e))?;
            }
        }
        if let Some(clone3) = syscall("clone3") {
            ctx.add_rule(ScmpAction::Errno(libc::ENOSYS), clone3)
                .map_err(|e| seccomp_err("denying clone3", e))?;
        }
    }
    if let Some(personality) = syscall("personality") {
        for (mask, datum) in personality_denials() {
            let cmp = ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(mask), datum);
            ctx.add_rule_conditional(eperm, personality, &[cmp])
                .map_err(|e| seccomp_err("restricting personality", e))?;
        }
    }
    Ok(ctx)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<i32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    syscalls: Vec<ProfileRule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileRule {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<i32>,
    #[serde(default)]
    args: Vec<ProfileArg>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileArg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

fn parse_action(name: &str, errno: Option<i32>) -> Result<ScmpAction, RuntimeError> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(errno.unwrap_or(libc::EPERM)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_TRAP" => ScmpAction::Trap,
        "SCMP_ACT_TRACE" => ScmpAction::Trace(errno.unwrap_or(0).clamp(0, u16::MAX as i32) as u16),
        "SCMP_ACT_LOG" => ScmpAction::Log,
        other => {
            return Err(RuntimeError::SeccompProfile(format!(
                "unsupported action {other:?}"
            )))
        }
    })
}

fn parse_op(arg: &ProfileArg) -> Result<ScmpArgCompare, RuntimeError> {
    let (op, datum) = match arg.op.as_str() {
        "SCMP_CMP_NE" => (ScmpCompareOp::NotEqual, arg.value),
        "SCMP_CMP_LT" => (ScmpCompareOp::Less, arg.value),
        "SCMP_CMP_LE" => (ScmpCompareOp::LessOrEqual, arg.value),
        "SCMP_CMP_EQ" => (ScmpCompareOp::Equal, arg.value),
        "SCMP_CMP_GE" => (ScmpCompareOp::GreaterEqual, arg.value),
        "SCMP_CMP_GT" => (ScmpCompareOp::Greater, arg.value),
        // Docker's format: `value` is the mask, `valueTwo` the expected result.
        "SCMP_CMP_MASKED_EQ" => (ScmpCompareOp::MaskedEqual(arg.value), arg.value_two),
        other => {
            return Err(RuntimeError::SeccompProfile(format!(
                "unsupported operator {other:?}"
            )))
        }
    };
    if arg.index > 5 {
        return Err(RuntimeError::SeccompProfile(format!(
            "argument index {} out of range",
            arg.index
        )));
    }
    Ok(ScmpArgCompare::new(arg.index, op, datum))
}

fn parse_arch(name: &str) -> Option<ScmpArch> {
    let arches: HashMap<&str, ScmpArch> = [
        ("SCMP_ARCH_X86_64", ScmpArch::X8664),
        ("SCMP_ARCH_X86", ScmpArch::X86),
        ("SCMP_ARCH_X32", ScmpArch::X32),
        ("SCMP_ARCH_AARCH64", ScmpArch::Aarch64),
        ("SCMP_ARCH_ARM", ScmpArch::Arm),
    ]
    .into_iter()
    .collect();
    arches.get(name).copied()
}

/// The docker name of the native architecture used in `includes.arches`.
fn native_docker_arch() -> &'static str {
    match ScmpArch::native() {
        ScmpArch::X8664 => "amd64",
        ScmpArch::Aarch64 => "arm64",
        ScmpArch::X86 => "386",
        _ => "unknown",
    }
}

fn filter_matches(includes: &Filter, excludes: &Filter, caps: &CapsHashSet) -> bool {
    let has_cap = |name: &String| {
        name.parse::<Capability>()
            .map(|c| caps.contains(&c))
            .unwrap_or(false)
    };
    let arch = native_docker_arch();
    let included = includes.caps.iter().all(has_cap)
        && (includes.arches.is_empty() || includes.arches.iter().any(|a| a == arch));
    let excluded = excludes.caps.iter().any(has_cap) || excludes.arches.iter().any(|a| a == arch);
    included && !excluded
}

fn profile_filter(json: &str, caps: &CapsHashSet) -> Result<ScmpFilterContext, RuntimeError> {
    let profile: Profile = serde_json::from_str(json)
        .map_err(|e| RuntimeError::SeccompProfile(format!("invalid JSON: {e}")))?;
    let default = parse_action(&profile.default_action, profile.default_errno_ret)?;
    let mut ctx = ScmpFilterContext::new_filter(default)
        .map_err(|e| seccomp_err("creating the filter", e))?;
    for arch in profile.architectures.iter().filter_map(|a| parse_arch(a)) {
        if arch != ScmpArch::native() {
            ctx.add_arch(arch)
                .map_err(|e| seccomp_err(format!("adding arch {arch:?}"), e))?;
        }
    }
    for rule in &profile.syscalls {
        if !filter_matches(&rule.includes, &rule.excludes, caps) {
            continue;
        }
        let action = parse_action(&rule.action, rule.errno_ret)?;
        if action == default {
            continue;
        }
        let cmps = rule
            .args
            .iter()
            .map(parse_op)
            .collect::<Result<Vec<_>, _>>()?;
        for name in rule.names.iter().chain(rule.name.iter()) {
            let Some(sc) = syscall(name) else { continue };
            ctx.add_rule_conditional(action, sc, &cmps)
                .map_err(|e| seccomp_err(format!("rule for {name}"), e))?;
        }
    }
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_filter_builds_with_and_without_caps() {
        assert!(default_filter(&CapsHashSet::new()).is_ok());
        let all = caps::runtime::thread_all_supported();
        assert!(default_filter(&all).is_ok());
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
        let direct = build(&SeccompPolicy::Default, false, &CapsHashSet::new()).unwrap();
        assert_eq!(direct, Some(program));
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
    fn personality_denials_match_docker() {
        let rules = personality_denials();
        let denied = |x: u64| rules.iter().any(|(mask, datum)| x & mask == *datum);
        for allowed in [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff] {
            assert!(!denied(allowed), "{allowed:#x}");
        }
        for bad in [
            0x1,
            0x9,
            0x0040_0000,
            0x20009,
            0xffff_fffe,
            0x7fff_ffff,
            0x0800_0000,
        ] {
            assert!(denied(bad), "{bad:#x}");
        }
    }

    #[test]
    fn docker_profile_parses() {
        let json = r#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["read", "write", "nosuchcall"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
                 "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
            ]
        }"#;
        assert!(profile_filter(json, &CapsHashSet::new()).is_ok());
        assert!(matches!(
            profile_filter("{", &CapsHashSet::new()),
            Err(RuntimeError::SeccompProfile(_))
        ));
        let bad_op = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"BOGUS"}]}]}"#;
        assert!(profile_filter(bad_op, &CapsHashSet::new()).is_err());
    }
}
