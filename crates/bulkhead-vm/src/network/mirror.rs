//! Traffic between an interface and the VM's tap, both ways, with tc as Kata's "tcfilter" model does:
//! an ingress qdisc on each side and a filter matching every frame (`u32 match u8 0 0`, as Kata writes
//! it: `matchall` is not built into every kernel, this host's among them) whose `mirred` action
//! redirects it to the other side's egress. The namespace's own stack never sees the interface's traffic, the guest
//! sees exactly what the veth carries, and nothing needs a bridge or an address inside the namespace.

use bulkhead_runtime::netlink::{Netlink, NetlinkError};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionMirrorOption, TcActionOption, TcActionType, TcAttribute,
    TcFilterU32, TcFilterU32Option, TcHandle, TcMessage, TcMirror, TcMirrorActionType, TcOption,
    TcU32Key, TcU32Selector, TcU32SelectorFlags,
};
use netlink_packet_route::RouteNetlinkMessage;

/// The ingress qdisc's handle (`ffff:`), which its filters name as their parent.
const INGRESS_HANDLE: TcHandle = TcHandle {
    major: 0xffff,
    minor: 0,
};
/// `ETH_P_ALL` in network byte order, the filter's protocol: every frame.
const ALL_PROTOCOLS: u16 = (libc::ETH_P_ALL as u16).to_be();
const PRIORITY: u16 = 1;
/// errnos of deleting a qdisc that is not there.
const ABSENT: [i32; 2] = [libc::ENOENT, libc::EINVAL];

/// Redirects everything arriving on `a` to `b` and everything arriving on `b` to `a`. An ingress qdisc
/// already on `a` (a previous run's, whose tap is gone) is replaced.
pub fn both_ways(nl: &mut Netlink, a: u32, b: u32) -> Result<(), NetlinkError> {
    remove(nl, a)?;
    for (from, to) in [(a, b), (b, a)] {
        add_ingress(nl, from)?;
        redirect(nl, from, to)?;
    }
    Ok(())
}

/// Removes interface `index`'s ingress qdisc, and with it its filters. Nothing there is fine.
pub fn remove(nl: &mut Netlink, index: u32) -> Result<(), NetlinkError> {
    let msg = ingress_qdisc(index);
    match nl.change(
        &format!("removing the ingress qdisc of interface {index}"),
        RouteNetlinkMessage::DelQueueDiscipline(msg),
        0,
    ) {
        Err(e) if e.errno().is_some_and(|n| ABSENT.contains(&n)) => Ok(()),
        other => other,
    }
}

fn ingress_qdisc(index: u32) -> TcMessage {
    let mut msg = TcMessage::with_index(index as i32);
    msg.header.handle = INGRESS_HANDLE;
    msg.header.parent = TcHandle::INGRESS;
    msg.attributes
        .push(TcAttribute::Kind("ingress".to_string()));
    msg
}

fn add_ingress(nl: &mut Netlink, index: u32) -> Result<(), NetlinkError> {
    nl.change(
        &format!("adding an ingress qdisc to interface {index}"),
        RouteNetlinkMessage::NewQueueDiscipline(ingress_qdisc(index)),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// The filter on `from`'s ingress that matches everything, with `mirred egress redirect dev to`.
fn redirect_filter(from: u32, to: u32) -> TcMessage {
    let mut mirror = TcMirror::default();
    mirror.generic.action = TcActionType::Stolen;
    mirror.eaction = TcMirrorActionType::EgressRedir;
    mirror.ifindex = to;
    let mut action = TcAction::default();
    action.attributes = vec![
        TcActionAttribute::Kind(netlink_packet_route::tc::TcActionMirror::KIND.to_string()),
        TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
            mirror,
        ))]),
    ];
    let mut msg = TcMessage::with_index(from as i32);
    msg.header.parent = INGRESS_HANDLE;
    msg.header.info = (u32::from(PRIORITY) << 16) | u32::from(ALL_PROTOCOLS);
    // One key comparing no bits: every frame matches, and the match is final.
    let mut selector = TcU32Selector::default();
    selector.flags = TcU32SelectorFlags::Terminal;
    selector.nkeys = 1;
    selector.keys = vec![TcU32Key::default()];
    msg.attributes = vec![
        TcAttribute::Kind(TcFilterU32::KIND.to_string()),
        TcAttribute::Options(vec![
            TcOption::U32(TcFilterU32Option::Selector(selector)),
            TcOption::U32(TcFilterU32Option::Action(vec![action])),
        ]),
    ];
    msg
}

fn redirect(nl: &mut Netlink, from: u32, to: u32) -> Result<(), NetlinkError> {
    nl.change(
        &format!("redirecting interface {from}'s traffic to interface {to}"),
        RouteNetlinkMessage::NewTrafficFilter(redirect_filter(from, to)),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    #[test]
    fn the_filter_is_a_match_all_mirred_redirect() {
        let msg = redirect_filter(2, 7);
        assert_eq!(msg.header.index, 2);
        // tc filter add dev X parent ffff: protocol all prio 1 ...
        assert_eq!(u32::from(msg.header.parent), 0xffff_0000);
        assert_eq!(msg.header.info, 0x0001_0300);
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        // struct tc_mirred at the end: eaction TCA_EGRESS_REDIR (1), ifindex 7.
        let tail = &buf[buf.len() - 8..];
        assert_eq!(tail, [1, 0, 0, 0, 7, 0, 0, 0]);
        assert!(buf.windows(4).any(|w| w == b"u32\0"));
        assert!(buf.windows(6).any(|w| w == b"mirred"));
    }
}
