//! The host side of `cp`: a tar of a host path streamed to the engine, and a tar from a container
//! unpacked onto the host. Each runs on its own thread behind a pipe, so no tar is ever held whole.
//!
//! A tar out of a container is hostile (the container, or in VM mode its guest kernel, wrote it): it
//! is unpacked into a fresh directory next to the destination, refusing members with `..` or an
//! absolute name and hard links to such names, never writing through a symlink that leads out of that
//! directory (the tar crate's `unpack_in` check), without owners (files belong to the caller, as with
//! docker cp) and without setuid, setgid and sticky bits (a container must not leave a setuid-root
//! program on the host); only then is its top member moved into place.

use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// Runs `fetch` (which writes a tar whose top member is `top`) and puts that member at `target`:
/// renamed into place, or merged into `target` if both are directories.
pub fn receive(
    target: &Path,
    top: &str,
    fetch: impl FnOnce(&mut dyn Write) -> Result<(), bulkhead_engine::EngineError>,
) -> Result<()> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let scratch = nix::unistd::mkdtemp(&parent.join(".bulkhead-cp-XXXXXX"))
        .with_context(|| format!("making a directory in {}", parent.display()))?;
    let result = receive_into(&scratch, target, top, fetch);
    let _ = fs::remove_dir_all(&scratch);
    result
}

fn receive_into(
    scratch: &Path,
    target: &Path,
    top: &str,
    fetch: impl FnOnce(&mut dyn Write) -> Result<(), bulkhead_engine::EngineError>,
) -> Result<()> {
    let (reader, mut writer) = std::io::pipe().context("pipe")?;
    let unpacked = std::thread::scope(|s| {
        let unpacker = s.spawn(|| unpack(reader, scratch));
        let fetched = fetch(&mut writer);
        drop(writer);
        let unpacked = unpacker
            .join()
            .map_err(|_| anyhow!("the unpacking thread panicked"));
        // The engine's error says why a tar ended early; report it first.
        fetched?;
        unpacked?
    });
    unpacked?;
    let member = scratch.join(top);
    fs::symlink_metadata(&member).with_context(|| format!("the archive holds no {top}"))?;
    place(&member, target)
}

fn unpack(input: impl Read, dir: &Path) -> Result<()> {
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(false);
    archive.set_preserve_ownerships(false);
    archive.set_preserve_mtime(true);
    for entry in archive.entries().context("reading the archive")? {
        let mut entry = entry.context("reading the archive")?;
        let name = entry.path().context("a member's name")?.into_owned();
        check_member(&name)?;
        if entry.header().entry_type().is_hard_link() {
            if let Some(target) = entry.link_name().context("a hard link's target")? {
                check_member(&target)?;
            }
        }
        if !entry
            .unpack_in(dir)
            .with_context(|| format!("extracting {}", name.display()))?
        {
            bail!("member {} was refused", name.display());
        }
    }
    Ok(())
}

fn check_member(name: &Path) -> Result<()> {
    for c in name.components() {
        match c {
            Component::ParentDir => bail!("member {} refers to a parent directory", name.display()),
            Component::RootDir | Component::Prefix(_) => {
                bail!("member {} is an absolute path", name.display())
            }
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    Ok(())
}

/// Moves `from` to `to`; a directory onto an existing directory (not a symlink) is merged into it,
/// entry by entry.
fn place(from: &Path, to: &Path) -> Result<()> {
    let from_dir = fs::symlink_metadata(from)?.is_dir();
    let to_dir = fs::symlink_metadata(to).is_ok_and(|m| m.is_dir());
    if !(from_dir && to_dir) {
        return fs::rename(from, to)
            .with_context(|| format!("moving the copy to {}", to.display()));
    }
    for entry in fs::read_dir(from)? {
        let name = entry?.file_name();
        place(&from.join(&name), &to.join(&name))?;
    }
    Ok(())
}

/// Streams a tar of `src` (named `name` in it; symlinks kept as links) to `put`.
pub fn send(
    src: &Path,
    name: &Path,
    put: impl FnOnce(&mut dyn Read) -> Result<(), bulkhead_engine::EngineError>,
) -> Result<()> {
    let (mut reader, writer) = std::io::pipe().context("pipe")?;
    std::thread::scope(|s| {
        let packer = s.spawn(move || pack(src, name, writer));
        let put_result = put(&mut reader);
        drop(reader);
        let packed = packer
            .join()
            .map_err(|_| anyhow!("the packing thread panicked"))?;
        put_result?;
        packed
    })
}

fn pack(src: &Path, name: &Path, out: impl Write) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let meta = fs::symlink_metadata(src).with_context(|| src.display().to_string())?;
    if meta.is_dir() {
        tar.append_dir_all(name, src)
    } else {
        tar.append_path_with_name(src, name)
    }
    .with_context(|| format!("reading {}", src.display()))?;
    tar.into_inner()
        .with_context(|| format!("sending the tar of {}", src.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_tar_is_received_without_setuid_and_refuses_parent_members() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o4755);
        b.append_data(&mut h, "f", &b"hi"[..]).unwrap();
        let good = b.into_inner().unwrap();
        let target = dir.path().join("copy");
        receive(&target, "f", |out| {
            out.write_all(&good).unwrap();
            Ok(())
        })
        .unwrap();
        let mode = fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755);

        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.as_old_mut().name[..4].copy_from_slice(b"../x");
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, std::io::empty()).unwrap();
        let bad = b.into_inner().unwrap();
        let err = receive(&dir.path().join("other"), "x", |out| {
            out.write_all(&bad).unwrap();
            Ok(())
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("parent directory"), "{err:#}");
        // Only the first copy is left: no scratch directory.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
