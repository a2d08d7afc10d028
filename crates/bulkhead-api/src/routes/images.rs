//! `/images`: pull and import (`create`), list, inspect, history, tag, remove, prune, save (`get`) and
//! load. Image names contain slashes and colons (`localhost:5000/a/b:tag`), so an endpoint is matched by
//! its last path segment and the name is everything between.

use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::http::{self, ApiResult, Filters, Query};
use crate::routes::pull_progress::{self, PullMessages};
use crate::routes::transfer::{self, TempFile, UPLOAD_LIMIT};
use bollard_stubs::models::{
    HistoryResponseItem, ImageConfig, ImageDeleteResponseItem, ImageInspect, ImageInspectMetadata,
    ImageInspectRootFs, ImagePruneResponse, ImageSummary,
};
use bulkhead_engine::{Engine, EngineError, ImageDeletion, ImageError, PullSettings};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use std::collections::HashMap;
use std::sync::Arc;

pub async fn route(ctx: &Arc<Ctx>, req: Request<Incoming>, segments: &[&str]) -> ApiResult {
    let method = req.method().clone();
    let query = Query::parse(req.uri().query());
    match (&method, segments) {
        (&Method::GET, ["images", "json"]) => list(ctx, &query).await,
        (&Method::POST, ["images", "create"]) => create(ctx, req, &query).await,
        (&Method::POST, ["images", "load"]) => load(ctx, req).await,
        (&Method::POST, ["images", "prune"]) => prune(ctx, &query).await,
        (&Method::GET, ["images", "get"]) => {
            let names = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .filter(|p| p.starts_with("names="))
                .count();
            match (names, query.get("names")) {
                (1, Some(name)) => save(ctx, name).await,
                (0, _) => Err(ApiError::bad_request("missing query parameter names")),
                _ => Err(ApiError::new(
                    StatusCode::NOT_IMPLEMENTED,
                    "bulkhead saves one image per archive: run docker save once per image",
                )),
            }
        }
        (&Method::GET, ["images", name @ .., "json"]) if !name.is_empty() => {
            inspect(ctx, name.join("/")).await
        }
        (&Method::GET, ["images", name @ .., "history"]) if !name.is_empty() => {
            history(ctx, name.join("/")).await
        }
        (&Method::GET, ["images", name @ .., "get"]) if !name.is_empty() => {
            save(ctx, &name.join("/")).await
        }
        (&Method::POST, ["images", name @ .., "tag"]) if !name.is_empty() => {
            tag(ctx, name.join("/"), &query).await
        }
        (&Method::DELETE, ["images", name @ ..]) if !name.is_empty() => {
            remove(ctx, name.join("/"), query.flag("force")?).await
        }
        _ => Err(ApiError::unsupported(&method, req.uri().path())),
    }
}

/// Docker's `Created` of images: seconds since the epoch, from the config's RFC 3339 time.
fn unix_seconds(rfc3339: Option<&str>) -> i64 {
    rfc3339
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(0, |t| t.timestamp())
}

/// The image's run configuration in docker's shape (the OCI config's fields have docker's names).
fn image_config(inspect: &bulkhead_engine::ImageInspect) -> Option<ImageConfig> {
    let value = serde_json::to_value(inspect.config.as_ref()?).ok()?;
    serde_json::from_value(value).ok()
}

/// One docker summary per image (the store lists one row per tag), with how many containers use it.
pub fn summaries(engine: &Engine) -> Result<Vec<ImageSummary>, EngineError> {
    let mut ids: Vec<String> = engine
        .images()?
        .into_iter()
        .map(|row| row.id.to_string())
        .collect();
    ids.sort();
    ids.dedup();
    let containers = engine.list(true)?;
    let mut out = Vec::new();
    for id in ids {
        let inspect = match engine.inspect_image(&id) {
            Ok(i) => i,
            // Removed since it was listed.
            Err(EngineError::Image(ImageError::NotFound { .. })) => continue,
            Err(e) => return Err(e),
        };
        let users = containers
            .iter()
            .filter(|c| same_id(&c.config.image_id, &id))
            .count();
        out.push(ImageSummary {
            id: id.clone(),
            parent_id: String::new(),
            repo_tags: inspect.repo_tags.clone(),
            repo_digests: inspect.repo_digests.clone(),
            created: unix_seconds(inspect.created.as_deref()),
            size: inspect.size as i64,
            shared_size: -1,
            virtual_size: Some(inspect.size as i64),
            labels: image_config(&inspect)
                .and_then(|c| c.labels)
                .unwrap_or_default(),
            containers: users as i64,
            manifests: None,
        });
    }
    out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    Ok(out)
}

