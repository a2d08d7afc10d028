//! HTTP plumbing every route uses: response builders, the request body (size-capped JSON, with unknown
//! fields refused by name), query parameters with docker's spellings, and streamed bodies.

use crate::error::ApiError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The largest JSON request body accepted (a container create with a large environment is ~100 KB).
pub const JSON_BODY_LIMIT: usize = 1 << 20;

/// Every response body: a whole buffer or a stream of chunks.
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;
pub type ApiResult = Result<Response<Body>, ApiError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> ApiResult {
    let body = serde_json::to_vec(value)
        .map_err(|e| ApiError::internal(format!("encoding the response: {e}")))?;
    Ok(with_type(status, full(body), "application/json"))
}

pub fn empty(status: StatusCode) -> ApiResult {
    Ok(response(status, full(Bytes::new())))
}

pub fn response(status: StatusCode, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r
}

pub fn with_type(status: StatusCode, body: Body, content_type: &'static str) -> Response<Body> {
    let mut r = response(status, body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A streamed body and the sender that feeds it. The channel is bounded, so a slow client slows only the
/// task that writes to it; the sender's `send` fails once the client is gone.
pub fn stream(capacity: usize) -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel::<Bytes>(capacity);
    let frames = tokio_stream::StreamExt::map(ReceiverStream::new(rx), |b| {
        Ok::<_, std::io::Error>(Frame::data(b))
    });
    (tx, BodyExt::boxed(StreamBody::new(frames)))
}

/// The whole request body, refused past `limit` bytes.
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes"),
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "reading the request body: {e}"
        ))),
    }
}

/// The request body as JSON of type `T`. An empty body reads as `null` (docker accepts an absent body
/// for optional configs). A field Docker's API does not define is refused, named by its path, rather
/// than silently ignored.
pub async fn read_json<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, ApiError> {
    let bytes = read_body(req, JSON_BODY_LIMIT).await?;
    parse_json(&bytes)
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"null"
    } else {
        bytes
    };
    let mut unknown = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(text);
    let value: T = serde_ignored::deserialize(&mut de, |path| unknown.push(path.to_string()))
        .map_err(|e| ApiError::bad_request(format!("malformed JSON request body: {e}")))?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("malformed JSON request body: {e}")))?;
    if !unknown.is_empty() {
        return Err(ApiError::bad_request(format!(
            "unknown field(s) in the request body: {}",
            unknown.join(", ")
        )));
    }
    Ok(value)
}

/// The query string's parameters (the last value of a repeated key wins, as Go's `Form.Get` reads the
/// first: docker clients never repeat them).
#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        let mut map = HashMap::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(percent_decode(k), percent_decode(v));
        }
        Query(map)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Docker's boolean spelling: `1`, `true`, `True`; absent or empty is `false`.
    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("") | Some("0") => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::bad_request(format!(
                "invalid boolean value {v:?} for query parameter {key}"
            ))),
        }
    }

    /// An integer parameter, absent or empty as `None`.
    pub fn number<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value {v:?} for query parameter {key}"))
            }),
        }
    }

    /// A time parameter in docker's spellings (RFC 3339, or unix seconds with a fraction); absent or
    /// empty is `None`.
    pub fn time(&self, key: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
        match self.get(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => bulkhead_engine::parse_time(v)
                .map(Some)
                .map_err(|e| ApiError::bad_request(format!("{key}: {e}"))),
        }
    }

    /// The `filters` parameter: a JSON map of name to values, in either of docker's two encodings
    /// (`{"name":["a"]}` and the older `{"name":{"a":true}}`).
    pub fn filters(&self) -> Result<Filters, ApiError> {
        let Some(raw) = self.get("filters").filter(|f| !f.is_empty()) else {
            return Ok(Filters::default());
        };
        let value: HashMap<String, serde_json::Value> = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid filters {raw:?}: {e}")))?;
        let mut map = HashMap::new();
        for (name, values) in value {
            let list: Vec<String> = match values {
                serde_json::Value::Array(a) => a
                    .into_iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
                serde_json::Value::Object(o) => o
                    .into_iter()
                    .filter(|(_, on)| on.as_bool() == Some(true))
                    .map(|(k, _)| k)
                    .collect(),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "invalid filter {name}: {other}"
                    )))
                }
            };
            map.insert(name, list);
        }
        Ok(Filters(map))
    }
}

/// Parsed `filters`: each name with the values given for it.
#[derive(Debug, Default, Clone)]
pub struct Filters(pub HashMap<String, Vec<String>>);

impl Filters {
    pub fn values(&self, name: &str) -> &[String] {
        self.0.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    /// A boolean filter (`dangling=true|false|1|0`); absent is `None`.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.values(name) {
            [] => Ok(None),
            [v] if v == "true" || v == "1" => Ok(Some(true)),
            [v] if v == "false" || v == "0" => Ok(Some(false)),
            other => Err(ApiError::bad_request(format!(
                "invalid filter '{name}={}'",
                other.join(",")
            ))),
        }
    }

    /// Refuses a filter name this endpoint does not know, as dockerd does.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(ApiError::bad_request(format!(
                "invalid filter '{k}' (supported: {})",
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 2;
            }
            (b'+', ..) => out.push(b' '),
            (b, ..) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decodes_docker_spellings() {
        let q = Query::parse(Some(
            "all=1&name=a%2Fb+c&filters=%7B%22status%22%3A%5B%22exited%22%5D%7D",
        ));
        assert!(q.flag("all").unwrap());
        assert_eq!(q.get("name"), Some("a/b c"));
        assert_eq!(q.filters().unwrap().values("status"), ["exited"]);
        assert!(q.flag("name").is_err());
    }

    #[test]
    fn old_filter_encoding_and_unknown_filters() {
        let q = Query::parse(Some("filters=%7B%22label%22%3A%7B%22a%3Db%22%3Atrue%7D%7D"));
        let f = q.filters().unwrap();
        assert_eq!(f.values("label"), ["a=b"]);
        assert!(f.only(&["status"]).is_err());
        assert!(f.only(&["label"]).is_ok());
    }

    #[test]
    fn unknown_fields_are_named() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            a: Option<u32>,
        }
        let e = parse_json::<T>(br#"{"a":1,"b":{"c":2}}"#).unwrap_err();
        assert!(e.message.contains('b'), "{}", e.message);
        assert!(parse_json::<T>(b"{").is_err());
        assert!(parse_json::<Option<T>>(b"").unwrap().is_none());
    }
}
