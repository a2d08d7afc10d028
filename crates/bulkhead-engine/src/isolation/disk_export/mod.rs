//! Taking back a writable disk that a VM wrote, for process mode.
//!
//! Threat: a guest owns the bytes of its writable disk (a `--privileged` container reaches `/dev/vdb`; a
//! compromised guest kernel writes anything). Mounting that ext4 image on the host would hand the host
//! kernel's ext4 parser hostile metadata, and the guest could have replaced `upper`, `work` or the /etc
//! mount points with symlinks that redirect the host's overlay mount and writes (to the host's /etc).
//! So the host never mounts such a disk. Instead an *export VM* (the same launch path, its own guest
//! kernel) mounts it and streams the overlay upper directory back as an OCI layer tar; the host applies
//! that tar with the hostile-layer unpacker that imports images (fd-based, symlink-safe, bounded by the
//! disk size) onto a fresh disk it formatted itself, and renames that disk over the old one. On any
//! failure the old disk stays as it was and stays marked, and the start fails naming the cause.

mod stream;

use crate::containers::Container;
use crate::EngineError;
use bulkhead_proto::{handshake, Message, ProtoError};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};
use stream::ExportStream;

/// How long the export guest may stay silent: its boot, or between two frames.
const READ_WAIT: Duration = Duration::from_secs(60);
/// How long a whole export may take (a full 10 GiB disk streams in a few minutes under TCG).
const EXPORT_DEADLINE: Duration = Duration::from_secs(30 * 60);
/// The tar's name in the unpacker's messages.
const LAYER_NAME: &str = "exported by the VM";

