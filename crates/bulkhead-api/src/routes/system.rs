//! `_ping`, `version`, `info`, `system/df`, `events` and `auth` (a registry login stored by the engine: the
//! credentials every later pull uses, whatever `X-Registry-Auth` a client sends).

use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::http::{self, ApiResult};
use crate::router::{API_VERSION, MIN_API_VERSION};
use crate::routes::{events, info};
use bollard_stubs::models::{
    AuthConfig, SystemAuthResponse, SystemVersion, SystemVersionComponents,
};
use bulkhead_engine::EngineError;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, PRAGMA};
use hyper::{Method, Request, StatusCode};
use std::sync::Arc;

pub async fn route(ctx: &Arc<Ctx>, req: Request<Incoming>, segments: &[&str]) -> ApiResult {
    match (req.method(), segments) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => ping(req.method() == Method::HEAD),
        (&Method::GET, ["version"]) => http::json(StatusCode::OK, &version_json()),
        (&Method::GET, ["info"]) => {
            http::json(StatusCode::OK, &ctx.blocking(info::system_info).await?)
        }
        (&Method::GET, ["system", "df"]) => {
            http::json(StatusCode::OK, &ctx.blocking(info::data_usage).await?)
        }
        (&Method::POST, ["auth"]) => auth(ctx, req).await,
        (&Method::GET, ["events"]) => {
            events::events(ctx, &crate::http::Query::parse(req.uri().query())).await
        }
        _ => Err(ApiError::unsupported(req.method(), req.uri().path())),
    }
}

/// `POST /auth` (`docker login`): the engine checks the credentials against the registry and stores
/// them under its root; a refusal is docker's 401.
async fn auth(ctx: &Arc<Ctx>, req: Request<Incoming>) -> ApiResult {
    let body: AuthConfig = http::read_json(req).await?;
    let registry = body
        .serveraddress
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "docker.io".into());
    let user = body.username.unwrap_or_default();
    let password = body.password.unwrap_or_default();
    if user.is_empty() || password.is_empty() {
        return Err(ApiError::bad_request(
            "login needs a username and a password",
        ));
    }
    let engine = ctx.engine.clone();
    let result =
        tokio::task::spawn_blocking(move || engine.login(&registry, &user, &password, false))
            .await
            .map_err(|e| ApiError::internal(format!("engine call failed: {e}")))?;
    match result {
        Ok(()) => http::json(
            StatusCode::OK,
            &SystemAuthResponse {
                status: "Login Succeeded".into(),
                identity_token: None,
            },
        ),
        Err(e @ EngineError::Registry(_)) => {
            Err(ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// `HEAD|GET /_ping`: the client reads the API version and OS type from its headers.
fn ping(head: bool) -> ApiResult {
    let mut response = http::with_type(
        StatusCode::OK,
        http::full(if head { "" } else { "OK" }),
        "text/plain; charset=utf-8",
    );
    let headers = response.headers_mut();
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The version record; the engine component's `Details` are added by hand because the generated model
/// types them as an empty map.
fn version_json() -> serde_json::Value {
    let v = version();
    let mut value = serde_json::to_value(&v).unwrap_or_default();
    value["Components"][0]["Details"] = serde_json::json!({
        "ApiVersion": v.api_version,
        "MinAPIVersion": v.min_api_version,
        "GitCommit": v.git_commit,
        "GoVersion": v.go_version,
        "Os": v.os,
        "Arch": v.arch,
        "KernelVersion": v.kernel_version,
        "Experimental": "false",
        "BuildTime": v.build_time,
    });
    value
}

pub fn version() -> SystemVersion {
    let uname = nix::sys::utsname::uname().ok();
    let kernel = uname
        .as_ref()
        .map(|u| u.release().to_string_lossy().into_owned());
    SystemVersion {
        platform: Some(bollard_stubs::models::SystemVersionPlatform {
            name: "bulkhead".into(),
        }),
        components: Some(vec![SystemVersionComponents {
            name: "Engine".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            details: None,
        }]),
        version: Some(env!("CARGO_PKG_VERSION").into()),
        api_version: Some(API_VERSION.into()),
        min_api_version: Some(MIN_API_VERSION.into()),
        git_commit: Some(String::new()),
        go_version: Some(String::new()),
        os: Some("linux".into()),
        arch: Some("amd64".into()),
        kernel_version: kernel,
        experimental: Some(false),
        build_time: Some(String::new()),
    }
}
