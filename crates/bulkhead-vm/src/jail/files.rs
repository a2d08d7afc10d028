//! What of the host's filesystem the jail shows QEMU: its binary and the shared libraries the dynamic
//! loader resolves for it, the TCG accelerator module, the microvm firmware (qboot), the guest kernel and
//! initramfs, and a few character devices. Each is a single read-only bind mount of one file at the path
//! QEMU looks for it; the disks, the agent socket and the logs are file descriptors instead. The host
//! directories shared with the guest (volumes, binds) are directory binds at `/shares/<i>`: not
//! recursive (a mount below the directory is not shown), nosuid, nodev, noexec, and read-only when the
//! share is.

use super::JailError;
use crate::accel::AccelKind;
use crate::cache::{default_cache_dir, remembered};
use crate::host::Share;
use crate::qemu::QEMU;
use bulkhead_fs::file_identity;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The x86-64 dynamic loader, at the path the ELF ABI fixes for every binary.
const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
/// Where the guest kernel and the initramfs appear in the jail.
pub const JAIL_KERNEL: &str = "/vmlinux";
pub const JAIL_INITRAMFS: &str = "/initramfs";

/// How a bind mount is restricted (all are nosuid, and read-only but for a writable share).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindKind {
    /// Code QEMU maps executable: the binary, libraries, modules.
    Code,
    /// Data only: noexec, nodev.
    Data,
    /// A character device: noexec, device access allowed.
    Device,
    /// A directory shared with the guest over 9p: noexec, nodev, writable unless `readonly`.
    Share { readonly: bool },
}

/// Where share `index` appears in the jail (QEMU's `-fsdev path=`).
pub fn jail_share_path(index: usize) -> PathBuf {
    PathBuf::from(format!("/shares/{index}"))
}

/// One host file shown in the jail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub host: PathBuf,
    /// Absolute path inside the jail.
    pub jail: PathBuf,
    pub kind: BindKind,
}

/// The QEMU binary as `PATH` finds it.
pub fn qemu_binary() -> Result<PathBuf, JailError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(QEMU))
        .find(|p| p.is_file())
        .ok_or(JailError::NoQemu)
}

/// Everything the jail binds for a VM with `accel` and `shares`.
pub fn binds(
    qemu: &Path,
    kernel: &Path,
    initramfs: &Path,
    accel: AccelKind,
    shares: &[Share],
) -> Result<Vec<Bind>, JailError> {
    let same = |host: PathBuf, kind| Bind {
        jail: host.clone(),
        host,
        kind,
    };
    let mut out = vec![same(qemu.to_path_buf(), BindKind::Code)];
    // A wrapper script brings its interpreter (a static one, or one with its libraries).
    let program = match interpreter(qemu)? {
        Some(interp) => {
            out.push(same(interp.clone(), BindKind::Code));
            interp
        }
        None => qemu.to_path_buf(),
    };
    out.extend(
        libraries(&program)?
            .into_iter()
            .map(|l| same(l, BindKind::Code)),
    );
    // QEMU finds its firmware and modules relative to its own directory (it has no /proc to ask).
    let prefix = qemu
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"));
    let firmware = prefix.join("share/qemu/qboot.rom");
    if firmware.exists() {
        out.push(same(firmware, BindKind::Data));
    }
    if accel == AccelKind::Tcg {
        let module = ["lib/x86_64-linux-gnu/qemu", "lib64/qemu", "lib/qemu"]
            .iter()
            .map(|d| prefix.join(d).join("accel-tcg-x86_64.so"))
            .find(|m| m.exists());
        out.extend(module.map(|m| same(m, BindKind::Code)));
    }
    out.push(Bind {
        host: kernel.to_path_buf(),
        jail: JAIL_KERNEL.into(),
        kind: BindKind::Data,
    });
    out.push(Bind {
        host: initramfs.to_path_buf(),
        jail: JAIL_INITRAMFS.into(),
        kind: BindKind::Data,
    });
    let mut devices = vec!["/dev/null", "/dev/urandom"];
    if accel == AccelKind::Kvm {
        devices.push("/dev/kvm");
    }
    out.extend(
        devices
            .into_iter()
            .map(|d| same(d.into(), BindKind::Device)),
    );
    out.extend(shares.iter().enumerate().map(|(i, share)| Bind {
        host: share.host.clone(),
        jail: jail_share_path(i),
        kind: BindKind::Share {
            readonly: share.readonly,
        },
    }));
    Ok(out)
}

