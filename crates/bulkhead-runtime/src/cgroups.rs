//! Resource control with cgroups v1 (one hierarchy per controller) or v2 (unified).
//!
//! The container gets one cgroup named by the engine (e.g. `bulkhead/<id>`) under the
//! memory, cpu, pids and (v1) cpuacct and devices controllers; its processes join it before they exec.
//! Device access is restricted there too ([`devices`]): v1 with `devices.deny`/`devices.allow`, v2
//! with a BPF device program attached to the cgroup.

mod device_program;
pub(crate) mod devices;

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;
use bulkhead_spec::Resources;
use devices::DeviceRule;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// cpuacct only accounts (for stats); it is often mounted with cpu, and then both name one directory.
/// `freezer` for pause/resume.
const V1_CONTROLLERS: [&str; 6] = ["memory", "cpu", "cpuacct", "pids", "devices", "freezer"];
const CFS_PERIOD_US: u64 = 100_000;
/// How many 10 ms polls a freeze or thaw may take to settle.
const FREEZE_POLLS: u64 = 500;
/// How many rounds of SIGKILL/rmdir are attempted while tearing a cgroup down.
const TEARDOWN_ROUNDS: u32 = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// Detects the cgroup layout mounted at `/sys/fs/cgroup`.
pub fn version() -> CgroupVersion {
    match nix::sys::statfs::statfs(CGROUP_ROOT) {
        Ok(st) if st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => {
            CgroupVersion::V2
        }
        _ => CgroupVersion::V1,
    }
}

/// Kills every process left in the cgroup `name` and removes its directories.
/// Used by the engine after a crash; a cgroup that does not exist is not an error.
pub fn cleanup(name: &str) -> Result<(), RuntimeError> {
    Cgroup::open(name)?.destroy()
}

/// What a cgroup uses at one moment: the numbers docker stats shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// CPU time of every process that ran in the cgroup, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory charged to the cgroup less its inactive page cache (docker's "MEM USAGE").
    pub memory_bytes: u64,
    /// `None` when the cgroup has no memory limit.
    pub memory_limit: Option<u64>,
    pub pids: u64,
}

/// A v1 `memory.limit_in_bytes` at or above this is "no limit" (the kernel reports a page-rounded
/// `LONG_MAX`).
const V1_NO_LIMIT: u64 = 1 << 62;

/// The container's cgroup: one directory per v1 controller, or one v2 directory.
#[derive(Debug, Clone)]
pub struct Cgroup {
    version: CgroupVersion,
    /// v1: (controller, dir) for each mounted controller; v2: a single ("", dir).
    dirs: Vec<(&'static str, PathBuf)>,
}

fn validate_name(name: &str) -> Result<(), RuntimeError> {
    let path = Path::new(name);
    let valid = !name.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    if valid {
        Ok(())
    } else {
        Err(RuntimeError::InvalidSpec(format!(
            "cgroup name {name:?} must be a relative path without '..'"
        )))
    }
}

fn write_file(path: &Path, value: &str) -> Result<(), RuntimeError> {
    fs::write(path, value).map_err(|e| RuntimeError::Cgroup {
        path: path.to_path_buf(),
        reason: format!("writing {value:?}: {e}"),
    })
}

fn read_file(path: &Path) -> Result<String, RuntimeError> {
    fs::read_to_string(path).map_err(|e| RuntimeError::Cgroup {
        path: path.to_path_buf(),
        reason: format!("reading: {e}"),
    })
}

/// Reads a cgroup file that holds one number (or `max`, which is `None`).
fn read_value(path: &Path) -> Result<Option<u64>, RuntimeError> {
    let content = read_file(path)?;
    match content.trim() {
        "max" => Ok(None),
        v => v.parse().map(Some).map_err(|_| RuntimeError::Cgroup {
            path: path.to_path_buf(),
            reason: format!("not a number: {v:?}"),
        }),
    }
}

fn read_number(path: &Path) -> Result<u64, RuntimeError> {
    read_value(path)?.ok_or_else(|| RuntimeError::Cgroup {
        path: path.to_path_buf(),
        reason: "\"max\" where a count was expected".into(),
    })
}

/// Reads a `key value` counter from a flat-keyed cgroup file.
fn read_counter(path: &Path, key: &str) -> Result<u64, RuntimeError> {
    let content = read_file(path)?;
    content
        .lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .ok_or_else(|| RuntimeError::Cgroup {
            path: path.to_path_buf(),
            reason: format!("no counter {key:?}"),
        })
}

impl Cgroup {
    /// Computes the directories of cgroup `name` without touching them.
    pub fn open(name: &str) -> Result<Self, RuntimeError> {
        validate_name(name)?;
        let root = Path::new(CGROUP_ROOT);
        let version = version();
        let dirs = match version {
            CgroupVersion::V2 => vec![("", root.join(name))],
            CgroupVersion::V1 => V1_CONTROLLERS
                .iter()
                .filter(|c| root.join(c).is_dir())
                .map(|c| (*c, root.join(c).join(name)))
                .collect(),
        };
        Ok(Cgroup { version, dirs })
    }

