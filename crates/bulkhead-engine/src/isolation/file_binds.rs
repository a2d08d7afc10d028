//! Binds of single files in VM mode. A VM reaches host paths through 9p shares, which are directories,
//! and sharing a file's parent would show the guest the caller's other files there (podman binds
//! `/etc/hosts` from its userdata directory, next to the bundle's `config.json`). So each start copies
//! every bound file into one staging directory of the container's run directory,
//! `<run>/file-binds/<index>/<name>` (a bounded tmpfs of its own), and the guest gets that directory
//! as one more share, after the shared directories; its runtime binds each copy onto its target. The
//! copy is taken at start: writes in the guest change the copy, never the host's file.

use bulkhead_proto::vm::{file_bind_path, share_path};
use bulkhead_runtime::MountSpec;
use bulkhead_vm::host::Share;
use std::ffi::OsStr;
use std::fs::{DirBuilder, File};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The staging directory's name in the container's run directory.
const STAGING_DIR: &str = "file-binds";
/// The largest file a start copies: the run directory is a tmpfs, so RAM (hosts, resolv.conf and
/// hostname files are a few hundred bytes).
const MAX_FILE_BYTES: u64 = 16 << 20;
/// What the guest may add to the copies (a CRI termination message takes at most 4 KiB).
const GUEST_GROWTH: u64 = 1 << 20;
/// The staging tmpfs's files: the copies, their directories, and what the guest adds.
const MAX_INODES: u64 = 1024;
const PAGE: u64 = 4096;
/// A copied file's name when the source names none (a path ending in `..`).
const UNNAMED: &str = "file";

#[derive(Debug, thiserror::Error)]
pub enum FileBindError {
    #[error("bind source {path}: {source}")]
    Source { path: PathBuf, source: io::Error },
    #[error(
        "bind source {path} is {kind}: a VM gets a copy of a bound file, and only regular files \
         are copied"
    )]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error(
        "bind source {path} has {bytes} bytes: a VM gets a copy of a bound file taken at each start, \
         of at most {MAX_FILE_BYTES} bytes (bind the directory that holds it)"
    )]
    TooLarge { path: PathBuf, bytes: u64 },
    #[error("staging the copies of bound files in {path}: {source}")]
    Staging { path: PathBuf, source: io::Error },
}

/// How one bind reaches the VM.
enum Planned<'a> {
    /// Shared: the directory itself.
    Directory(Share),
    /// Copied into the staging directory.
    File {
        source: &'a Path,
        target: &'a str,
        readonly: bool,
    },
}

/// How the binds of a container reach its VM, in the spec's order.
pub(super) struct BindPlan<'a>(Vec<Planned<'a>>);