fn same_id(a: &str, b: &str) -> bool {
    a.trim_start_matches("sha256:") == b.trim_start_matches("sha256:")
}

/// `*` matches any run of characters, as docker's reference filter (path.Match, without classes).
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| glob(rest, &tail[i..]))
        }
    }
}

/// `label=key` or `label=key=value` against a label map (networks and volumes use it too).
pub fn labels_match(wanted: &[String], labels: &HashMap<String, String>) -> bool {
    wanted.iter().all(|w| match w.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(w.as_str()),
    })
}

/// Whether a `name:tag` or `name@digest` reference matches the filter, by its whole or by its name.
fn reference_matches(pattern: &str, reference: &str) -> bool {
    let name = match reference.split_once('@') {
        Some((name, _)) => name,
        None => reference.rsplit_once(':').map_or(reference, |(r, _)| r),
    };
    glob(pattern, reference) || glob(pattern, name)
}

fn filter_images(
    images: Vec<ImageSummary>,
    filters: &Filters,
) -> Result<Vec<ImageSummary>, ApiError> {
    filters.only(&["dangling", "reference", "label"])?;
    let dangling = filters.flag("dangling")?;
    let refs = filters.values("reference");
    Ok(images
        .into_iter()
        .filter(|i| dangling.is_none_or(|d| i.repo_tags.is_empty() == d))
        .filter(|i| labels_match(filters.values("label"), &i.labels))
        .filter_map(|mut i| {
            // As dockerd: an image matched by reference shows only its matching names.
            if !refs.is_empty() {
                let matching = |t: &String| refs.iter().any(|r| reference_matches(r, t));
                i.repo_tags.retain(matching);
                i.repo_digests.retain(matching);
                if i.repo_tags.is_empty() && i.repo_digests.is_empty() {
                    return None;
                }
            }
            Some(i)
        })
        .collect())
}

async fn list(ctx: &Arc<Ctx>, query: &Query) -> ApiResult {
    let filters = query.filters()?;
    let images = ctx.blocking(summaries).await?;
    http::json(StatusCode::OK, &filter_images(images, &filters)?)
}

async fn inspect(ctx: &Arc<Ctx>, name: String) -> ApiResult {
    let i = ctx.blocking(move |e| e.inspect_image(&name)).await?;
    let body = ImageInspect {
        id: Some(i.id.to_string()),
        repo_tags: Some(i.repo_tags.clone()),
        repo_digests: Some(i.repo_digests.clone()),
        parent: Some(String::new()),
        comment: Some(String::new()),
        created: i.created.clone(),
        docker_version: Some(String::new()),
        author: Some(i.author.clone().unwrap_or_default()),
        config: image_config(&i),
        architecture: Some(i.architecture.clone()),
        variant: i.variant.clone(),
        os: Some(i.os.clone()),
        os_version: None,
        size: Some(i.size as i64),
        virtual_size: Some(i.size as i64),
        graph_driver: None,
        root_fs: Some(ImageInspectRootFs {
            typ: i.root_fs.kind.clone(),
            layers: Some(i.root_fs.layers.iter().map(|d| d.to_string()).collect()),
        }),
        metadata: Some(ImageInspectMetadata {
            last_tag_time: Some(i.metadata.added.clone()),
        }),
    };
    // `ContainerConfig` left the API in 1.45, but docker-compose 1.29 reads it when it recreates a
    // service's container (and fails without it): the image's config, as dockerd gave it for images
    // not made by `docker commit`.
    let mut value = serde_json::to_value(&body)
        .map_err(|e| ApiError::internal(format!("encoding the image: {e}")))?;
    value["ContainerConfig"] = value["Config"].clone();
    http::json(StatusCode::OK, &value)
}

