//! OpenAPI: `/openapi/v2` (the Swagger 2.0 document of the whole API, as JSON or as the
//! gnostic protobuf kubectl asks for), `/openapi/v3` (the index of group-version documents)
//! and one v3 document per served group version. Both are complete as kube-apiserver's
//! are: collections, items, watch paths, subresources, request bodies, query parameters and
//! responses, with schemas from k8s-openapi's `schemars` implementations.
//!
//! Documents are built once per process and cached.

mod documents;
mod gnostic;
pub mod operations;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use axum::response::Response;
use http::HeaderMap;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::resources;

/// The media types of the protobuf v2 document: kubectl asks for the first, the reply is
/// labelled with the second (Go's `mime` package refuses the `@`).
const V2_PROTOBUF: &[&str] = &[
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
];

/// The served group versions as OpenAPI v3 paths (`api/v1`, `apis/apps/v1`).
fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    let served = resources::all()
        .map(|k| (k.info().group, k.info().version))
        .chain(crate::reviews::Review::ALL.map(|r| (r.info().group, r.info().version)));
    for gv in served {
        if !out.contains(&gv) {
            out.push(gv);
        }
    }
    out
}

fn path_of(group: &str, version: &str) -> String {
    operations::prefix(group, version)
        .trim_start_matches('/')
        .to_string()
}

struct Cached {
    bytes: Vec<u8>,
    hash: String,
}

impl Cached {
    fn new(bytes: Vec<u8>) -> Cached {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        Cached {
            bytes,
            hash: format!("{:016X}", h.finish()),
        }
    }

    fn reply(&self, content_type: &'static str) -> Response {
        let mut r = Response::new(axum::body::Body::from(self.bytes.clone()));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        if let Ok(etag) = http::HeaderValue::from_str(&format!("\"{}\"", self.hash)) {
            r.headers_mut().insert(http::header::ETAG, etag);
        }
        r
    }
}

fn v3_documents() -> &'static BTreeMap<String, Cached> {
    static DOCS: OnceLock<BTreeMap<String, Cached>> = OnceLock::new();
    DOCS.get_or_init(|| {
        group_versions()
            .into_iter()
            .map(|(g, v)| {
                let bytes = serde_json::to_vec(&documents::v3(g, v)).unwrap_or_default();
                (path_of(g, v), Cached::new(bytes))
            })
            .collect()
    })
}

/// The v2 document as JSON and as protobuf.
fn v2_documents() -> &'static (Cached, Cached) {
    static DOCS: OnceLock<(Cached, Cached)> = OnceLock::new();
    DOCS.get_or_init(|| {
        let doc = documents::v2();
        let json = serde_json::to_vec(&doc).unwrap_or_default();
        (Cached::new(json), Cached::new(gnostic::encode(&doc)))
    })
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(',')
        .map(|alt| alt.split(';').next().unwrap_or("").trim())
        .take_while(|alt| !alt.starts_with("application/json"))
        .any(|alt| V2_PROTOBUF.contains(&alt))
}

pub fn serve(segs: &[String], headers: &HeaderMap) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    match segs.first().map(String::as_str) {
        Some("v2") if segs.len() == 1 => {
            let (json, protobuf) = v2_documents();
            Ok(if wants_protobuf(headers) {
                protobuf.reply(V2_PROTOBUF[1])
            } else {
                json.reply("application/json")
            })
        }
        Some("v3") if segs.len() == 1 => {
            let paths: serde_json::Map<String, Value> = v3_documents()
                .iter()
                .map(|(p, c)| {
                    (
                        p.clone(),
                        json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", c.hash)}),
                    )
                })
                .collect();
            Ok(crate::http::json(200, &json!({"paths": paths})))
        }
        Some("v3") => v3_documents()
            .get(&segs[1..].join("/"))
            .map(|d| d.reply("application/json"))
            .ok_or_else(not_found),
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_points_at_every_group_version() {
        let docs = v3_documents();
        for gv in [
            "api/v1",
            "apis/autoscaling/v1",
            "apis/batch/v1",
            "apis/metrics.k8s.io/v1beta1",
            "apis/authentication.k8s.io/v1",
            "apis/authorization.k8s.io/v1",
        ] {
            assert!(docs.contains_key(gv), "{gv}");
        }
    }

    #[test]
    fn kubectl_gets_protobuf_when_it_asks() {
        let mut h = HeaderMap::new();
        assert!(!wants_protobuf(&h));
        h.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static(V2_PROTOBUF[0]),
        );
        assert!(wants_protobuf(&h));
        let r = serve(&["v2".to_string()], &h).unwrap();
        assert_eq!(r.headers()[http::header::CONTENT_TYPE], V2_PROTOBUF[1]);
    }
}
