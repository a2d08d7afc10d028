//! Translation rules and bad input, one config.json fragment at a time.

use super::*;
use bulkhead_engine::{IdMap, MountSpec, NamespaceKind, NamespacePath, NetworkMode, SeccompPolicy};
use serde_json::{json, Value};

const RELAY: i32 = 4242;

/// `runc spec`'s config, minus what each test changes.
fn base() -> Value {
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys"]
        }
    })
}

fn translate(config: &Value) -> Result<Workload, BundleError> {
    workload(&parse(config.to_string().as_bytes())?, RELAY)
}

fn with(path: &str, value: Value) -> Value {
    let mut config = base();
    *config.pointer_mut(path).expect(path) = value;
    config
}

fn error_of(config: &Value) -> String {
    translate(config).unwrap_err().to_string()
}

#[test]
fn runc_spec_translates() {
    let w = translate(&base()).unwrap();
    assert_eq!(w.process.args, ["sh"]);
    assert_eq!(w.process.env, ["PATH=/bin", "TERM=xterm"]);
    assert_eq!(w.process.user, "0:0");
    assert_eq!(w.process.rlimits[0].kind, "RLIMIT_NOFILE");
    assert_eq!(
        (w.process.rlimits[0].soft, w.process.rlimits[0].hard),
        (1024, 1024)
    );
    assert_eq!(w.hostname, "runc");
    assert!(w.readonly_rootfs);
    assert!(w.mounts.is_empty());
    assert_eq!(w.network, NetworkMode::None);
    assert_eq!(
        w.join_namespaces,
        [
            NamespacePath {
                kind: NamespaceKind::Ipc,
                path: "/proc/4242/ns/ipc".into()
            },
            NamespacePath {
                kind: NamespaceKind::Uts,
                path: "/proc/4242/ns/uts".into()
            }
        ]
    );
    assert_eq!(w.userns, None);
    assert_eq!(w.security.cap_drop, ["ALL"]);
    assert_eq!(
        w.security.cap_add,
        ["AUDIT_WRITE", "KILL", "NET_BIND_SERVICE"]
    );
    assert!(w.security.no_new_privileges);
    assert!(!w.security.privileged);
    assert_eq!(w.security.seccomp, SeccompPolicy::Unconfined);
    assert_eq!(
        w.security.masked_paths.as_deref(),
        Some(&["/proc/kcore".to_string()][..])
    );
    assert_eq!(
        w.security.readonly_paths.as_deref(),
        Some(&["/proc/sys".to_string()][..])
    );
}

#[test]
fn process_fields() {
    let mut config = base();
    config["process"]["terminal"] = json!(true);
    config["process"]["consoleSize"] = json!({"height": 24, "width": 80});
    config["process"]["user"] =
        json!({"uid": 1000, "gid": 100, "additionalGids": [100, 10, 20, 10], "umask": 18});
    config["process"]["capabilities"] = json!({});
    let w = translate(&config).unwrap();
    assert!(w.process.terminal);
    assert_eq!(w.process.console_size, Some((24, 80)));
    assert_eq!(w.process.user, "1000:100:10,20");
    assert!(w.security.cap_add.is_empty());
    assert!(error_of(&with("/process/args", json!([]))).contains("process.args"));
    assert!(error_of(&with("/process/cwd", json!("relative"))).contains("process.cwd"));
    let umask = with("/process/user", json!({"uid": 0, "gid": 0, "umask": 63}));
    assert!(error_of(&umask).contains("process.user.umask"));
    let rlimits = json!([{"type": "RLIMIT_NPROC", "soft": 10, "hard": 5}]);
    assert!(error_of(&with("/process/rlimits", rlimits)).contains("process.rlimits[0]"));
    let twice = json!([{"type": "RLIMIT_NPROC", "soft": 1, "hard": 5}, {"type": "RLIMIT_NPROC", "soft": 1, "hard": 5}]);
    assert!(error_of(&with("/process/rlimits", twice)).contains("given twice"));
    let mut config = base();
    config["process"]
        .as_object_mut()
        .unwrap()
        .remove("capabilities");
    let w = translate(&config).unwrap();
    assert_eq!(
        (w.security.cap_drop.as_slice(), w.security.cap_add.len()),
        (&["ALL".to_string()][..], 0)
    );
    let mut config = base();
    config.as_object_mut().unwrap().remove("process");
    assert_eq!(error_of(&config), "config.json has no process");
    let mut config = base();
    config["process"]["scheduler"] = json!({"policy": "SCHED_OTHER"});
    assert!(error_of(&config).contains("process.scheduler"));
}

