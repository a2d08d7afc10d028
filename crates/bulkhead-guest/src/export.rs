//! The export role: instead of running the container, the guest streams the changes on its writable disk
//! to the host as an OCI layer tar. The host never mounts a disk a VM could have written (its kernel would
//! parse whatever bytes the guest left there); it applies this tar, with its hostile-layer unpacker, to a
//! disk it formatted itself.
//!
//! What is sent: the overlay upper directory, walked without following symlinks. Overlayfs' own marks
//! become the OCI forms: a 0:0 character device (a whiteout) is `.wh.NAME`, a directory with
//! `trusted.overlay.opaque=y` gets a `.wh..wh..opq` member. Modes (setuid included), owners, mtimes and
//! other xattrs are kept; files linked more than once become hard links; sockets are skipped (a tar
//! cannot hold one, and a socket is meaningless without its process).

use crate::error::{io_err, GuestError};
use bulkhead_proto::vm::WRITABLE_DISK;
use bulkhead_proto::{ChunkWriter, Message, MAX_PAYLOAD};
use nix::mount::{mount, umount, MsFlags};
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

/// Where the writable disk is mounted, read-only.
const DISK_DIR: &str = "/run/export";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Overlayfs' own xattrs describe the upper layer to overlayfs; they are translated, never copied.
const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";

/// Mounts the writable disk read-only, answers the host's `Hello`, streams the upper directory as a
/// tar in `ExportData` frames and ends with `ExportEnd`.
pub(crate) fn export(port: &File) -> Result<(), GuestError> {
    fs::create_dir_all(DISK_DIR).map_err(io_err("creating", Path::new(DISK_DIR)))?;
    // Read-only: a journal left by a crashed run is still replayed, nothing else is written.
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some(WRITABLE_DISK),
        DISK_DIR,
        Some("ext4"),
        flags,
        None::<&str>,
    )
    .map_err(|source| GuestError::Mount {
        fstype: "ext4",
        target: DISK_DIR,
        source,
    })?;
    let streamed = stream(port);
    // The disk was mounted read-only; nothing is lost if this fails.
    let _ = umount(DISK_DIR);
    streamed
}

fn stream(port: &File) -> Result<(), GuestError> {
    Message::Hello {
        version: bulkhead_proto::VERSION,
    }
    .send(&mut &*port)
    .map_err(GuestError::Proto)?;
    let upper = Path::new(DISK_DIR).join("upper");
    // Never followed: a guest may have replaced it with a symlink.
    let meta = fs::symlink_metadata(&upper).map_err(io_err("reading", &upper))?;
    if !meta.is_dir() {
        return Err(GuestError::NotADirectory(upper));
    }
    let mut walker = Walker {
        tar: tar::Builder::new(ChunkWriter::new(port, MAX_PAYLOAD, |data| {
            Message::ExportData { data }
        })),
        links: HashMap::new(),
    };
    walker.tar.follow_symlinks(false);
    walker.dir(&upper, Path::new(""))?;
    let mut frames = walker
        .tar
        .into_inner()
        .map_err(io_err("finishing the tar of", &upper))?;
    frames
        .flush()
        .map_err(io_err("sending the tar of", &upper))?;
    Message::ExportEnd
        .send(&mut &*port)
        .map_err(GuestError::Proto)
}

