//! The cgroup v2 device filter. cgroup2 has no `devices` controller: the kernel asks the
//! BPF_PROG_TYPE_CGROUP_DEVICE programs attached to a process's cgroup (and its ancestors) whether
//! an mknod or open of a device node is allowed. The program is a few instructions per rule, so it is
//! assembled here (as runc and youki do) rather than compiled by an eBPF toolchain, and attached with
//! BPF_F_ALLOW_MULTI so programs a host manager put on ancestor cgroups keep applying too.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

use super::devices::{DeviceKind, DeviceRule, MKNOD, READ, WRITE};
use crate::error::RuntimeError;

// bpf(2) commands, program and attach types, flags (linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
// `type` in the low 16 bits of bpf_cgroup_dev_ctx.access_type.
const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;

// Opcodes: load a 32-bit word, 64-bit ALU with an immediate, jumps on an immediate, exit.
const LDX_MEM_W: u8 = 0x61;
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const JNE_K: u8 = 0x55;
const JSET_K: u8 = 0x45;
const EXIT: u8 = 0x95;

// Registers: R0 result, R1 the bpf_cgroup_dev_ctx {access_type, major, minor}, R2-R5 its fields.
const R0: u8 = 0;
const R1: u8 = 1;
const TYPE: u8 = 2;
const ACCESS: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;

/// `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Insn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | src << 4,
        off,
        imm,
    }
}

/// The program: each rule is a run of checks that each skip to the next rule on a mismatch,
/// followed by "return 1"; a request no rule matches returns 0 (EPERM).
fn assemble(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut prog = vec![
        insn(LDX_MEM_W, TYPE, R1, 0, 0),
        insn(ALU64_AND_K, TYPE, 0, 0, 0xffff),
        insn(LDX_MEM_W, ACCESS, R1, 0, 0),
        insn(ALU64_RSH_K, ACCESS, 0, 0, 16),
        insn(LDX_MEM_W, MAJOR, R1, 4, 0),
        insn(LDX_MEM_W, MINOR, R1, 8, 0),
    ];
    for rule in rules {
        let kind = match rule.kind {
            DeviceKind::Char => BPF_DEVCG_DEV_CHAR,
            DeviceKind::Block => BPF_DEVCG_DEV_BLOCK,
        };
        let denied_access = !rule.access & (MKNOD | READ | WRITE);
        let mut checks = vec![(JNE_K, TYPE, kind)];
        if denied_access != 0 {
            // Any requested access bit the rule does not grant.
            checks.push((JSET_K, ACCESS, denied_access as i32));
        }
        checks.extend(rule.major.map(|m| (JNE_K, MAJOR, m as i32)));
        checks.extend(rule.minor.map(|m| (JNE_K, MINOR, m as i32)));
        let count = checks.len();
        for (i, (code, reg, imm)) in checks.into_iter().enumerate() {
            // Past the remaining checks and this rule's two-instruction "return 1".
            let skip = (count - 1 - i + 2) as i16;
            prog.push(insn(code, reg, 0, skip, imm));
        }
        prog.push(insn(ALU64_MOV_K, R0, 0, 0, 1));
        prog.push(insn(EXIT, 0, 0, 0, 0));
    }
    prog.push(insn(ALU64_MOV_K, R0, 0, 0, 0));
    prog.push(insn(EXIT, 0, 0, 0, 0));
    prog
}

/// The head of `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &T) -> Result<libc::c_long, Errno> {
    // SAFETY: attr is a repr(C) prefix of union bpf_attr of the command, valid for the call; the
    // kernel reads size_of::<T>() bytes of it (and treats the rest of the union as zero).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>(),
        )
    };
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(rc)
    }
}

fn load_attr(prog: &[Insn], log: Option<&mut [u8]>) -> ProgLoadAttr {
    const LICENSE: &CStr = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..14].copy_from_slice(b"bulkhead_devcg");
    let (log_level, log_size, log_buf) = match log {
        Some(buf) => (1, buf.len() as u32, buf.as_mut_ptr() as u64),
        None => (0, 0, 0),
    };
    ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..ProgLoadAttr::default()
    }
}

/// Loads the program for `rules`; on a verifier refusal the error carries the verifier's log.
fn load(rules: &[DeviceRule]) -> Result<OwnedFd, RuntimeError> {
    let prog = assemble(rules);
    let fd = bpf(BPF_PROG_LOAD, &load_attr(&prog, None)).map_err(|errno| {
        // Again with the verifier's log, only to explain the refusal.
        let mut log = vec![0u8; 64 * 1024];
        let _ = bpf(BPF_PROG_LOAD, &load_attr(&prog, Some(&mut log)));
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        RuntimeError::Sys {
            op: format!(
                "loading the device filter (bpf BPF_PROG_LOAD; needs CONFIG_CGROUP_BPF): {}",
                String::from_utf8_lossy(&log[..end]).trim()
            ),
            source: errno,
        }
    })?;
    // SAFETY: BPF_PROG_LOAD returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Loads the program for `rules` and attaches it to the cgroup directory `cgroup`. The attachment
/// lives as long as the cgroup; the program descriptor is not needed afterwards.
pub(crate) fn attach(cgroup: BorrowedFd, rules: &[DeviceRule]) -> Result<(), RuntimeError> {
    let prog = load(rules)?;
    let attr = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &attr)
        .map(drop)
        .map_err(|e| RuntimeError::sys("attaching the device filter (bpf BPF_PROG_ATTACH)", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::devices::DEFAULT_RULES;

    #[test]
    fn rules_assemble_to_forward_jumps_inside_the_program() {
        let prog = assemble(DEFAULT_RULES);
        for (pc, i) in prog.iter().enumerate() {
            if i.code == JNE_K || i.code == JSET_K {
                let target = pc as i64 + 1 + i64::from(i.off);
                assert!(
                    target > pc as i64 && (target as usize) < prog.len(),
                    "{pc}: {i:?}"
                );
                // Every skip lands on the first check of the next rule or the final "return 0".
                let landing = prog[target as usize];
                assert!(
                    landing.code == JNE_K && landing.regs == TYPE || landing.imm == 0,
                    "{pc} jumps to {landing:?}"
                );
            }
        }
        assert_eq!(prog.last().unwrap().code, EXIT);
    }
}
