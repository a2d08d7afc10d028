//! A small registry that misbehaves on purpose, serving an OCI layout on 127.0.0.1.
//!
//! It is a fault injector, not a mock of the client under test: it speaks real
//! HTTP/1.1 over real sockets and implements the read side of the distribution API
//! (`/v2/`, manifests by tag or digest, blobs) plus a bearer-token endpoint, so it can
//! reproduce what real registries and their storage backends do under stress:
//! corrupt blobs, connections dropped mid-body, 429 with Retry-After, 5xx, redirects
//! to storage, token authentication. Each connection serves one request.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bulkhead_testkit::http::{Request, Response, Server};

/// The misbehaviour to inject.
#[derive(Clone)]
pub enum Fault {
    /// Behave.
    None,
    /// Serve blob requests with the right length but flipped bytes.
    CorruptBlobs,
    /// Send half of every blob body, then close the connection; `times` times
    /// (counted over all blobs), then behave.
    DropBlobs { times: usize },
    /// Answer requests whose path contains `path_contains` with `status` `times` times.
    Status {
        path_contains: &'static str,
        status: u16,
        times: usize,
        retry_after: Option<u32>,
    },
    /// Redirect blob requests (307) to `/storage/<hex>`, like S3-backed registries.
    RedirectBlobs,
    /// Serve this document (with this Content-Type) for every manifest request.
    ReplaceManifest {
        media_type: &'static str,
        body: Vec<u8>,
    },
    /// Require bearer tokens from `/token`, issued against these basic credentials.
    BearerAuth {
        user: &'static str,
        password: &'static str,
    },
}

struct State {
    blobs: HashMap<String, Vec<u8>>,
    tags: HashMap<String, (String, String)>,
    fault: Fault,
    remaining: usize,
    requests: Vec<String>,
    tokens_issued: usize,
    port: u16,
}

pub struct FaultServer {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl FaultServer {
    /// Serves the tags and blobs of the OCI layout `layout`.
    pub fn start(layout: &Path, fault: Fault) -> FaultServer {
        let mut blobs = HashMap::new();
        for entry in fs::read_dir(layout.join("blobs/sha256")).unwrap() {
            let entry = entry.unwrap();
            let name = format!("sha256:{}", entry.file_name().to_string_lossy());
            blobs.insert(name, fs::read(entry.path()).unwrap());
        }
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
        let mut tags = HashMap::new();
        for m in index["manifests"].as_array().unwrap() {
            let tag = m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap();
            tags.insert(
                tag.to_owned(),
                (
                    m["digest"].as_str().unwrap().to_owned(),
                    m["mediaType"].as_str().unwrap().to_owned(),
                ),
            );
        }
        let remaining = match &fault {
            Fault::DropBlobs { times } | Fault::Status { times, .. } => *times,
            _ => 0,
        };
        let state = Arc::new(Mutex::new(State {
            blobs,
            tags,
            fault,
            remaining,
            requests: Vec::new(),
            tokens_issued: 0,
            port: 0,
        }));
        let server = Server::start({
            let state = state.clone();
            move |request| respond(&state, request)
        });
        // Known once listening; the token challenge names it, and no request comes before `host()`.
        state.lock().unwrap().port = server.port();
        FaultServer { server, state }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.server.port())
    }

    /// Request lines (`GET /v2/...`) received so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn tokens_issued(&self) -> usize {
        self.state.lock().unwrap().tokens_issued
    }
}

fn respond(state: &Mutex<State>, request: &Request) -> Response {
    let (path, headers) = (request.path.as_str(), &request.headers);
    let mut state = state.lock().unwrap();
    state.requests.push(request.line.clone());
    let fault = state.fault.clone();
    if let Fault::BearerAuth { user, password } = &fault {
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        if path.starts_with("/token") {
            if headers.get("authorization") != Some(&basic) {
                return Response::new(401, b"{}".to_vec());
            }
            state.tokens_issued += 1;
            let token = format!("token-{}", state.tokens_issued);
            return Response::new(200, format!(r#"{{"token":"{token}"}}"#).into_bytes());
        }
        let authorised = headers
            .get("authorization")
            .is_some_and(|h| h.starts_with("Bearer token-"));
        if !authorised {
            let challenge = format!(
                r#"Bearer realm="http://127.0.0.1:{}/token",service="fault-registry",scope="repository:img:pull""#,
                state.port
            );
            return Response::new(401, b"{}".to_vec()).header("WWW-Authenticate", challenge);
        }
    }
    if let Fault::Status {
        path_contains,
        status,
        retry_after,
        ..
    } = &fault
    {
        if path.contains(path_contains) && state.remaining > 0 {
            state.remaining -= 1;
            let mut response = Response::new(*status, b"{}".to_vec());
            if let Some(seconds) = retry_after {
                response = response.header("Retry-After", seconds.to_string());
            }
            return response;
        }
    }
    if path == "/v2/" {
        return Response::new(200, b"{}".to_vec());
    }
    if let Some(hex) = path.strip_prefix("/storage/") {
        return blob_response(&mut state, &format!("sha256:{hex}"), &fault);
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Response::new(404, Vec::new());
    };
    if let Some((_, target)) = rest.split_once("/manifests/") {
        if let Fault::ReplaceManifest { media_type, body } = fault {
            return Response::new(200, body).header("Content-Type", media_type);
        }
        let (digest, media_type) = match state.tags.get(target) {
            Some((digest, media_type)) => (digest.clone(), media_type.clone()),
            None => {
                let Some(bytes) = state.blobs.get(target) else {
                    return Response::new(
                        404,
                        br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#.to_vec(),
                    );
                };
                let doc: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
                (
                    target.to_owned(),
                    doc["mediaType"].as_str().unwrap_or_default().to_owned(),
                )
            }
        };
        let body = state.blobs.get(&digest).cloned().unwrap_or_default();
        return Response::new(200, body)
            .header("Content-Type", media_type)
            .header("Docker-Content-Digest", digest);
    }
    if let Some((_, digest)) = rest.split_once("/blobs/") {
        if matches!(fault, Fault::RedirectBlobs) {
            let hex = digest.trim_start_matches("sha256:");
            return Response::new(307, Vec::new()).header("Location", format!("/storage/{hex}"));
        }
        return blob_response(&mut state, digest, &fault);
    }
    Response::new(404, Vec::new())
}

fn blob_response(state: &mut State, digest: &str, fault: &Fault) -> Response {
    let Some(mut body) = state.blobs.get(digest).cloned() else {
        return Response::new(404, br#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#.to_vec());
    };
    let mut truncate_at = None;
    match fault {
        Fault::CorruptBlobs => body.iter_mut().for_each(|b| *b ^= 0x5a),
        Fault::DropBlobs { .. } if state.remaining > 0 => {
            state.remaining -= 1;
            truncate_at = Some(body.len() / 2);
        }
        _ => {}
    }
    let mut response = Response::new(200, body).header("Content-Type", "application/octet-stream");
    response.truncate_at = truncate_at;
    response
}
