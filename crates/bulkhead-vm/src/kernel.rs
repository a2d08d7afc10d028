//! Builds the guest kernel reproducibly from Debian's `linux-source-6.1` package: `make tinyconfig`, the
//! bulkhead fragment merged on top, `make olddefconfig`, `make vmlinux`. The uncompressed `vmlinux` boots
//! through its PVH entry with QEMU `-kernel`. Results are cached under
//! `<cache>/kernel/<key>/vmlinux`, keyed by the source package version and the fragment text, so a new
//! fragment or a source update rebuilds and everything else reuses the cached kernel. The cached
//! `vmlinux` is the load image of the built one ([`crate::load_image`]), with `System.map` beside it.

use crate::cache::{remembered, sha256_hex, temp_sibling};
use crate::io_error::{io_err, IoError};
use crate::load_image::{load_image, LoadImageError};
use bulkhead_fs::file_identity;
use nix::fcntl::{Flock, FlockArg};
use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The kernel config fragment, merged on top of `tinyconfig`.
pub const FRAGMENT: &str = include_str!("../kernel/bulkhead.config");
/// The Debian package providing the source tarball.
pub const SOURCE_PACKAGE: &str = "linux-source-6.1";
const SOURCE_TARBALL: &str = "/usr/src/linux-source-6.1.tar.xz";
/// The post-processing applied to the built `vmlinux`; part of the cache key, so a change re-publishes.
const IMAGE_FORMAT: &str = "load image: zero page runs, text padding and symbols dropped";
/// Lines of build output kept for the error message when a build step fails.
const LOG_TAIL: usize = 30;

/// A built guest kernel in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// The uncompressed kernel, booted with QEMU `-kernel`.
    pub vmlinux: PathBuf,
    /// The full `.config` it was built with.
    pub config: PathBuf,
    /// The cache key: sha256 of the source version and the fragment.
    pub key: String,
    /// The Debian version of the source package it was built from.
    pub source_version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("{tool} is needed to build the guest kernel: install the Debian package {package}")]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },
    #[error("cannot determine the version of {package} (is it installed? `apt-get install {package}`): {reason}")]
    SourceVersion {
        package: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("`{step}` failed ({status}); last output:\n{tail}")]
    Step {
        step: String,
        status: String,
        tail: String,
    },
    #[error("writing the load image of {path}: {source}")]
    LoadImage {
        path: PathBuf,
        #[source]
        source: LoadImageError,
    },
    #[error("the built kernel config {config} lacks required options (unmet dependencies?): {missing:?}")]
    MissingOptions {
        config: PathBuf,
        missing: Vec<String>,
    },
}

/// The options the fragment turns on (`CONFIG_X=y` / `=N` / `="s"` lines), which the final config must
/// contain verbatim.
pub fn required_options() -> impl Iterator<Item = &'static str> {
    FRAGMENT
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("CONFIG_"))
}

/// Checks a `.config` text contains every required option; returns the missing ones.
pub fn missing_options(config_text: &str) -> Vec<String> {
    let present: std::collections::HashSet<&str> = config_text.lines().map(str::trim).collect();
    required_options()
        .filter(|opt| !present.contains(opt))
        .map(str::to_string)
        .collect()
}

/// The installed source package version, e.g. `6.1.192-3`. Asking dpkg costs tens of milliseconds on
/// every VM start, so the answer is remembered in `cache_dir` per identity of the source tarball the
/// package installs (an upgrade replaces it).
fn source_version(cache_dir: &Path) -> Result<String, KernelError> {
    match file_identity(Path::new(SOURCE_TARBALL)) {
        Ok(identity) => remembered(
            &cache_dir.join("kernel"),
            &format!("source-{identity}.version"),
            |v| !v.is_empty() && !v.contains(char::is_whitespace),
            query_source_version,
        ),
        Err(_) => query_source_version(),
    }
}

