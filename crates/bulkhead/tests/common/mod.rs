//! This package's adapter over bulkhead-testkit: the kit's scratch root bound to the `bulkhead` binary
//! built here (`CARGO_BIN_EXE_bulkhead` exists only in this package's tests), with the demo image.

// Each test binary (process, vm, images, ...) uses its own subset of these helpers and re-exports.
#![allow(dead_code, unused_imports)]

use std::ops::Deref;
use std::path::Path;

pub mod host;
pub mod net;

pub use bulkhead_testkit::{stderr, stdout, wait_output, Isolation};

/// The demo image's name inside every test root.
pub const IMAGE: &str = "demo";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bulkhead")
}

/// The busybox demo rootfs tarball that every root imports as [`IMAGE`].
pub fn image_tar() -> &'static Path {
    bulkhead_testkit::demo_rootfs_tar()
}

/// A scratch root for this package's `bulkhead`; containers are force-removed when it is dropped.
pub struct Root(bulkhead_testkit::Root);

impl Root {
    /// With the demo image imported as [`IMAGE`].
    pub fn new() -> Root {
        Root(bulkhead_testkit::Root::with_demo_image(bin(), IMAGE))
    }

    /// Without any image.
    pub fn empty() -> Root {
        Root(bulkhead_testkit::Root::empty(bin()))
    }
}

// The kit's helpers (`ok`, `bh`, `cmd`, `inspect`, ...) are this root's.
impl Deref for Root {
    type Target = bulkhead_testkit::Root;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Interface names in a /proc/net/dev listing, sorted.
pub fn interfaces(proc_net_dev: &str) -> Vec<String> {
    let mut names: Vec<String> = proc_net_dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names
}

/// [`interfaces`] without containers' veths, which other tests add and remove meanwhile.
pub fn stable_interfaces(proc_net_dev: &str) -> Vec<String> {
    interfaces(proc_net_dev)
        .into_iter()
        .filter(|n| !n.starts_with("veth"))
        .collect()
}
