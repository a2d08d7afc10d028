//! The guest's initramfs: a newc cpio archive holding the static `bulkhead` binary as `/init` plus the
//! few directories and the console node it needs before it mounts anything, LZ4-compressed (legacy frame,
//! what the kernel's `CONFIG_RD_LZ4` reads). QEMU keeps the initramfs file mapped for the VM's lifetime,
//! so its size is host memory per VM: LZ4 (high compression) halves it, and is the format the guest
//! unpacks fastest under binary translation. Built once per binary (keyed by its SHA-256) under
//! `<cache>/initramfs/`.

use crate::cache::{remembered, sha256_file, temp_sibling};
use crate::io_error::{io_err, IoError};
use bulkhead_fs::file_identity;
use bulkhead_proto::vm::INIT;
use lz4::block::CompressionMode;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;
const TRAILER: &str = "TRAILER!!!";
/// LZ4 legacy frame: this magic, then blocks of at most 8 MiB of input, each as a little-endian u32
/// length and one LZ4 block.
const LZ4_LEGACY_MAGIC: u32 = 0x184c_2102;
const LZ4_LEGACY_BLOCK: usize = 8 << 20;
/// liblz4's high-compression level 9 (`lz4 -9`): beyond it the output barely shrinks.
const LZ4_LEVEL: i32 = 9;

#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{path}: {size} bytes is too large for a newc cpio entry")]
    TooLarge { path: PathBuf, size: u64 },
}

/// Streams a newc ("070701") cpio archive.
pub struct CpioWriter<W: Write> {
    out: W,
    next_ino: u32,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        CpioWriter { out, next_ino: 1 }
    }

    /// A directory; parents must be added first.
    pub fn dir(&mut self, name: &str, perm: u32) -> io::Result<()> {
        self.header(name, S_IFDIR | perm, 2, 0, (0, 0))
    }

    /// A character device node (e.g. `dev/console`, 5:1).
    pub fn char_device(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.header(name, S_IFCHR | perm, 1, 0, (major, minor))
    }

    /// A regular file of exactly `size` bytes read from `data`.
    pub fn file(
        &mut self,
        name: &str,
        perm: u32,
        size: u32,
        data: &mut impl Read,
    ) -> io::Result<()> {
        self.header(name, S_IFREG | perm, 1, size, (0, 0))?;
        let copied = io::copy(&mut data.take(u64::from(size)), &mut self.out)?;
        if copied != u64::from(size) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name}: expected {size} bytes, read {copied}"),
            ));
        }
        self.pad(copied as usize)
    }

    /// Writes the trailer and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.header(TRAILER, 0, 1, 0, (0, 0))?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn header(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        size: u32,
        rdev: (u32, u32),
    ) -> io::Result<()> {
        let ino = if name == TRAILER { 0 } else { self.next_ino };
        self.next_ino += 1;
        let namesize = name.len() + 1;
        let fields = [
            ino,
            mode,
            0,
            0,
            nlink,
            0,
            size,
            0,
            0,
            rdev.0,
            rdev.1,
            namesize as u32,
            0,
        ];
        let mut header = String::with_capacity(110 + namesize);
        header.push_str("070701");
        for field in fields {
            header.push_str(&format!("{field:08x}"));
        }
        header.push_str(name);
        header.push('\0');
        self.out.write_all(header.as_bytes())?;
        self.pad(header.len())
    }

    /// Pads the entry that just ended after `len` bytes to a 4-byte boundary.
    fn pad(&mut self, len: usize) -> io::Result<()> {
        let pad = (4 - len % 4) % 4;
        self.out.write_all(&[0u8; 3][..pad])
    }
}

/// Writes the guest initramfs for `init` (a static binary) to `out`.
pub fn write(init: &Path, out: impl Write) -> Result<(), InitramfsError> {
    let mut binary = File::open(init).map_err(io_err("opening", init))?;
    let size = binary.metadata().map_err(io_err("reading", init))?.len();
    let size = u32::try_from(size).map_err(|_| InitramfsError::TooLarge {
        path: init.to_path_buf(),
        size,
    })?;
    let mut cpio = CpioWriter::new(out);
    let archive = Path::new("initramfs");
    (|| {
        for dir in ["dev", "proc", "sys", "run"] {
            cpio.dir(dir, 0o755)?;
        }
        cpio.dir("tmp", 0o1777)?;
        // The kernel opens /dev/console for init's stdio before anything is mounted.
        cpio.char_device("dev/console", 0o600, 5, 1)?;
        cpio.file(INIT.trim_start_matches('/'), 0o755, size, &mut binary)?;
        cpio.finish().map(drop)
    })()
    .map_err(io_err("writing", archive))?;
    Ok(())
}

/// Cached images kept besides the one just built (other bulkhead versions sharing the cache).
const KEEP: usize = 3;

