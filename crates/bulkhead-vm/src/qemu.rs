//! Turns a [`VmConfig`] into the QEMU command line: a `microvm` machine with no firmware, no PCI, no
//! ACPI; two virtio-blk disks (the image's read-only erofs artifact and the container's writable ext4),
//! or for a bundle container one virtio-9p device serving its root directory,
//! one virtio-9p device per shared host directory (volumes and binds), one virtio-serial port for the
//! agent, the serial console written to a pipe, and one virtio-net device per interface of the
//! container's network namespace, on a tap there ([`crate::network`]). QEMU runs in a jail
//! ([`crate::jail`]): it opens nothing of the host by path but the
//! kernel and initramfs bound into the jail; the disks, the agent's socket and the console are file
//! descriptors the host opened, at the numbers below. The guest kernel command line is tuned for boot time (see `bench/vm-floor.sh`).

use crate::accel::AccelKind;
use crate::host::{VmConfig, VmRoot};
use crate::jail::files::{jail_share_path, JAIL_INITRAMFS, JAIL_KERNEL};
use bulkhead_proto::nic::{format_mac, GuestNic};
use bulkhead_proto::vm::{share_tag, AGENT_PORT, INIT, ROOT_SHARE_TAG};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The QEMU binary, looked up in `PATH`.
pub const QEMU: &str = "qemu-system-x86_64";

/// QEMU's descriptors: 0 and 1 are /dev/null, 2 its stderr pipe.
pub const STDERR_FD: usize = 2;
/// The image's erofs artifact, opened read-only.
pub const IMAGE_FD: usize = 3;
/// The container's writable disk, opened read-write.
pub const WRITABLE_FD: usize = 4;
/// QEMU's end of the agent's socket pair.
pub const AGENT_FD: usize = 5;
/// The write end of the console pipe.
pub const CONSOLE_FD: usize = 6;
/// The writable disk again, read-only: QEMU reopens a disk read-only until a device asks to write, and
/// finds that descriptor in the same fd set.
pub const WRITABLE_RO_FD: usize = 7;
/// The virtio devices microvm can take (its virtio-mmio transports).
pub const VIRTIO_MMIO_SLOTS: usize = 8;
/// The devices every VM has besides its root ([`crate::host::VmRoot::devices`]): the agent's
/// virtio-serial device.
pub const AGENT_DEVICES: usize = 1;
/// The first tap device; the next interface's is at 9, and so on.
pub const FIRST_TAP_FD: usize = 8;

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
/// - `rootfstype=ramfs`: the initramfs is unpacked into a ramfs, not a tmpfs capped at half the guest's
///   RAM; PID 1 (the binary itself, over 100 MiB in a debug build) moves onto a tmpfs and deletes its
///   copy at once, and a debug build no longer fails to unpack in a 256 MiB guest.
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
        "rootfstype=ramfs".to_string(),
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