impl<'a> BindPlan<'a> {
    /// A source that is a directory (or is missing: the share's bind then says so) is shared, anything
    /// else copied.
    pub fn of(mounts: &'a [MountSpec]) -> BindPlan<'a> {
        BindPlan(
            mounts
                .iter()
                .filter_map(|m| match m {
                    MountSpec::Bind {
                        source,
                        target,
                        readonly,
                    } if source.exists() && !source.is_dir() => Some(Planned::File {
                        source,
                        target,
                        readonly: *readonly,
                    }),
                    MountSpec::Bind {
                        source, readonly, ..
                    } => Some(Planned::Directory(Share {
                        host: source.clone(),
                        readonly: *readonly,
                    })),
                    MountSpec::Tmpfs { .. } => None,
                })
                .collect(),
        )
    }

    fn files(&self) -> impl Iterator<Item = (&'a Path, bool)> + '_ {
        self.0.iter().filter_map(|p| match p {
            Planned::File {
                source, readonly, ..
            } => Some((*source, *readonly)),
            Planned::Directory(_) => None,
        })
    }

    fn directories(&self) -> impl Iterator<Item = &Share> {
        self.0.iter().filter_map(|p| match p {
            Planned::Directory(share) => Some(share),
            Planned::File { .. } => None,
        })
    }

    /// The targets of the file binds.
    pub fn file_targets(&self) -> Vec<&'a str> {
        self.0
            .iter()
            .filter_map(|p| match p {
                Planned::File { target, .. } => Some(*target),
                Planned::Directory(_) => None,
            })
            .collect()
    }

    /// The index of the file-binds share: after the directories'.
    fn file_share(&self) -> usize {
        self.directories().count()
    }

    /// The 9p shares these binds take: one per directory, and one for all the files.
    pub fn share_count(&self) -> usize {
        self.file_share() + usize::from(self.files().next().is_some())
    }

    /// The guest path each bind's source becomes, in the spec's order.
    pub fn guest_sources(&self) -> Vec<PathBuf> {
        let file_share = self.file_share();
        let (mut directories, mut files) = (0, 0);
        self.0
            .iter()
            .map(|p| match p {
                Planned::Directory(_) => {
                    directories += 1;
                    PathBuf::from(share_path(directories - 1))
                }
                Planned::File { source, .. } => {
                    files += 1;
                    file_bind_path(file_share, files - 1, copy_name(source))
                }
            })
            .collect()
    }

    /// The shares in the guest's numbering: the directories, then `staging` (what [`stage`] made), read-only
    /// when every file bind is.
    pub fn shares(&self, staging: Option<PathBuf>) -> Vec<Share> {
        let mut shares: Vec<Share> = self.directories().cloned().collect();
        if let Some(host) = staging {
            let readonly = self.files().all(|(_, readonly)| readonly);
            shares.push(Share { host, readonly });
        }
        shares
    }
}

/// The copy's name: the source's own.
fn copy_name(source: &Path) -> &OsStr {
    source.file_name().unwrap_or(OsStr::new(UNNAMED))
}

/// The staging directory of the run directory `run`.
fn staging_dir(run: &Path) -> PathBuf {
    run.join(STAGING_DIR)
}

/// Copies the file binds of `plan` into `run`'s staging directory, replacing what an earlier run left,
/// and returns it (`None` without file binds). Owner-only directories; each copy keeps its source's
/// owner and permission bits, less setuid and setgid.
pub(super) fn stage(run: &Path, plan: &BindPlan) -> Result<Option<PathBuf>, FileBindError> {
    remove(run)?;
    if plan.files().next().is_none() {
        return Ok(None);
    }
    let dir = staging_dir(run);
    let staging = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FileBindError::Staging { path, source }
    };
    let mut builder = DirBuilder::new();
    builder.mode(0o700);
    builder.create(&dir).map_err(staging(&dir))?;
    mount_staging(&dir, plan).map_err(|e| FileBindError::Staging {
        path: dir.clone(),
        source: e.into(),
    })?;
    let copied = plan
        .files()
        .enumerate()
        .try_for_each(|(index, (source, _))| {
            let sub = dir.join(index.to_string());
            builder.create(&sub).map_err(staging(&sub))?;
            copy(source, &sub.join(copy_name(source)))
        });
    match copied {
        Ok(()) => Ok(Some(dir)),
        Err(e) => {
            // Nothing half-staged stays: the start fails here.
            remove(run)?;
            Err(e)
        }
    }
}

/// Mounts a tmpfs of its own on the staging directory `dir`: the run directory's tmpfs is the host's
/// RAM, and a writable copy is the guest's to write, so what it may take is bounded: the copies (a page
/// each at least) and [`GUEST_GROWTH`] more, in at most [`MAX_INODES`] files.
fn mount_staging(dir: &Path, plan: &BindPlan) -> Result<(), nix::Error> {
    let copies: u64 = plan
        .files()
        .map(|(source, _)| {
            let bytes = std::fs::metadata(source).map_or(0, |m| m.len());
            bytes.min(MAX_FILE_BYTES).next_multiple_of(PAGE) + PAGE
        })
        .sum();
    let options = format!(
        "size={},nr_inodes={MAX_INODES},mode=0700",
        copies + GUEST_GROWTH
    );
    use nix::mount::MsFlags;
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(options.as_str()),
    )
}

/// Removes `run`'s staging directory, if any: at tear-down, and left by a crash.
pub(super) fn remove(run: &Path) -> Result<(), FileBindError> {
    let dir = staging_dir(run);
    // Its tmpfs first (detached: QEMU may still be going away); none is there after a crash's reboot.
    match nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(FileBindError::Staging {
                path: dir,
                source: e.into(),
            })
        }
    }
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(FileBindError::Staging {
            path: dir,
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Copies the regular file `source` names to `dest` (new). Symlinks resolve first, as a bind mount
/// resolves them; the file at the end is opened without following a link (one swapped in since is
/// refused) and without reading it (a device or fifo is refused by its type, unopened).
fn copy(source: &Path, dest: &Path) -> Result<(), FileBindError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FileBindError::Source { path, source }
    };
    let resolved = std::fs::canonicalize(source).map_err(failed(source))?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(&resolved)
        .map_err(failed(&resolved))?;
    let meta = file.metadata().map_err(failed(&resolved))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        return Err(FileBindError::NotRegular {
            path: source.to_path_buf(),
            kind: kind_name(&kind),
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(FileBindError::TooLarge {
            path: source.to_path_buf(),
            bytes: meta.len(),
        });
    }
    // The O_PATH descriptor, reopened for reading: the same inode, whatever the path names now.
    let fd_path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let mut reader = File::open(&fd_path).map_err(failed(&resolved))?;
    let staged = |source| FileBindError::Staging {
        path: dest.to_path_buf(),
        source,
    };
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dest)
        .map_err(staged)?;
    io::copy(&mut (&mut reader).take(MAX_FILE_BYTES), &mut writer).map_err(staged)?;
    std::os::unix::fs::fchown(&writer, Some(meta.uid()), Some(meta.gid())).map_err(staged)?;
    writer
        .set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o777))
        .map_err(staged)
}