/// Compresses `data` into an LZ4 legacy frame.
fn lz4_legacy(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = LZ4_LEGACY_MAGIC.to_le_bytes().to_vec();
    for chunk in data.chunks(LZ4_LEGACY_BLOCK) {
        let block = lz4::block::compress(
            chunk,
            Some(CompressionMode::HIGHCOMPRESSION(LZ4_LEVEL)),
            false,
        )?;
        let len = u32::try_from(block.len()).map_err(io::Error::other)?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

/// The cached initramfs whose `/init` is `init`, built if missing.
pub fn build(cache_dir: &Path, init: &Path) -> Result<PathBuf, InitramfsError> {
    let dir = cache_dir.join("initramfs");
    fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
    let hash = binary_hash(&dir, init)?;
    let path = dir.join(format!("{}.cpio.lz4", &hash[..16]));
    if path.is_file() {
        return Ok(path);
    }
    let mut cpio = Vec::new();
    write(init, &mut cpio)?;
    let packed = lz4_legacy(&cpio).map_err(io_err("compressing", init))?;
    let tmp = temp_sibling(&path);
    let publish = || -> io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(&packed)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    };
    if let Err(e) = publish() {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("publishing", &path)(e).into());
    }
    prune(&dir, &path);
    Ok(path)
}

/// The binary's SHA-256. Hashing a large binary on every VM start is noticeable, so the result is
/// remembered per file identity: installing a new binary creates a new inode or mtime, and with it a new
/// hash.
fn binary_hash(dir: &Path, init: &Path) -> Result<String, InitramfsError> {
    let identity = file_identity(init).map_err(io_err("reading", init))?;
    remembered(
        dir,
        &format!("{identity}.sha256"),
        |h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()),
        || sha256_file(init).map_err(io_err("hashing", init)),
    )
    .map_err(InitramfsError::from)
}

/// Deletes all but the [`KEEP`] newest images besides `current` (hash stamps are a few bytes and stay).
/// Best effort: QEMU reads the whole initramfs at start, so deleting one in use is harmless.
fn prune(dir: &Path, current: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut images: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        // Plain `.cpio` images are from bulkhead versions before compression.
        .filter(|p| p.extension().is_some_and(|e| e == "lz4" || e == "cpio") && p != current)
        .filter_map(|p| Some((fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    images.sort_by_key(|image| std::cmp::Reverse(image.0));
    for (_, old) in images.into_iter().skip(KEEP) {
        let _ = fs::remove_file(old);
    }
}

/// The cached initramfs for the running binary (`/proc/self/exe`), which must be the static `bulkhead`.
pub fn for_current_exe(cache_dir: &Path) -> Result<PathBuf, InitramfsError> {
    build(cache_dir, Path::new("/proc/self/exe"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn cpio_tool_lists_and_extracts_what_we_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let init = dir.path().join("payload");
        fs::write(&init, b"#!/bin/sh\necho hi\n").unwrap();
        let archive = dir.path().join("a.cpio");
        write(&init, File::create(&archive).unwrap()).unwrap();
        let out_dir = dir.path().join("x");
        fs::create_dir(&out_dir).unwrap();
        // busybox cpio is installed with busybox-static; it validates the newc format independently.
        let status = Command::new("/bin/busybox")
            .args(["cpio", "-i", "-d"])
            .current_dir(&out_dir)
            .stdin(File::open(&archive).unwrap())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            fs::read(out_dir.join("init")).unwrap(),
            b"#!/bin/sh\necho hi\n"
        );
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let console = fs::metadata(out_dir.join("dev/console")).unwrap();
        assert!(console.file_type().is_char_device());
        let tmp = fs::metadata(out_dir.join("tmp")).unwrap();
        assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
    }

    #[test]
    fn the_lz4_tool_decompresses_our_legacy_frames() {
        let dir = tempfile::tempdir().unwrap();
        // Over one 8 MiB block, compressible and not.
        let mut data: Vec<u8> = (0..LZ4_LEGACY_BLOCK + 4096)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut seed = 1u32;
        data.extend((0..100_000).map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (seed >> 16) as u8
        }));
        let packed = lz4_legacy(&data).unwrap();
        assert!(packed.len() < data.len() / 2);
        let file = dir.path().join("data.lz4");
        fs::write(&file, &packed).unwrap();
        // The lz4 tool (Debian package lz4) reads the legacy frame the kernel reads.
        let out = Command::new("lz4")
            .args(["-d", "-c"])
            .arg(&file)
            .output()
            .expect("running lz4");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == data, "round trip differs");
    }

    #[test]
    fn build_is_cached_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::write(&a, b"one").unwrap();
        fs::write(&b, b"two").unwrap();
        let pa = build(dir.path(), &a).unwrap();
        assert_eq!(build(dir.path(), &a).unwrap(), pa);
        assert_ne!(build(dir.path(), &b).unwrap(), pa);
    }

    #[test]
    fn old_images_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mut built = Vec::new();
        for i in 0..KEEP + 3 {
            let bin = dir.path().join(format!("bin{i}"));
            fs::write(&bin, format!("binary {i}")).unwrap();
            built.push(build(dir.path(), &bin).unwrap());
        }
        let left = built.iter().filter(|p| p.exists()).count();
        assert_eq!(left, KEEP + 1);
        assert!(built.last().unwrap().exists());
    }

    #[test]
    fn hash_is_remembered_per_file_identity() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        fs::write(&bin, b"v1").unwrap();
        let h1 = binary_hash(dir.path(), &bin).unwrap();
        assert_eq!(h1, crate::cache::sha256_hex(b"v1"));
        // A new install is a new file (new inode), so it gets a new hash.
        let staged = dir.path().join("bin.new");
        fs::write(&staged, b"v2").unwrap();
        fs::rename(&staged, &bin).unwrap();
        assert_eq!(
            binary_hash(dir.path(), &bin).unwrap(),
            crate::cache::sha256_hex(b"v2")
        );
    }
}
