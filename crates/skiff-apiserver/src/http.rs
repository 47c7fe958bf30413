//! Wire helpers shared by every handler: query parameters, request body decoding (JSON, YAML,
//! protobuf), content negotiation and JSON replies.
//!
//! Translation only; no storage access and no object semantics.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// Largest request body accepted (Kubernetes' limit): bigger gives 413.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The query parameters any REST call may carry; unknown ones are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Params {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<String>,
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub watch: Option<String>,
    pub allow_watch_bookmarks: Option<String>,
    pub timeout_seconds: Option<String>,
    pub send_initial_events: Option<String>,
    pub dry_run: Option<String>,
    pub field_validation: Option<String>,
    pub field_manager: Option<String>,
    pub force: Option<String>,
    pub propagation_policy: Option<String>,
    pub grace_period_seconds: Option<String>,
    pub orphan_dependents: Option<String>,
    pub include_object: Option<String>,
}

/// A boolean query parameter ("true" or "1").
pub fn flag(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true" | "1"))
}

impl Params {
    pub fn parse(uri: &http::Uri) -> Result<Self, ApiError> {
        let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?
            .0;
        // Repeated parameters (e.g. dryRun=All&dryRun=All) keep their first value.
        let mut map = serde_json::Map::new();
        for (k, v) in pairs {
            map.entry(k).or_insert(Value::String(v));
        }
        serde_json::from_value(Value::Object(map))
            .map_err(|e| ApiError::bad_request(format!("invalid query parameters: {e}")))
    }

    fn number<T: std::str::FromStr>(v: &Option<String>, name: &str) -> Result<Option<T>, ApiError> {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid {name} \"{s}\"")))
            })
            .transpose()
    }

    pub fn limit(&self) -> Result<Option<i64>, ApiError> {
        Self::number(&self.limit, "limit")
    }

    pub fn timeout_seconds(&self) -> Result<Option<u64>, ApiError> {
        Self::number(&self.timeout_seconds, "timeoutSeconds")
    }

    pub fn grace_period_seconds(&self) -> Result<Option<i64>, ApiError> {
        Self::number(&self.grace_period_seconds, "gracePeriodSeconds")
    }

    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.dry_run.as_deref() {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "unsupported dryRun value \"{other}\": only \"All\" is supported"
            ))),
        }
    }
}

/// The media type of a request body, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|| "application/json".into())
}

/// Decodes a request body holding one object: JSON, YAML or Kubernetes protobuf.
pub fn decode_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = match content_type(headers).as_str() {
        "application/vnd.kubernetes.protobuf" => crate::protobuf::decode(body)?,
        "application/yaml" | "application/apply-patch+yaml" => crate::yaml::parse(body)?,
        _ => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("error decoding request body as JSON: {e}"))
        })?,
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(v)
}

/// What the client asked the reply to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Object,
    Table,
    PartialMetadata,
}

pub fn negotiate(headers: &HeaderMap) -> Want {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // The first acceptable alternative wins, as the client listed them by preference.
    for alt in accept.split(',') {
        let alt = alt.replace(' ', "");
        if alt.contains("as=Table") && alt.contains("g=meta.k8s.io") {
            return Want::Table;
        }
        if alt.contains("as=PartialObjectMetadata") && alt.contains("g=meta.k8s.io") {
            return Want::PartialMetadata;
        }
        if alt.starts_with("application/json") || alt.starts_with("*/*") || alt.is_empty() {
            return Want::Object;
        }
    }
    Want::Object
}

/// A JSON reply.
pub fn json(code: u16, body: &Value) -> Response {
    json_with_type(code, body, "application/json")
}

pub fn json_with_type(code: u16, body: &Value, content_type: &str) -> Response {
    bytes_with_type(
        code,
        serde_json::to_vec(body).unwrap_or_default(),
        content_type,
    )
}

/// A JSON reply from already encoded bytes.
pub fn json_bytes(code: u16, body: Vec<u8>) -> Response {
    bytes_with_type(code, body, "application/json")
}

fn bytes_with_type(code: u16, bytes: Vec<u8>, content_type: &str) -> Response {
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("static type"),
    );
    r
}

/// Text of all warning headers of one response, in characters (kube-apiserver's limit).
const WARNINGS_TOTAL: usize = 4 * 1024;
/// One warning's text once the total is exceeded (kube-apiserver's limit).
const WARNING_ITEM: usize = 256;
/// Most warning headers on one response: Python's `http.client` refuses a response with
/// more than 100 headers in all.
const WARNINGS_MAX: usize = 50;

