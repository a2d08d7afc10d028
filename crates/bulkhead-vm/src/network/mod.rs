//! The VM's side of a container's network namespace, as Kata's "tcfilter" model does it: the engine
//! (or later containerd/CRI) hands VM mode a namespace holding `eth0`, a veth on a bridge with its
//! address, MTU and default route, exactly as a process container gets it. Inside that namespace the host
//! creates one tap device per interface ([`tap`]) and mirrors all traffic both ways between the two with
//! tc ([`mirror`]); QEMU gets the tap's descriptor, its virtio-net device the interface's MAC, and the
//! guest's PID 1 gives its NIC the interface's name, address, MTU and route, found by scanning the
//! namespace ([`scan`]) rather than being told: a namespace someone else made works the same.
//!
//! What VM mode leaves in the namespace: nothing that outlives QEMU but the ingress qdiscs on the
//! scanned interfaces (the taps are not persistent: they vanish with the last descriptor, QEMU's,
//! unless a hostile QEMU made one persistent).
//! [`unwire`] removes those qdiscs; deleting the namespace does too.

mod mirror;
mod scan;
mod tap;

use bulkhead_proto::nic::GuestNic;
use bulkhead_runtime::netlink::{Netlink, NetlinkError};
use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// A namespace wired for one VM: what the guest is to configure, and QEMU's tap descriptors in the
/// same order.
#[derive(Debug)]
pub struct Wiring {
    pub nics: Vec<GuestNic>,
    pub taps: Vec<OwnedFd>,
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("entering the network namespace {}: {source}", path.display())]
    Enter {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("network namespace {}: {source}", path.display())]
    Netlink {
        path: PathBuf,
        #[source]
        source: NetlinkError,
    },
    #[error("network namespace {}: creating the tap device {name}: {source}", path.display())]
    Tap {
        path: PathBuf,
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("network namespace {}: interface {name}: {reason}", path.display())]
    Interface {
        path: PathBuf,
        name: String,
        reason: String,
    },
}

/// Scans `netns`, creates a tap per interface found and mirrors each pair (replacing mirrors a
/// previous run of this container left). On failure it removes the mirrors it made, and only those: a
/// namespace already serving another VM (its taps exist) is refused untouched.
pub fn wire(netns: &Path) -> Result<Wiring, NetworkError> {
    in_netns(netns, |nl| {
        let found = scan::interfaces(nl).map_err(netlink(netns))?;
        let mut wiring = Wiring {
            nics: Vec::new(),
            taps: Vec::new(),
        };
        let mut mirrored = Vec::new();
        for (i, link) in found.into_iter().enumerate() {
            match wire_one(nl, netns, i, &link) {
                Ok(tap) => {
                    wiring.taps.push(tap);
                    wiring.nics.push(link.nic);
                    mirrored.push(link.index);
                }
                Err(e) => {
                    // Best effort; the taps close as `wiring` drops.
                    for index in mirrored {
                        let _ = mirror::remove(nl, index);
                    }
                    return Err(e);
                }
            }
        }
        Ok(wiring)
    })
}

/// Tap `i` for interface `link`, mirrored with it.
fn wire_one(
    nl: &mut Netlink,
    netns: &Path,
    i: usize,
    link: &scan::Found,
) -> Result<OwnedFd, NetworkError> {
    let name = format!("{}{i}", scan::NAME_PREFIX);
    let (fd, tap_index) = tap::create(nl, &name, link.nic.mtu).map_err(|e| match e {
        tap::TapError::Open(source) if source.raw_os_error() == Some(libc::EBUSY) => {
            NetworkError::Interface {
                path: netns.to_path_buf(),
                name,
                reason: "is in use: the namespace already serves another VM (one VM per network \
                         namespace)"
                    .into(),
            }
        }
        tap::TapError::Open(source) => NetworkError::Tap {
            path: netns.to_path_buf(),
            name,
            source,
        },
        tap::TapError::Netlink(source) => netlink(netns)(source),
    })?;
    match mirror::both_ways(nl, link.index, tap_index) {
        Ok(()) => Ok(fd),
        Err(e) => {
            let _ = mirror::remove(nl, link.index);
            Err(netlink(netns)(e))
        }
    }
}

/// Removes the mirrors of `netns` (their ingress qdiscs), and taps that outlived QEMU (see [`tap`]),
/// unless a VM still runs there (one of our taps is attached): then they are that VM's. Idempotent, and
/// a namespace that no longer exists has nothing left to remove.
pub fn unwire(netns: &Path) -> Result<(), NetworkError> {
    if !netns.exists() {
        return Ok(());
    }
    in_netns(netns, |nl| {
        let taps = tap::find(nl, scan::NAME_PREFIX).map_err(netlink(netns))?;
        if taps.iter().any(|t| t.attached) {
            return Ok(());
        }
        for link in scan::interfaces(nl).map_err(netlink(netns))? {
            mirror::remove(nl, link.index).map_err(netlink(netns))?;
        }
        for leftover in &taps {
            tap::delete(nl, leftover).map_err(netlink(netns))?;
        }
        Ok(())
    })
}

fn netlink(path: &Path) -> impl Fn(NetlinkError) -> NetworkError + '_ {
    move |source| NetworkError::Netlink {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs `f` with a netlink socket of `netns`, on a thread of its own that enters it: the caller's
/// threads stay in their namespace, and the socket and any tap opened there belong to `netns` for good.
fn in_netns<T: Send>(
    netns: &Path,
    f: impl FnOnce(&mut Netlink) -> Result<T, NetworkError> + Send,
) -> Result<T, NetworkError> {
    let enter = |source| NetworkError::Enter {
        path: netns.to_path_buf(),
        source,
    };
    let ns = File::open(netns).map_err(enter)?;
    std::thread::scope(|s| {
        s.spawn(move || {
            setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| enter(e.into()))?;
            let mut nl = Netlink::open().map_err(netlink(netns))?;
            f(&mut nl)
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
