//! The engine: the one facade every bulkhead front end calls (the CLI, the Docker API server, the OCI
//! runtime CLI). It owns containers and their lifecycle, the image store, the isolation policy, the
//! per-container monitor process, and the isolation backends behind one trait.
//!
//! Rooms, one module each:
//! - [`Engine`] and [`EngineConfig`] (`engine.rs`): opening a root, `info`, the guest kernel;
//!   `lifecycle.rs` the container operations, `images.rs` the image operations and registry logins.
//! - `policy.rs`: the isolation policy an operator writes in `<root>/policy.json`.
//! - `isolation/`: everything that differs between process and VM isolation, one module per mode.
//! - `monitor/`: the per-container monitor (its launch contract in `monitor/launch.rs`).
//! - `session.rs`: a front end's protocol connection to a monitor (attach, exec, signals);
//!   `introspect.rs` top, stats and archives (docker cp) of a running container, through its agent.
//! - `config.rs`, `spec.rs`, `env.rs`: what a container is, and how options become a runtime spec;
//!   `bundle.rs` a container on a caller's root filesystem directory (an OCI bundle) instead of an image;
//!   `etc_files.rs` its `/etc/hosts` and `/etc/resolv.conf`.
//! - `volumes/`: named and anonymous volumes, `-v`/`--mount` parsing, copy-up from the image.
//! - `network_dns/`: the name responder of a user-defined network, run by the monitors on it.
//! - `containers.rs`, `state.rs`, `layout.rs`, `disk.rs`, `logs.rs`, `fsutil.rs`: records on disk;
//!   `events.rs` the event log (docker's `events`).
//!
//! On-disk layout under the root (`--root`, default `/var/lib/bulkhead`):
//! ```text
//! policy.json                 the isolation policy (optional)
//! images/                     the image store (bulkhead-image)
//! events.jsonl                the event log, one JSON line per event (O_APPEND by any bulkhead process)
//! events.jsonl.1, events.lock its previous file after rotation at ~4 MiB; the lock orders appends first
//! containers/.lock            taken while names are reserved or containers are listed for removal
//! containers/.new-<id>/       a container being created, renamed to <id>/ as create's last step
//!                             (one a crash left is swept by `list` after a minute, as is .rm-<id>/)
//! containers/<id>/config.json what the container is (written at create, by `update` and `rename`)
//! containers/<id>/state.json  what it is doing (status, pids, exit), rewritten atomically under lock
//! containers/<id>/lock        per-container lock for state changes
//! containers/<id>/rw.img      the writable layer: an ext4 disk image used by both isolation modes
//! templates/rw-<size>.img     a formatted empty writable layer, cloned sparsely for each container
//! containers/<id>/container.log  stdout/stderr, one JSON record per chunk, with timestamps
//! containers/<id>/mnt/        process mode: lower (image erofs), rw (rw.img), rootfs (overlay);
//!                             a bundle container: bundle (a bind of its caller's rootfs directory)
//! volumes/<name>/_data        a volume's content; volumes/<name>/volume.json its record
//! networks/<id>/network.json  a bridge network (the default `bridge` is made on first use)
//! networks/<id>/endpoints/<container-id>.json  a container running on it (name, aliases, address)
//! ```
//! Sockets live in `/run/bulkhead/<id prefix>/` because unix socket paths are limited to 108 bytes; a
//! VM's run files are there too, with `file-binds/`, the copies of bound files its guest gets.
//!
//! Crash safety: every state file is replaced atomically, and any command that reads a container whose
//! monitor is gone reconciles it (see [`state::reconcile`]), so `kill -9` of any bulkhead process or a host
//! reboot never loses a container; `create` renames a complete container into place as its last step,
//! so one killed midway leaves none.

mod bundle;
mod config;
mod containers;
mod disk;
mod docker_names;
mod docker_time;
mod engine;
mod env;
mod error;
mod etc_files;
mod events;
mod fds;
mod fsutil;
mod images;
mod introspect;
mod isolation;
mod layout;
mod lifecycle;
pub mod logs;
pub mod monitor;
pub mod network_dns;
mod network_ops;
mod networks;
mod pause;
mod policy;
pub mod relay;
mod seccomp_cache;
mod session;
mod spec;
pub mod state;
mod state_watch;
mod volumes;

pub use bulkhead_runtime::NetworkMode;
pub use bundle::BundleCreate;
pub use config::{ContainerConfig, CreateOptions, Isolation, VmOptions};
pub use containers::Container;
pub use docker_time::parse_time;
pub use engine::{build_guest_kernel, guest_kernel, policy_path, Engine, EngineConfig, EngineInfo};
pub use error::EngineError;
pub use events::{Event, EventKind};
pub use fds::close_all_but;
pub use images::{PullEvent, PullEvents, PullSettings, PulledImage};
pub use isolation::VmSizing;
pub use lifecycle::{
    ContainerDetails, ExecOptions, LogOptions, StartMode, WaitCondition, WaitOutcome,
};
pub use network_ops::NetworkDetails;
pub use networks::attach::{host_veth_name, InterfaceState, NetworkState};
pub use networks::{EndpointRecord, NetworkAttachment, NetworkCreateOptions, NetworkRecord};
pub use policy::{IsolationPolicy, PolicyFile, VmRequirement};
pub use session::Session;
pub use spec::parse_signal;
pub use state::{ContainerState, Status};
pub use volumes::{Volume, VolumePruneReport};

pub use bulkhead_image::{
    Image, ImageDeletion, ImageError, ImageId, ImageInspect, ImageSummary, PruneReport,
};
pub use bulkhead_net::netlink::{format_mac, mac_for};
pub use bulkhead_net::netns::path_for as netns_path;
/// Types of the layers below that appear in the facade's signatures, so front ends need no other crate.
pub use bulkhead_net::ports::{PortSpec, Protocol, PublishedPort};
pub use bulkhead_net::{NetError, Subnet};
pub use bulkhead_proto::introspect::{ContainerStats, InterfaceStats, PathStat, ProcessTable};
pub use bulkhead_proto::{ExitStatus, Message, ProtoError};
pub use bulkhead_registry::PullEvent as RegistryEvent;
pub use bulkhead_runtime::cgroups::CgroupVersion;
pub use bulkhead_runtime::{
    bring_loopback_up, IdMap, MountSpec, NamespaceKind, NamespacePath, ProcessSpec, Resources,
    Rlimit, SeccompPolicy, SecuritySpec, Workload,
};
pub use bulkhead_vm::{Accel, AccelKind, Confinement, Kernel};
