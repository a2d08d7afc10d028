//! The archive helper: a child of the agent that joins the container's mount namespace and there
//! describes a path, writes a tar of it, or extracts a tar into a directory (docker cp).
//!
//! Why joining the mount namespace is safe: `setns(CLONE_NEWNS)` makes the helper's root and working
//! directory the root of the container's namespace, i.e. the container's root filesystem after its
//! pivot_root. Every path the helper resolves, including every symlink the container planted
//! (absolute ones, `..` chains, links swapped in while the copy runs), therefore resolves inside the
//! container, exactly as it would for a process of the container: a link to `/etc` is the container's
//! /etc, never the host's (or, in a VM, the guest's). The helper keeps the agent's credentials (root,
//! all capabilities, outside the container's user, pid and cgroup namespaces) but runs only this
//! module's code: it execs nothing, loads no libraries, and looks up no user names, so nothing of the
//! container's is ever executed with them.
//!
//! What a hostile container can still do: change the files under the helper while it works (the copy
//! then holds whatever the container's files were, as a copy by the container itself would), make the
//! helper block on a FIFO swapped in for a file or spend time on huge or endless files (the front end's
//! inactivity timeout and its disconnect end the helper: the agent kills it), and, for `ArchivePut`,
//! have files written where its own links point inside its root. The container's mounts are the
//! container's: a path under a volume or bind writes to that volume, as `docker cp` does.

use crate::idmap::IdMaps;
use bulkhead_proto::introspect::{PathStat, ARCHIVE_CHUNK};
use bulkhead_proto::{ChunkWriter, Message};
use chrono::DateTime;
use nix::sys::stat::{fchmodat, utimensat, FchmodatFlags, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, Gid, Uid};
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// What the helper is asked to do, with a path as the container names it.
#[derive(Debug, Clone)]
pub enum Request {
    Stat(String),
    Get(String),
    Put(String),
}

/// Why a request failed: the path is missing (docker's 404), or anything else.
enum Failure {
    Missing,
    Other(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Failure {
        Failure::Other(s)
    }
}

/// Runs `request` in the container's mount namespace (the caller has joined it) and reports on `reply`:
/// every answer of the request, ending with its last frame (`PathStat` for a stat, `ArchiveEnd`,
/// `NoSuchPath` or `Error`). `input` carries a put's tar; `ids` are the container's user namespace
/// mappings, which owners in tars are translated through.
pub fn run(stream: u32, request: &Request, ids: &IdMaps, reply: &File, input: Option<File>) {
    let result = match request {
        Request::Stat(path) => {
            stat(path).map(|stat| send(reply, Message::PathStat { stream, stat }))
        }
        Request::Get(path) => get(stream, path, ids, reply),
        Request::Put(path) => put(stream, path, ids, reply, input),
    };
    let last = match result {
        Ok(()) => return,
        Err(Failure::Missing) => Message::NoSuchPath { stream },
        Err(Failure::Other(message)) => Message::Error { stream, message },
    };
    send(reply, last);
}

/// A broken pipe means the agent is gone or gave up on us: nothing is left to tell.
fn send(reply: &File, msg: Message) {
    let _ = msg.send(&mut &*reply);
}

/// `path` in the container, absolute (docker resolves relative paths from `/`).
fn in_container(path: &str) -> PathBuf {
    Path::new("/").join(path)
}

fn not_found(path: &Path) -> impl FnOnce(io::Error) -> Failure + '_ {
    move |e| match e.kind() {
        io::ErrorKind::NotFound => Failure::Missing,
        _ => Failure::Other(format!("{}: {e}", path.display())),
    }
}

/// The path itself (a final symlink is described, not followed).
fn stat(path: &str) -> Result<PathStat, Failure> {
    let path = in_container(path);
    let meta = fs::symlink_metadata(&path).map_err(not_found(&path))?;
    let link_target = if meta.file_type().is_symlink() {
        // Resolved in the container's root, as docker reports it; a dangling link by its text.
        match fs::canonicalize(&path) {
            Ok(p) => p.to_string_lossy().into_owned(),
            Err(_) => fs::read_link(&path)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    } else {
        String::new()
    };
    Ok(describe(&path, &meta, link_target))
}

fn describe(path: &Path, meta: &Metadata, link_target: String) -> PathStat {
    PathStat {
        name: top_name(path),
        size: meta.size() as i64,
        mode: meta.mode(),
        mtime: DateTime::from_timestamp(meta.mtime(), meta.mtime_nsec() as u32).unwrap_or_default(),
        link_target,
    }
}

/// The base name, `/` for the root.
fn top_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into())
}

