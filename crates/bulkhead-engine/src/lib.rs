//! Containers and their lifecycle: durable per-container state, the per-container monitor process that
//! owns a running container (process or VM isolation), logs, and the client side of the monitor socket.
//!
//! On-disk layout under the root (`--root`, default `/var/lib/bulkhead`):
//! ```text
//! images/                     the image store (bulkhead-image)
//! containers/.lock            taken while names are reserved or containers are listed for removal
//! containers/<id>/config.json what the container is (written once at create, and by `update`)
//! containers/<id>/state.json  what it is doing (status, pids, exit), rewritten atomically under lock
//! containers/<id>/lock        per-container lock for state changes
//! containers/<id>/rw.img      the writable layer: an ext4 disk image used by both isolation modes
//! templates/rw-<size>.img     a formatted empty writable layer, cloned sparsely for each container
//! containers/<id>/container.log  stdout/stderr, one JSON record per chunk, with timestamps
//! containers/<id>/mnt/        process mode: lower (image erofs), rw (rw.img), rootfs (overlay)
//! ```
//! Sockets live in `/run/bulkhead/<id prefix>/` because unix socket paths are limited to 108 bytes.
//!
//! Crash safety: every state file is replaced atomically, and any command that reads a container whose
//! monitor is gone reconciles it (see [`state::reconcile`]), so `kill -9` of any bulkhead process or a host
//! reboot never loses a container.

pub mod client;
mod config;
mod containers;
mod disk;
mod error;
mod fsutil;
mod layout;
pub mod lifecycle;
pub mod logs;
pub mod monitor;
mod spec;
pub mod state;

pub use config::{ContainerConfig, CreateOptions, Isolation, VmOptions};
pub use containers::Container;
pub use error::EngineError;
pub use layout::Layout;
pub use lifecycle::Engine;
pub use state::{ContainerState, Status};