/// Docker's history: newest first, the top entry carrying the image id and tags, sizes from the layers
/// (compressed: the store keeps layers as pulled).
async fn history(ctx: &Arc<Ctx>, name: String) -> ApiResult {
    let i = ctx.blocking(move |e| e.inspect_image(&name)).await?;
    let mut layers = i.layers.iter();
    let mut items: Vec<HistoryResponseItem> = i
        .history
        .iter()
        .map(|h| {
            let size = if h.empty_layer().unwrap_or(false) {
                0
            } else {
                layers.next().map_or(0, |l| l.size as i64)
            };
            HistoryResponseItem {
                id: "<missing>".into(),
                created: unix_seconds(h.created().as_deref()),
                created_by: h.created_by().clone().unwrap_or_default(),
                tags: Vec::new(),
                size,
                comment: h.comment().clone().unwrap_or_default(),
            }
        })
        .collect();
    items.reverse();
    if items.is_empty() {
        items.push(HistoryResponseItem {
            id: String::new(),
            created: unix_seconds(i.created.as_deref()),
            created_by: String::new(),
            tags: Vec::new(),
            size: i.size as i64,
            comment: String::new(),
        });
    }
    items[0].id = i.id.to_string();
    items[0].tags = i.repo_tags.clone();
    http::json(StatusCode::OK, &items)
}

async fn tag(ctx: &Arc<Ctx>, name: String, query: &Query) -> ApiResult {
    let repo = query
        .get("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing query parameter repo"))?;
    let target = match query.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    ctx.blocking(move |e| e.tag_image(&name, &target)).await?;
    http::empty(StatusCode::CREATED)
}

fn deletion_items(deletions: Vec<ImageDeletion>) -> Vec<ImageDeleteResponseItem> {
    deletions
        .into_iter()
        .map(|d| match d {
            ImageDeletion::Untagged(r) => ImageDeleteResponseItem {
                untagged: Some(r),
                deleted: None,
            },
            ImageDeletion::Deleted(id) => ImageDeleteResponseItem {
                untagged: None,
                deleted: Some(id.to_string()),
            },
        })
        .collect()
}

/// `noprune` needs no handling: images have no parent images here to keep.
async fn remove(ctx: &Arc<Ctx>, name: String, force: bool) -> ApiResult {
    let deletions = ctx.blocking(move |e| e.remove_image(&name, force)).await?;
    http::json(StatusCode::OK, &deletion_items(deletions))
}