/// `PathStat`, then the tar of `path` (its base name as the top member) in `ArchiveData` frames, then
/// `ArchiveEnd`.
fn get(stream: u32, path: &str, ids: &IdMaps, reply: &File) -> Result<(), Failure> {
    let stat = stat(path)?;
    let path = in_container(path);
    let top = match path.file_name() {
        Some(name) => PathBuf::from(name),
        None => PathBuf::from("."),
    };
    send(reply, Message::PathStat { stream, stat });
    let frames = ChunkWriter::new(reply, ARCHIVE_CHUNK, |data| Message::ArchiveData {
        stream,
        data,
    });
    let mut tar = tar::Builder::new(frames);
    append(&mut tar, ids, &path, &top)?;
    let mut frames = tar
        .into_inner()
        .map_err(|e| format!("finishing the tar of {}: {e}", path.display()))?;
    frames
        .flush()
        .map_err(|e| format!("sending the tar of {}: {e}", path.display()))?;
    send(reply, Message::ArchiveEnd { stream });
    Ok(())
}

/// Appends `path` as `name`, and a directory's entries below it, sorted; never follows a symlink.
/// Owners are the container's (through `ids`). Sockets are left out: a tar cannot hold one.
fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    ids: &IdMaps,
    path: &Path,
    name: &Path,
) -> Result<(), Failure> {
    let failed = |e: io::Error| Failure::Other(format!("{}: {e}", path.display()));
    let meta = fs::symlink_metadata(path).map_err(failed)?;
    let kind = meta.file_type();
    if kind.is_socket() {
        return Ok(());
    }
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    let (uid, gid) = ids.to_container(meta.uid().into(), meta.gid().into());
    header.set_uid(uid);
    header.set_gid(gid);
    if kind.is_symlink() {
        let target = fs::read_link(path).map_err(failed)?;
        return tar.append_link(&mut header, name, target).map_err(failed);
    }
    if kind.is_file() {
        let file = File::open(path).map_err(failed)?;
        return tar.append_data(&mut header, name, file).map_err(failed);
    }
    if kind.is_char_device() || kind.is_block_device() {
        let dev = meta.rdev();
        header
            .set_device_major(nix::sys::stat::major(dev) as u32)
            .and_then(|()| header.set_device_minor(nix::sys::stat::minor(dev) as u32))
            .map_err(failed)?;
    }
    tar.append_data(&mut header, name, io::empty())
        .map_err(failed)?;
    if meta.is_dir() {
        let mut entries: Vec<_> = fs::read_dir(path)
            .map_err(failed)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(failed)?;
        entries.sort();
        for entry in entries {
            append(tar, ids, &path.join(&entry), &name.join(&entry))?;
        }
    }
    Ok(())
}

/// `PathStat` of the directory `path`, then extracts the tar read from `input` into it, then
/// `ArchiveEnd`. Members with `..` or an absolute name, and hard links to such names, are refused;
/// modes (setuid included), owners and modification times are kept.
fn put(
    stream: u32,
    path: &str,
    ids: &IdMaps,
    reply: &File,
    input: Option<File>,
) -> Result<(), Failure> {
    let dir = in_container(path);
    // Followed: a link to a directory is that directory (resolved inside the container).
    let meta = fs::metadata(&dir).map_err(not_found(&dir))?;
    if !meta.is_dir() {
        return Err(Failure::Other(format!("{path} is not a directory")));
    }
    send(
        reply,
        Message::PathStat {
            stream,
            stat: describe(&dir, &meta, String::new()),
        },
    );
    let input = input.ok_or_else(|| "no tar to extract".to_string())?;
    extract(input, &dir, ids)?;
    send(reply, Message::ArchiveEnd { stream });
    Ok(())
}

