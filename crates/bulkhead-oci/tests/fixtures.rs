//! config.json files as real callers write them (tests/fixtures/): `runc spec`; podman 4.3's for
//! `run` (root, a non-root user with a terminal and limits, `--network none`), captured through a
//! `--runtime` script that copied the bundle's config.json; containerd 1.6's `ctr run` (plain, and with
//! `--seccomp --net-host`), captured the same way through `--runc-binary`. Each translates, and its
//! seccomp profile compiles with the runtime.

use std::path::{Path, PathBuf};

use bulkhead_engine::{MountSpec, NamespaceKind, NetworkMode, SeccompPolicy, Workload};
use bulkhead_oci::bundle;

const RELAY: i32 = 4242;

fn fixture(name: &str) -> (oci_spec::runtime::Spec, Workload) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let bytes = std::fs::read(&path).unwrap();
    let spec = bundle::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let workload = bundle::workload(&spec, RELAY).unwrap_or_else(|e| panic!("{name}: {e}"));
    if let SeccompPolicy::Profile(_) = &workload.security.seccomp {
        bulkhead_runtime::compile_seccomp(&workload.security)
            .unwrap_or_else(|e| panic!("{name}: seccomp profile: {e}"));
    }
    (spec, workload)
}

fn binds(w: &Workload) -> Vec<(&str, bool)> {
    w.mounts
        .iter()
        .filter_map(|m| match m {
            MountSpec::Bind {
                target, readonly, ..
            } => Some((target.as_str(), *readonly)),
            MountSpec::Tmpfs { .. } => None,
        })
        .collect()
}

fn relay_ns(kind: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{RELAY}/ns/{kind}"))
}

#[test]
fn runc_spec() {
    let (_, w) = fixture("runc-spec.json");
    assert_eq!(w.process.args, ["sh"]);
    assert!(w.process.terminal);
    assert!(w.readonly_rootfs);
    assert_eq!(w.network, NetworkMode::None);
    assert!(w.mounts.is_empty());
    assert_eq!(w.security.seccomp, SeccompPolicy::Unconfined);
    assert_eq!(
        w.security.cap_add,
        ["AUDIT_WRITE", "KILL", "NET_BIND_SERVICE"]
    );
}

#[test]
fn podman_run() {
    let (spec, w) = fixture("podman-run.json");
    assert_eq!(w.process.args, ["sh", "-c", "true"]);
    assert_eq!(w.process.user, "0:0:10");
    assert!(matches!(&w.network, NetworkMode::Namespace(p) if p.starts_with("/run/netns")));
    assert_eq!(w.join_namespaces[0].kind, NamespaceKind::Ipc);
    assert_eq!(w.join_namespaces[0].path, relay_ns("ipc"));
    assert_eq!(w.join_namespaces[1].path, relay_ns("uts"));
    assert_eq!(w.sysctls["net.ipv4.ping_group_range"], "0 0");
    assert_eq!(
        binds(&w),
        [
            ("/etc/resolv.conf", false),
            ("/etc/hosts", false),
            ("/dev/shm", false),
            ("/run/.containerenv", false),
            ("/etc/hostname", false)
        ]
    );
    assert!(matches!(w.security.seccomp, SeccompPolicy::Profile(_)));
    assert_eq!(w.security.cap_add.len(), 11);
    assert_eq!(w.resources.pids_limit, Some(2048));
    assert!(w
        .security
        .masked_paths
        .as_ref()
        .is_some_and(|m| m.len() > 5));
    assert!(!bundle::annotations(&spec).is_empty());
}

#[test]
fn podman_run_as_a_user_with_a_terminal_and_limits() {
    let (spec, w) = fixture("podman-run-user-tty-limits.json");
    assert_eq!(w.process.user, "1000:1000");
    assert!(w.process.terminal);
    // podman gives a non-root user a bounding set only: nothing to use.
    assert!(w.security.cap_add.is_empty());
    assert_eq!(w.resources.memory_bytes, Some(64 << 20));
    assert_eq!(w.resources.cpus, Some(0.5));
    assert_eq!(w.resources.pids_limit, Some(100));
    assert!(binds(&w).contains(&("/data", true)));
    assert_eq!(
        bundle::annotations(&spec)
            .get("io.bulkhead.isolation")
            .map(String::as_str),
        Some("vm")
    );
}

#[test]
fn podman_run_without_a_network() {
    let (_, w) = fixture("podman-run-network-none.json");
    assert_eq!(w.network, NetworkMode::None);
    assert!(!binds(&w).iter().any(|(t, _)| *t == "/etc/resolv.conf"));
}

#[test]
fn ctr_run() {
    let (_, w) = fixture("ctr-run.json");
    assert_eq!(w.process.user, "0:0:10");
    assert_eq!(w.network, NetworkMode::None);
    assert_eq!(w.security.cap_add.len(), 14);
    assert_eq!(w.security.seccomp, SeccompPolicy::Unconfined);
    assert!(w.security.no_new_privileges);
    assert!(matches!(&w.mounts[..], [MountSpec::Tmpfs { target, .. }] if target == "/run"));
}

#[test]
fn ctr_run_with_seccomp_and_the_host_network() {
    let (_, w) = fixture("ctr-run-seccomp-net-host.json");
    assert_eq!(w.network, NetworkMode::Host);
    assert!(matches!(w.security.seccomp, SeccompPolicy::Profile(_)));
    assert_eq!(
        binds(&w),
        [("/etc/hosts", true), ("/etc/resolv.conf", true)]
    );
}

/// Every prefix of each fixture, and each with bytes changed along the way, is refused or translated
/// without a panic (the fuzz target, oci_bundle, goes further).
#[test]
fn damaged_configs_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let translate = |b: &[u8]| {
            if let Ok(spec) = bundle::parse(b) {
                let _ = bundle::workload(&spec, RELAY);
            }
        };
        for end in (0..bytes.len()).step_by(7) {
            translate(&bytes[..end]);
        }
        for (i, replacement) in (0..bytes.len())
            .step_by(13)
            .zip([b'0', b'-', b'"', b'9', b'x'].iter().cycle())
        {
            let mut damaged = bytes.clone();
            damaged[i] = *replacement;
            translate(&damaged);
        }
    }
}
