//! `/networks`: list (filters), inspect, create (bridge driver, one IPv4 subnet), remove, connect and
//! disconnect (stopped containers, the engine's rule), prune. Docker's `NetworkResource` shape.

use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::http::{self, ApiResult, Filters, Query};
use crate::routes::images::labels_match;
use bollard_stubs::models::{
    Ipam, IpamConfig, Network, NetworkConnectRequest, NetworkContainer, NetworkCreateRequest,
    NetworkCreateResponse, NetworkDisconnectRequest, NetworkPruneResponse,
};
use bulkhead_engine::{
    format_mac, mac_for, EngineError, NetworkCreateOptions, NetworkDetails, NetworkRecord,
};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use std::collections::HashMap;
use std::sync::Arc;

/// The network every bridged container joins unless told otherwise; it cannot be removed.
const DEFAULT_NETWORK: &str = "bridge";

pub async fn route(ctx: &Arc<Ctx>, req: Request<Incoming>, segments: &[&str]) -> ApiResult {
    let method = req.method().clone();
    let query = Query::parse(req.uri().query());
    match (&method, segments) {
        (&Method::GET, ["networks"]) => list(ctx, &query).await,
        (&Method::POST, ["networks", "create"]) => create(ctx, req).await,
        (&Method::POST, ["networks", "prune"]) => prune(ctx, &query).await,
        (&Method::GET, ["networks", id]) => {
            let id = id.to_string();
            let details = ctx.blocking(move |e| e.network_inspect(&id)).await?;
            http::json(StatusCode::OK, &resource(&details))
        }
        (&Method::DELETE, ["networks", id]) => {
            let id = id.to_string();
            ctx.blocking(move |e| e.network_remove(&id)).await?;
            http::empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, ["networks", id, "connect"]) => connect(ctx, id.to_string(), req).await,
        (&Method::POST, ["networks", id, "disconnect"]) => {
            let network = id.to_string();
            let body: NetworkDisconnectRequest = http::read_json(req).await?;
            let container = required_container(body.container)?;
            ctx.blocking(move |e| e.network_disconnect(&network, &container))
                .await?;
            http::empty(StatusCode::OK)
        }
        _ => Err(ApiError::unsupported(&method, req.uri().path())),
    }
}

/// A network in docker's shape; the containers are those running on it (the engine records an
/// endpoint per running container).
fn resource(details: &NetworkDetails) -> Network {
    let r = &details.record;
    let containers = details
        .endpoints
        .iter()
        .map(|ep| {
            (
                ep.container_id.clone(),
                NetworkContainer {
                    name: Some(ep.name.clone()),
                    endpoint_id: Some(format!(
                        "{}-{}",
                        &r.id[..12.min(r.id.len())],
                        ep.container_id
                    )),
                    mac_address: Some(format_mac(&mac_for(ep.ipv4))),
                    ipv4_address: Some(format!("{}/{}", ep.ipv4, r.subnet.prefix())),
                    ipv6_address: Some(String::new()),
                },
            )
        })
        .collect();
    summary(r, Some(containers))
}

fn summary(r: &NetworkRecord, containers: Option<HashMap<String, NetworkContainer>>) -> Network {
    // docker-compose compares these options with its own (none): only the default network, which no
    // project creates, names its bridge here.
    let options = if r.name == DEFAULT_NETWORK {
        HashMap::from([(
            "com.docker.network.bridge.name".to_string(),
            r.bridge.clone(),
        )])
    } else {
        HashMap::new()
    };
    Network {
        name: Some(r.name.clone()),
        id: Some(r.id.clone()),
        created: Some(
            r.created
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        ),
        scope: Some("local".into()),
        driver: Some(r.driver.clone()),
        enable_ipv4: Some(true),
        enable_ipv6: Some(false),
        ipam: Some(Ipam {
            driver: Some("default".into()),
            config: Some(vec![IpamConfig {
                subnet: Some(r.subnet.to_string()),
                gateway: Some(r.gateway.to_string()),
                ..Default::default()
            }]),
            options: Some(HashMap::new()),
        }),
        internal: Some(false),
        attachable: Some(false),
        ingress: Some(false),
        config_from: None,
        config_only: Some(false),
        containers: Some(containers.unwrap_or_default()),
        options: Some(options),
        labels: Some(r.labels.clone().into_iter().collect()),
        peers: None,
    }
}

