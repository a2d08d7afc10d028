//! Turns a [`VmConfig`] into the QEMU command line: a `microvm` machine with no firmware, no PCI, no
//! ACPI, no network and no shared directories; two virtio-blk disks (the image's read-only erofs artifact
//! and the container's writable ext4), one virtio-serial port for the agent, and the serial console
//! written to a log file. The guest kernel command line is tuned for boot time (see `bench/vm-floor.sh`).

use crate::accel::AccelKind;
use crate::host::VmConfig;
use bulkhead_proto::vm::{AGENT_PORT, INIT};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The QEMU binary, looked up in `PATH`.
pub const QEMU: &str = "qemu-system-x86_64";

/// The unix socket QEMU listens on for the agent port.
pub fn agent_socket(run_dir: &Path) -> PathBuf {
    run_dir.join("agent.sock")
}

/// The guest's serial console output.
pub fn console_log(run_dir: &Path) -> PathBuf {
    run_dir.join("console.log")
}

/// QEMU's own stderr.
pub fn qemu_log(run_dir: &Path) -> PathBuf {
    run_dir.join("qemu.log")
}

/// The guest kernel command line for `accel`. QEMU appends the `virtio_mmio.device=` entries itself.
///
/// - `console=ttyS0 quiet`: console for debugging, but printing under TCG costs a VM exit per byte.
/// - `reboot=t panic=-1`: the guest's reboot (and any panic) triple-faults at once; with `-no-reboot`
///   QEMU then exits, which is how the guest powers off.
/// - `8250.nr_uarts=1`: register a single UART.
/// - `rdinit=/init` ([`INIT`]): the initramfs' `/init` is the guest's PID 1.
/// - `rcupdate.rcu_expedited=1`: starting a container waits for RCU grace periods (mounts, namespaces,
///   cgroups); at 100 Hz under TCG a normal one takes tens of milliseconds, an expedited one on a guest
///   this small a fraction of that. Measured: about 70 ms less per `run --rm --isolation=vm`.
/// - TCG only: `tsc_early_khz=` + `tsc=reliable` keep the host's TSC as clocksource (see
///   [`crate::tsc`]); `no_timer_check` skips the IO-APIC timer check. `noapictimer` would save ~200 ms
///   of local APIC timer calibration but leaves only the PIT's periodic tick: no high-resolution timers
///   (10 ms sleeps) and no tickless idle (every idle VM burns host CPU), so it is not used.
pub fn kernel_cmdline(accel: AccelKind) -> String {
    let mut args = vec![
        "console=ttyS0".to_string(),
        "quiet".to_string(),
        "reboot=t".to_string(),
        "panic=-1".to_string(),
        "8250.nr_uarts=1".to_string(),
        format!("rdinit={INIT}"),
        "rcupdate.rcu_expedited=1".to_string(),
    ];
    if accel == AccelKind::Tcg {
        args.push("no_timer_check".to_string());
        if let Some(khz) = crate::tsc::host_tsc_khz() {
            args.push(format!("tsc_early_khz={khz}"));
            args.push("tsc=reliable".to_string());
        }
    }
    args.join(" ")
}

/// TCG with one host thread per vCPU and a capped translation cache. QEMU's default cache is 1 GiB of
/// address space that fills with translated code as the guest runs (37 MiB resident per idle container
/// after boot); 16 MiB bounds that host memory per VM at the price of a cache flush and retranslation
/// when it fills, which measured no slower here (see `bench/vm.sh`).
const TCG_ACCEL: &str = "tcg,thread=multi,tb-size=16";

