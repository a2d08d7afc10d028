//! The container description shared by the host monitor, the wire protocol and the agent.
//!
//! Everything here is plain data with serde support and no behaviour: `bulkhead-runtime` executes it
//! (and re-exports it), `bulkhead-proto` carries it in `Start`, `Exec` and `Update` frames. It is its own
//! crate so that the protocol can name these types without linking the runtime (libseccomp, nix).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What runs in a container and how it is confined, whichever isolation level runs it. The engine keeps
/// it in each container's definition; a run adds the host-specific rest ([`ContainerSpec`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    pub process: ProcessSpec,
    pub hostname: String,
    pub readonly_rootfs: bool,
    pub mounts: Vec<MountSpec>,
    pub network: NetworkMode,
    pub userns: Option<IdMap>,
    pub security: SecuritySpec,
    pub resources: Resources,
    /// Kernel parameters (`kernel.shmmax`, or `kernel/shmmax`) written under /proc/sys in the container's
    /// namespaces before it starts. Only namespaced ones are accepted (as runc): IPC ones (`kernel.shm*`,
    /// `kernel.msg*`, `kernel.sem`, `fs.mqueue.*`), `kernel.domainname`, and `net.*` when the container
    /// does not share the host's network namespace.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// Namespaces the container joins instead of getting new ones (a pod's, handed over by path). Process
    /// isolation only: under VM isolation the guest kernel is the pod's own and the host's paths mean
    /// nothing there, so the VM backend leaves them out.
    #[serde(default)]
    pub join_namespaces: Vec<NamespacePath>,
}

/// A namespace to join: a `/proc/PID/ns/KIND` file or a bind mount of one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespacePath {
    pub kind: NamespaceKind,
    pub path: PathBuf,
}

/// The namespace kinds a container may join by path (the network namespace is [`NetworkMode::Namespace`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NamespaceKind {
    Ipc,
    Uts,
}

/// Everything needed to start a container's init process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub id: String,
    /// An already assembled root directory (see bulkhead-runtime's `rootfs::assemble`).
    pub rootfs: PathBuf,
    /// Nested, not flattened: serde's flatten buffers through generic intermediate values, code that a
    /// VM guest translates afresh at every boot under TCG (host and guest are always the same binary,
    /// so the wire shape needs no compatibility).
    pub workload: Workload,
    /// Relative cgroup path such as `bulkhead/<id>`, created under each v1 controller or the v2 root.
    pub cgroup_name: String,
    /// Content written to the container's `/etc/hosts`.
    pub etc_hosts: String,
    /// Content written to the container's `/etc/resolv.conf`.
    pub resolv_conf: String,
    /// VM guest only: the root is a directory the host shares over virtio-9p (a bundle container's,
    /// `bulkhead_proto::vm::ROOT_SHARE_TAG`), not the image's and the container's disks.
    #[serde(default)]
    pub root_share: bool,
}

/// A process to run inside the container (the init process or an exec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSpec {
    pub args: Vec<String>,
    /// `KEY=value` entries; `PATH` from here is used to find `args[0]`.
    pub env: Vec<String>,
    /// Absolute path inside the container; created if missing.
    pub cwd: String,
    /// `""`, `name`, `uid`, `name:group` or `uid:gid`, resolved with the container's /etc files; or
    /// `uid:gid:gid1,gid2` (an OCI process's user: the supplementary groups given, not looked up).
    pub user: String,
    pub terminal: bool,
    pub rlimits: Vec<Rlimit>,
    /// `(rows, cols)` of the terminal from its start (a client's size, known before an exec starts),
    /// so the process never sees a 0x0 terminal; later sizes come as resize messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_size: Option<(u16, u16)>,
}

/// A resource limit; `kind` is `RLIMIT_NOFILE` or the short form `nofile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    pub kind: String,
    pub soft: u64,
    pub hard: u64,
}

