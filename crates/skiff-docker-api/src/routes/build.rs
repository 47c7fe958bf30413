//! `POST /build` (the classic builder: a tar context in the body, Docker's JSON message
//! stream back) and `POST /build/prune`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use futures::StreamExt;
use skiff_core::ErrorKind;
use skiff_engine::registry::Credentials;
use skiff_engine::{BuildMessage, BuildRequest, Engine};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::routes::archive::body_stream;
use crate::stream::json_lines;

/// A JSON-object parameter (`buildargs`, `labels`); `null` values (an arg the client left
/// unset) are dropped.
fn json_map(params: &Params, key: &str) -> ApiResult<BTreeMap<String, String>> {
    let Some(raw) = params.str(key) else {
        return Ok(BTreeMap::new());
    };
    let map: BTreeMap<String, Option<String>> = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid {key} parameter: {e}")))?;
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect())
}

/// `X-Registry-Config`: base64 (URL-safe) JSON of credentials per registry, which the docker
/// CLI sends with every build. Undecodable, it is ignored (pulls go on anonymously), as
/// dockerd does.
fn registry_config(headers: &HeaderMap) -> HashMap<String, Credentials> {
    let Some(value) = headers
        .get("x-registry-config")
        .and_then(|v| v.to_str().ok())
    else {
        return HashMap::new();
    };
    let engines = [
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD,
    ];
    let Some(bytes) = engines.iter().find_map(|e| e.decode(value.trim()).ok()) else {
        tracing::debug!("ignoring an undecodable X-Registry-Config header");
        return HashMap::new();
    };
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        tracing::debug!(error = %e, "ignoring an unreadable X-Registry-Config header");
        HashMap::new()
    })
}

pub async fn build(
    State(engine): State<Arc<Engine>>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    if params.str("remote").is_some() {
        return Err(ApiError::new(
            ErrorKind::NotImplemented,
            "remote build contexts are not supported: skiff has no network access to fetch them; send the context as a tar",
        ));
    }
    if params.str("version") == Some("2") {
        return Err(ApiError::new(
            ErrorKind::NotImplemented,
            "BuildKit is not supported by skiff: use the classic builder (DOCKER_BUILDKIT=0)",
        ));
    }
    let request = BuildRequest {
        tags: params.all("t"),
        dockerfile: params.str("dockerfile").map(str::to_owned),
        target: params.str("target").map(str::to_owned),
        build_args: json_map(&params, "buildargs")?,
        labels: json_map(&params, "labels")?,
        no_cache: params.bool("nocache")?,
        pull: params.bool("pull")?,
        quiet: params.bool("q")?,
        network: params.str("networkmode").map(str::to_owned),
        registry_auth: registry_config(&headers),
    };
    let stream = engine.build(request, body_stream(body))?;
    let lines = stream.map(|m| {
        m.map(|m| match m {
            BuildMessage::Stream(text) => serde_json::json!({ "stream": text }),
            BuildMessage::Aux { id } => serde_json::json!({ "aux": { "ID": id } }),
            BuildMessage::Progress(p) => serde_json::to_value(p).unwrap_or_default(),
        })
        .map_err(ApiError::from)
    });
    Ok(json_lines(lines))
}

/// `POST /build/prune` (`docker builder prune`): the cache index is forgotten; the images
/// it named stay until pruned as images.
pub async fn prune(State(engine): State<Arc<Engine>>) -> ApiResult<Response> {
    engine.build_prune()?;
    Ok(Json(serde_json::json!({ "CachesDeleted": [], "SpaceReclaimed": 0 })).into_response())
}