    /// Creates the cgroup (enabling the v2 controllers on the way down).
    pub fn create(name: &str) -> Result<Self, RuntimeError> {
        let cg = Self::open(name)?;
        if cg.version == CgroupVersion::V2 {
            enable_v2_controllers(Path::new(CGROUP_ROOT), name)?;
        }
        for (_, dir) in &cg.dirs {
            fs::create_dir_all(dir).map_err(|e| RuntimeError::Cgroup {
                path: dir.clone(),
                reason: format!("creating: {e}"),
            })?;
        }
        Ok(cg)
    }

    fn dir(&self, controller: &'static str) -> Result<&Path, RuntimeError> {
        let wanted = if self.version == CgroupVersion::V2 {
            ""
        } else {
            controller
        };
        self.dirs
            .iter()
            .find(|(c, _)| *c == wanted)
            .map(|(_, d)| d.as_path())
            .ok_or_else(|| RuntimeError::Cgroup {
                path: Path::new(CGROUP_ROOT).join(controller),
                reason: "controller not available".to_string(),
            })
    }

    /// Applies the limits that are set in `r`; unset ones are left unchanged.
    pub fn apply(&self, r: &Resources) -> Result<(), RuntimeError> {
        if let Some(mem) = r.memory_bytes {
            self.set_memory(mem)?;
        }
        if let Some(cpus) = r.cpus {
            if !(cpus.is_finite() && cpus > 0.0) {
                return Err(RuntimeError::InvalidSpec(format!(
                    "cpus must be positive, got {cpus}"
                )));
            }
            // Rounded to whole microseconds, at least 1ms as the kernel requires.
            let quota = ((cpus * CFS_PERIOD_US as f64).round() as u64).max(1000);
            let dir = self.dir("cpu")?;
            match self.version {
                CgroupVersion::V2 => {
                    write_file(&dir.join("cpu.max"), &format!("{quota} {CFS_PERIOD_US}"))?
                }
                CgroupVersion::V1 => {
                    write_file(&dir.join("cpu.cfs_period_us"), &CFS_PERIOD_US.to_string())?;
                    write_file(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
            }
        }
        if let Some(pids) = r.pids_limit {
            let value = if pids > 0 {
                pids.to_string()
            } else {
                "max".to_string()
            };
            write_file(&self.dir("pids")?.join("pids.max"), &value)?;
        }
        Ok(())
    }

    /// Sets the memory limit and, where swap accounting exists, memory+swap to the same
    /// value (v2: `memory.swap.max` 0), so the container cannot escape the limit by swapping.
    fn set_memory(&self, bytes: u64) -> Result<(), RuntimeError> {
        let dir = self.dir("memory")?;
        match self.version {
            CgroupVersion::V2 => {
                write_file(&dir.join("memory.max"), &bytes.to_string())?;
                let swap = dir.join("memory.swap.max");
                if swap.exists() {
                    write_file(&swap, "0")?;
                }
            }
            CgroupVersion::V1 => {
                let limit = dir.join("memory.limit_in_bytes");
                let memsw = dir.join("memory.memsw.limit_in_bytes");
                let value = bytes.to_string();
                if !memsw.exists() {
                    return write_file(&limit, &value);
                }
                // memsw must stay >= limit: the order depends on the direction of the change.
                if write_file(&limit, &value).is_ok() {
                    write_file(&memsw, &value)?;
                } else {
                    write_file(&memsw, &value)?;
                    write_file(&limit, &value)?;
                }
            }
        }
        Ok(())
    }

    /// Allows only `rules` for device nodes: everything else is denied to the cgroup's processes.
    /// Called once, before any process joins.
    pub(crate) fn restrict_devices(&self, rules: &[DeviceRule]) -> Result<(), RuntimeError> {
        let dir = self.dir("devices")?;
        match self.version {
            CgroupVersion::V1 => {
                write_file(&dir.join("devices.deny"), "a")?;
                for rule in rules {
                    write_file(&dir.join("devices.allow"), &rule.v1_line())?;
                }
                Ok(())
            }
            CgroupVersion::V2 => {
                let handle = fs::File::open(dir).map_err(|e| RuntimeError::Cgroup {
                    path: dir.to_path_buf(),
                    reason: format!("opening: {e}"),
                })?;
                device_program::attach(handle.as_fd(), rules)
            }
        }
    }

    /// Each hierarchy's controller (v1; "" for v2) and directory.
    pub fn dirs(&self) -> &[(&'static str, PathBuf)] {
        &self.dirs
    }

    /// Moves process `pid` (and, on v1, only that process) into the cgroup.
    pub fn add_process(&self, pid: Pid) -> Result<(), RuntimeError> {
        for (_, dir) in &self.dirs {
            write_file(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Opens what a single-threaded child needs to join this cgroup by itself ([`SelfJoin`]), on v1;
    /// `None` on v2, where the caller moves the child with [`Cgroup::add_process`].
    pub(crate) fn self_join(&self) -> Result<Option<SelfJoin>, RuntimeError> {
        if self.version == CgroupVersion::V2 {
            return Ok(None);
        }
        let files = self
            .dirs
            .iter()
            .map(|(_, dir)| {
                let path = dir.join("tasks");
                fs::File::options()
                    .write(true)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&path)
                    .map(|file| (path.clone(), file))
                    .map_err(|e| RuntimeError::Cgroup {
                        path,
                        reason: format!("opening: {e}"),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(SelfJoin(files)))
    }

    /// Freezes (pause) or thaws (resume) every process in the cgroup, and waits until the kernel says
    /// it is done (v1 passes through FREEZING; v2 reports `frozen` in cgroup.events).
    pub fn freeze(&self, frozen: bool) -> Result<(), RuntimeError> {
        let (file, value, done) = match self.version {
            CgroupVersion::V2 => (
                self.dir("")?.join("cgroup.freeze"),
                if frozen { "1" } else { "0" },
                self.dir("")?.join("cgroup.events"),
            ),
            CgroupVersion::V1 => {
                let state = self.dir("freezer")?.join("freezer.state");
                (
                    state.clone(),
                    if frozen { "FROZEN" } else { "THAWED" },
                    state,
                )
            }
        };
        write_file(&file, value)?;
        let settled = |content: &str| match self.version {
            CgroupVersion::V2 => content
                .lines()
                .any(|l| l == if frozen { "frozen 1" } else { "frozen 0" }),
            CgroupVersion::V1 => content.trim() == value,
        };
        for _ in 0..FREEZE_POLLS {
            if settled(&read_file(&done)?) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err(RuntimeError::Cgroup {
            path: done,
            reason: format!("still not {value} after {} ms", FREEZE_POLLS * 10),
        })
    }

    /// Number of OOM kills that happened in the cgroup.
    pub fn oom_kills(&self) -> Result<u64, RuntimeError> {
        let dir = self.dir("memory")?;
        match self.version {
            CgroupVersion::V2 => read_counter(&dir.join("memory.events"), "oom_kill"),
            CgroupVersion::V1 => read_counter(&dir.join("memory.oom_control"), "oom_kill"),
        }
    }

    /// CPU, memory and pids in use now.
    pub fn usage(&self) -> Result<Usage, RuntimeError> {
        let mem = self.dir("memory")?;
        let pids = read_number(&self.dir("pids")?.join("pids.current"))?;
        let inactive = |key| read_counter(&mem.join("memory.stat"), key).unwrap_or(0);
        Ok(match self.version {
            CgroupVersion::V2 => Usage {
                cpu_ns: read_counter(&self.dir("cpu")?.join("cpu.stat"), "usage_usec")? * 1000,
                memory_bytes: read_number(&mem.join("memory.current"))?
                    .saturating_sub(inactive("inactive_file")),
                memory_limit: read_value(&mem.join("memory.max"))?,
                pids,
            },
            CgroupVersion::V1 => Usage {
                cpu_ns: read_number(&self.dir("cpuacct")?.join("cpuacct.usage"))?,
                memory_bytes: read_number(&mem.join("memory.usage_in_bytes"))?
                    .saturating_sub(inactive("total_inactive_file")),
                memory_limit: read_value(&mem.join("memory.limit_in_bytes"))?
                    .filter(|l| *l < V1_NO_LIMIT),
                pids,
            },
        })
    }

    fn pids(&self) -> Vec<Pid> {
        let mut pids: Vec<Pid> = self
            .dirs
            .iter()
            .filter_map(|(_, d)| fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|s| {
                s.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .map(Pid::from_raw)
            .collect();
        pids.sort();
        pids.dedup();
        pids
    }

    /// Kills every process in the cgroup and removes its directories.
    pub fn destroy(&self) -> Result<(), RuntimeError> {
        let kill_file = self.dirs.first().map(|(_, d)| d.join("cgroup.kill"));
        if let Some(kill_file) = kill_file.filter(|f| f.exists()) {
            write_file(&kill_file, "1")?;
        }
        for (_, dir) in &self.dirs {
            let mut round = 0;
            loop {
                for pid in self.pids() {
                    // The process may exit on its own meanwhile: ESRCH is fine.
                    let _ = kill(pid, Signal::SIGKILL);
                }
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    Err(e) if round >= TEARDOWN_ROUNDS => {
                        return Err(RuntimeError::Cgroup {
                            path: dir.clone(),
                            reason: format!("removing: {e}"),
                        })
                    }
                    Err(_) => {
                        round += 1;
                        sleep(Duration::from_millis(10));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A v1 cgroup's `tasks` files, opened by the caller (whose credentials the kernel checks) and written
/// by the child. Moving another process waits for the global threadgroup lock and with it for an RCU
/// grace period (5 to 14 ms here, the largest part of a container start); a thread that moves itself,
/// `0` written to `tasks`, skips that lock. A single-threaded process moving its one thread is the
/// whole process moving.
pub(crate) struct SelfJoin(Vec<(PathBuf, fs::File)>);

impl SelfJoin {
    /// Joins the calling thread to every hierarchy; the caller must be single-threaded.
    pub(crate) fn join(&self) -> Result<(), RuntimeError> {
        for (path, file) in &self.0 {
            (&*file).write_all(b"0").map_err(|e| RuntimeError::Cgroup {
                path: path.clone(),
                reason: format!("joining: {e}"),
            })?;
        }
        Ok(())
    }
}

/// Enables memory, cpu and pids for children of every ancestor of `name` (v2 only).
fn enable_v2_controllers(root: &Path, name: &str) -> Result<(), RuntimeError> {
    let mut dir = root.to_path_buf();
    let components: Vec<_> = Path::new(name).components().collect();
    for (i, component) in components.iter().enumerate() {
        let available = read_file(&dir.join("cgroup.controllers"))?;
        let wanted: Vec<String> = ["memory", "cpu", "pids"]
            .iter()
            .filter(|c| available.split_whitespace().any(|a| a == **c))
            .map(|c| format!("+{c}"))
            .collect();
        if !wanted.is_empty() {
            write_file(&dir.join("cgroup.subtree_control"), &wanted.join(" "))?;
        }
        dir.push(component);
        if i + 1 < components.len() {
            fs::create_dir_all(&dir).map_err(|e| RuntimeError::Cgroup {
                path: dir.clone(),
                reason: format!("creating: {e}"),
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_child::{errno_of, in_child, report};
    use devices::DEFAULT_RULES;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn rejects_escaping_names() {
        assert!(Cgroup::open("../x").is_err());
        assert!(Cgroup::open("/abs").is_err());
        assert!(Cgroup::open("").is_err());
        assert!(Cgroup::open("bulkhead/ok").is_ok());
    }

    #[test]
    fn create_limit_and_destroy() {
        let name = format!("bulkhead-unit/{}", std::process::id());
        let cg = Cgroup::create(&name).expect("create");
        cg.apply(&Resources {
            memory_bytes: Some(64 << 20),
            cpus: Some(0.5),
            pids_limit: Some(20),
        })
        .expect("apply");
        let mem = cg.dir("memory").unwrap();
        let limit = match cg.version {
            CgroupVersion::V2 => fs::read_to_string(mem.join("memory.max")).unwrap(),
            CgroupVersion::V1 => fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap(),
        };
        assert_eq!(limit.trim(), (64u64 << 20).to_string());
        let pids = fs::read_to_string(cg.dir("pids").unwrap().join("pids.max")).unwrap();
        assert_eq!(pids.trim(), "20");
        assert_eq!(cg.oom_kills().unwrap(), 0);
        let idle = cg.usage().expect("usage");
        assert_eq!((idle.pids, idle.memory_limit), (0, Some(64 << 20)));
        cg.restrict_devices(DEFAULT_RULES)
            .expect("restrict devices");
        if cg.version == CgroupVersion::V1 {
            let list = fs::read_to_string(cg.dir("devices").unwrap().join("devices.list")).unwrap();
            let lines: Vec<&str> = list.lines().collect();
            let wanted: Vec<String> = DEFAULT_RULES.iter().map(|r| r.v1_line()).collect();
            assert_eq!(lines, wanted);
        }
        cg.destroy().expect("destroy");
        assert!(!mem.exists());
        cleanup(&name).expect("cleanup of a removed cgroup is fine");
    }

    /// In a child moved into the cgroups whose `cgroup.procs` files are given, makes and opens (O_RDONLY,
    /// then closes: nothing is read) a device node for each (name, mode, major, minor) in `dir`, and
    /// returns per node the errno of mknod and of open (0 for success).
    fn mknod_and_open_in(
        procs: &[PathBuf],
        dir: &Path,
        nodes: &[(&str, u32, u32, u32)],
    ) -> Vec<(i32, i32)> {
        let paths: Vec<CString> = nodes
            .iter()
            .map(|(name, ..)| CString::new(dir.join(name).as_os_str().as_bytes()).unwrap())
            .collect();
        let admit = |pid: i32| {
            for file in procs {
                fs::write(file, pid.to_string()).unwrap();
            }
        };
        let words = in_child(admit, |fd| {
            for (path, (_, mode, major, minor)) in paths.iter().zip(nodes) {
                // SAFETY: mknod/open/close of a prepared path.
                unsafe {
                    let dev = libc::makedev(*major, *minor);
                    report(
                        fd,
                        errno_of(libc::mknod(path.as_ptr(), mode | 0o600, dev).into()),
                    );
                    let node = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK);
                    report(fd, errno_of(node.into()));
                    if node >= 0 {
                        libc::close(node);
                    }
                }
            }
        });
        words.chunks_exact(2).map(|w| (w[0], w[1])).collect()
    }

    /// null (allowed), the first SCSI disk and /dev/mem (not allowed): each can be made, only null opened.
    const NODES: [(&str, u32, u32, u32); 3] = [
        ("null", libc::S_IFCHR, 1, 3),
        ("sda", libc::S_IFBLK, 8, 0),
        ("mem", libc::S_IFCHR, 1, 1),
    ];
    const EXPECTED: [(i32, i32); 3] = [(0, 0), (0, libc::EPERM), (0, libc::EPERM)];

    #[test]
    fn default_device_rules_allow_mknod_but_only_standard_opens() {
        let name = format!("bulkhead-unit-devices/{}", std::process::id());
        let cg = Cgroup::create(&name).expect("create");
        cg.restrict_devices(DEFAULT_RULES)
            .expect("restrict devices");
        let procs: Vec<PathBuf> = cg
            .dirs
            .iter()
            .map(|(_, d)| d.join("cgroup.procs"))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let got = mknod_and_open_in(&procs, dir.path(), &NODES);
        cg.destroy().expect("destroy");
        assert_eq!(got, EXPECTED);
    }

    /// The v2 program, also on a v1 or hybrid host: attached to a cgroup of the unified hierarchy.
    #[test]
    fn device_program_filters_a_cgroup2() {
        let root = match version() {
            CgroupVersion::V2 => PathBuf::from(CGROUP_ROOT),
            CgroupVersion::V1 => Path::new(CGROUP_ROOT).join("unified"),
        };
        assert!(
            nix::sys::statfs::statfs(&root).unwrap().filesystem_type()
                == nix::sys::statfs::CGROUP2_SUPER_MAGIC,
            "no cgroup2 hierarchy at {}",
            root.display()
        );
        let cg = Cgroup {
            version: CgroupVersion::V2,
            dirs: vec![(
                "",
                root.join(format!("bulkhead-unit-devprog-{}", std::process::id())),
            )],
        };
        fs::create_dir(&cg.dirs[0].1).unwrap();
        let restricted = cg.restrict_devices(DEFAULT_RULES);
        let dir = tempfile::tempdir().unwrap();
        let got = restricted
            .map(|()| mknod_and_open_in(&[cg.dirs[0].1.join("cgroup.procs")], dir.path(), &NODES));
        cg.destroy().expect("destroy");
        assert_eq!(got.expect("attach the device program"), EXPECTED);
    }
}