fn matches(r: &NetworkRecord, filters: &Filters) -> bool {
    let any = |name: &str, f: &dyn Fn(&str) -> bool| {
        let wanted = filters.values(name);
        wanted.is_empty() || wanted.iter().any(|w| f(w))
    };
    let builtin = r.name == DEFAULT_NETWORK;
    any("name", &|w| r.name.contains(w))
        && any("id", &|w| r.id.starts_with(w))
        && any("driver", &|w| r.driver == w)
        && any("scope", &|w| w == "local")
        && any("type", &|w| (w == "builtin") == builtin)
        && labels_match(
            filters.values("label"),
            &r.labels.clone().into_iter().collect(),
        )
}

async fn list(ctx: &Arc<Ctx>, query: &Query) -> ApiResult {
    let filters = query.filters()?;
    filters.only(&["name", "id", "label", "driver", "scope", "type"])?;
    for t in filters.values("type") {
        if t != "custom" && t != "builtin" {
            return Err(ApiError::bad_request(format!(
                "invalid filter: 'type'='{t}' (custom or builtin)"
            )));
        }
    }
    let networks = ctx
        .blocking(|e| {
            e.network_list()?
                .into_iter()
                .map(|r| e.network_inspect(&r.id))
                .collect::<Result<Vec<_>, EngineError>>()
        })
        .await?;
    let out: Vec<Network> = networks
        .iter()
        .filter(|d| matches(&d.record, &filters))
        .map(resource)
        .collect();
    http::json(StatusCode::OK, &out)
}

/// Refuses what a bridge network here cannot be, naming it, rather than creating something else.
fn create_options(body: NetworkCreateRequest) -> Result<NetworkCreateOptions, ApiError> {
    if let Some(driver) = body
        .driver
        .as_deref()
        .filter(|d| !d.is_empty() && *d != "bridge")
    {
        return Err(ApiError::bad_request(format!(
            "network driver {driver:?} is not supported: bulkhead has bridge networks only"
        )));
    }
    let refused = [
        ("Internal", body.internal == Some(true)),
        ("EnableIPv6", body.enable_ipv6 == Some(true)),
        ("EnableIPv4=false", body.enable_ipv4 == Some(false)),
        ("Ingress", body.ingress == Some(true)),
        ("ConfigOnly", body.config_only == Some(true)),
        ("ConfigFrom", body.config_from.is_some()),
        (
            "Scope",
            body.scope
                .as_deref()
                .is_some_and(|s| !s.is_empty() && s != "local"),
        ),
        (
            "Options",
            body.options.as_ref().is_some_and(|o| !o.is_empty()),
        ),
    ];
    if let Some((name, _)) = refused.iter().find(|(_, set)| *set) {
        return Err(ApiError::bad_request(format!(
            "network create: {name} is not supported by bulkhead's bridge networks"
        )));
    }
    let mut opts = NetworkCreateOptions {
        name: body.name,
        labels: body.labels.unwrap_or_default().into_iter().collect(),
        ..Default::default()
    };
    if let Some(ipam) = body.ipam {
        if let Some(d) = ipam
            .driver
            .as_deref()
            .filter(|d| !d.is_empty() && *d != "default")
        {
            return Err(ApiError::bad_request(format!(
                "IPAM driver {d:?} is not supported (only the default one)"
            )));
        }
        if ipam.options.as_ref().is_some_and(|o| !o.is_empty()) {
            return Err(ApiError::bad_request("IPAM options are not supported"));
        }
        let configs = ipam.config.unwrap_or_default();
        if configs.len() > 1 {
            return Err(ApiError::bad_request(
                "a bulkhead network has one IPv4 subnet: give at most one IPAM config",
            ));
        }
        if let Some(c) = configs.into_iter().next() {
            if c.ip_range.as_deref().is_some_and(|r| !r.is_empty())
                || c.auxiliary_addresses
                    .as_ref()
                    .is_some_and(|a| !a.is_empty())
            {
                return Err(ApiError::bad_request(
                    "IPAM IPRange and AuxiliaryAddresses are not supported",
                ));
            }
            opts.subnet = c.subnet.filter(|s| !s.is_empty());
            opts.gateway = c.gateway.filter(|g| !g.is_empty());
        }
    }
    Ok(opts)
}