/// `W`: where the tar goes (`ExportData` frames of at most [`MAX_PAYLOAD`] bytes).
struct Walker<W: Write> {
    tar: tar::Builder<W>,
    /// Files with more than one link, by (device, inode): the name they were first sent under.
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> Walker<W> {
    /// Sends the entries of directory `path` (named `name` in the tar), sorted, depth first.
    fn dir(&mut self, path: &Path, name: &Path) -> Result<(), GuestError> {
        let mut entries: Vec<_> = fs::read_dir(path)
            .map_err(io_err("listing", path))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err("listing", path))?;
        entries.sort();
        for entry in entries {
            self.entry(&path.join(&entry), &name.join(&entry))?;
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, name: &Path) -> Result<(), GuestError> {
        let meta = fs::symlink_metadata(path).map_err(io_err("reading", path))?;
        let kind = meta.file_type();
        let send = |e| io_err("sending", path)(e);
        if kind.is_char_device() && meta.rdev() == 0 {
            let whiteout = whiteout_name(name);
            return self
                .tar
                .append_data(&mut empty_file(&meta), whiteout, io::empty())
                .map_err(send);
        }
        let mut header = Header::new_gnu();
        header.set_mode(meta.mode() & 0o7777);
        header.set_uid(meta.uid().into());
        header.set_gid(meta.gid().into());
        header.set_mtime(meta.mtime().max(0) as u64);
        header.set_size(0);
        let xattrs = xattrs(path)?;
        let pax: Vec<(String, &[u8])> = xattrs
            .iter()
            .filter(|(key, _)| !key.starts_with(OVERLAY_XATTR_PREFIX))
            .map(|(key, value)| (format!("SCHILY.xattr.{key}"), value.as_slice()))
            .collect();
        if !pax.is_empty() {
            self.tar
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), *v)))
                .map_err(send)?;
        }
        if kind.is_dir() {
            header.set_entry_type(EntryType::Directory);
            self.tar
                .append_data(&mut header, name, io::empty())
                .map_err(send)?;
            if xattrs.iter().any(|(k, v)| k == OPAQUE_XATTR && v == b"y") {
                let marker = name.join(".wh..wh..opq");
                self.tar
                    .append_data(&mut empty_file(&meta), marker, io::empty())
                    .map_err(send)?;
            }
            return self.dir(path, name);
        }
        if kind.is_symlink() {
            let target = fs::read_link(path).map_err(io_err("reading the symlink", path))?;
            header.set_entry_type(EntryType::Symlink);
            return self
                .tar
                .append_link(&mut header, name, target)
                .map_err(send);
        }
        if kind.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.links.get(&key) {
                    header.set_entry_type(EntryType::Link);
                    return self.tar.append_link(&mut header, name, first).map_err(send);
                }
                self.links.insert(key, name.to_path_buf());
            }
            header.set_entry_type(EntryType::Regular);
            header.set_size(meta.len());
            let file = File::open(path).map_err(io_err("opening", path))?;
            return self.tar.append_data(&mut header, name, file).map_err(send);
        }
        let device = |header: &mut Header, kind| -> io::Result<()> {
            header.set_entry_type(kind);
            header.set_device_major(libc::major(meta.rdev()))?;
            header.set_device_minor(libc::minor(meta.rdev()))
        };
        if kind.is_char_device() {
            device(&mut header, EntryType::Char).map_err(send)?;
        } else if kind.is_block_device() {
            device(&mut header, EntryType::Block).map_err(send)?;
        } else if kind.is_fifo() {
            header.set_entry_type(EntryType::Fifo);
        } else {
            return Ok(()); // a socket
        }
        self.tar
            .append_data(&mut header, name, io::empty())
            .map_err(send)
    }
}

/// `dir/.wh.NAME` for `dir/NAME`.
fn whiteout_name(name: &Path) -> PathBuf {
    let mut marked = b".wh.".to_vec();
    marked.extend_from_slice(name.file_name().unwrap_or_default().as_bytes());
    name.with_file_name(OsStr::from_bytes(&marked))
}

/// The header of an empty regular file with `meta`'s owner and mtime (whiteout markers).
fn empty_file(meta: &fs::Metadata) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Regular);
    header.set_mode(0o644);
    header.set_uid(meta.uid().into());
    header.set_gid(meta.gid().into());
    header.set_mtime(meta.mtime().max(0) as u64);
    header.set_size(0);
    header
}

/// Every extended attribute of `path` itself (not of a symlink's target), names and values.
fn xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>, GuestError> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io_err("naming", path)(io::Error::other(e)))?;
    let names = read_sized(path, |buf, len| {
        // SAFETY: llistxattr writes at most `len` bytes into `buf`, or only measures when `len` is 0.
        unsafe { libc::llistxattr(c_path.as_ptr(), buf.cast(), len) }
    })?;
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let c_name = CString::new(name).map_err(|e| io_err("naming", path)(io::Error::other(e)))?;
        let value = read_sized(path, |buf, len| {
            // SAFETY: as above, for the value of one attribute.
            unsafe { libc::lgetxattr(c_path.as_ptr(), c_name.as_ptr(), buf.cast(), len) }
        })?;
        out.push((String::from_utf8_lossy(name).into_owned(), value));
    }
    Ok(out)
}

