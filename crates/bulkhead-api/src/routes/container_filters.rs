//! The `filters` of `GET /containers/json` and `POST /containers/prune`, as dockerd reads them: values
//! of one filter are alternatives, different filters must all match.

use super::container_json::{image_id, NetworkNames};
use crate::error::ApiError;
use crate::http::Filters;
use bulkhead_engine::{Container, Isolation, MountSpec, Status};
use std::collections::BTreeMap;

pub const LIST_FILTERS: &[&str] = &[
    "id",
    "name",
    "label",
    "status",
    "exited",
    "ancestor",
    "network",
    "volume",
    "isolation",
];

const STATUSES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

pub struct ListFilter {
    filters: Filters,
    exited: Vec<i32>,
    isolation: Vec<Isolation>,
}

impl ListFilter {
    pub fn parse(filters: Filters) -> Result<ListFilter, ApiError> {
        filters.only(LIST_FILTERS)?;
        let invalid =
            |name: &str, v: &str| ApiError::bad_request(format!("invalid filter '{name}={v}'"));
        if let Some(v) = filters
            .values("status")
            .iter()
            .find(|v| !STATUSES.contains(&v.as_str()))
        {
            return Err(ApiError::bad_request(format!(
                "invalid filter 'status={v}' (expected one of {})",
                STATUSES.join(", ")
            )));
        }
        let exited = filters
            .values("exited")
            .iter()
            .map(|v| v.parse::<i32>().map_err(|_| invalid("exited", v)))
            .collect::<Result<_, _>>()?;
        let isolation = filters
            .values("isolation")
            .iter()
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "process" => Ok(Isolation::Process),
                "hyperv" | "vm" => Ok(Isolation::Vm),
                _ => Err(invalid("isolation", v)),
            })
            .collect::<Result<_, _>>()?;
        Ok(ListFilter {
            filters,
            exited,
            isolation,
        })
    }

    /// A status or exit-code filter asks about stopped containers, so it lists them without `all`.
    pub fn implies_all(&self) -> bool {
        !self.filters.values("status").is_empty() || !self.exited.is_empty()
    }

    pub fn matches(&self, c: &Container, networks: &NetworkNames) -> bool {
        let cfg = &c.config;
        let any = |name: &str, f: &dyn Fn(&str) -> bool| {
            let values = self.filters.values(name);
            values.is_empty() || values.iter().any(|v| f(v))
        };
        any("id", &|v| cfg.id.starts_with(v))
            && any("name", &|v| name_matches(&cfg.name, v))
            && labels_match(&cfg.labels, self.filters.values("label"))
            && any("status", &|v| v == c.state.status.to_string())
            && (self.exited.is_empty()
                || (c.state.status == Status::Exited
                    && self.exited.contains(&c.state.exit_code.unwrap_or(0))))
            && any("ancestor", &|v| ancestor_matches(c, v))
            && any("network", &|v| on_network(c, networks, v))
            && any("volume", &|v| uses_volume(c, v))
            && (self.isolation.is_empty() || self.isolation.contains(&cfg.isolation))
    }
}

/// Every `label` value must match: `KEY` (present) or `KEY=VALUE`.
pub fn labels_match(labels: &BTreeMap<String, String>, wanted: &[String]) -> bool {
    wanted.iter().all(|w| match w.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(w),
    })
}

/// docker matches names by regular expression; the forms clients use are a substring, optionally
/// anchored with `^` and `$` (and the name may be given with its leading `/`).
fn name_matches(name: &str, pattern: &str) -> bool {
    let (anchored_start, rest) = match pattern.strip_prefix('^') {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    let (anchored_end, rest) = match rest.strip_suffix('$') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    match (anchored_start, anchored_end) {
        (true, true) => name == rest,
        (true, false) => name.starts_with(rest),
        (false, true) => name.ends_with(rest),
        (false, false) => name.contains(rest),
    }
}

/// The image the container was created from, by the reference it was given, or by image id.
fn ancestor_matches(c: &Container, v: &str) -> bool {
    let cfg = &c.config;
    let id = image_id(cfg);
    let hex = id.trim_start_matches("sha256:");
    let wanted = v.trim_start_matches("sha256:");
    cfg.image == v
        || cfg.image == format!("{v}:latest")
        || format!("{}:latest", cfg.image) == v
        || (wanted.len() >= 12 && hex.starts_with(wanted))
}

/// By name or id: a running container's state names its networks, `networks` a stopped one's.
fn on_network(c: &Container, networks: &NetworkNames, v: &str) -> bool {
    let running_on = c
        .state
        .network
        .iter()
        .flat_map(|n| &n.interfaces)
        .any(|i| i.network_name == v);
    running_on
        || c.config.network_mode == v
        || c.config.networks.iter().any(|a| {
            a.network_id.starts_with(v) || networks.get(&a.network_id).is_some_and(|n| n == v)
        })
}

/// A volume by name, or any mount by its path in the container.
fn uses_volume(c: &Container, v: &str) -> bool {
    c.config.volumes.iter().any(|name| name == v)
        || c.config.workload.mounts.iter().any(|m| match m {
            MountSpec::Bind { target, .. } | MountSpec::Tmpfs { target, .. } => target == v,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels() {
        assert!(name_matches("web_1", "web"));
        assert!(name_matches("web_1", "^/web_1$"));
        assert!(!name_matches("web_1", "^eb"));
        assert!(name_matches("web_1", "_1$"));
        let labels = BTreeMap::from([("a".to_string(), "1".to_string())]);
        assert!(labels_match(&labels, &["a".into(), "a=1".into()]));
        assert!(!labels_match(&labels, &["a=2".into()]));
        assert!(!labels_match(&labels, &["b".into()]));
    }
}