/// The full QEMU command for `cfg`, not yet spawned.
pub fn command(cfg: &VmConfig) -> Command {
    let mut cmd = Command::new(QEMU);
    let accel = match cfg.accel {
        AccelKind::Kvm => vec!["-accel", "kvm", "-cpu", "host"],
        AccelKind::Tcg => vec!["-accel", TCG_ACCEL, "-cpu", "max"],
    };
    // rtc=on: the guest kernel reads its wall clock from the CMOS RTC at boot; without it the container
    // would start in 1970 (and fail every TLS certificate check). Measured here, rtc=off also made TCG
    // boots about 1 s slower.
    cmd.args([
        "-M",
        "microvm,x-option-roms=off,rtc=on,acpi=off,pcie=off,isa-serial=on,auto-kernel-cmdline=on",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-no-reboot",
        "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    ])
    .args(accel)
    .arg("-m")
    .arg(format!("{}M", cfg.memory_mib))
    .arg("-smp")
    .arg(cfg.vcpus.to_string())
    .arg("-kernel")
    .arg(&cfg.kernel)
    .arg("-initrd")
    .arg(&cfg.initramfs)
    .arg("-append")
    .arg(kernel_cmdline(cfg.accel));
    // The guest names the disks by the order they are attached in: the image's first (IMAGE_DISK), the
    // writable one second (WRITABLE_DISK), see `bulkhead_proto::vm`.
    // The image artifact is shared by every VM of the image: read-only opens take only a shared lock, so
    // any number of VMs attach it concurrently while a writer is refused ("Failed to get write lock").
    cmd.arg("-drive")
        .arg(drive("image", &cfg.rootfs_artifact, true));
    cmd.args(["-device", "virtio-blk-device,drive=image"]);
    cmd.arg("-drive")
        .arg(drive("writable", &cfg.writable_disk, false));
    cmd.args(["-device", "virtio-blk-device,drive=writable"]);
    let mut chardev = OsString::from("socket,id=agent,server=on,wait=off,path=");
    chardev.push(escape_option(agent_socket(&cfg.run_dir).as_os_str()));
    // Two ports (0 is reserved for a console) instead of 31: the guest sets up queues for fewer ports.
    cmd.args(["-device", "virtio-serial-device,max_ports=2"])
        .arg("-chardev")
        .arg(chardev)
        .args([
            "-device",
            &format!("virtserialport,chardev=agent,name={AGENT_PORT}"),
        ]);
    let mut serial = OsString::from("file:");
    serial.push(console_log(&cfg.run_dir));
    cmd.arg("-serial").arg(serial);
    cmd
}

fn drive(id: &str, file: &Path, readonly: bool) -> OsString {
    // Host page cache (QEMU's default writeback mode, guest flushes honoured): the artifact's pages are
    // then shared by all VMs of the image, and disks on tmpfs (no O_DIRECT) work too.
    let mut opt = OsString::from(format!(
        "if=none,id={id},format=raw,readonly={},file=",
        if readonly { "on" } else { "off" }
    ));
    opt.push(escape_option(file.as_os_str()));
    opt
}

/// QEMU option values escape `,` by doubling it.
fn escape_option(value: &std::ffi::OsStr) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut out = Vec::with_capacity(value.len());
    for &b in value.as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> VmConfig {
        VmConfig {
            kernel: "/k/vmlinux".into(),
            initramfs: "/k/init.cpio".into(),
            rootfs_artifact: "/img/a,b.erofs".into(),
            writable_disk: "/run/c/upper.ext4".into(),
            memory_mib: 256,
            vcpus: 2,
            accel: AccelKind::Tcg,
            run_dir: "/run/c".into(),
        }
    }

    #[test]
    fn command_wires_disks_port_and_console() {
        let cmd = command(&config());
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(joined.contains("readonly=on,file=/img/a,,b.erofs"));
        assert!(joined.contains("readonly=off,file=/run/c/upper.ext4"));
        assert!(joined.contains("path=/run/c/agent.sock"));
        assert!(joined.contains("name=bulkhead.agent"));
        assert!(joined.contains("file:/run/c/console.log"));
        assert!(joined.contains("-no-reboot"));
        assert!(joined.contains("tb-size=16"));
        assert!(!joined.contains("netdev"));
        let m = args.iter().position(|a| a == "-m").unwrap();
        assert_eq!(args[m + 1], "256M");
    }
}
