//! What a container leaves on the host, to prove it gone: mounts, cgroups, loop devices, run
//! directories and `bulkhead __monitor` processes of a test root.

use std::path::{Path, PathBuf};

use nix::sys::signal::kill;
use nix::unistd::Pid;

/// Lines of our mount table that mention `path`.
pub fn host_mounts_mentioning(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(String::from)
        .collect()
}

/// The container's host cgroup directories (v1: one per controller; v2: one).
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let mut bases = vec![PathBuf::from("/sys/fs/cgroup/bulkhead")];
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        bases.extend(entries.flatten().map(|e| e.path().join("bulkhead")));
    }
    bases
        .into_iter()
        .map(|base| base.join(id))
        .filter(|dir| dir.is_dir())
        .collect()
}

/// The container's run directory on the host.
pub fn run_dir(id: &str) -> PathBuf {
    Path::new("/run/bulkhead").join(&id[..16])
}

pub fn loop_devices_backed_by(root: &Path) -> usize {
    let root = root.to_string_lossy().into_owned();
    std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("loop/backing_file"))
                .is_ok_and(|f| f.starts_with(&root))
        })
        .count()
}

/// Whether the process exists and is not a zombie.
pub fn alive(pid: i64) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// `bulkhead __monitor` processes of this root, as (pid, parent pid): every process still running the
/// binary with that command line (the monitor and, before it execs the container's command, its fork).
pub fn monitor_processes(root: &Path) -> Vec<(u32, u32)> {
    let root = root.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.contains(&&b"__monitor"[..]) && args.contains(&root.as_bytes())
        })
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat[stat.rfind(')')? + 2..]
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect()
}

/// The monitors themselves: monitor processes whose parent is not one.
pub fn monitor_pids(root: &Path) -> Vec<u32> {
    let all = monitor_processes(root);
    all.iter()
        .filter(|(_, ppid)| !all.iter().any(|(pid, _)| pid == ppid))
        .map(|(pid, _)| *pid)
        .collect()
}

/// What a container's networking may leave on the host: its veth, its kept network namespace, address
/// leases, nft rules naming it. Empty when it left nothing.
pub fn network_leftovers(id: &str) -> Vec<String> {
    let mut left = Vec::new();
    let veth = format!("veth{}", &id[..10]);
    let has_veth = || {
        let links = std::process::Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .expect("ip link");
        String::from_utf8_lossy(&links.stdout).contains(&veth)
    };
    // The kernel deletes a dead namespace's veths in the background: give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while has_veth() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if has_veth() {
        left.push(format!("link {veth}*"));
    }
    if Path::new("/run/bulkhead/netns").join(id).exists() {
        left.push("netns file".into());
    }
    for pool in std::fs::read_dir("/run/bulkhead/ipam")
        .into_iter()
        .flatten()
        .flatten()
    {
        for lease in std::fs::read_dir(pool.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if std::fs::read_to_string(lease.path()).is_ok_and(|o| o == id) {
                left.push(format!("lease {}", lease.path().display()));
            }
        }
    }
    if nft_ruleset().contains(&format!("bulkhead:{id}")) {
        left.push("nft rules".into());
    }
    left
}

/// `nft list ruleset`.
pub fn nft_ruleset() -> String {
    let out = std::process::Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .expect("nft");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The host's links, IPv4 routes and nft ruleset, one entry per line (rule handles dropped).
pub fn host_network() -> std::collections::BTreeSet<String> {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .expect(args[0]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let links = run(&["ip", "-o", "link", "show"]);
    // A link's index, flags and counters change with what is attached to it; its name is what stays.
    let links = links
        .lines()
        .map(|l| format!("link {}", l.split_whitespace().nth(1).unwrap_or_default()));
    // `linkdown` marks a route on a bridge with no port attached at the moment.
    let routes = run(&["ip", "-4", "route", "show"]).replace(" linkdown", "");
    let rules = nft_ruleset();
    links
        .chain(routes.lines().map(|l| format!("route {l}")))
        .chain(rules.lines().map(|l| format!("nft {}", l.trim())))
        .collect()
}