/// The interpreter named by a `#!` line.
fn interpreter(program: &Path) -> Result<Option<PathBuf>, JailError> {
    let mut head = [0u8; 256];
    let n = read_head(program, &mut head)?;
    let Some(line) = head[..n].strip_prefix(b"#!") else {
        return Ok(None);
    };
    let line = line.split(|b| *b == b'\n').next().unwrap_or_default();
    let interp = String::from_utf8_lossy(line);
    Ok(interp.split_whitespace().next().map(PathBuf::from))
}

fn read_head(program: &Path, buf: &mut [u8]) -> Result<usize, JailError> {
    use std::io::Read;
    std::fs::File::open(program)
        .and_then(|mut f| f.read(buf))
        .map_err(|e| JailError::io("reading", program, e))
}

/// Whether an x86-64 ELF file asks for a dynamic loader (has a `PT_INTERP` program header; linkers put
/// the program headers right after the ELF header, well within the first page).
fn is_dynamic(program: &Path) -> Result<bool, JailError> {
    const PT_INTERP: u32 = 3;
    let mut head = [0u8; 4096];
    let n = read_head(program, &mut head)?;
    let data = &head[..n];
    let u16_at = |o: usize| {
        data.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |o: usize| {
        data.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize)
    };
    if !data.starts_with(b"\x7fELF") {
        return Ok(false);
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return Ok(false);
    };
    Ok((0..phnum).any(|i| {
        let at = phoff.saturating_add(i.saturating_mul(phentsize));
        data.get(at..at + 4)
            .is_some_and(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) == PT_INTERP)
    }))
}

/// The shared libraries `qemu` loads, as the dynamic loader resolves them here (`ld.so --list`, which
/// maps them without running any of their code). None for a static binary. Running the loader costs
/// about 11 ms on every VM start, so the answer is remembered in the machine's cache per identity of the
/// binary (an upgrade replaces it), and asked again if any library it names has gone.
fn libraries(qemu: &Path) -> Result<Vec<PathBuf>, JailError> {
    if !is_dynamic(qemu)? {
        return Ok(Vec::new());
    }
    let Ok(identity) = file_identity(qemu) else {
        return query_libraries(qemu);
    };
    let listed = |v: &str| {
        !v.is_empty()
            && v.lines()
                .all(|l| l.starts_with('/') && Path::new(l).exists())
    };
    let kept = remembered(
        &default_cache_dir().join("jail"),
        &format!("libraries-{identity}"),
        listed,
        || {
            let libs = query_libraries(qemu)?;
            Ok::<_, JailError>(
                libs.iter()
                    .map(|l| l.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        },
    )?;
    Ok(kept.lines().map(PathBuf::from).collect())
}

fn query_libraries(qemu: &Path) -> Result<Vec<PathBuf>, JailError> {
    let out = Command::new(LOADER)
        .arg("--list")
        .arg(qemu)
        .env_clear()
        .output()
        .map_err(|e| JailError::io("running", Path::new(LOADER), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("not found") {
        return Err(JailError::Libraries {
            qemu: qemu.to_path_buf(),
            output: format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
        });
    }
    Ok(parse_list(&text))
}

/// The absolute paths in `ld.so --list` output: `name => /path (0x...)` and `/path (0x...)` lines.
fn parse_list(text: &str) -> Vec<PathBuf> {
    let mut libs: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(PathBuf::from)
        .collect();
    libs.sort();
    libs.dedup();
    libs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_static_from_dynamic_binaries() {
        assert!(is_dynamic(Path::new("/bin/sh")).unwrap());
        assert!(!is_dynamic(Path::new("/bin/busybox")).unwrap());
        assert!(!is_dynamic(Path::new("/etc/passwd")).unwrap());
    }

    #[test]
    fn parses_the_loader_listing() {
        let text = "\tlinux-vdso.so.1 (0x00007ffc)\n\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x7f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x7f)\n";
        assert_eq!(
            parse_list(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libz.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }
}