fn extract(input: impl Read, dir: &Path, ids: &IdMaps) -> Result<(), String> {
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    // The tar crate does not set a directory's time (its entries change it): done at the end.
    let mut dir_times = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| format!("reading the tar: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("reading the tar: {e}"))?;
        let name = entry
            .path()
            .map_err(|e| format!("a member's name: {e}"))?
            .into_owned();
        check_member(&name, "")?;
        if entry.header().entry_type().is_hard_link() {
            if let Ok(Some(target)) = entry.link_name() {
                check_member(&target, &format!(" (a hard link of {})", name.display()))?;
            }
        }
        let unpacked = entry
            .unpack_in(dir)
            .map_err(|e| format!("extracting {}: {e}", name.display()))?;
        if !unpacked {
            return Err(format!("member {} was refused", name.display()));
        }
        if !ids.is_identity() {
            owned_as_in_container(&dir.join(&name), entry.header(), ids)?;
        }
        if entry.header().entry_type().is_dir() {
            if let Ok(mtime) = entry.header().mtime() {
                dir_times.push((dir.join(&name), mtime as i64));
            }
        }
    }
    for (path, mtime) in dir_times.into_iter().rev() {
        let t = TimeSpec::new(mtime, 0);
        utimensat(None, &path, &t, &t, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| format!("setting the time of {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Gives an extracted member the host owners of the container ids its header names, then its mode again
/// (a chown clears setuid and setgid bits).
fn owned_as_in_container(path: &Path, header: &tar::Header, ids: &IdMaps) -> Result<(), String> {
    let what = |e: io::Error| format!("{}: {e}", path.display());
    let (uid, gid) = ids.to_host(header.uid().map_err(what)?, header.gid().map_err(what)?)?;
    let chown = |e: nix::Error| format!("setting the owner of {}: {e}", path.display());
    fchownat(
        None,
        path,
        Some(Uid::from_raw(uid as u32)),
        Some(Gid::from_raw(gid as u32)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(chown)?;
    if !header.entry_type().is_symlink() {
        let mode = Mode::from_bits_truncate(header.mode().map_err(what)? & 0o7777);
        fchmodat(None, path, mode, FchmodatFlags::FollowSymlink).map_err(chown)?;
    }
    Ok(())
}

/// A member name must stay below the directory: no `..`, not absolute.
fn check_member(name: &Path, what: &str) -> Result<(), String> {
    for c in name.components() {
        match c {
            Component::ParentDir => {
                return Err(format!(
                    "member {}{what} refers to a parent directory (..): refused",
                    name.display()
                ))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "member {}{what} is an absolute path: refused",
                    name.display()
                ))
            }
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test's own (identity) mappings.
    fn own_ids() -> IdMaps {
        IdMaps::of(nix::unistd::Pid::this()).unwrap()
    }

    fn tar_with(name: &str, link: Option<&str>) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        if let Some(target) = link {
            h.set_entry_type(tar::EntryType::Link);
            h.set_link_name(target).unwrap();
        }
        // Written raw: the builder itself refuses `..`.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, io::empty()).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn parent_and_absolute_members_are_refused_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        for (name, link) in [
            ("../x", None),
            ("/abs", None),
            ("ok", Some("../../etc/passwd")),
        ] {
            let err = extract(tar_with(name, link).as_slice(), dir.path(), &own_ids()).unwrap_err();
            assert!(err.contains("refused"), "{name}: {err}");
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_tar_of_a_tree_comes_back_with_modes_and_links() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("d")).unwrap();
        fs::write(src.path().join("d/f"), b"data").unwrap();
        fs::set_permissions(
            src.path().join("d/f"),
            std::os::unix::fs::PermissionsExt::from_mode(0o4750),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc", src.path().join("d/l")).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        append(&mut tar, &own_ids(), &src.path().join("d"), Path::new("d"))
            .unwrap_or_else(|_| panic!());
        let bytes = tar.into_inner().unwrap();
        let dst = tempfile::tempdir().unwrap();
        extract(bytes.as_slice(), dst.path(), &own_ids()).unwrap();
        let f = fs::symlink_metadata(dst.path().join("d/f")).unwrap();
        assert_eq!(f.mode() & 0o7777, 0o4750);
        assert_eq!(fs::read(dst.path().join("d/f")).unwrap(), b"data");
        assert_eq!(
            fs::read_link(dst.path().join("d/l")).unwrap(),
            Path::new("/etc")
        );
    }
}