/// Adds `Warning: 299 - "<text>"` headers, deduplicated and capped as kube-apiserver caps
/// them: up to 4 KiB of text; past that each warning is cut to 256 characters and those
/// that still do not fit (or exceed [`WARNINGS_MAX`]) are replaced by one warning counting
/// them.
pub fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    let mut unique: Vec<&str> = Vec::new();
    for w in warnings.iter().filter(|w| !w.is_empty()) {
        if !unique.contains(&w.as_str()) {
            unique.push(w);
        }
    }
    let total: usize = unique.iter().map(|w| w.chars().count()).sum();
    let (texts, omitted) = if total <= WARNINGS_TOTAL && unique.len() <= WARNINGS_MAX {
        (unique.iter().map(|w| w.to_string()).collect::<Vec<_>>(), 0)
    } else {
        // Room for the count warning at the end.
        let budget = WARNINGS_TOTAL - 64;
        let mut written = 0;
        let mut kept = Vec::new();
        for w in &unique {
            let cut: String = w.chars().take(WARNING_ITEM).collect();
            let len = cut.chars().count();
            if written + len > budget || kept.len() + 1 >= WARNINGS_MAX {
                break;
            }
            written += len;
            kept.push(cut);
        }
        let omitted = unique.len() - kept.len();
        (kept, omitted)
    };
    let mut texts = texts;
    if omitted > 0 {
        texts.push(format!("{omitted} more warnings were omitted"));
    }
    for w in texts {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            r.headers_mut().append("Warning", v);
        }
    }
    r
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::to_vec(&self.status()).unwrap_or_default();
        body.push(b'\n');
        let mut r = bytes_with_type(self.code, body, "application/json");
        if self.retry_after_seconds > 0 {
            r.headers_mut()
                .insert(http::header::RETRY_AFTER, self.retry_after_seconds.into());
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_parse_kubectl_queries() {
        let uri: http::Uri =
            "/api/v1/pods?labelSelector=app%3Dweb&limit=500&watch=true&dryRun=All&dryRun=All&timeout=32s".parse().unwrap();
        let p = Params::parse(&uri).unwrap();
        assert_eq!(p.label_selector.as_deref(), Some("app=web"));
        assert_eq!(p.limit().unwrap(), Some(500));
        assert!(flag(&p.watch));
        assert!(p.dry_run().unwrap());
    }

    #[test]
    fn table_accept_is_recognised() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
                .parse()
                .unwrap(),
        );
        assert_eq!(negotiate(&h), Want::Table);
        h.insert(http::header::ACCEPT, "application/json".parse().unwrap());
        assert_eq!(negotiate(&h), Want::Object);
    }

    fn warning_headers(warnings: &[String]) -> Vec<String> {
        with_warnings(Response::new(Body::empty()), warnings)
            .headers()
            .get_all("Warning")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn warnings_are_deduplicated_escaped_and_capped() {
        let few = vec![
            r#"unknown field "spec.foo""#.to_string(),
            r#"unknown field "spec.foo""#.to_string(),
        ];
        assert_eq!(
            warning_headers(&few),
            [r#"299 - "unknown field \"spec.foo\"""#]
        );
        // 60,000 unknown fields gave 3.6 MB of headers; 150 broke Python clients.
        let many: Vec<String> = (0..60_000)
            .map(|i| format!("unknown field \"x{i}\""))
            .collect();
        let headers = warning_headers(&many);
        assert!(headers.len() <= WARNINGS_MAX, "{}", headers.len());
        let bytes: usize = headers.iter().map(String::len).sum();
        assert!(bytes < 2 * WARNINGS_TOTAL, "{bytes}");
        assert_eq!(headers[0], r#"299 - "unknown field \"x0\"""#);
        let last = headers.last().unwrap();
        let omitted = 60_000 - (headers.len() - 1);
        assert_eq!(
            last,
            &format!("299 - \"{omitted} more warnings were omitted\"")
        );
        // Long warnings are cut to 256 characters once the total is exceeded.
        let long: Vec<String> = (0..40)
            .map(|i| format!("{i}{}", "y".repeat(1000)))
            .collect();
        let headers = warning_headers(&long);
        assert!(headers[..headers.len() - 1]
            .iter()
            .all(|h| h.len() == "299 - \"\"".len() + WARNING_ITEM));
    }

    #[test]
    fn rejects_garbage_body() {
        let h = HeaderMap::new();
        assert_eq!(decode_object(&h, b"{not json").unwrap_err().code, 400);
        assert_eq!(decode_object(&h, b"[1]").unwrap_err().code, 400);
    }
}
