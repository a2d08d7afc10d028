//! `/volumes`: list (filters name, label, dangling, driver), inspect, create (`local` driver), remove,
//! prune. Sizes (prune's reclaimed space, `system df`) are measured without following symlinks: a
//! volume's content may have been written by a VM guest.

use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::http::{self, ApiResult, Query};
use crate::routes::images::labels_match;
use bollard_stubs::models::{
    Volume, VolumeCreateOptions, VolumeListResponse, VolumePruneResponse, VolumeScopeEnum,
    VolumeUsageData,
};
use bulkhead_engine::{Engine, EngineError};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

pub async fn route(ctx: &Arc<Ctx>, req: Request<Incoming>, segments: &[&str]) -> ApiResult {
    let method = req.method().clone();
    let query = Query::parse(req.uri().query());
    match (&method, segments) {
        (&Method::GET, ["volumes"]) => list(ctx, &query).await,
        (&Method::POST, ["volumes", "create"]) => create(ctx, req).await,
        (&Method::POST, ["volumes", "prune"]) => prune(ctx, &query).await,
        (&Method::GET, ["volumes", name]) => {
            let name = name.to_string();
            let v = ctx.blocking(move |e| e.volume_inspect(&name)).await?;
            http::json(StatusCode::OK, &model(&v, None))
        }
        (&Method::DELETE, ["volumes", name]) => {
            let name = name.to_string();
            let force = query.flag("force")?;
            ctx.blocking(move |e| e.volume_remove(&name, force)).await?;
            http::empty(StatusCode::NO_CONTENT)
        }
        _ => Err(ApiError::unsupported(&method, req.uri().path())),
    }
}

pub fn model(v: &bulkhead_engine::Volume, usage: Option<VolumeUsageData>) -> Volume {
    Volume {
        name: v.name.clone(),
        driver: v.driver.clone(),
        mountpoint: v.mountpoint.display().to_string(),
        created_at: Some(v.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        status: None,
        labels: v.labels.clone().into_iter().collect(),
        scope: Some(VolumeScopeEnum::LOCAL),
        cluster_volume: None,
        options: HashMap::new(),
        usage_data: usage,
    }
}

/// Bytes allocated under `dir`, counting each entry once and following no symlink.
pub fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            total += meta.blocks() * 512;
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    total
}

/// The names of the volumes that containers (in any state) use, with how many use each.
pub fn users(engine: &Engine) -> Result<HashMap<String, i64>, EngineError> {
    let mut counts = HashMap::new();
    for c in engine.list(true)? {
        for v in c.config.volumes {
            *counts.entry(v).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

async fn list(ctx: &Arc<Ctx>, query: &Query) -> ApiResult {
    let filters = query.filters()?;
    filters.only(&["name", "label", "dangling", "driver"])?;
    let dangling = filters.flag("dangling")?;
    let (volumes, used) = ctx.blocking(|e| Ok((e.volume_list()?, users(e)?))).await?;
    let any = |name: &str, f: &dyn Fn(&str) -> bool| {
        let wanted = filters.values(name);
        wanted.is_empty() || wanted.iter().any(|w| f(w))
    };
    let out: Vec<Volume> = volumes
        .iter()
        .filter(|v| any("name", &|w| v.name.contains(w)))
        .filter(|v| any("driver", &|w| v.driver == w))
        .filter(|v| dangling.is_none_or(|d| used.contains_key(&v.name) != d))
        .map(|v| model(v, None))
        .filter(|v| labels_match(filters.values("label"), &v.labels))
        .collect();
    http::json(
        StatusCode::OK,
        &VolumeListResponse {
            volumes: Some(out),
            warnings: Some(Vec::new()),
        },
    )
}

async fn create(ctx: &Arc<Ctx>, req: Request<Incoming>) -> ApiResult {
    let body: Option<VolumeCreateOptions> = http::read_json(req).await?;
    let body = body.unwrap_or_default();
    if let Some(d) = body
        .driver
        .as_deref()
        .filter(|d| !d.is_empty() && *d != "local")
    {
        return Err(ApiError::bad_request(format!(
            "volume driver {d:?} is not supported: bulkhead has the local driver only"
        )));
    }
    if body.driver_opts.as_ref().is_some_and(|o| !o.is_empty()) {
        return Err(ApiError::bad_request(
            "volume driver options (-o) are not supported by bulkhead's local volumes",
        ));
    }
    if body.cluster_volume_spec.is_some() {
        return Err(ApiError::bad_request("cluster volumes are not supported"));
    }
    let name = body.name.filter(|n| !n.is_empty());
    let labels: BTreeMap<String, String> = body.labels.unwrap_or_default().into_iter().collect();
    let v = ctx
        .blocking(move |e| e.volume_create(name.as_deref(), &labels))
        .await?;
    http::json(StatusCode::CREATED, &model(&v, None))
}

/// `volume prune`: unused anonymous volumes, or with the `all` filter every unused one (API 1.42's
/// rule), whose labels match.
async fn prune(ctx: &Arc<Ctx>, query: &Query) -> ApiResult {
    let filters = query.filters()?;
    filters.only(&["all", "label"])?;
    let all = matches!(filters.values("all"), [v] if v == "true" || v == "1");
    let labels = filters.values("label").to_vec();
    let (removed, reclaimed) = ctx
        .blocking(move |e| {
            let used = users(e)?;
            let mut removed = Vec::new();
            let mut reclaimed = 0;
            for v in e.volume_list()? {
                let wanted = (all || v.anonymous)
                    && !used.contains_key(&v.name)
                    && labels_match(&labels, &v.labels.clone().into_iter().collect());
                if !wanted {
                    continue;
                }
                let size = disk_usage(&v.mountpoint);
                match e.volume_remove(&v.name, false) {
                    Ok(()) => {
                        removed.push(v.name);
                        reclaimed += size;
                    }
                    // Taken by a container created meanwhile, or removed by another client.
                    Err(EngineError::VolumeInUse { .. } | EngineError::NoSuchVolume(_)) => {}
                    Err(err) => return Err(err),
                }
            }
            Ok((removed, reclaimed))
        })
        .await?;
    http::json(
        StatusCode::OK,
        &VolumePruneResponse {
            volumes_deleted: Some(removed),
            space_reclaimed: Some(reclaimed as i64),
        },
    )
}