/// Removes an image that no container uses: each of its tags (the last one deletes it), or the image
/// itself when untagged. Never forced, so a container created meanwhile keeps its image.
fn remove_unused(e: &Engine, image: &ImageSummary) -> Result<Vec<ImageDeletion>, EngineError> {
    let names = if image.repo_tags.is_empty() {
        vec![image.id.clone()]
    } else {
        image.repo_tags.clone()
    };
    let mut deleted = Vec::new();
    for name in names {
        match e.remove_image(&name, false) {
            Ok(d) => deleted.extend(d),
            Err(EngineError::Image(ImageError::NotFound { .. } | ImageError::InUse { .. })) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(deleted)
}

/// `image prune`: untagged images (with `dangling=false`, every image) that no container uses, then
/// the blobs nothing refers to any more.
async fn prune(ctx: &Arc<Ctx>, query: &Query) -> ApiResult {
    let filters = query.filters()?;
    filters.only(&["dangling", "label"])?;
    let everything = matches!(filters.values("dangling"), [v] if v == "false" || v == "0");
    let labels = filters.values("label").to_vec();
    let report = ctx
        .blocking(move |e| {
            let mut deleted = Vec::new();
            for image in summaries(e)? {
                if (everything || image.repo_tags.is_empty())
                    && image.containers == 0
                    && labels_match(&labels, &image.labels)
                {
                    deleted.extend(remove_unused(e, &image)?);
                }
            }
            let freed = e.prune_images()?.bytes_freed;
            Ok((deleted, freed))
        })
        .await?;
    http::json(
        StatusCode::OK,
        &ImagePruneResponse {
            images_deleted: Some(deletion_items(report.0)),
            space_reclaimed: Some(report.1 as i64),
        },
    )
}

/// `docker save`: the image as an OCI archive (which `docker load` of docker 25 and later reads),
/// exported to a temporary file first so an export error is an HTTP error, not a cut stream.
async fn save(ctx: &Arc<Ctx>, name: &str) -> ApiResult {
    let file = TempFile::new(&ctx.engine.config().root, "save")?;
    let path = file.path().to_path_buf();
    let name = name.to_string();
    ctx.blocking(move |e| e.export_image(&name, &path)).await?;
    Ok(http::with_type(
        StatusCode::OK,
        transfer::download(file)?,
        "application/x-tar",
    ))
}

/// A bad archive is the client's error (400), not the server's.
fn archive_error(e: EngineError) -> ApiError {
    match e {
        EngineError::Image(ImageError::Import { .. }) => {
            ApiError::bad_request(format!("invalid image archive: {e}"))
        }
        other => ApiError::from(other),
    }
}

fn stream_line(text: String) -> Bytes {
    let mut v = serde_json::to_vec(&serde_json::json!({ "stream": text })).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// `docker load`: a `docker save` or OCI archive, streamed to a temporary file with a cap, then
/// imported (validated completely before anything enters the store).
async fn load(ctx: &Arc<Ctx>, req: Request<Incoming>) -> ApiResult {
    let root = ctx.engine.config().root.clone();
    let file = transfer::upload(req, &root, "load", UPLOAD_LIMIT).await?;
    let lines = import_upload(ctx, file, |e, path| {
        let images = e.import_images(path)?;
        let mut lines = Vec::new();
        for image in images {
            let tags = e.inspect_image(&image.id.to_string())?.repo_tags;
            if tags.is_empty() {
                lines.push(stream_line(format!("Loaded image ID: {}\n", image.id)));
            }
            for t in tags {
                lines.push(stream_line(format!("Loaded image: {t}\n")));
            }
        }
        Ok(lines)
    })
    .await?;
    Ok(http::with_type(
        StatusCode::OK,
        http::full(lines.concat()),
        "application/json",
    ))
}

/// Runs an import of the uploaded `file` on the blocking pool; the file is removed afterwards.
async fn import_upload<T: Send + 'static>(
    ctx: &Arc<Ctx>,
    file: TempFile,
    f: impl FnOnce(&Engine, &std::path::Path) -> Result<T, EngineError> + Send + 'static,
) -> Result<T, ApiError> {
    let engine = ctx.engine.clone();
    tokio::task::spawn_blocking(move || f(&engine, file.path()))
        .await
        .map_err(|e| ApiError::internal(format!("engine call failed: {e}")))?
        .map_err(archive_error)
}

/// `POST /images/create`: a pull (`fromImage`) or an import of a root filesystem tar (`fromSrc=-`).
async fn create(ctx: &Arc<Ctx>, req: Request<Incoming>, query: &Query) -> ApiResult {
    if let Some(src) = query.get("fromSrc").filter(|s| !s.is_empty()) {
        return import(ctx, req, query, src).await;
    }
    let image = query
        .get("fromImage")
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing query parameter fromImage or fromSrc"))?;
    let reference = match query.get("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{image}@{t}"),
        Some(t) => format!("{image}:{t}"),
        // Docker pulls every tag here; bulkhead pulls the name as given (`:latest` if untagged).
        None => image.to_string(),
    };
    let settings = PullSettings {
        platform: query
            .get("platform")
            .filter(|p| !p.is_empty())
            .map(String::from),
        ..PullSettings::default()
    };
    pull(ctx, reference, settings).await
}

/// What the pulling thread tells the response.
enum PullMsg {
    Line(Bytes),
    Failed(ApiError),
}

/// Streams a pull's progress. The pull runs on the blocking pool and finishes even if the client
/// leaves (the store only ever sees whole images); a failure before any progress is an HTTP error,
/// after it an `errorDetail` message, as dockerd does.
async fn pull(ctx: &Arc<Ctx>, reference: String, settings: PullSettings) -> ApiResult {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<PullMsg>(64);
    let engine = ctx.engine.clone();
    tokio::task::spawn_blocking(move || {
        let lines = tx.clone();
        let messages = PullMessages::new(move |b| {
            // A client that left only stops the messages, never the pull.
            let _ = lines.blocking_send(PullMsg::Line(b));
        });
        let last = match engine.pull(&reference, &settings, &|e| messages.event(e)) {
            Ok(_) => {
                let how = if messages.downloaded() {
                    "Downloaded newer image for"
                } else {
                    "Image is up to date for"
                };
                PullMsg::Line(pull_progress::line(&pull_progress::status(
                    format!("Status: {how} {reference}"),
                    None,
                )))
            }
            Err(e) => PullMsg::Failed(ApiError::from(&e)),
        };
        let _ = tx.blocking_send(last);
    });
    let first = match rx.recv().await {
        None => return Err(ApiError::internal("the pull ended without a result")),
        Some(PullMsg::Failed(e)) => return Err(e),
        Some(PullMsg::Line(line)) => line,
    };
    let (out, body) = http::stream(16);
    tokio::spawn(async move {
        let mut client = out.send(first).await.is_ok();
        while let Some(msg) = rx.recv().await {
            let line = match msg {
                PullMsg::Line(line) => line,
                PullMsg::Failed(e) => pull_progress::line(&pull_progress::failure(&e.message)),
            };
            // Once the client is gone the rest is drained, so the pull never waits on it.
            if client {
                client = out.send(line).await.is_ok();
            }
        }
    });
    Ok(http::with_type(StatusCode::OK, body, "application/json"))
}

/// The reference a `docker import` is tagged with, or why the request is refused.
fn import_reference(query: &Query, src: &str) -> Result<String, ApiError> {
    if src != "-" {
        return Err(ApiError::bad_request(format!(
            "fromSrc={src}: bulkhead imports only from the request body (fromSrc=-), not from a URL"
        )));
    }
    for (param, flag) in [("changes", "--change"), ("message", "--message")] {
        if query.get(param).is_some_and(|v| !v.is_empty()) {
            return Err(ApiError::bad_request(format!(
                "docker import {flag}: not supported by bulkhead"
            )));
        }
    }
    let repo = query.get("repo").filter(|r| !r.is_empty()).ok_or_else(|| {
        ApiError::bad_request(
            "bulkhead needs a name for an imported image (docker import FILE NAME[:TAG])",
        )
    })?;
    let last = repo.rsplit('/').next().unwrap_or(repo);
    Ok(match query.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None if last.contains(':') => repo.to_string(),
        None => format!("{repo}:latest"),
    })
}