fn query_source_version() -> Result<String, KernelError> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", SOURCE_PACKAGE])
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| KernelError::SourceVersion {
            package: SOURCE_PACKAGE,
            reason: format!("running dpkg-query: {e}"),
        })?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || version.is_empty() {
        return Err(KernelError::SourceVersion {
            package: SOURCE_PACKAGE,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(version)
}

fn cache_key(source_version: &str) -> String {
    sha256_hex(format!("{SOURCE_PACKAGE} {source_version}\n{IMAGE_FORMAT}\n{FRAGMENT}").as_bytes())
        [..16]
        .to_string()
}

fn entry(cache_dir: &Path, key: &str, source_version: &str) -> Kernel {
    let dir = cache_dir.join("kernel").join(key);
    Kernel {
        vmlinux: dir.join("vmlinux"),
        config: dir.join("config"),
        key: key.to_string(),
        source_version: source_version.to_string(),
    }
}

/// The cached kernel for the installed source and this fragment, if it was built.
pub fn info(cache_dir: &Path) -> Option<Kernel> {
    let version = source_version(cache_dir).ok()?;
    let kernel = entry(cache_dir, &cache_key(&version), &version);
    (kernel.vmlinux.is_file() && kernel.config.is_file()).then_some(kernel)
}

/// Returns the cached kernel, building it first if needed. `progress` receives every line of build
/// output. Concurrent callers serialise on a lock; the second one finds the first one's result.
pub fn build(cache_dir: &Path, progress: impl Fn(&str)) -> Result<Kernel, KernelError> {
    check_tools()?;
    let version = source_version(cache_dir)?;
    let key = cache_key(&version);
    let kernel = entry(cache_dir, &key, &version);
    let root = cache_dir.join("kernel");
    fs::create_dir_all(&root).map_err(io_err("creating", &root))?;
    let lock_path = root.join(".lock");
    let lock_file = File::create(&lock_path).map_err(io_err("creating", &lock_path))?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| io_err("locking", &lock_path)(errno.into()))?;
    if kernel.vmlinux.is_file() && kernel.config.is_file() {
        return Ok(kernel);
    }

    let src = extract_source(&root, &version, &progress)?;
    let build_dir = root.join("build");
    fs::create_dir_all(&build_dir).map_err(io_err("creating", &build_dir))?;
    let fragment_path = build_dir.join("bulkhead.config");
    fs::write(&fragment_path, FRAGMENT).map_err(io_err("writing", &fragment_path))?;
    let out = format!("O={}", build_dir.display());
    let config = build_dir.join(".config");
    let jobs = format!(
        "-j{}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    run(&src, "make", &[&out, "tinyconfig"], &progress)?;
    let config_arg = config.to_string_lossy().into_owned();
    let fragment_arg = fragment_path.to_string_lossy().into_owned();
    let build_arg = build_dir.to_string_lossy().into_owned();
    run(
        &src,
        "scripts/kconfig/merge_config.sh",
        &["-m", "-O", &build_arg, &config_arg, &fragment_arg],
        &progress,
    )?;
    run(&src, "make", &[&out, "olddefconfig"], &progress)?;
    let config_text = fs::read_to_string(&config).map_err(io_err("reading", &config))?;
    let missing = missing_options(&config_text);
    if !missing.is_empty() {
        return Err(KernelError::MissingOptions { config, missing });
    }
    run(&src, "make", &[&out, &jobs, "vmlinux"], &progress)?;

    let final_dir = root.join(&key);
    let tmp = temp_sibling(&final_dir);
    fs::create_dir_all(&tmp).map_err(io_err("creating", &tmp))?;
    let built = build_dir.join("vmlinux");
    let elf = fs::read(&built).map_err(io_err("reading", &built))?;
    let image = load_image(&elf).map_err(|source| KernelError::LoadImage {
        path: built.clone(),
        source,
    })?;
    progress(&format!(
        "vmlinux: load image of {} KiB ({} KiB built)",
        image.len() / 1024,
        elf.len() / 1024
    ));
    let published = tmp.join("vmlinux");
    fs::write(&published, &image).map_err(io_err("writing", &published))?;
    let map = build_dir.join("System.map");
    fs::copy(&map, tmp.join("System.map")).map_err(io_err("copying", &map))?;
    fs::copy(&config, tmp.join("config")).map_err(io_err("copying", &config))?;
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(io_err("removing", &final_dir))?;
    }
    fs::rename(&tmp, &final_dir).map_err(io_err("publishing", &final_dir))?;
    progress(&format!("vmlinux: {}", kernel.vmlinux.display()));
    Ok(kernel)
}

/// The tools the kernel build needs, with the Debian package providing each.
fn check_tools() -> Result<(), KernelError> {
    const TOOLS: &[(&str, &str)] = &[
        ("gcc", "gcc"),
        ("make", "make"),
        ("flex", "flex"),
        ("bison", "bison"),
        ("bc", "bc"),
        ("perl", "perl"),
        ("xz", "xz-utils"),
        ("tar", "tar"),
        ("dpkg-query", "dpkg"),
    ];
    for &(tool, package) in TOOLS {
        if !in_path(tool) {
            return Err(KernelError::MissingTool { tool, package });
        }
    }
    if !Path::new("/usr/include/libelf.h").is_file() {
        return Err(KernelError::MissingTool {
            tool: "libelf headers (objtool)",
            package: "libelf-dev",
        });
    }
    if !Path::new(SOURCE_TARBALL).is_file() {
        return Err(KernelError::MissingTool {
            tool: SOURCE_TARBALL,
            package: SOURCE_PACKAGE,
        });
    }
    Ok(())
}

fn in_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

/// Extracts the tarball once per source version into `<root>/src/`; a version change re-extracts and
/// drops the old build tree.
fn extract_source(
    root: &Path,
    version: &str,
    progress: &impl Fn(&str),
) -> Result<PathBuf, KernelError> {
    let src_root = root.join("src");
    let src = src_root.join(SOURCE_PACKAGE);
    let marker = src_root.join("version");
    if src.is_dir() && fs::read_to_string(&marker).is_ok_and(|v| v == version) {
        return Ok(src);
    }
    progress(&format!(
        "extracting {SOURCE_TARBALL} ({SOURCE_PACKAGE} {version})"
    ));
    for stale in [&src_root, &root.join("build")] {
        if stale.exists() {
            fs::remove_dir_all(stale).map_err(io_err("removing", stale))?;
        }
    }
    let tmp = temp_sibling(&src_root);
    fs::create_dir_all(&tmp).map_err(io_err("creating", &tmp))?;
    let tmp_arg = tmp.to_string_lossy().into_owned();
    run(
        &tmp,
        "tar",
        &["-xf", SOURCE_TARBALL, "-C", &tmp_arg],
        progress,
    )?;
    fs::write(tmp.join("version"), version).map_err(io_err("writing", &tmp))?;
    fs::rename(&tmp, &src_root).map_err(io_err("publishing", &src_root))?;
    Ok(src)
}

/// Runs one build step in `dir`, streaming its merged stdout/stderr to `progress` line by line.
fn run(
    dir: &Path,
    program: &str,
    args: &[&str],
    progress: &impl Fn(&str),
) -> Result<(), KernelError> {
    let step = format!("{program} {}", args.join(" "));
    let (reader, writer) =
        nix::unistd::pipe().map_err(|errno| io_err("creating a pipe for", dir)(errno.into()))?;
    let writer2 = writer
        .try_clone()
        .map_err(io_err("creating a pipe for", dir))?;
    let mut command = Command::new(program);
    let mut child = command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .spawn()
        .map_err(io_err("running", Path::new(program)))?;
    let mut tail = VecDeque::with_capacity(LOG_TAIL);
    // Drop our copies of the write end, or the reader never sees end of file.
    drop(command);
    for line in BufReader::new(File::from(reader)).split(b'\n') {
        let line = line.map_err(io_err("reading the output of", Path::new(program)))?;
        let line = String::from_utf8_lossy(&line).into_owned();
        progress(&line);
        if tail.len() == LOG_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    let status = child
        .wait()
        .map_err(io_err("waiting for", Path::new(program)))?;
    if status.success() {
        Ok(())
    } else {
        Err(KernelError::Step {
            step,
            status: status.to_string(),
            tail: Vec::from(tail).join("\n"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_requires_the_boot_essentials() {
        let opts: Vec<&str> = required_options().collect();
        for needed in [
            "CONFIG_PVH=y",
            "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y",
            "CONFIG_EROFS_FS=y",
            "CONFIG_OVERLAY_FS=y",
            "CONFIG_SECCOMP_FILTER=y",
            // The runtime's device rules on cgroup2.
            "CONFIG_CGROUP_BPF=y",
        ] {
            assert!(opts.contains(&needed), "{needed} missing from the fragment");
        }
        assert!(!opts.iter().any(|o| o.starts_with("CONFIG_MODULES")));
    }

    #[test]
    fn missing_options_reports_exactly_the_absent_ones() {
        let all: String = required_options().map(|o| format!("{o}\n")).collect();
        assert!(missing_options(&all).is_empty());
        let without_pvh = all.replace("CONFIG_PVH=y\n", "# CONFIG_PVH is not set\n");
        assert_eq!(
            missing_options(&without_pvh),
            vec!["CONFIG_PVH=y".to_string()]
        );
    }

    #[test]
    fn key_depends_on_source_version() {
        assert_ne!(cache_key("6.1.1-1"), cache_key("6.1.2-1"));
        assert_eq!(cache_key("6.1.1-1").len(), 16);
    }
}
