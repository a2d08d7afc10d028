//! The VM's tap device in the container's network namespace. It is not persistent: it exists while a
//! descriptor of it is open, so when QEMU (holding the only one once the VM runs) exits, it is gone,
//! whoever killed QEMU. Opened with a virtio-net header (`IFF_VNET_HDR`), which QEMU detects on a passed
//! descriptor (`TUNGETIFF`) and uses to hand checksum and segmentation offloads through. A QEMU taken
//! over by its guest can still make its tap persistent (`TUNSETPERSIST` needs no capability on the
//! tap's own descriptor), so teardown deletes whatever detached taps of ours a namespace still holds
//! ([`find`], [`delete`]).

use bulkhead_runtime::netlink::{Netlink, NetlinkError};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

const TUN: &str = "/dev/net/tun";

nix::ioctl_write_ptr_bad!(
    tun_set_iff,
    nix::request_code_write!(b'T', 202, std::mem::size_of::<libc::c_int>()),
    libc::ifreq
);

#[derive(Debug)]
pub enum TapError {
    Open(io::Error),
    Netlink(NetlinkError),
}

/// Creates tap `name` in the current thread's namespace, with `mtu`, up; returns its descriptor and
/// interface index.
pub fn create(nl: &mut Netlink, name: &str, mtu: u32) -> Result<(OwnedFd, u32), TapError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(TUN)
        .map_err(TapError::Open)?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags =
        (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
    // SAFETY: TUNSETIFF reads the ifreq we pass, which outlives the call.
    unsafe { tun_set_iff(file.as_raw_fd(), &req) }.map_err(|e| TapError::Open(e.into()))?;
    let c_name = std::ffi::CString::new(name)
        .map_err(|e| TapError::Open(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    // SAFETY: a NUL-terminated name that outlives the call.
    let index = match unsafe { libc::if_nametoindex(c_name.as_ptr()) } {
        0 => return Err(TapError::Open(io::Error::last_os_error())),
        index => index,
    };
    let mut link = LinkMessage::default();
    link.header.index = index;
    link.header.flags = LinkFlags::Up;
    link.header.change_mask = LinkFlags::Up;
    link.attributes.push(LinkAttribute::Mtu(mtu));
    nl.change(
        &format!("setting {name} up with MTU {mtu}"),
        RouteNetlinkMessage::SetLink(link),
        0,
    )
    .map_err(TapError::Netlink)?;
    Ok((file.into(), index))
}

/// A tap of ours found in a namespace.
pub struct Leftover {
    index: u32,
    /// A live QEMU still holds it (the kernel gives a tap carrier while a descriptor is attached).
    pub attached: bool,
}

/// The taps of ours (named `prefix`N) in the current thread's namespace.
pub fn find(nl: &mut Netlink, prefix: &str) -> Result<Vec<Leftover>, NetlinkError> {
    let links = nl.dump(
        "listing links",
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
    )?;
    Ok(links
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(link) => Some(link),
            _ => None,
        })
        .filter(|link| {
            link.attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::IfName(n) if n.starts_with(prefix)))
                && link.attributes.iter().any(|a| {
                    matches!(a, LinkAttribute::LinkInfo(i) if i.contains(&LinkInfo::Kind(InfoKind::Tun)))
                })
        })
        .map(|link| Leftover {
            index: link.header.index,
            attached: link.header.flags.contains(LinkFlags::LowerUp),
        })
        .collect())
}

/// Deletes `tap`.
pub fn delete(nl: &mut Netlink, tap: &Leftover) -> Result<(), NetlinkError> {
    let mut del = LinkMessage::default();
    del.header.index = tap.index;
    match nl.change(
        &format!("deleting tap {}", tap.index),
        RouteNetlinkMessage::DelLink(del),
        0,
    ) {
        // Gone meanwhile, with its last descriptor.
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(()),
        other => other,
    }
}