/// What a file that is not a regular one is, for messages.
fn kind_name(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symlink (swapped in while it was resolved)"
    } else if kind.is_fifo() {
        "a fifo"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn bind(source: &Path, readonly: bool) -> MountSpec {
        MountSpec::Bind {
            source: source.to_path_buf(),
            target: "/x".into(),
            readonly,
        }
    }

    #[test]
    fn files_take_one_share_after_the_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let (hosts, data) = (tmp.path().join("hosts"), tmp.path().join("data"));
        std::fs::write(&hosts, "").unwrap();
        std::fs::create_dir(&data).unwrap();
        let mounts = [
            bind(&hosts, true),
            MountSpec::Tmpfs {
                target: "/t".into(),
                options: String::new(),
            },
            bind(&data, false),
            bind(&hosts, false),
        ];
        let plan = BindPlan::of(&mounts);
        assert_eq!(plan.share_count(), 2);
        let sources = plan.guest_sources();
        let expected = ["/shares/1/0/hosts", "/shares/0", "/shares/1/1/hosts"];
        assert_eq!(sources, expected.map(PathBuf::from));
        let shares = plan.shares(Some("/staging".into()));
        assert_eq!(shares.len(), 2);
        assert!(!shares[1].readonly, "one file bind is writable");
        let readonly = [bind(&hosts, true)];
        let shares = BindPlan::of(&readonly).shares(Some("/staging".into()));
        assert!(shares[0].readonly);
        assert_eq!(BindPlan::of(&[bind(&data, false)]).share_count(), 1);
    }

    #[test]
    fn staging_copies_regular_files_only() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, run) = (tmp.path().join("src"), tmp.path().join("run"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&run).unwrap();
        let hosts = src.join("hosts");
        std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
        std::fs::set_permissions(&hosts, std::fs::Permissions::from_mode(0o4640)).unwrap();
        // A symlink resolves as a bind mount would: the copy is its target's content.
        let link = src.join("resolv.conf");
        symlink("hosts", &link).unwrap();
        let fifo = src.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let fifo_link = src.join("fifo-link");
        symlink(&fifo, &fifo_link).unwrap();

        let mounts = [bind(&hosts, true), bind(&link, false)];
        let staging = stage(&run, &BindPlan::of(&mounts)).unwrap().unwrap();
        assert_eq!(staging, run.join(STAGING_DIR));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&staging), 0o700);
        assert_eq!(mode(&staging.join("0")), 0o700);
        let copy = staging.join("0/hosts");
        assert_eq!(
            std::fs::read_to_string(&copy).unwrap(),
            "127.0.0.1 localhost\n"
        );
        assert_eq!(mode(&copy), 0o640, "setuid dropped, the rest kept");
        let linked = staging.join("1/resolv.conf");
        assert!(std::fs::symlink_metadata(&linked).unwrap().is_file());
        assert_eq!(
            std::fs::read_to_string(&linked).unwrap(),
            "127.0.0.1 localhost\n"
        );
        // A copy, not the file: writes to it stay there.
        std::fs::write(&copy, "changed").unwrap();
        assert_eq!(
            std::fs::read_to_string(&hosts).unwrap(),
            "127.0.0.1 localhost\n"
        );
        // On a tmpfs of its own, which bounds what the guest can write to host RAM.
        let big = vec![0u8; 2 << 20];
        assert!(
            std::fs::write(&copy, big).is_err(),
            "the staging tmpfs is bounded"
        );

        // A fifo (named or reached through a symlink) is refused without opening it, which would
        // block; a fresh start replaces what the last one staged, and nothing stays on refusal.
        for source in [&fifo, &fifo_link] {
            let mounts = [bind(&hosts, true), bind(source, true)];
            match stage(&run, &BindPlan::of(&mounts)) {
                Err(FileBindError::NotRegular { path, kind }) => {
                    assert_eq!(&path, source);
                    assert_eq!(kind, "a fifo");
                }
                other => panic!("{source:?}: {other:?}"),
            }
            assert!(!run.join(STAGING_DIR).exists());
        }
        stage(&run, &BindPlan::of(&mounts[..1])).unwrap();
        remove(&run).unwrap();
        assert!(!run.join(STAGING_DIR).exists());
        remove(&run).unwrap();
        let missing = [bind(&src.join("gone"), true)];
        assert_eq!(stage(&run, &BindPlan::of(&missing)).unwrap(), None);
    }

    #[test]
    fn a_device_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mounts = [bind(Path::new("/dev/null"), false)];
        let err = stage(tmp.path(), &BindPlan::of(&mounts)).unwrap_err();
        assert!(err.to_string().contains("/dev/null is a device"), "{err}");
    }
}
