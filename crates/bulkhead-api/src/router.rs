//! Routing: the `/v1.NN` prefix is checked and removed, the first path segment picks the area module,
//! and every answer gets dockerd's common headers. A request no area serves is a named error.

use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::http::{self, Body, Query};
use crate::routes;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// The Engine API version served, and the oldest a client may ask for (docker 29 requires >= 1.44).
pub const API_VERSION: &str = "1.47";
pub const MIN_API_VERSION: &str = "1.24";

/// How long a request may take to produce its response head. Streams (logs -f, events, attach, wait,
/// pulls) answer at once and are not bound by it; `stop`, `restart` and `wait`-like calls get their own
/// timeout (`t`) on top.
const REQUEST_DEADLINE: Duration = Duration::from_secs(120);

pub async fn handle(ctx: Arc<Ctx>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let extra = Query::parse(req.uri().query())
        .number::<u64>("t")
        .ok()
        .flatten()
        .unwrap_or(0);
    let deadline = REQUEST_DEADLINE + Duration::from_secs(extra);
    let result = match tokio::time::timeout(deadline, dispatch(ctx, req)).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "{method} {path} did not complete within {} s",
                deadline.as_secs()
            ),
        )),
    };
    let mut response = result.unwrap_or_else(|e| error_response(&e));
    tracing::debug!(%method, %path, status = %response.status(), "request");
    add_common_headers(&mut response);
    Ok(response)
}

async fn dispatch(ctx: Arc<Ctx>, req: Request<Incoming>) -> http::ApiResult {
    let path = req.uri().path().to_string();
    let rest = strip_version(&path)?;
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    // The streaming endpoints under /containers/{id}, before the containers area takes the rest.
    match segments.as_slice() {
        ["containers", _, "attach" | "resize"] => {
            return routes::attach::route(&ctx, req, &segments).await
        }
        ["containers", _, "logs"] => return routes::logs::route(&ctx, req, &segments).await,
        ["containers", _, "archive"] => return routes::archive::route(&ctx, req, &segments).await,
        ["containers", _, "exec"] | ["exec", ..] => {
            return routes::exec::route(&ctx, req, &segments).await
        }
        _ => {}
    }
    let Some((area, tail)) = segments.split_first() else {
        return Err(ApiError::unsupported(req.method(), &path));
    };
    match *area {
        "_ping" | "version" | "info" | "system" | "events" | "auth" => {
            routes::system::route(&ctx, req, &segments).await
        }
        "containers" => routes::containers::route(&ctx, req, &segments).await,
        "images" => routes::images::route(&ctx, req, &segments).await,
        "networks" => routes::networks::route(&ctx, req, &segments).await,
        "volumes" => routes::volumes::route(&ctx, req, &segments).await,
        _ => {
            let _ = tail;
            Err(ApiError::unsupported(req.method(), &path))
        }
    }
}

/// Removes a `/v1.NN` prefix, refusing versions outside what this server speaks.
fn strip_version(path: &str) -> Result<&str, ApiError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok(path);
    };
    let (version, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some(asked) = parse_version(version) else {
        return Ok(path);
    };
    let (min, max) = (
        parse_version(MIN_API_VERSION).unwrap_or_default(),
        parse_version(API_VERSION).unwrap_or_default(),
    );
    if asked > max {
        return Err(ApiError::bad_request(format!(
            "client version {version} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    if asked < min {
        return Err(ApiError::bad_request(format!(
            "client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, \
             please upgrade your client to a newer version"
        )));
    }
    Ok(tail)
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    let body = serde_json::json!({ "message": e.message }).to_string();
    http::with_type(e.status, http::full(body), "application/json")
}

fn add_common_headers(response: &mut Response<Body>) {
    let headers = response.headers_mut();
    for (name, value) in [
        ("api-version", API_VERSION),
        ("docker-experimental", "false"),
        ("ostype", "linux"),
        (
            "server",
            concat!("bulkhead/", env!("CARGO_PKG_VERSION"), " (linux)"),
        ),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix() {
        assert_eq!(
            strip_version("/v1.47/containers/json").unwrap(),
            "/containers/json"
        );
        assert_eq!(strip_version("/v1.24/_ping").unwrap(), "/_ping");
        assert_eq!(strip_version("/_ping").unwrap(), "/_ping");
        assert_eq!(strip_version("/volumes").unwrap(), "/volumes");
        let e = strip_version("/v1.99/info").unwrap_err();
        assert!(e.message.contains("too new"), "{}", e.message);
        assert!(strip_version("/v1.12/info").is_err());
    }
}