/// Calls a `*xattr` function first to measure, then to fill; retries if the value grew meanwhile.
fn read_sized(
    path: &Path,
    call: impl Fn(*mut u8, usize) -> libc::ssize_t,
) -> Result<Vec<u8>, GuestError> {
    loop {
        let len = call(std::ptr::null_mut(), 0);
        if len < 0 {
            let e = io::Error::last_os_error();
            // A filesystem without xattrs has none to send.
            if e.raw_os_error() == Some(libc::ENOTSUP) {
                return Ok(Vec::new());
            }
            return Err(io_err("listing the xattrs of", path)(e));
        }
        let mut buf = vec![0u8; len as usize];
        let got = call(buf.as_mut_ptr(), buf.len());
        if got >= 0 {
            buf.truncate(got as usize);
            return Ok(buf);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            return Err(io_err("reading the xattrs of", path)(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// The tar a walk of `dir` sends, joined from its frames.
    fn walk(dir: &Path) -> Vec<u8> {
        let mut sent = Vec::new();
        {
            let mut walker = Walker {
                tar: tar::Builder::new(ChunkWriter::new(&mut sent, MAX_PAYLOAD, |data| {
                    Message::ExportData { data }
                })),
                links: HashMap::new(),
            };
            walker.tar.follow_symlinks(false);
            walker.dir(dir, Path::new("")).unwrap();
            let mut frames = walker.tar.into_inner().unwrap();
            frames.flush().unwrap();
        }
        let mut wire = sent.as_slice();
        let mut tar = Vec::new();
        while !wire.is_empty() {
            match Message::recv(&mut wire).unwrap() {
                Message::ExportData { data } => tar.extend(data),
                other => panic!("{other:?}"),
            }
        }
        tar
    }

    fn set_xattr(path: &Path, name: &std::ffi::CStr, value: &[u8]) {
        let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: both strings are NUL-terminated, the value is a live slice.
        let rc = unsafe {
            libc::lsetxattr(
                c_path.as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
    }

    /// What overlayfs leaves in an upper directory becomes the OCI layer forms, and long names and
    /// link targets survive (runs as root: whiteouts are device nodes, the opaque mark a trusted xattr).
    #[test]
    fn an_upper_directory_becomes_an_oci_layer() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("a"), b"data").unwrap();
        fs::set_permissions(
            d.join("a"),
            std::os::unix::fs::PermissionsExt::from_mode(0o4755),
        )
        .unwrap();
        fs::hard_link(d.join("a"), d.join("b")).unwrap();
        set_xattr(&d.join("a"), c"user.note", b"kept");
        let long_target = "t".repeat(150);
        symlink(&long_target, d.join("lnk")).unwrap();
        let long_name = "n".repeat(120);
        fs::create_dir(d.join("opq")).unwrap();
        fs::write(d.join("opq").join(&long_name), b"").unwrap();
        set_xattr(&d.join("opq"), c"trusted.overlay.opaque", b"y");
        let gone = CString::new(d.join("gone").as_os_str().as_bytes()).unwrap();
        // SAFETY: mknod of a 0:0 character device, as overlayfs makes a whiteout.
        assert_eq!(unsafe { libc::mknod(gone.as_ptr(), libc::S_IFCHR, 0) }, 0);

        let tar = walk(d);
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
            let link = entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned());
            let xattrs: Vec<String> = entry
                .pax_extensions()
                .unwrap()
                .map(|exts| {
                    exts.map(|e| e.unwrap().key().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let kind = entry.header().entry_type();
            let mode = entry.header().mode().unwrap();
            seen.push((name, kind, mode, link, xattrs));
        }
        let row = |name: &str, kind, mode, link: Option<&str>, xattrs: &[&str]| {
            (
                name.to_string(),
                kind,
                mode,
                link.map(String::from),
                xattrs.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
            )
        };
        let long = format!("opq/{long_name}");
        assert_eq!(
            seen,
            [
                row(
                    "a",
                    EntryType::Regular,
                    0o4755,
                    None,
                    &["SCHILY.xattr.user.note"]
                ),
                row(
                    "b",
                    EntryType::Link,
                    0o4755,
                    Some("a"),
                    &["SCHILY.xattr.user.note"]
                ),
                row(".wh.gone", EntryType::Regular, 0o644, None, &[]),
                row("lnk", EntryType::Symlink, 0o777, Some(&long_target), &[]),
                row("opq", EntryType::Directory, 0o755, None, &[]),
                row("opq/.wh..wh..opq", EntryType::Regular, 0o644, None, &[]),
                row(&long, EntryType::Regular, 0o644, None, &[]),
            ]
        );
    }
}