/// Why a VM-written disk could not be taken back. The disk is then unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the export guest reported: {0}")]
    Guest(String),
    #[error("the export guest broke the protocol: {0}")]
    Protocol(#[source] ProtoError),
    #[error("the export guest sent an unexpected {0} frame")]
    Unexpected(String),
    #[error(
        "the export guest stopped before the end of its tar (the VM died or closed the stream)"
    )]
    Truncated,
    #[error("the export guest sent more than {0} bytes after the end of its tar")]
    TrailingData(u64),
    #[error("the export guest did not send in time")]
    TimedOut,
    #[error("reading the export stream: {0}")]
    Read(#[source] std::io::Error),
    #[error("the exported tar was refused: {0}")]
    Layer(#[source] bulkhead_image::ImageError),
    #[error("{0}")]
    Host(#[source] Box<EngineError>),
}

impl From<EngineError> for ExportError {
    fn from(e: EngineError) -> Self {
        ExportError::Host(Box::new(e))
    }
}

/// Replaces the container's VM-written disk by a host-written one with the same content, through an
/// export VM, and clears the mark.
pub(super) fn take_back(
    root: &Path,
    container: &mut Container,
    artifact: &Path,
) -> Result<(), EngineError> {
    let failed = |source| EngineError::DiskExport {
        id: container.config.id.clone(),
        source,
    };
    let t0 = Instant::now();
    let disk = container.paths.disk();
    let run_dir = container.paths.run.join("export");
    let mut vm = super::vm::boot(
        &container.config,
        &run_dir,
        bulkhead_vm::VmRoot::Disks {
            artifact: artifact.to_path_buf(),
            writable: disk.clone(),
        },
        Vec::new(),
        None,
    )
    .map_err(|e| failed(e.into()))?;
    let exported = (|| {
        let frames = vm
            .stream()
            .try_clone()
            .map_err(|e| EngineError::io("export socket")(e))?;
        frames
            .set_read_timeout(Some(READ_WAIT))
            .and_then(|()| frames.set_write_timeout(Some(READ_WAIT)))
            .map_err(|e| EngineError::io("export socket")(e))?;
        handshake(&mut &frames, &mut &frames, &[Message::Export]).map_err(|e| match e {
            ProtoError::Peer(said) => ExportError::Guest(said),
            ProtoError::TimedOut => ExportError::TimedOut,
            e => ExportError::Protocol(e),
        })?;
        tracing::debug!("export guest answered at {:?}", t0.elapsed());
        let stream = ExportStream::new(&frames, Instant::now() + EXPORT_DEADLINE);
        replace_disk(root, &disk, container.config.disk_size, stream)
    })();
    tracing::debug!("disk taken back at {:?}", t0.elapsed());
    // The guest mounted the disk read-only and has nothing left to do.
    vm.kill();
    let _ = vm.wait();
    let _ = fs::remove_dir_all(&run_dir);
    exported.map_err(failed)?;
    container.update_state(|s| s.disk_vm_written = false)
}

/// Applies the tar from `stream` to a fresh disk of `size` bytes and renames it over `disk`. The fresh
/// disk is mounted (it is the host's own) `nosuid,nodev,noexec` on a private temp directory; `disk`
/// itself is only ever renamed over, and only once everything succeeded.
fn replace_disk<R: Read>(
    root: &Path,
    disk: &Path,
    size: u64,
    mut stream: ExportStream<R>,
) -> Result<(), ExportError> {
    let dir = disk.parent().unwrap_or(Path::new("."));
    let fresh = dir.join(bulkhead_fs::unique_name(".rw.img.export"));
    crate::disk::create(root, &fresh, size)?;
    let filled = (|| {
        let mountpoint = bulkhead_fs::temp_dir(dir, ".export-").map_err(EngineError::io(dir))?;
        let unpacked = mount_disk(&fresh, &mountpoint).and_then(|()| {
            let unpacked = bulkhead_image::unpack_upper(
                &mut stream,
                &mountpoint.join("upper"),
                size,
                LAYER_NAME,
            );
            // Unmounting writes the filesystem back.
            let unmounted = umount2(&mountpoint, MntFlags::UMOUNT_NOFOLLOW)
                .map_err(EngineError::sys(format!("umount {}", mountpoint.display())));
            unpacked.map_err(|e| stream.take_failure().unwrap_or(ExportError::Layer(e)))?;
            Ok(unmounted?)
        });
        let _ = fs::remove_dir(&mountpoint);
        unpacked?;
        stream.finish()?;
        fs::File::open(&fresh)
            .and_then(|f| f.sync_all())
            .map_err(EngineError::io(&fresh))?;
        fs::rename(&fresh, disk).map_err(EngineError::io(disk))?;
        bulkhead_fs::sync_dir(dir).map_err(EngineError::io(dir))?;
        Ok(())
    })();
    if filled.is_err() {
        let _ = fs::remove_file(&fresh);
    }
    filled
}

/// Mounts the host-formatted ext4 `image` on `target` through an autoclear loop device.
fn mount_disk(image: &Path, target: &Path) -> Result<(), ExportError> {
    let device = bulkhead_runtime::rootfs::attach_loop(image, false).map_err(EngineError::from)?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some(device.path()),
        target,
        Some("ext4"),
        flags,
        None::<&str>,
    )
    .map_err(EngineError::sys(format!(
        "mount {} on {}",
        image.display(),
        target.display()
    )))?;
    Ok(())
}

/// The host side of a take-back, fed by hand-made streams (no VM): what a hostile guest could send.
#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_testkit::LayerBuilder;
    use std::io::Cursor;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::path::PathBuf;

    const SIZE: u64 = 32 << 20;

    /// A bulkhead root with one container disk, the disk's bytes, and the disk's path.
    fn setup() -> (tempfile::TempDir, PathBuf, Vec<u8>) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("c");
        fs::create_dir(&dir).unwrap();
        let disk = dir.join("rw.img");
        crate::disk::create(root.path(), &disk, SIZE).unwrap();
        fs::write(&disk, b"the guest's own bytes").unwrap();
        let bytes = fs::read(&disk).unwrap();
        (root, disk, bytes)
    }

    fn wire(tar: &[u8], end: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in tar.chunks(7000) {
            let data = chunk.to_vec();
            Message::ExportData { data }.send(&mut out).unwrap();
        }
        if end {
            Message::ExportEnd.send(&mut out).unwrap();
        }
        out
    }

    fn take_back(root: &Path, disk: &Path, wire: Vec<u8>) -> Result<(), ExportError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        replace_disk(
            root,
            disk,
            SIZE,
            ExportStream::new(Cursor::new(wire), deadline),
        )
    }

    /// Whatever was refused, the old disk is byte-identical and nothing is left beside it.
    fn refused(wire: Vec<u8>) -> ExportError {
        let (root, disk, before) = setup();
        let err = take_back(root.path(), &disk, wire).expect_err("must be refused");
        assert_eq!(fs::read(&disk).unwrap(), before, "{err}");
        let left: Vec<_> = fs::read_dir(disk.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "{left:?}");
        err
    }

    #[test]
    fn hostile_tars_are_refused_and_the_disk_kept() {
        let mut escape = LayerBuilder::new();
        escape.file("../outside", b"x", 0o644);
        let err = refused(wire(&escape.finish(), true));
        assert!(err.to_string().contains("`..` in member name"), "{err}");

        let mut parent = LayerBuilder::new();
        parent
            .symlink("up", "../../..")
            .file("up/etc/passwd", b"x", 0o644);
        let err = refused(wire(&parent.finish(), true));
        assert!(err.to_string().contains("outside the rootfs"), "{err}");

        let mut bomb = tar::Header::new_gnu();
        bomb.set_path("big").unwrap();
        bomb.set_size(SIZE + 1);
        bomb.set_cksum();
        let mut tar = bomb.as_bytes().to_vec();
        tar.resize(tar.len() + 1024, 0);
        let err = refused(wire(&tar, true));
        assert!(err.to_string().contains("unpacked size"), "{err}");
    }

    #[test]
    fn a_broken_guest_is_refused_and_the_disk_kept() {
        let mut ok = LayerBuilder::new();
        ok.file("a", b"x", 0o644);
        let tar = ok.finish();
        let err = refused(wire(&tar, false));
        assert!(matches!(err, ExportError::Truncated), "{err}");

        let err = refused(b"\x00\x00\x00\x09\xc8\x00\x00\x00\x00garbage".repeat(3));
        assert!(matches!(err, ExportError::Protocol(_)), "{err}");

        let mut said = wire(&tar[..512], false);
        Message::Error {
            stream: 0,
            message: "cannot read the disk".into(),
        }
        .send(&mut said)
        .unwrap();
        let err = refused(said);
        assert!(err.to_string().contains("cannot read the disk"), "{err}");
    }

    #[test]
    fn whiteouts_become_overlay_marks_on_a_fresh_disk() {
        let (root, disk, before) = setup();
        let mut layer = LayerBuilder::new();
        layer
            .file(".wh.motd", b"", 0o644)
            .dir("home/", 0o755)
            .file("home/.wh..wh..opq", b"", 0o644)
            .file("home/suid", b"#!", 0o4755)
            .hardlink("home/link", "home/suid");
        take_back(root.path(), &disk, wire(&layer.finish(), true)).unwrap();
        assert_ne!(fs::read(&disk).unwrap(), before);
        let mnt = bulkhead_fs::temp_dir(disk.parent().unwrap(), ".export-").unwrap();
        mount_disk(&disk, &mnt).unwrap();
        let upper = mnt.join("upper");
        let motd = fs::symlink_metadata(upper.join("motd")).unwrap();
        let suid = fs::metadata(upper.join("home/suid")).unwrap();
        let mut opaque = [0u8; 4];
        let path = std::ffi::CString::new(upper.join("home").into_os_string().into_encoded_bytes());
        // SAFETY: reads at most 4 bytes into `opaque`.
        let n = unsafe {
            libc::lgetxattr(
                path.unwrap().as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                opaque.as_mut_ptr().cast(),
                opaque.len(),
            )
        };
        let etc = upper.join("etc/hostname").exists();
        umount2(&mnt, MntFlags::empty()).unwrap();
        fs::remove_dir(&mnt).unwrap();
        assert!(motd.file_type().is_char_device() && motd.rdev() == 0);
        assert_eq!(&opaque[..n.max(0) as usize], b"y");
        assert_eq!((suid.mode() & 0o7777, suid.nlink()), (0o4755, 2));
        assert!(etc, "the template's /etc mount points are there");
    }
}