/// `docker import`: `fromSrc=-` with the root filesystem tar as the body, tagged `repo[:tag]`.
async fn import(ctx: &Arc<Ctx>, req: Request<Incoming>, query: &Query, src: &str) -> ApiResult {
    let reference = match import_reference(query, src) {
        Ok(r) => r,
        Err(e) => {
            transfer::discard(req, UPLOAD_LIMIT).await;
            return Err(e);
        }
    };
    let root = ctx.engine.config().root.clone();
    let file = transfer::upload(req, &root, "import", UPLOAD_LIMIT).await?;
    let id = import_upload(ctx, file, move |e, path| {
        Ok(e.import_rootfs(path, &reference)?.id.to_string())
    })
    .await?;
    Ok(http::with_type(
        StatusCode::OK,
        http::full(pull_progress::line(&pull_progress::status(id, None))),
        "application/json",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filter_globs_names_and_tags() {
        let tag = "localhost:5000/a/b:1.0";
        assert!(reference_matches("localhost:5000/a/b", tag));
        assert!(reference_matches("localhost:5000/a/b:1.0", tag));
        assert!(reference_matches("*/a/*", tag));
        assert!(!reference_matches("b", tag));
        assert!(!reference_matches("localhost:5000/a/b:2.0", tag));
        assert!(reference_matches(
            "localhost:5000/a/b",
            "localhost:5000/a/b@sha256:0123"
        ));
        assert!(!reference_matches("mine", "localhost:5000/a/b@sha256:0123"));
    }

    #[test]
    fn label_filters() {
        let labels: HashMap<String, String> = [("a".to_string(), "1".to_string())].into();
        assert!(labels_match(&["a".into()], &labels));
        assert!(labels_match(&["a=1".into()], &labels));
        assert!(!labels_match(&["a=2".into()], &labels));
        assert!(!labels_match(&["b".into()], &labels));
    }
}
