//! Masked and read-only /proc paths (process mode, where volumes can cover /dev and /proc): what is
//! bound over masked files must really be the null device (runc's CVE-2025-31133: a /dev/null replaced
//! by a symlink to /proc/sys/kernel/core_pattern made the "mask" a writable core_pattern), and the
//! read-only paths stay read-only for mounts below them too.

mod common;

use common::{stderr, Root, IMAGE};

#[test]
fn a_dev_null_that_is_not_the_null_device_is_refused() {
    let r = Root::new();
    for what in ["a symlink", "a regular file"] {
        let dev = tempfile::tempdir().unwrap();
        let null = dev.path().join("null");
        if what == "a symlink" {
            std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", &null).unwrap();
        } else {
            std::fs::write(&null, "").unwrap();
        }
        let volume = format!("{}:/dev", dev.path().display());
        let out = r.bh(&["run", "--rm", "-v", &volume, IMAGE, "true"]);
        assert!(!out.status.success(), "started with /dev/null as {what}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "/dev/null is {what}, not the null device (char 1:3)"
            )),
            "/dev/null as {what}: {err}"
        );
    }
}

#[test]
fn masked_paths_read_empty_and_read_only_paths_hold_below_too() {
    let r = Root::new();
    // A volume below a read-only path: the read-only bind of /proc/sys must cover it as well.
    let below = tempfile::tempdir().unwrap();
    let volume = format!("{}:/proc/sys/fs/binfmt_misc", below.path().display());
    let script = "for f in /proc/keys /proc/timer_list; do echo \"$f=$(wc -c < $f)\"; done; \
                  touch /proc/sys/fs/binfmt_misc/x 2>/dev/null && echo below=writable || echo below=ro; \
                  echo 1 > /proc/sysrq-trigger 2>/dev/null && echo sysrq=writable || echo sysrq=ro; \
                  cat /proc/self/mountinfo";
    let out = r.ok(&["run", "--rm", "-v", &volume, IMAGE, "sh", "-c", script]);
    for line in ["/proc/keys=0", "/proc/timer_list=0", "below=ro", "sysrq=ro"] {
        assert!(out.lines().any(|l| l == line), "{line} in:\n{out}");
    }
    assert!(!below.path().join("x").exists());
    // Every visible mount at or below a masked or read-only path is read-only (the volume's own mount
    // stays rw, hidden under the read-only bind of /proc/sys, as under runc).
    let mut top = std::collections::BTreeMap::new();
    for l in out.lines().filter(|l| l.split(' ').count() > 6) {
        let fields: Vec<&str> = l.split(' ').collect();
        top.insert(fields[4], fields[5]);
    }
    let guarded = [
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sys",
        "/proc/sysrq-trigger",
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
    ];
    let mut checked = Vec::new();
    for (point, options) in top {
        if guarded
            .iter()
            .any(|p| point == *p || point.starts_with(&format!("{p}/")))
        {
            assert!(
                options.split(',').any(|o| o == "ro"),
                "{point} is {options}"
            );
            checked.push(point);
        }
    }
    assert!(
        checked.contains(&"/proc/sys/fs/binfmt_misc") && checked.len() >= 6,
        "masked or read-only mounts found: {checked:?}"
    );
}

#[test]
fn a_bound_sys_is_read_only_below_too() {
    // In a user namespace sharing the host's network, sysfs cannot be mounted: the host's /sys is
    // bound instead, with its submounts (cgroup filesystems), and all of them must be read-only.
    let r = Root::new();
    let out = r.ok(&[
        "run",
        "--rm",
        "--userns",
        "auto",
        "--network",
        "host",
        IMAGE,
        "cat",
        "/proc/self/mountinfo",
    ]);
    let sys: Vec<(&str, &str)> = out
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let (point, options) = (*fields.get(4)?, *fields.get(5)?);
            (point == "/sys" || point.starts_with("/sys/")).then_some((point, options))
        })
        .collect();
    assert!(sys.len() > 1, "/sys and mounts below it: {sys:?}");
    for (point, options) in sys {
        assert!(
            options.split(',').any(|o| o == "ro"),
            "{point} is {options}"
        );
    }
}