/// QEMU's arguments for `cfg` (after argv[0]), with the jail's paths and the descriptors above; `nics`
/// are the interfaces whose taps are at [`FIRST_TAP_FD`] onwards.
pub fn args(cfg: &VmConfig, nics: &[GuestNic]) -> Vec<OsString> {
    let accel = match cfg.accel {
        AccelKind::Kvm => ["-accel", "kvm", "-cpu", "host"],
        AccelKind::Tcg => ["-accel", TCG_ACCEL, "-cpu", "max"],
    };
    // rtc=on: the guest kernel reads its wall clock from the CMOS RTC at boot; without it the container
    // would start in 1970 (and fail every TLS certificate check). Measured here, rtc=off also made TCG
    // boots about 1 s slower.
    let mut args: Vec<String> = [
        "-M",
        "microvm,x-option-roms=off,rtc=on,acpi=off,pcie=off,isa-serial=on,auto-kernel-cmdline=on",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-no-reboot",
        "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    ]
    .iter()
    .chain(&accel)
    .map(|s| s.to_string())
    .collect();
    args.extend([
        "-m".to_string(),
        format!("{}M", cfg.memory_mib),
        "-smp".to_string(),
        cfg.vcpus.to_string(),
        "-kernel".to_string(),
        JAIL_KERNEL.to_string(),
        "-initrd".to_string(),
        JAIL_INITRAMFS.to_string(),
        "-append".to_string(),
        kernel_cmdline(cfg.accel),
    ]);
    // Each descriptor goes into an fd set of its own number; QEMU opens `/dev/fdset/N` by duplicating it.
    let disks = matches!(cfg.root, VmRoot::Disks { .. });
    let disk_fds = [
        (IMAGE_FD, IMAGE_FD),
        (WRITABLE_FD, WRITABLE_FD),
        (WRITABLE_RO_FD, WRITABLE_FD),
    ];
    let fd_sets = disk_fds
        .iter()
        .filter(|_| disks)
        .chain(&[(CONSOLE_FD, CONSOLE_FD)]);
    for (fd, set) in fd_sets {
        args.extend(["-add-fd".to_string(), format!("fd={fd},set={set}")]);
    }
    match &cfg.root {
        // The guest names the disks by the order they are attached in: the image's first (IMAGE_DISK),
        // the writable one second (WRITABLE_DISK), see `bulkhead_proto::vm`.
        // The image artifact is shared by every VM of the image: read-only opens take only a shared
        // lock, so any number of VMs attach it concurrently while a writer is refused ("Failed to get
        // write lock").
        VmRoot::Disks { .. } => args.extend([
            "-drive".to_string(),
            drive("image", IMAGE_FD, true),
            "-device".to_string(),
            "virtio-blk-device,drive=image".to_string(),
            "-drive".to_string(),
            drive("writable", WRITABLE_FD, false),
            "-device".to_string(),
            "virtio-blk-device,drive=writable".to_string(),
        ]),
        // Served like the shares below, and bound in the jail after them.
        VmRoot::Share(share) => args.extend([
            "-fsdev".to_string(),
            fsdev("root", cfg.shares.len(), share.readonly),
            "-device".to_string(),
            format!("virtio-9p-device,fsdev=root,mount_tag={ROOT_SHARE_TAG}"),
        ]),
    }
    // Two ports (0 is reserved for a console) instead of 31: the guest sets up queues for fewer ports.
    args.extend([
        "-device".to_string(),
        "virtio-serial-device,max_ports=2".to_string(),
        "-chardev".to_string(),
        format!("socket,id=agent,fd={AGENT_FD}"),
        "-device".to_string(),
        format!("virtserialport,chardev=agent,name={AGENT_PORT}"),
        "-chardev".to_string(),
        // append: without it QEMU truncates the file, which a pipe refuses.
        format!("file,id=console,path=/dev/fdset/{CONSOLE_FD},append=on"),
        "-serial".to_string(),
        "chardev:console".to_string(),
    ]);
    for (i, share) in cfg.shares.iter().enumerate() {
        args.extend([
            "-fsdev".to_string(),
            fsdev(&format!("fs{i}"), i, share.readonly),
            "-device".to_string(),
            format!("virtio-9p-device,fsdev=fs{i},mount_tag={}", share_tag(i)),
        ]);
    }
    // The device carries the interface's MAC, by which the guest finds it. No vhost-net: the jail has
    // no /dev/vhost-net, and under TCG QEMU's own virtio-net costs nothing that matters.
    for (i, nic) in nics.iter().enumerate() {
        args.extend([
            "-netdev".to_string(),
            format!("tap,id=net{i},fd={},vhost=off", FIRST_TAP_FD + i),
            "-device".to_string(),
            format!(
                "virtio-net-device,netdev=net{i},mac={}",
                format_mac(&nic.mac)
            ),
        ]);
    }
    args.into_iter().map(OsString::from).collect()
}

/// QEMU's 9p server `id` for the directory the jail binds as share `i`. `passthrough`: files carry the
/// guest's real owners and modes on the host, so a volume reads back the same in process mode after a
/// switch (QEMU holds CAP_CHOWN, CAP_DAC_OVERRIDE and CAP_FOWNER for it, see
/// `jail::SHARE_CAPABILITIES`); `mapped-xattr` would hide them in xattrs that process mode does not read,
/// and `none` would leave every file owned by this VM's jail uid, which the next VM's uid cannot write.
/// QEMU's local backend opens every path component `O_NOFOLLOW` below the share's root and leaves
/// symlinks to the guest to resolve, so no symlink in the share leads QEMU out of it.
fn fsdev(id: &str, i: usize, readonly: bool) -> String {
    format!(
        "local,id={id},path={},security_model=passthrough,readonly={}",
        jail_share_path(i).display(),
        if readonly { "on" } else { "off" }
    )
}

fn drive(id: &str, fd: usize, readonly: bool) -> String {
    // Host page cache (QEMU's default writeback mode, guest flushes honoured): the artifact's pages are
    // then shared by all VMs of the image, and disks on tmpfs (no O_DIRECT) work too.
    format!(
        "if=none,id={id},format=raw,readonly={},file=/dev/fdset/{fd}",
        if readonly { "on" } else { "off" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> VmConfig {
        VmConfig {
            kernel: "/k/vmlinux".into(),
            initramfs: "/k/init.cpio".into(),
            root: VmRoot::Disks {
                artifact: "/img/a,b.erofs".into(),
                writable: "/run/c/upper.ext4".into(),
            },
            memory_mib: 256,
            vcpus: 2,
            accel: AccelKind::Tcg,
            run_dir: "/run/c".into(),
            cgroup: "bulkhead/vm-c".into(),
            cpus: None,
            netns: None,
            shares: Vec::new(),
        }
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn command_wires_disks_port_and_console() {
        let args = strings(args(&config(), &[]));
        let joined = args.join(" ");
        // Nothing of the host by path: descriptors and the jail's own names.
        assert!(joined.contains("-add-fd fd=3,set=3"));
        assert!(joined.contains("readonly=on,file=/dev/fdset/3"));
        assert!(joined.contains("readonly=off,file=/dev/fdset/4"));
        assert!(joined.contains("socket,id=agent,fd=5"));
        assert!(joined.contains("name=bulkhead.agent"));
        assert!(joined.contains("path=/dev/fdset/6"));
        assert!(!joined.contains("/run/c") && !joined.contains("/k/"));
        assert!(joined.contains("-no-reboot"));
        assert!(joined.contains("tb-size=16"));
        assert!(!joined.contains("netdev"));
        let m = args.iter().position(|a| a == "-m").unwrap();
        assert_eq!(args[m + 1], "256M");
        assert!(!joined.contains("9p"));
    }

    #[test]
    fn shares_are_9p_devices_on_jail_paths() {
        let mut cfg = config();
        cfg.shares = vec![
            crate::host::Share {
                host: "/var/lib/vol/_data".into(),
                readonly: false,
            },
            crate::host::Share {
                host: "/srv/ro".into(),
                readonly: true,
            },
        ];
        let joined = strings(args(&cfg, &[])).join(" ");
        assert!(joined.contains(
            "-fsdev local,id=fs0,path=/shares/0,security_model=passthrough,readonly=off"
        ));
        assert!(joined.contains("path=/shares/1,security_model=passthrough,readonly=on"));
        assert!(joined.contains("virtio-9p-device,fsdev=fs1,mount_tag=share1"));
        assert!(!joined.contains("/var/lib/vol") && !joined.contains("/srv/ro"));
    }

    #[test]
    fn a_directory_root_is_a_9p_share_after_the_others_and_no_disk() {
        let mut cfg = config();
        cfg.root = VmRoot::Share(crate::host::Share {
            host: "/var/lib/containers/c/merged".into(),
            readonly: true,
        });
        cfg.shares = vec![crate::host::Share {
            host: "/srv/data".into(),
            readonly: false,
        }];
        let joined = strings(args(&cfg, &[])).join(" ");
        assert!(joined.contains(
            "-fsdev local,id=root,path=/shares/1,security_model=passthrough,readonly=on"
        ));
        assert!(joined.contains("virtio-9p-device,fsdev=root,mount_tag=root"));
        assert!(joined.contains("path=/shares/0,security_model=passthrough,readonly=off"));
        assert!(!joined.contains("virtio-blk") && !joined.contains("set=3"));
        assert!(joined.contains("-add-fd fd=6,set=6"));
        assert!(!joined.contains("/var/lib/containers"));
        assert_eq!(cfg.served_directories().len(), 2);
    }

    #[test]
    fn each_interface_gets_a_tap_descriptor_and_its_mac() {
        let nic = |name: &str, last| GuestNic {
            name: name.into(),
            mac: [0x02, 0x42, 0xac, 0x11, 0, last],
            mtu: 1500,
            ipv4: Vec::new(),
            gateway: None,
        };
        let args = strings(args(&config(), &[nic("eth0", 2), nic("eth1", 3)]));
        let values = |flag: &str| -> Vec<&String> {
            args.windows(2)
                .filter(|w| w[0] == flag)
                .map(|w| &w[1])
                .collect()
        };
        assert_eq!(
            values("-netdev"),
            ["tap,id=net0,fd=8,vhost=off", "tap,id=net1,fd=9,vhost=off"]
        );
        let devices = values("-device");
        assert!(
            devices.contains(&&"virtio-net-device,netdev=net0,mac=02:42:ac:11:00:02".to_string())
        );
        assert!(
            devices.contains(&&"virtio-net-device,netdev=net1,mac=02:42:ac:11:00:03".to_string())
        );
    }
}
