//! `cp`: docker cp's rules over the engine's archive calls. `CONTAINER:PATH` names a path in a running
//! container (a local path with a `:` is written `./a:b`); `-` is a tar on stdin or stdout.
//!
//! - out of a container: into an existing directory as `DEST/<base name>`, else as `DEST` itself;
//!   `SRC/.` copies a directory's content into `DEST`.
//! - into a container: the same, decided from what the destination is in the container.

use crate::args::CpArgs;
use crate::cp_host;
use anyhow::{anyhow, bail, Context, Result};
use bulkhead_engine::{Engine, EngineError};
use std::fs;
use std::path::{Path, PathBuf};

pub fn cp(engine: &Engine, a: CpArgs) -> Result<i32> {
    match (container_path(&a.src), container_path(&a.dest)) {
        (Some((key, path)), None) => copy_out(engine, key, path, &a.dest),
        (None, Some((key, path))) => copy_in(engine, &a.src, key, path),
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("one of SRC and DEST must be CONTAINER:PATH"),
    }?;
    Ok(0)
}

/// `CONTAINER:PATH` split; `None` for a local path (`-`, or one that starts with `/` or `.`).
fn container_path(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    arg.split_once(':').filter(|(key, _)| !key.is_empty())
}

/// Whether a path asks for a directory's content (`dir/.`) rather than the directory.
fn content_of(path: &str) -> bool {
    path.ends_with("/.") || path == "."
}

fn base_name(path: &str) -> Result<String> {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow!("{path}: a path with a base name is needed here"))
}

fn copy_out(engine: &Engine, key: &str, path: &str, dest: &str) -> Result<()> {
    if dest == "-" {
        engine.archive_get(key, path, &mut std::io::stdout().lock())?;
        return Ok(());
    }
    let top = base_name(path)?;
    let dest = PathBuf::from(dest);
    let into_dir = fs::metadata(&dest).is_ok_and(|m| m.is_dir()) && !content_of(path);
    let target = if into_dir { dest.join(&top) } else { dest };
    cp_host::receive(&target, &top, |out| {
        engine.archive_get(key, path, out).map(|_| ())
    })
}

fn copy_in(engine: &Engine, src: &str, key: &str, path: &str) -> Result<()> {
    if src == "-" {
        engine.archive_put(key, path, &mut std::io::stdin().lock())?;
        return Ok(());
    }
    let meta = fs::symlink_metadata(src).with_context(|| src.to_string())?;
    let (dir, name) = match dest_kind(engine, key, path)? {
        Dest::Dir if content_of(src) => (path.to_string(), ".".to_string()),
        Dest::Dir => (path.to_string(), base_name(src)?),
        Dest::File if meta.is_dir() => {
            bail!("cannot copy the directory {src} onto the file {key}:{path}")
        }
        Dest::File | Dest::Missing => {
            let parent = Path::new(path).parent().unwrap_or(Path::new("/"));
            (parent.to_string_lossy().into_owned(), base_name(path)?)
        }
    };
    let src = src.trim_end_matches("/.");
    cp_host::send(Path::new(src), Path::new(&name), |tar| {
        engine.archive_put(key, &dir, tar)
    })
}

enum Dest {
    Dir,
    File,
    Missing,
}

/// What the destination is in the container; a symlink is judged by what it resolves to there.
fn dest_kind(engine: &Engine, key: &str, path: &str) -> Result<Dest> {
    const S_IFMT: u32 = 0o170000;
    let mut stat = match engine.archive_stat(key, path) {
        Ok(stat) => stat,
        Err(EngineError::NoSuchPath { .. }) => return Ok(Dest::Missing),
        Err(e) => return Err(e.into()),
    };
    if stat.mode & S_IFMT == 0o120000 && !stat.link_target.is_empty() {
        stat = match engine.archive_stat(key, &stat.link_target) {
            Ok(stat) => stat,
            Err(EngineError::NoSuchPath { .. }) => return Ok(Dest::Missing),
            Err(e) => return Err(e.into()),
        };
    }
    Ok(if stat.mode & S_IFMT == 0o040000 {
        Dest::Dir
    } else {
        Dest::File
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_are_told_from_local_ones() {
        assert_eq!(container_path("web:/etc"), Some(("web", "/etc")));
        assert_eq!(container_path("./a:b"), None);
        assert_eq!(container_path("/x:y"), None);
        assert_eq!(container_path("-"), None);
        assert_eq!(container_path(":x"), None);
        assert!(content_of("/a/.") && !content_of("/a"));
    }
}