#[test]
fn capabilities() {
    // podman's for a non-root user: a bounding set only, nothing to use.
    let mut config = base();
    config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    config["process"]["capabilities"] = json!({"bounding": ["CAP_KILL", "CAP_CHOWN"]});
    let w = translate(&config).unwrap();
    assert_eq!(w.security.cap_drop, ["ALL"]);
    assert!(w.security.cap_add.is_empty());
    // Permitted beyond effective: the process could raise them itself.
    config["process"]["capabilities"] = json!({"bounding": ["CAP_KILL", "CAP_CHOWN"], "permitted": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"]});
    assert_eq!(
        translate(&config).unwrap().security.cap_add,
        ["CHOWN", "KILL"]
    );
    for (sets, expected) in [
        (
            json!({"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"], "effective": ["CAP_CHOWN"]}),
            "process.capabilities.effective: [CHOWN] not in the permitted set",
        ),
        (
            json!({"bounding": ["CAP_KILL"], "permitted": ["CAP_CHOWN"]}),
            "process.capabilities.permitted",
        ),
        (
            json!({"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"], "ambient": ["CAP_KILL"]}),
            "for non-root user 1000",
        ),
        (
            json!({"permitted": [], "ambient": ["CAP_KILL"]}),
            "process.capabilities.ambient: [KILL] not in the permitted set",
        ),
    ] {
        config["process"]["capabilities"] = sets;
        let err = error_of(&config);
        assert!(err.contains(expected), "{err} lacks {expected}");
    }
    // Root's ambient set is redundant (runc spec's default).
    assert_eq!(translate(&base()).unwrap().security.cap_add.len(), 3);
}

#[test]
fn namespaces() {
    let joined = json!([
        {"type": "pid"}, {"type": "mount"},
        {"type": "network", "path": "/var/run/netns/cni-1"},
        {"type": "ipc", "path": "/proc/77/ns/ipc"},
        {"type": "uts", "path": "/proc/77/ns/uts"},
        {"type": "cgroup"}
    ]);
    let w = translate(&with("/linux/namespaces", joined)).unwrap();
    assert_eq!(
        w.network,
        NetworkMode::Namespace("/var/run/netns/cni-1".into())
    );
    assert_eq!(
        w.join_namespaces[0].path,
        std::path::Path::new("/proc/77/ns/ipc")
    );
    assert_eq!(w.join_namespaces[1].kind, NamespaceKind::Uts);
    let host = json!([{"type": "pid"}, {"type": "mount"}]);
    let w = translate(&with("/linux/namespaces", host)).unwrap();
    assert_eq!(w.network, NetworkMode::Host);
    assert_eq!(
        w.join_namespaces[0].path,
        std::path::Path::new("/proc/self/ns/ipc")
    );
    assert_eq!(
        w.join_namespaces[1].path,
        std::path::Path::new("/proc/self/ns/uts")
    );
    for (namespaces, expected) in [
        (
            json!([{"type": "pid", "path": "/proc/1/ns/pid"}, {"type": "mount"}]),
            "pid",
        ),
        (
            json!([{"type": "pid"}, {"type": "mount", "path": "/x"}]),
            "mnt",
        ),
        (
            json!([{"type": "pid"}, {"type": "mount"}, {"type": "user", "path": "/x"}]),
            "user",
        ),
        (
            json!([{"type": "pid"}, {"type": "mount"}, {"type": "time"}]),
            "time",
        ),
        (json!([{"type": "mount"}]), "pid namespace"),
        (json!([{"type": "pid"}]), "mount namespace"),
        (
            json!([{"type": "pid"}, {"type": "pid"}, {"type": "mount"}]),
            "given twice",
        ),
        (
            json!([{"type": "pid"}, {"type": "mount"}, {"type": "ipc", "path": "rel"}]),
            "not absolute",
        ),
    ] {
        let err = error_of(&with("/linux/namespaces", namespaces));
        assert!(err.contains(expected), "{err} lacks {expected}");
    }
    let config = base();
    assert!(workload(&parse(config.to_string().as_bytes()).unwrap(), 0)
        .unwrap_err()
        .to_string()
        .contains("relay pid"));
}