/// An additional mount inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountSpec {
    /// A bind mount of a path visible to the runtime (host path, or a shared dir in the guest).
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
    },
    /// A tmpfs; `options` uses the docker `--tmpfs` syntax (`size=64m,mode=1777,exec,ro`).
    Tmpfs { target: String, options: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// A new, empty network namespace with only `lo`, brought up.
    None,
    /// Share the caller's network namespace.
    Host,
    /// Join a network namespace someone else prepared (a bind-mounted nsfs file, as `ip netns add` or
    /// a CRI runtime makes them): `lo`, and `eth0`... with their addresses, MTU and default route. A VM
    /// takes its interfaces over; a process container joins it.
    Namespace(PathBuf),
}

/// Maps container ids `0..size` to host ids `host_uid..host_uid+size` (and likewise for gids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub host_uid: u32,
    pub host_gid: u32,
    pub size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SecuritySpec {
    /// All capabilities, no seccomp, writable /sys, no masked paths.
    pub privileged: bool,
    /// Capability names (`NET_ADMIN` or `CAP_NET_ADMIN`, or `ALL`).
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub seccomp: SeccompPolicy,
    /// Only meaningful for privileged containers: others always get no_new_privs.
    pub no_new_privileges: bool,
    /// Paths hidden from the container (files behind /dev/null, directories behind an empty read-only
    /// tmpfs); `None`: docker's list. Not applied to privileged containers.
    #[serde(default)]
    pub masked_paths: Option<Vec<String>>,
    /// Paths made read-only with everything below them; `None`: docker's list. Not applied to privileged
    /// containers.
    #[serde(default)]
    pub readonly_paths: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SeccompPolicy {
    /// Docker's default profile (bulkhead-runtime's `seccomp` module).
    #[default]
    Default,
    Unconfined,
    /// A docker-format JSON profile.
    Profile(String),
    /// One of the above already compiled to a classic BPF program (`struct sock_filter` array, native
    /// byte order) for this container's capabilities, by bulkhead-runtime's `compile_seccomp`. The VM host sends
    /// this, sparing the guest a compile that takes about 50 ms under binary translation. Serialized as
    /// base64: a JSON array of numbers is three times larger and slow to parse in the guest.
    Compiled(#[serde(with = "base64_bytes")] Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Resources {
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
    /// `<= 0` means unlimited.
    pub pids_limit: Option<i64>,
}

/// Serde helpers: bytes as one base64 string.
mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_filters_travel_as_base64() {
        let policy = SeccompPolicy::Compiled(vec![0, 1, 2, 250, 255]);
        let json = serde_json::to_value(&policy).unwrap();
        assert_eq!(json, serde_json::json!({ "Compiled": "AAEC+v8=" }));
        assert_eq!(
            serde_json::from_value::<SeccompPolicy>(json).unwrap(),
            policy
        );
        let bad = serde_json::json!({ "Compiled": "not base64!" });
        assert!(serde_json::from_value::<SeccompPolicy>(bad).is_err());
    }

    #[test]
    fn records_without_the_oci_fields_still_load() {
        let old = serde_json::json!({
            "process": {"args": ["sh"], "env": [], "cwd": "/", "user": "", "terminal": false, "rlimits": []},
            "hostname": "h", "readonly_rootfs": false, "mounts": [], "network": "None", "userns": null,
            "security": {"privileged": false, "cap_add": [], "cap_drop": [], "seccomp": "Default",
                         "no_new_privileges": false},
            "resources": {"memory_bytes": null, "cpus": null, "pids_limit": null}
        });
        let w: Workload = serde_json::from_value(old).unwrap();
        assert!(w.sysctls.is_empty() && w.join_namespaces.is_empty());
        assert_eq!(
            (w.security.masked_paths, w.security.readonly_paths),
            (None, None)
        );
        let join = NamespacePath {
            kind: NamespaceKind::Uts,
            path: "/proc/7/ns/uts".into(),
        };
        let json = serde_json::to_value(&join).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "Uts", "path": "/proc/7/ns/uts"})
        );
    }
}
