//! The guest's initramfs: a plain (uncompressed) newc cpio archive holding the static `bulkhead` binary
//! as `/init` plus the few directories and the console node it needs before it mounts anything. Built
//! once per binary (keyed by its SHA-256) under `<cache>/initramfs/`.

use crate::cache::{file_identity, remembered, sha256_file, temp_sibling};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;
const TRAILER: &str = "TRAILER!!!";

#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
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
        cpio.file("init", 0o755, size, &mut binary)?;
        cpio.finish().map(drop)
    })()
    .map_err(io_err("writing", archive))
}

/// Cached images kept besides the one just built (other bulkhead versions sharing the cache).
const KEEP: usize = 3;

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> InitramfsError {
    let path = path.to_path_buf();
    move |source| InitramfsError::Io { op, path, source }
}

/// The cached initramfs whose `/init` is `init`, built if missing.
pub fn build(cache_dir: &Path, init: &Path) -> Result<PathBuf, InitramfsError> {
    let dir = cache_dir.join("initramfs");
    fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
    let hash = binary_hash(&dir, init)?;
    let path = dir.join(format!("{}.cpio", &hash[..16]));
    if path.is_file() {
        return Ok(path);
    }
    let tmp = temp_sibling(&path);
    let file = File::create(&tmp).map_err(io_err("creating", &tmp))?;
    let mut out = BufWriter::new(file);
    write(init, &mut out)?;
    out.into_inner()
        .map_err(|e| io_err("writing", &tmp)(e.into_error()))?
        .sync_all()
        .map_err(io_err("syncing", &tmp))?;
    fs::rename(&tmp, &path).map_err(io_err("publishing", &path))?;
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
        .filter(|p| p.extension().is_some_and(|e| e == "cpio") && p != current)
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
    fn build_is_cached_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::write(&a, b"one").unwrap();
        fs::write(&b, b"two").unwrap();
        let pa = build(dir.path(), &a).unwrap();
        assert_eq!(build(dir.path(), &a).unwrap(), pa);
        assert_ne!(build(dir.path(), &b).unwrap(), pa);
        assert_eq!(fs::metadata(&pa).unwrap().len() % 4, 0);
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