#[test]
fn user_namespaces() {
    let mut config = base();
    config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    let w = translate(&config).unwrap();
    assert_eq!(
        w.userns,
        Some(IdMap {
            host_uid: 100000,
            host_gid: 200000,
            size: 65536
        })
    );
    let mut two = config.clone();
    two["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1, "size": 1}, {"containerID": 1, "hostID": 5, "size": 1}]);
    assert!(error_of(&two).contains("linux.uidMappings"));
    let mut sizes = config.clone();
    sizes["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1, "size": 10}]);
    assert!(error_of(&sizes).contains("same size"));
    let mut none = config.clone();
    none["linux"].as_object_mut().unwrap().remove("gidMappings");
    assert!(error_of(&none).contains("linux.gidMappings"));
    let mut without_ns = base();
    without_ns["linux"]["uidMappings"] = config["linux"]["uidMappings"].clone();
    assert!(error_of(&without_ns).contains("without a user namespace"));
}

#[test]
fn mounts() {
    let mounts = json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs"},
        {"destination": "/sys/fs/cgroup", "type": "cgroup2", "source": "cgroup"},
        {"destination": "/dev/shm/", "type": "tmpfs", "source": "shm"},
        {"destination": "/etc/hosts", "type": "bind", "source": "/var/lib/x/hosts", "options": ["rbind", "rprivate", "ro"]},
        {"destination": "/data", "source": "/srv/data", "options": ["rbind", "rw", "nosuid", "nodev", "rslave"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=64m", "mode=1777"]}
    ,
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"]}
    ]);
    let w = translate(&with("/mounts", mounts)).unwrap();
    assert_eq!(
        w.mounts,
        [
            MountSpec::Bind {
                source: "/var/lib/x/hosts".into(),
                target: "/etc/hosts".into(),
                readonly: true
            },
            MountSpec::Bind {
                source: "/srv/data".into(),
                target: "/data".into(),
                readonly: false
            },
            MountSpec::Tmpfs {
                target: "/tmp".into(),
                options: "nosuid,size=64m,mode=1777,dev,exec".into()
            },
            MountSpec::Tmpfs {
                target: "/run".into(),
                options: "rw,nosuid,nodev,tmpcopyup,exec".into()
            },
        ]
    );
    for (mount, expected) in [
        (
            json!({"destination": "/x", "type": "nfs", "source": "host:/x"}),
            "mounts[0]: not supported by bulkhead: a mount of type \"nfs\" on /x",
        ),
        (
            json!({"destination": "/proc2", "type": "proc", "source": "proc"}),
            "type \"proc\" on /proc2",
        ),
        (
            json!({"destination": "x", "type": "tmpfs"}),
            "mounts[0].destination",
        ),
        (
            json!({"destination": "/x", "type": "bind", "source": "rel"}),
            "mounts[0].source",
        ),
        (
            json!({"destination": "/x", "type": "bind"}),
            "a bind needs a source",
        ),
        (
            json!({"destination": "/x", "type": "bind", "source": "/y", "options": ["rshared"]}),
            "propagation",
        ),
        (
            json!({"destination": "/x", "type": "bind", "source": "/y", "options": ["idmap"]}),
            "bind option \"idmap\"",
        ),
        (
            json!({"destination": "/x", "type": "tmpfs", "options": ["copy-symlink"]}),
            "tmpfs option \"copy-symlink\"",
        ),
    ] {
        let err = error_of(&with("/mounts", json!([mount])));
        assert!(err.contains(expected), "{err} lacks {expected}");
    }
}

#[test]
fn resources() {
    let resources = json!({
        "memory": {"limit": 67108864, "swap": 67108864},
        "cpu": {"quota": 50000, "period": 100000, "shares": 512},
        "pids": {"limit": 100},
        "blockIO": {"weight": 10},
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "access": "m"},
            {"allow": true, "type": "b", "major": -1, "minor": -1, "access": "m"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"}
        ]
    });
    let w = translate(&with("/linux/resources", resources)).unwrap();
    assert_eq!(w.resources.memory_bytes, Some(64 << 20));
    assert_eq!(w.resources.cpus, Some(0.5));
    assert_eq!(w.resources.pids_limit, Some(100));
    let unlimited = json!({"memory": {"limit": -1}, "cpu": {"quota": -1}, "pids": {"limit": -1}});
    let r = translate(&with("/linux/resources", unlimited))
        .unwrap()
        .resources;
    assert_eq!((r.memory_bytes, r.cpus, r.pids_limit), (None, None, None));
    let quota_only = json!({"cpu": {"quota": 200000}});
    assert_eq!(
        translate(&with("/linux/resources", quota_only))
            .unwrap()
            .resources
            .cpus,
        Some(2.0)
    );
    for (resources, expected) in [
        (
            json!({"cpu": {"quota": 1000, "period": 0}}),
            "linux.resources.cpu.period",
        ),
        (
            json!({"devices": [{"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}]}),
            "linux.resources.devices[0]",
        ),
        (
            json!({"devices": [{"allow": true, "type": "b", "major": 8, "minor": 0, "access": "rw"}]}),
            "allowing device b 8:0 rw",
        ),
        (
            json!({"devices": [{"allow": true, "access": "rwm"}]}),
            "allowing device",
        ),
        (
            json!({"devices": [{"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]}),
            "a deny rule",
        ),
    ] {
        let err = error_of(&with("/linux/resources", resources));
        assert!(err.contains(expected), "{err} lacks {expected}");
    }
}

#[test]
fn devices() {
    let defaults = json!([
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
        {"path": "/dev/urandom", "type": "c", "major": 1, "minor": 9, "fileMode": 438, "uid": 0, "gid": 0}
    ]);
    let mut config = base();
    config["linux"]["devices"] = defaults;
    assert!(translate(&config).is_ok());
    config["linux"]["devices"] =
        json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]);
    let err = error_of(&config);
    assert!(
        err.contains("linux.devices[0]") && err.contains("/dev/fuse"),
        "{err}"
    );
    config["linux"]["devices"] =
        json!([{"path": "/dev/null", "type": "c", "major": 8, "minor": 0}]);
    assert!(error_of(&config).contains("linux.devices[0]"));
}

#[test]
fn seccomp_passes_as_a_docker_profile() {
    let seccomp = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
        ]
    });
    let mut config = base();
    config["linux"]["seccomp"] = seccomp;
    let SeccompPolicy::Profile(profile) = translate(&config).unwrap().security.seccomp else {
        panic!("not a profile");
    };
    let profile: Value = serde_json::from_str(&profile).unwrap();
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(profile["defaultErrnoRet"], 38);
    assert_eq!(profile["architectures"][1], "SCMP_ARCH_X86");
    assert_eq!(profile["syscalls"][2]["args"][0]["valueTwo"], 0);
    assert_eq!(
        profile["syscalls"][2]["args"][0]["op"],
        "SCMP_CMP_MASKED_EQ"
    );
    assert_eq!(profile["syscalls"][3]["errnoRet"], 1);
    assert!(profile.get("flags").is_none());
    for (change, expected) in [
        (
            json!({"listenerPath": "/run/l.sock"}),
            "linux.seccomp.listenerPath",
        ),
        (
            json!({"flags": ["SECCOMP_FILTER_FLAG_LOG"]}),
            "SECCOMP_FILTER_FLAG_LOG",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
            "linux.seccomp.defaultAction",
        ),
        (
            json!({"defaultErrnoRet": 4294967295u32}),
            "linux.seccomp.defaultErrnoRet",
        ),
        (
            json!({"syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}),
            "syscalls[0].action",
        ),
        (
            json!({"syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "args[0].index",
        ),
    ] {
        let mut config = base();
        config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW"});
        for (k, v) in change.as_object().unwrap() {
            config["linux"]["seccomp"][k] = v.clone();
        }
        let err = error_of(&config);
        assert!(err.contains(expected), "{err} lacks {expected}");
    }
    let mut bad_action = base();
    bad_action["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_BOGUS"});
    assert!(error_of(&bad_action).contains("linux.seccomp.defaultAction"));
}

#[test]
fn sysctls_domainname_and_paths() {
    let mut config = base();
    config["linux"]["sysctl"] =
        json!({"net.ipv4.ping_group_range": "0 0", "kernel.shmmax": "1000"});
    config["domainname"] = json!("example.org");
    let w = translate(&config).unwrap();
    assert_eq!(w.sysctls.len(), 3);
    assert_eq!(w.sysctls["kernel.domainname"], "example.org");
    assert_eq!(w.sysctls["net.ipv4.ping_group_range"], "0 0");
    config["linux"]["sysctl"]["kernel.domainname"] = json!("other");
    assert!(error_of(&config).contains("domainname"));
    let mut config = base();
    let linux = config["linux"].as_object_mut().unwrap();
    linux.remove("maskedPaths");
    linux.remove("readonlyPaths");
    let w = translate(&config).unwrap();
    assert_eq!(w.security.masked_paths, Some(Vec::new()));
    assert_eq!(w.security.readonly_paths, Some(Vec::new()));
}

#[test]
fn linux_fields_without_a_translation() {
    for (field, value, expected) in [
        ("intelRdt", json!({"closID": "x"}), "linux.intelRdt"),
        (
            "personality",
            json!({"domain": "LINUX32"}),
            "linux.personality",
        ),
        (
            "rootfsPropagation",
            json!("shared"),
            "linux.rootfsPropagation",
        ),
    ] {
        let mut config = base();
        config["linux"][field] = value;
        let err = error_of(&config);
        assert!(err.contains(expected), "{err} lacks {expected}");
    }
    let mut config = base();
    config["linux"]["rootfsPropagation"] = json!("rslave");
    config["linux"]["cgroupsPath"] = json!("/kubepods/pod1/x");
    config["process"]["apparmorProfile"] = json!("containers-default-0.50.0");
    config["process"]["oomScoreAdj"] = json!(100);
    assert!(translate(&config).is_ok());
    let mut config = base();
    config.as_object_mut().unwrap().remove("linux");
    assert!(error_of(&config).contains("pid namespace"));
}

#[test]
fn annotations_and_hooks() {
    let mut config = base();
    config["annotations"] = json!({"io.bulkhead.isolation": "vm", "a": "b"});
    config["hooks"] = json!({"poststop": [{"path": "/bin/true", "args": ["true"], "timeout": 5}]});
    let spec = parse(config.to_string().as_bytes()).unwrap();
    let found = annotations(&spec);
    assert_eq!(found["io.bulkhead.isolation"], "vm");
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ["a", "io.bulkhead.isolation"]
    );
    let given = hooks(&spec);
    assert_eq!(given.poststop().as_ref().unwrap()[0].timeout(), Some(5));
    assert!(given.create_runtime().is_none());
    let bare = parse(base().to_string().as_bytes()).unwrap();
    assert!(annotations(&bare).is_empty());
    assert!(hooks(&bare).poststart().is_none());
}
