//! Applying layer tars onto a directory, safely against hostile archives.
//!
//! All filesystem access goes through directory file descriptors: each parent directory is
//! reached component by component with `O_NOFOLLOW`, and symlinks met on the way are resolved by
//! hand *inside* the rootfs (absolute targets restart at the rootfs, `..` may not climb above
//! it). A member whose parent path leads out of the rootfs is rejected, never followed. The last
//! component of a member is never followed either: whatever is there is replaced.
//!
//! Whiteouts (`.wh.NAME`, `.wh..wh..opq`) remove lower-layer content; ownership, modes
//! (including setuid), mtimes and xattrs are applied as recorded. Device nodes are only created
//! when running as root.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use rustix::fs::{
    self as rfs, AtFlags, Dir, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags,
};
use rustix::io::Errno;

use crate::digest::Digest;
use crate::error::ImageError;
use crate::layer::{bad_link_target, corrupt, hostile, member_components, Budget, HashingReader};
use crate::store::Limits;
use crate::tar_headers::{self, tar_error};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";
const MAX_SYMLINK_HOPS: u32 = 40;
/// Overlayfs interprets these on lower layers; an image must not be able to set them.
const FORBIDDEN_XATTR_PREFIX: &str = "trusted.overlay.";
/// How overlayfs marks a directory of an upper layer that hides its lower namesake's content.
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What a whiteout member does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Whiteouts {
    /// Removes what lower layers put there: the layers are flattened into one tree.
    Apply,
    /// Records it the way an overlayfs upper directory does (a 0:0 character device, or the opaque
    /// xattr on the directory), so that the tree can be an upper layer over the image.
    Record,
}

/// Metadata of one member, gathered from its header and PAX records.
struct MemberMeta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Unpacks the layers of one image, in order, into a directory.
pub(crate) struct Unpacker<'l> {
    root: OwnedFd,
    limits: &'l Limits,
    budget: Budget,
    as_root: bool,
    whiteouts: Whiteouts,
    /// Directory mtimes, applied last (creating children changes them).
    dir_times: BTreeMap<Vec<OsString>, Timespec>,
    /// Most recently resolved parent directory; dropped whenever anything is removed.
    cache: Option<(Vec<OsString>, OwnedFd)>,
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn errno_io(layer: &str, member: &[u8], what: &str) -> impl FnOnce(Errno) -> ImageError {
    let context = format!(
        "layer {layer}: member {:?}: {what}",
        String::from_utf8_lossy(member)
    );
    move |e| ImageError::Io {
        context,
        source: e.into(),
    }
}

fn is_not_found(e: Errno) -> bool {
    e == Errno::NOENT
}

/// Removes `name` in `dir` (recursively for directories) without following symlinks.
fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> Result<(), Errno> {
    let stat = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(s) => s,
        Err(e) if is_not_found(e) => return Ok(()),
        Err(e) => return Err(e),
    };
    if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
        let child = rfs::openat(dir, name, dir_flags(), Mode::empty())?;
        clear_dir(child.as_fd(), &HashSet::new())?;
        rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)
    } else {
        rfs::unlinkat(dir, name, AtFlags::empty())
    }
}

/// Removes every entry of `dir` except those named in `keep`.
fn clear_dir(dir: BorrowedFd<'_>, keep: &HashSet<OsString>) -> Result<(), Errno> {
    let mut names = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name != "." && name != ".." && !keep.contains(name) {
            names.push(name.to_os_string());
        }
    }
    for name in names {
        remove_all_at(dir, &name)?;
    }
    Ok(())
}

fn parse_pax_time(value: &str) -> Option<Timespec> {
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let tv_nsec = if digits.is_empty() {
        0
    } else {
        digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32)
    };
    Some(Timespec { tv_sec, tv_nsec })
}

