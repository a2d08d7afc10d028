//! The `ip bulkhead` nftables table, driven through the `nftables` crate (`nft -j`). Every rule carries
//! a comment naming its owner, `bulkhead-net:<bridge>` for a bridge's rules and `bulkhead:<container-id>`
//! for a container's published ports, and rules are deleted by that comment, so a clean-up after a
//! crash needs nothing but the owner's name.
//!
//! Chains: `prerouting` and `output` (nat) DNAT published ports, for traffic arriving from elsewhere and
//! for the host's own connections (127.0.0.1 included); `postrouting` (nat) masquerades a bridge's
//! subnet leaving by another interface, loopback sources DNATed onto a bridge, and a bridge's own
//! containers DNATed back onto it (hairpin); `input` (filter) refuses new connections from a bridge to
//! the host's loopback addresses; `forward` (filter)
//! accepts what enters or leaves a bridge.

use crate::ports::PublishedPort;
use crate::{NetError, Subnet, RUN_DIR};
use bulkhead_fs::Lock;
use nftables::helper;
use nftables::schema::{NfListObject, NfObject, Nftables};
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::path::Path;

const TABLE: &str = "bulkhead";

/// The comment owning a bridge's rules.
pub fn bridge_owner(bridge: &str) -> String {
    format!("bulkhead-net:{bridge}")
}

/// The comment owning a container's rules.
pub fn container_owner(id: &str) -> String {
    format!("bulkhead:{id}")
}

/// Serialises the check-then-add of bridge rules between processes.
fn lock() -> Result<Lock, NetError> {
    std::fs::create_dir_all(RUN_DIR).map_err(NetError::path(RUN_DIR))?;
    let path = Path::new(RUN_DIR).join("firewall.lock");
    Lock::exclusive(&path).map_err(NetError::path(path))
}

fn apply(commands: Vec<Value>) -> Result<(), NetError> {
    let batch: Nftables = serde_json::from_value(json!({ "nftables": commands }))
        .map_err(|e| NetError::Firewall(format!("a rule does not fit the nft schema: {e}")))?;
    helper::apply_ruleset(&batch).map_err(|e| NetError::Firewall(e.to_string()))
}

/// The table and its chains; `add` of what exists is a no-op in nft.
fn base() -> Vec<Value> {
    let chain = |name: &str, ty: &str, hook: &str, prio: i32| {
        json!({"add": {"chain": {"family": "ip", "table": TABLE, "name": name, "type": ty,
            "hook": hook, "prio": prio, "policy": "accept"}}})
    };
    vec![
        json!({"add": {"table": {"family": "ip", "name": TABLE}}}),
        chain("prerouting", "nat", "prerouting", -100),
        chain("output", "nat", "output", -100),
        chain("postrouting", "nat", "postrouting", 100),
        chain("forward", "filter", "forward", 0),
        chain("input", "filter", "input", 0),
    ]
}

fn rule(chain: &str, owner: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {"family": "ip", "table": TABLE, "chain": chain,
        "comment": owner, "expr": expr}}})
}