/// A request body without the fields docker clients send that the 1.47 models lack, for the strict
/// parse: `CheckDuplicate` (network create; always true now that names are unique) and
/// `EndpointConfig.GwPriority` (API 1.48, connect), which is refused unless 0.
async fn body_without_newer_fields(req: Request<Incoming>) -> Result<Vec<u8>, ApiError> {
    let mut value: serde_json::Value = http::read_json(req).await?;
    if let Some(map) = value.as_object_mut() {
        map.remove("CheckDuplicate");
    }
    if let Some(endpoint) = value
        .get_mut("EndpointConfig")
        .and_then(|e| e.as_object_mut())
    {
        match endpoint.remove("GwPriority") {
            None | Some(serde_json::Value::Null) => {}
            Some(p) if p.as_i64() == Some(0) => {}
            Some(p) => {
                return Err(ApiError::bad_request(format!(
                    "EndpointConfig.GwPriority {p} is not supported by bulkhead"
                )))
            }
        }
    }
    Ok(value.to_string().into_bytes())
}

async fn create(ctx: &Arc<Ctx>, req: Request<Incoming>) -> ApiResult {
    let body: NetworkCreateRequest = http::parse_json(&body_without_newer_fields(req).await?)?;
    let opts = create_options(body)?;
    let record = ctx.blocking(move |e| e.network_create(&opts)).await?;
    http::json(
        StatusCode::CREATED,
        &NetworkCreateResponse {
            id: record.id,
            warning: String::new(),
        },
    )
}

fn required_container(container: Option<String>) -> Result<String, ApiError> {
    container
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("the request body names no Container"))
}

async fn connect(ctx: &Arc<Ctx>, network: String, req: Request<Incoming>) -> ApiResult {
    let body: NetworkConnectRequest = http::parse_json(&body_without_newer_fields(req).await?)?;
    let container = required_container(body.container)?;
    let endpoint = body.endpoint_config.unwrap_or_default();
    if endpoint
        .ipam_config
        .as_ref()
        .is_some_and(|c| c.ipv4_address.as_deref().is_some_and(|a| !a.is_empty()))
    {
        return Err(ApiError::bad_request(
            "a fixed address (--ip) is not supported: addresses are given at start",
        ));
    }
    let aliases = endpoint.aliases.unwrap_or_default();
    ctx.blocking(move |e| e.network_connect(&network, &container, &aliases))
        .await?;
    http::empty(StatusCode::OK)
}

/// `network prune`: every user-defined network no container uses.
async fn prune(ctx: &Arc<Ctx>, query: &Query) -> ApiResult {
    let filters = query.filters()?;
    filters.only(&["label"])?;
    let removed = ctx
        .blocking(move |e| {
            let mut removed = Vec::new();
            for r in e.network_list()? {
                if r.name == DEFAULT_NETWORK || !matches(&r, &filters) {
                    continue;
                }
                match e.network_remove(&r.id) {
                    Ok(_) => removed.push(r.name),
                    Err(EngineError::NetworkInUse { .. } | EngineError::NoSuchNetwork(_)) => {}
                    Err(err) => return Err(err),
                }
            }
            Ok(removed)
        })
        .await?;
    http::json(
        StatusCode::OK,
        &NetworkPruneResponse {
            networks_deleted: Some(removed),
        },
    )
}
