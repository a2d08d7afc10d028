//! The one shared test kit of the workspace (a dev-dependency only): the busybox demo image, layer tars
//! (hostile ones too), OCI image layouts, a real `docker-registry` on a free loopback port, and scratch
//! bulkhead roots driven through the real binary, and the real callers of its OCI runtime (podman,
//! containerd, a CRI client). Everything it makes lives in temporary directories and
//! is cleaned up on drop, so a failing test leaks no mounts, processes or servers.

pub mod api;
pub mod busybox;
pub mod http;
pub mod isolation;
pub mod layer;
pub mod oci;
pub mod oci_runtime;
pub mod output;
pub mod pty;
pub mod registry;
pub mod root;
pub mod store;
mod token;

pub use api::ApiServer;
pub use busybox::{busybox_layer, demo_rootfs_tar};
pub use isolation::{vm_lock, Isolation};
pub use layer::{gzip, zstd, LayerBuilder};
pub use oci::{sha256, write_layout, BuiltImage, Layer, Layout, ManifestFormat, Platform};
pub use output::{stderr, stdout, wait_output};
pub use pty::Terminal;
pub use registry::{free_port, Account, Auth, Registry};
pub use root::Root;
pub use store::assert_blobs_intact;
