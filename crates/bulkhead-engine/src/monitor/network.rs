//! The monitor's view of a container's networks once `networks::attach` has set them up: which
//! namespace the container joins, what its `/etc/hosts` and `resolv.conf` are made from, and the name
//! responders of its user-defined networks.

use crate::config::ContainerConfig;
use crate::containers::Container;
use crate::etc_files::Attachment;
use crate::layout::Layout;
use crate::network_dns::{self, DnsConfig, DnsHandle};
use crate::networks;
use crate::networks::attach::{Attached, NetworkState};
use bulkhead_runtime::NetworkMode;
use std::path::PathBuf;

/// The namespace the container joins: the one set up for its bridge networks (or the other container's
/// for `container:`), or a namespace prepared elsewhere (`ns:PATH`); `None` for `none` and `host`.
pub(super) fn netns(config: &ContainerConfig, attached: Option<&Attached>) -> Option<PathBuf> {
    if let Some(path) = attached.and_then(|a| a.netns.clone()) {
        return Some(path);
    }
    match &config.workload.network {
        NetworkMode::Namespace(path) => Some(path.clone()),
        _ => None,
    }
}

/// The container's networks (`own`, as set up for this run) as its `/etc` files and name responders
/// need them, primary first, with each network's id. `container:` takes the other container's, whose
/// namespace it shares (as docker shares its files).
pub(super) fn attachments(
    layout: &Layout,
    config: &ContainerConfig,
    own: Option<&NetworkState>,
) -> Vec<(String, Attachment)> {
    let network = match config.network_mode.strip_prefix("container:") {
        Some(other) => match Container::load(layout, other) {
            Ok(other) => other.state.network,
            Err(_) => return Vec::new(),
        },
        None => own.cloned(),
    };
    let Some(network) = network else {
        return Vec::new();
    };
    network
        .interfaces
        .iter()
        .map(|i| {
            // A record that vanished meanwhile (`network rm` cannot, while we run) reads as no names.
            let dns = networks::load(layout, &i.network_id).is_ok_and(|r| r.dns);
            let attachment = Attachment {
                ipv4: i.ipv4,
                gateway: i.gateway,
                dns,
            };
            (i.network_id.clone(), attachment)
        })
        .collect()
}

/// Starts the name responder of every user-defined network the container is attached to (not of one it
/// shares through `container:`, whose own monitor serves it). A responder that cannot bind is logged and
/// the container runs on: names then fail to resolve, as the container's resolver will say.
pub(super) fn start_name_responders(
    layout: &Layout,
    config: &ContainerConfig,
    own: Option<&NetworkState>,
) -> Vec<DnsHandle> {
    if config.network_mode.starts_with("container:") {
        return Vec::new();
    }
    attachments(layout, config, own)
        .into_iter()
        .filter(|(_, a)| a.dns)
        .filter_map(|(network_id, a)| {
            let config = DnsConfig::for_network(layout.root(), &network_id, a.gateway);
            network_dns::start(config)
                .inspect_err(|e| tracing::warn!("name responder of network {network_id}: {e}"))
                .ok()
        })
        .collect()
}