fn matches(left: Value, op: &str, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn field(protocol: &str, name: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": name}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn prefix(subnet: &Subnet) -> Value {
    json!({"prefix": {"addr": subnet.network().to_string(), "len": subnet.prefix()}})
}

/// Installs a bridge's masquerade and forwarding rules unless they are there.
pub fn ensure_bridge(bridge: &str, subnet: &Subnet) -> Result<(), NetError> {
    let _lock = lock()?;
    let owner = bridge_owner(bridge);
    if !rule_handles(&owner)?.is_empty() {
        return Ok(());
    }
    let loopback: Subnet = Subnet::new(Ipv4Addr::new(127, 0, 0, 0), 8)?;
    let mut commands = base();
    commands.push(rule(
        "postrouting",
        &owner,
        vec![
            matches(field("ip", "saddr"), "==", prefix(subnet)),
            matches(meta("oifname"), "!=", json!(bridge)),
            json!({"masquerade": null}),
        ],
    ));
    commands.push(rule(
        "postrouting",
        &owner,
        vec![
            matches(field("ip", "saddr"), "==", prefix(&loopback)),
            matches(meta("oifname"), "==", json!(bridge)),
            json!({"masquerade": null}),
        ],
    ));
    // Hairpin: a container reaching a published port through a host address is DNATed back onto the
    // bridge; without this the server would answer it directly, from an address it never asked.
    commands.push(rule(
        "postrouting",
        &owner,
        vec![
            matches(field("ip", "saddr"), "==", prefix(subnet)),
            matches(meta("oifname"), "==", json!(bridge)),
            matches(json!({"ct": {"key": "status"}}), "in", json!("dnat")),
            json!({"masquerade": null}),
        ],
    ));
    // `route_localnet` on the bridge (for 127.0.0.1 DNAT) would also let a container that crafts
    // frames (CAP_NET_RAW is a default capability) reach the host's loopback-only services, as in
    // Kubernetes' CVE-2020-8558: only answers to our own DNATed connections may come in that way.
    let to_loopback = || {
        vec![
            matches(meta("iifname"), "==", json!(bridge)),
            matches(field("ip", "daddr"), "==", prefix(&loopback)),
        ]
    };
    let mut answers = to_loopback();
    answers.push(matches(
        json!({"ct": {"key": "state"}}),
        "in",
        json!(["established", "related"]),
    ));
    answers.push(json!({"accept": null}));
    commands.push(rule("input", &owner, answers));
    let mut others = to_loopback();
    others.push(json!({"drop": null}));
    commands.push(rule("input", &owner, others));
    for key in ["iifname", "oifname"] {
        commands.push(rule(
            "forward",
            &owner,
            vec![
                matches(meta(key), "==", json!(bridge)),
                json!({"accept": null}),
            ],
        ));
    }
    apply(commands)
}

/// DNATs a container's published ports to `addr`, from elsewhere and from the host itself.
pub fn publish(id: &str, addr: Ipv4Addr, ports: &[PublishedPort]) -> Result<(), NetError> {
    if ports.is_empty() {
        return Ok(());
    }
    let owner = container_owner(id);
    let mut commands = base();
    for p in ports {
        let proto = p.protocol.to_string();
        let to_host = if p.host_ip.is_unspecified() {
            matches(
                json!({"fib": {"result": "type", "flags": ["daddr"]}}),
                "==",
                json!("local"),
            )
        } else {
            matches(field("ip", "daddr"), "==", json!(p.host_ip.to_string()))
        };
        let expr = vec![
            to_host,
            matches(field(&proto, "dport"), "==", json!(p.host_port)),
            json!({"dnat": {"addr": addr.to_string(), "port": p.container_port}}),
        ];
        for chain in ["prerouting", "output"] {
            commands.push(rule(chain, &owner, expr.clone()));
        }
    }
    apply(commands)
}

/// Deletes every rule of `owner` (a bridge's or a container's). Idempotent.
pub fn remove(owner: &str) -> Result<(), NetError> {
    let handles = rule_handles(owner)?;
    if handles.is_empty() {
        return Ok(());
    }
    let commands = handles
        .into_iter()
        .map(|(chain, handle)| {
            // The schema wants `expr` on every rule; nft ignores it on delete.
            json!({"delete": {"rule": {"family": "ip", "table": TABLE, "chain": chain,
                "handle": handle, "expr": []}}})
        })
        .collect();
    apply(commands)
}

/// The (chain, handle) of each rule of `owner`; none while the table does not exist.
fn rule_handles(owner: &str) -> Result<Vec<(String, u32)>, NetError> {
    let listed = match helper::get_current_ruleset_with_args(
        helper::DEFAULT_NFT,
        &["list", "table", "ip", TABLE],
    ) {
        Ok(set) => set,
        Err(helper::NftablesError::NftFailed { stderr, .. })
            if stderr.contains("No such file or directory") =>
        {
            return Ok(Vec::new())
        }
        Err(e) => return Err(NetError::Firewall(e.to_string())),
    };
    Ok(listed
        .objects
        .iter()
        .filter_map(|o| match o {
            NfObject::ListObject(NfListObject::Rule(r)) if r.comment.as_deref() == Some(owner) => {
                Some((r.chain.to_string(), r.handle?))
            }
            _ => None,
        })
        .collect())
}