impl<'l> Unpacker<'l> {
    /// Prepares to unpack into the existing directory `root`.
    pub(crate) fn new(
        root: &Path,
        limits: &'l Limits,
        whiteouts: Whiteouts,
    ) -> Result<Unpacker<'l>, ImageError> {
        let root = rfs::open(root, dir_flags(), Mode::empty())
            .map_err(ImageError::errno(format!("open {}", root.display())))?;
        Ok(Unpacker {
            root,
            limits,
            budget: Budget::default(),
            as_root: rustix::process::geteuid().is_root(),
            whiteouts,
            dir_times: BTreeMap::new(),
            cache: None,
        })
    }

    /// Opens the directory at `components` inside the rootfs, resolving symlinks inside it.
    /// Missing directories are created when `create`, else `Ok(None)` is returned.
    fn open_dir(
        &mut self,
        components: &[&OsStr],
        create: bool,
        layer: &str,
        member: &[u8],
    ) -> Result<Option<OwnedFd>, ImageError> {
        let key: Vec<OsString> = components.iter().map(|c| c.to_os_string()).collect();
        if let Some((cached, fd)) = &self.cache {
            if *cached == key {
                return fd
                    .try_clone()
                    .map(Some)
                    .map_err(ImageError::io(format!("layer {layer}: dup directory")));
            }
        }
        let mut queue: VecDeque<OsString> = key.iter().cloned().collect();
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut hops = 0;
        while let Some(component) = queue.pop_front() {
            if component.is_empty() || component == "." {
                continue;
            }
            if component == ".." {
                if stack.pop().is_none() {
                    return Err(hostile(
                        layer,
                        member,
                        "path leads outside the rootfs through a symlink",
                    ));
                }
                continue;
            }
            let current = stack.last().map_or(self.root.as_fd(), |fd| fd.as_fd());
            match rfs::statat(current, &component, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => match FileType::from_raw_mode(stat.st_mode) {
                    FileType::Directory => {
                        let fd = rfs::openat(current, &component, dir_flags(), Mode::empty())
                            .map_err(errno_io(layer, member, "open parent directory"))?;
                        stack.push(fd);
                    }
                    FileType::Symlink => {
                        hops += 1;
                        if hops > MAX_SYMLINK_HOPS {
                            return Err(hostile(layer, member, "too many levels of symlinks"));
                        }
                        let target = rfs::readlinkat(current, &component, Vec::new())
                            .map_err(errno_io(layer, member, "read symlink"))?;
                        let target = target.into_bytes();
                        if target.starts_with(b"/") {
                            stack.clear();
                        }
                        for part in target.split(|&b| b == b'/').rev() {
                            queue.push_front(OsString::from_vec(part.to_vec()));
                        }
                    }
                    _ => {
                        return Err(hostile(
                            layer,
                            member,
                            format!("parent {:?} is not a directory", component),
                        ))
                    }
                },
                Err(e) if is_not_found(e) && create => {
                    rfs::mkdirat(current, &component, Mode::from_raw_mode(0o755))
                        .map_err(errno_io(layer, member, "create parent directory"))?;
                    let fd = rfs::openat(current, &component, dir_flags(), Mode::empty())
                        .map_err(errno_io(layer, member, "open parent directory"))?;
                    stack.push(fd);
                }
                Err(e) if is_not_found(e) => return Ok(None),
                Err(e) => return Err(errno_io(layer, member, "stat parent")(e)),
            }
        }
        let fd =
            match stack.pop() {
                Some(fd) => fd,
                None => rfs::openat(&self.root, ".", dir_flags(), Mode::empty())
                    .map_err(errno_io(layer, member, "open rootfs"))?,
            };
        let cached = fd
            .try_clone()
            .map_err(ImageError::io(format!("layer {layer}: dup directory")))?;
        self.cache = Some((key, cached));
        Ok(Some(fd))
    }

    fn remove(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        layer: &str,
        member: &[u8],
    ) -> Result<(), ImageError> {
        self.cache = None;
        remove_all_at(dir, name).map_err(errno_io(layer, member, "remove existing entry"))
    }

    fn member_meta(
        entry: &mut tar::Entry<'_, impl Read>,
        layer: &str,
        member: &[u8],
    ) -> Result<MemberMeta, ImageError> {
        let header = entry.header();
        let bad = |e: io::Error| {
            corrupt(
                layer,
                format!("member {:?}: {e}", String::from_utf8_lossy(member)),
            )
        };
        let mut meta = MemberMeta {
            mode: header.mode().map_err(bad)? & 0o7777,
            uid: u32::try_from(header.uid().map_err(bad)?).unwrap_or(u32::MAX),
            gid: u32::try_from(header.gid().map_err(bad)?).unwrap_or(u32::MAX),
            mtime: Timespec {
                tv_sec: i64::try_from(header.mtime().map_err(bad)?).unwrap_or(0),
                tv_nsec: 0,
            },
            xattrs: Vec::new(),
        };
        if let Some(extensions) = entry.pax_extensions().map_err(bad)? {
            for extension in extensions {
                let extension = extension.map_err(bad)?;
                let Ok(key) = extension.key() else { continue };
                let value = extension.value_bytes();
                let text = std::str::from_utf8(value).unwrap_or("");
                match key {
                    "uid" => {
                        meta.uid = text
                            .parse()
                            .map_err(|_| hostile(layer, member, "bad PAX uid"))?
                    }
                    "gid" => {
                        meta.gid = text
                            .parse()
                            .map_err(|_| hostile(layer, member, "bad PAX gid"))?
                    }
                    "mtime" => {
                        meta.mtime = parse_pax_time(text)
                            .ok_or_else(|| hostile(layer, member, "bad PAX mtime"))?
                    }
                    _ => {
                        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                            meta.xattrs.push((name.to_string(), value.to_vec()));
                        }
                    }
                }
            }
        }
        Ok(meta)
    }

    /// Applies owner, mode, xattrs and (for non-directories) mtime to an open file or directory.
    fn apply_meta_fd(
        &self,
        fd: BorrowedFd<'_>,
        meta: &MemberMeta,
        set_time: bool,
        layer: &str,
        member: &[u8],
    ) -> Result<(), ImageError> {
        if self.as_root {
            rfs::fchown(
                fd,
                Some(rfs::Uid::from_raw(meta.uid)),
                Some(rfs::Gid::from_raw(meta.gid)),
            )
            .map_err(errno_io(layer, member, "chown"))?;
        }
        // chmod after chown: chown clears setuid/setgid bits.
        rfs::fchmod(fd, Mode::from_raw_mode(meta.mode))
            .map_err(errno_io(layer, member, "chmod"))?;
        for (name, value) in &meta.xattrs {
            if name.starts_with(FORBIDDEN_XATTR_PREFIX) {
                tracing::warn!(layer, xattr = %name, "ignoring overlayfs xattr in layer");
                continue;
            }
            rfs::fsetxattr(fd, name.as_str(), value, XattrFlags::empty()).map_err(errno_io(
                layer,
                member,
                &format!("set xattr {name}"),
            ))?;
        }
        if set_time {
            let times = Timestamps {
                last_access: meta.mtime,
                last_modification: meta.mtime,
            };
            rfs::futimens(fd, &times).map_err(errno_io(layer, member, "set mtime"))?;
        }
        Ok(())
    }

    /// Applies owner and mtime to a node that cannot be opened (symlink, device, fifo).
    fn apply_meta_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        meta: &MemberMeta,
        symlink: bool,
        layer: &str,
        member: &[u8],
    ) -> Result<(), ImageError> {
        if self.as_root {
            rfs::chownat(
                dir,
                name,
                Some(rfs::Uid::from_raw(meta.uid)),
                Some(rfs::Gid::from_raw(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(errno_io(layer, member, "chown"))?;
        }
        if !symlink {
            rfs::chmodat(dir, name, Mode::from_raw_mode(meta.mode), AtFlags::empty())
                .map_err(errno_io(layer, member, "chmod"))?;
        }
        if !meta.xattrs.is_empty() {
            let path = Path::new("/proc/self/fd")
                .join(format!("{}", std::os::fd::AsRawFd::as_raw_fd(&dir)))
                .join(name);
            for (xattr, value) in &meta.xattrs {
                if xattr.starts_with(FORBIDDEN_XATTR_PREFIX) {
                    continue;
                }
                rfs::lsetxattr(&path, xattr.as_str(), value, XattrFlags::empty())
                    .map_err(errno_io(layer, member, &format!("set xattr {xattr}")))?;
            }
        }
        let times = Timestamps {
            last_access: meta.mtime,
            last_modification: meta.mtime,
        };
        rfs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(errno_io(
            layer,
            member,
            "set mtime",
        ))
    }

    /// Records the whiteout member `name` in `parents` as overlayfs does in an upper directory.
    fn record_whiteout(
        &mut self,
        parents: &[&OsStr],
        name: &[u8],
        layer: &str,
        member: &[u8],
    ) -> Result<(), ImageError> {
        let Some(dir) = self.open_dir(parents, true, layer, member)? else {
            return Err(hostile(layer, member, "parent directory missing"));
        };
        if name == OPAQUE_WHITEOUT {
            return rfs::fsetxattr(&dir, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(errno_io(layer, member, "mark the directory opaque"));
        }
        let hidden = OsStr::from_bytes(&name[WHITEOUT_PREFIX.len()..]);
        if hidden.is_empty() || hidden == "." || hidden == ".." {
            return Err(hostile(layer, member, "invalid whiteout name"));
        }
        if !self.as_root {
            return Err(hostile(layer, member, "recording a whiteout needs root"));
        }
        self.remove(dir.as_fd(), hidden, layer, member)?;
        rfs::mknodat(
            &dir,
            hidden,
            FileType::CharacterDevice,
            Mode::empty(),
            rfs::makedev(0, 0),
        )
        .map_err(errno_io(layer, member, "record whiteout"))
    }

    /// Applies one layer tar (already decompressed). Returns its diff id.
    pub(crate) fn apply_layer(
        &mut self,
        reader: impl Read,
        layer: &str,
    ) -> Result<Digest, ImageError> {
        let mut hashing = HashingReader::new(reader);
        // Paths (and their ancestors) written by this layer: opaque whiteouts keep them.
        let mut written: HashSet<Vec<OsString>> = HashSet::new();
        {
            let (mut archive, special) = tar_headers::archive(&mut hashing);
            let entries = archive.entries().map_err(|e| tar_error(layer, e))?;
            for entry in entries {
                let mut entry = entry.map_err(|e| tar_error(layer, e))?;
                let raw = entry.path_bytes().into_owned();
                let components = member_components(&raw, layer, self.limits)?;
                let size = entry.size();
                // The special headers before this member (long names, PAX records) count too.
                self.budget
                    .charge(size + special.take(), layer, self.limits)?;
                let Some((name, parents)) = components.split_last() else {
                    continue; // the rootfs directory itself keeps its defaults
                };
                let name_bytes = name.as_bytes();
                if self.whiteouts == Whiteouts::Record && name_bytes.starts_with(WHITEOUT_PREFIX) {
                    self.record_whiteout(parents, name_bytes, layer, &raw)?;
                    continue;
                }
                if name_bytes == OPAQUE_WHITEOUT {
                    if let Some(dir) = self.open_dir(parents, false, layer, &raw)? {
                        let parent_key: Vec<OsString> =
                            parents.iter().map(|c| c.to_os_string()).collect();
                        let keep: HashSet<OsString> = written
                            .iter()
                            .filter(|p| {
                                p.len() == parent_key.len() + 1 && p.starts_with(&parent_key)
                            })
                            .filter_map(|p| p.last().cloned())
                            .collect();
                        self.cache = None;
                        clear_dir(dir.as_fd(), &keep).map_err(errno_io(
                            layer,
                            &raw,
                            "opaque whiteout",
                        ))?;
                    }
                    continue;
                }
                if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX) {
                    if hidden.is_empty() || hidden == b"." || hidden == b".." {
                        return Err(hostile(layer, &raw, "invalid whiteout name"));
                    }
                    if let Some(dir) = self.open_dir(parents, false, layer, &raw)? {
                        self.remove(dir.as_fd(), OsStr::from_bytes(hidden), layer, &raw)?;
                    }
                    continue;
                }
                let key: Vec<OsString> = components.iter().map(|c| c.to_os_string()).collect();
                for depth in 1..=key.len() {
                    written.insert(key[..depth].to_vec());
                }
                let meta = Self::member_meta(&mut entry, layer, &raw)?;
                let Some(dir) = self.open_dir(parents, true, layer, &raw)? else {
                    return Err(hostile(layer, &raw, "parent directory missing"));
                };
                let dir = dir.as_fd();
                let kind = entry.header().entry_type();
                let existing = match rfs::statat(dir, *name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(stat) => Some(FileType::from_raw_mode(stat.st_mode)),
                    Err(e) if is_not_found(e) => None,
                    Err(e) => return Err(errno_io(layer, &raw, "stat")(e)),
                };
                use tar::EntryType as T;
                match kind {
                    T::Directory => {
                        if existing.is_some_and(|t| t != FileType::Directory) {
                            self.remove(dir, name, layer, &raw)?;
                        }
                        if existing != Some(FileType::Directory) {
                            rfs::mkdirat(dir, *name, Mode::from_raw_mode(0o700))
                                .map_err(errno_io(layer, &raw, "mkdir"))?;
                        }
                        let fd = rfs::openat(dir, *name, dir_flags(), Mode::empty())
                            .map_err(errno_io(layer, &raw, "open directory"))?;
                        self.apply_meta_fd(fd.as_fd(), &meta, false, layer, &raw)?;
                        self.dir_times.insert(key, meta.mtime);
                    }
                    T::Regular | T::Continuous | T::GNUSparse => {
                        if existing.is_some() {
                            self.remove(dir, name, layer, &raw)?;
                        }
                        let fd = rfs::openat(
                            dir,
                            *name,
                            OFlags::WRONLY
                                | OFlags::CREATE
                                | OFlags::EXCL
                                | OFlags::NOFOLLOW
                                | OFlags::CLOEXEC,
                            Mode::from_raw_mode(0o600),
                        )
                        .map_err(errno_io(layer, &raw, "create file"))?;
                        let mut file = File::from(fd);
                        let copied = io::copy(&mut entry, &mut file).map_err(|e| {
                            corrupt(
                                layer,
                                format!("member {:?}: {e}", String::from_utf8_lossy(&raw)),
                            )
                        })?;
                        if copied != size {
                            return Err(corrupt(
                                layer,
                                format!(
                                    "member {:?} truncated ({copied} of {size} bytes)",
                                    String::from_utf8_lossy(&raw)
                                ),
                            ));
                        }
                        self.apply_meta_fd(file.as_fd(), &meta, true, layer, &raw)?;
                    }
                    T::Symlink => {
                        let target = entry
                            .link_name_bytes()
                            .ok_or_else(|| hostile(layer, &raw, "symlink without target"))?
                            .into_owned();
                        if existing.is_some() {
                            self.remove(dir, name, layer, &raw)?;
                        }
                        rfs::symlinkat(OsStr::from_bytes(&target), dir, *name)
                            .map_err(errno_io(layer, &raw, "symlink"))?;
                        self.apply_meta_at(dir, name, &meta, true, layer, &raw)?;
                    }
                    T::Link => {
                        let target = entry
                            .link_name_bytes()
                            .ok_or_else(|| hostile(layer, &raw, "hard link without target"))?
                            .into_owned();
                        let target_components = member_components(&target, layer, self.limits)
                            .map_err(|_| bad_link_target(layer, &raw, &target))?;
                        let Some((target_name, target_parents)) = target_components.split_last()
                        else {
                            return Err(hostile(layer, &raw, "hard link to the rootfs directory"));
                        };
                        let target_dir = self
                            .open_dir(target_parents, false, layer, &raw)?
                            .ok_or_else(|| {
                                hostile(layer, &raw, "hard link target does not exist")
                            })?;
                        let target_type =
                            match rfs::statat(&target_dir, *target_name, AtFlags::SYMLINK_NOFOLLOW)
                            {
                                Ok(stat) => FileType::from_raw_mode(stat.st_mode),
                                Err(e) if is_not_found(e) => {
                                    return Err(hostile(
                                        layer,
                                        &raw,
                                        "hard link target does not exist",
                                    ))
                                }
                                Err(e) => return Err(errno_io(layer, &raw, "stat link target")(e)),
                            };
                        if target_type == FileType::Directory {
                            return Err(hostile(layer, &raw, "hard link to a directory"));
                        }
                        // Re-open the destination parent: resolving the target replaced the cache.
                        let Some(dir) = self.open_dir(parents, true, layer, &raw)? else {
                            return Err(hostile(layer, &raw, "parent directory missing"));
                        };
                        if target_parents == parents && target_name == name {
                            continue;
                        }
                        if existing.is_some() {
                            self.remove(dir.as_fd(), name, layer, &raw)?;
                        }
                        rfs::linkat(&target_dir, *target_name, &dir, *name, AtFlags::empty())
                            .map_err(errno_io(layer, &raw, "hard link"))?;
                    }
                    T::Char | T::Block | T::Fifo => {
                        let file_type = match kind {
                            T::Char => FileType::CharacterDevice,
                            T::Block => FileType::BlockDevice,
                            _ => FileType::Fifo,
                        };
                        if file_type != FileType::Fifo && !self.as_root {
                            tracing::warn!(layer, member = %String::from_utf8_lossy(&raw), "skipping device node: not root");
                            continue;
                        }
                        let header = entry.header();
                        let bad = |e: io::Error| {
                            corrupt(
                                layer,
                                format!("member {:?}: {e}", String::from_utf8_lossy(&raw)),
                            )
                        };
                        let (major, minor) = if file_type == FileType::Fifo {
                            (0, 0)
                        } else {
                            (
                                header.device_major().map_err(bad)?.unwrap_or(0),
                                header.device_minor().map_err(bad)?.unwrap_or(0),
                            )
                        };
                        if existing.is_some() {
                            self.remove(dir, name, layer, &raw)?;
                        }
                        rfs::mknodat(
                            dir,
                            *name,
                            file_type,
                            Mode::from_raw_mode(meta.mode),
                            rfs::makedev(major, minor),
                        )
                        .map_err(errno_io(layer, &raw, "mknod"))?;
                        self.apply_meta_at(dir, name, &meta, false, layer, &raw)?;
                    }
                    T::XGlobalHeader => continue,
                    other => {
                        return Err(hostile(
                            layer,
                            &raw,
                            format!("unsupported tar entry type {:?}", other.as_byte() as char),
                        ));
                    }
                }
            }
        }
        hashing.finish().map_err(|e| corrupt(layer, e))
    }

    /// Sets directory mtimes recorded during unpacking (deepest first) and closes the rootfs.
    pub(crate) fn finish(mut self) -> Result<(), ImageError> {
        let mut dirs: Vec<(Vec<OsString>, Timespec)> =
            std::mem::take(&mut self.dir_times).into_iter().collect();
        dirs.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
        for (path, mtime) in dirs {
            let Some((name, parents)) = path.split_last() else {
                continue;
            };
            let components: Vec<&OsStr> = parents.iter().map(OsString::as_os_str).collect();
            let member = path.join(OsStr::new("/")).into_vec();
            // Paths that a later layer replaced or whited out are simply gone.
            let Ok(Some(parent)) = self.open_dir(&components, false, "(final)", &member) else {
                continue;
            };
            let Ok(fd) = rfs::openat(&parent, name, dir_flags(), Mode::empty()) else {
                continue;
            };
            let times = Timestamps {
                last_access: mtime,
                last_modification: mtime,
            };
            rfs::futimens(&fd, &times).map_err(errno_io(
                "(final)",
                &member,
                "set directory mtime",
            ))?;
        }
        Ok(())
    }
}
