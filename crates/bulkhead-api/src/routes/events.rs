//! `GET /events`: the engine's event log as docker's stream of JSON messages, filtered by `type`,
//! `event`, `container`, `image`, `network`, `volume` and `label`. Without `since` only new events come
//! (as dockerd); with `until` the stream ends when that time has passed.

use crate::ctx::Ctx;
use crate::http::{self, ApiResult, Filters, Query};
use bollard_stubs::models::{
    EventActor, EventMessage, EventMessageScopeEnum, EventMessageTypeEnum,
};
use bulkhead_engine::{Event, EventKind};
use bytes::Bytes;
use chrono::Utc;
use hyper::StatusCode;
use serde::Serialize;
use std::sync::Arc;

/// Docker's message: the model's fields plus the older `status`, `id` and `from` that the SDKs and
/// docker-compose still read.
#[derive(Serialize)]
struct Message {
    #[serde(flatten)]
    event: EventMessage,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
}

fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Container => "container",
        EventKind::Image => "image",
        EventKind::Network => "network",
        EventKind::Volume => "volume",
    }
}

fn matches(e: &Event, filters: &Filters) -> bool {
    let any = |name: &str, f: &dyn Fn(&str) -> bool| {
        let wanted = filters.values(name);
        wanted.is_empty() || wanted.iter().any(|w| f(w))
    };
    let attr = |k: &str| e.attributes.get(k).map(String::as_str);
    let about = |kind: EventKind, w: &str| {
        e.kind == kind && (e.id.starts_with(w) || attr("name") == Some(w))
    };
    any("type", &|w| kind_name(e.kind) == w)
        && any("event", &|w| e.action == w)
        && any("container", &|w| about(EventKind::Container, w))
        && any("image", &|w| {
            about(EventKind::Image, w)
                || (e.kind == EventKind::Container && attr("image") == Some(w))
        })
        && any("network", &|w| about(EventKind::Network, w))
        && any("volume", &|w| about(EventKind::Volume, w))
        && filters
            .values("label")
            .iter()
            .all(|w| match w.split_once('=') {
                Some((k, v)) => attr(k) == Some(v),
                None => e.attributes.contains_key(w.as_str()),
            })
}

fn message(e: &Event) -> Message {
    let typ = match e.kind {
        EventKind::Container => EventMessageTypeEnum::CONTAINER,
        EventKind::Image => EventMessageTypeEnum::IMAGE,
        EventKind::Network => EventMessageTypeEnum::NETWORK,
        EventKind::Volume => EventMessageTypeEnum::VOLUME,
    };
    // The legacy fields exist for containers and images only, as in dockerd.
    let legacy = matches!(e.kind, EventKind::Container | EventKind::Image);
    Message {
        event: EventMessage {
            typ: Some(typ),
            action: Some(e.action.clone()),
            actor: Some(EventActor {
                id: Some(e.id.clone()),
                attributes: Some(e.attributes.clone().into_iter().collect()),
            }),
            scope: Some(EventMessageScopeEnum::LOCAL),
            time: Some(e.time.timestamp()),
            time_nano: e.time.timestamp_nanos_opt(),
        },
        status: legacy.then(|| e.action.clone()),
        id: legacy.then(|| e.id.clone()),
        from: (e.kind == EventKind::Container)
            .then(|| e.attributes.get("image").cloned())
            .flatten(),
    }
}

pub async fn events(ctx: &Arc<Ctx>, query: &Query) -> ApiResult {
    let filters = query.filters()?;
    filters.only(&[
        "type",
        "event",
        "container",
        "image",
        "network",
        "volume",
        "label",
    ])?;
    let since = query.time("since")?.unwrap_or_else(Utc::now);
    let until = query.time("until")?;
    let (tx, body) = http::stream(64);
    let engine = ctx.engine.clone();
    tokio::task::spawn_blocking(move || {
        // Ends when `until` passes, or at the first event after the client left (the sink's error).
        let result = engine.events(Some(since), until, true, |e| {
            if tx.is_closed() {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            if !matches(e, &filters) {
                return Ok(());
            }
            let mut line = serde_json::to_vec(&message(e)).map_err(std::io::Error::other)?;
            line.push(b'\n');
            tx.blocking_send(Bytes::from(line))
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        });
        if let Err(e) = result {
            tracing::warn!("events stream: {e}");
        }
    });
    Ok(http::with_type(StatusCode::OK, body, "application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn times_as_the_docker_cli_sends_them() {
        let since = |v: &str| Query::parse(Some(&format!("since={v}"))).time("since");
        let t = since("1700000000.5").unwrap().unwrap();
        assert_eq!(t.timestamp(), 1_700_000_000);
        assert_eq!(t.timestamp_subsec_nanos(), 500_000_000);
        assert_eq!(
            since("1700000000").unwrap().unwrap().timestamp(),
            1_700_000_000
        );
        assert!(since("10m").is_err());
    }

    #[test]
    fn filters_and_shape() {
        let e = Event {
            time: Utc::now(),
            kind: EventKind::Container,
            action: "die".into(),
            id: "abcdef0123456789".into(),
            attributes: BTreeMap::from([
                ("name".to_string(), "web".to_string()),
                ("image".to_string(), "demo".to_string()),
                ("exitCode".to_string(), "3".to_string()),
            ]),
        };
        let q = |f: &str| {
            Query::parse(Some(&format!("filters={f}")))
                .filters()
                .unwrap()
        };
        assert!(matches(&e, &q(r#"{"container":["web"]}"#)));
        assert!(matches(
            &e,
            &q(r#"{"container":["abcdef"],"event":["die"]}"#)
        ));
        assert!(matches(
            &e,
            &q(r#"{"image":["demo"],"type":["container"]}"#)
        ));
        assert!(!matches(&e, &q(r#"{"event":["start"]}"#)));
        assert!(!matches(&e, &q(r#"{"type":["image"]}"#)));
        assert!(matches(&e, &q(r#"{"label":["exitCode=3"]}"#)));
        let v = serde_json::to_value(message(&e)).unwrap();
        assert_eq!(v["Type"], "container");
        assert_eq!(v["Action"], "die");
        assert_eq!(v["Actor"]["Attributes"]["exitCode"], "3");
        assert_eq!(v["status"], "die");
        assert_eq!(v["from"], "demo");
        assert_eq!(v["scope"], "local");
        assert!(v["timeNano"].as_i64().unwrap() > 0);
    }
}
