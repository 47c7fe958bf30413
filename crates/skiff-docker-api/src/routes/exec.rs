//! `/containers/{id}/exec` and `/exec/…`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use skiff_engine::models::{ExecConfig, ExecStartConfig};
use skiff_engine::Engine;

use crate::error::{ApiError, ApiResult};
use crate::hijack::Hijack;
use crate::params::{DockerJson, Params};
use crate::routes::containers::size;

type Eng = State<Arc<Engine>>;

/// The exec config of a request. Docker decodes JSON keys case-insensitively and docker-py
/// sends `detachKeys` (from its config's `detachKeys` too): that spelling is accepted.
fn exec_config(mut body: serde_json::Value) -> ApiResult<ExecConfig> {
    if let Some(object) = body.as_object_mut() {
        if !object.contains_key("DetachKeys") {
            let other = object
                .keys()
                .find(|k| k.eq_ignore_ascii_case("DetachKeys"))
                .cloned();
            if let Some(key) = other {
                let value = object.remove(&key).unwrap_or_default();
                object.insert("DetachKeys".into(), value);
            }
        }
    }
    serde_json::from_value(body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

pub async fn create(
    State(engine): Eng,
    Path(id): Path<String>,
    DockerJson(body): DockerJson<Option<serde_json::Value>>,
) -> ApiResult<Response> {
    let config = body
        .filter(|b| !b.is_null())
        .map(exec_config)
        .transpose()?
        .ok_or_else(|| ApiError::bad_request("exec config cannot be empty"))?;
    if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    let exec_id = engine.exec_create(&id, config).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "Id": exec_id })),
    )
        .into_response())
}

pub async fn start(
    State(engine): Eng,
    Path(id): Path<String>,
    hijack: Hijack,
    DockerJson(config): DockerJson<Option<ExecStartConfig>>,
) -> ApiResult<Response> {
    let config = config.unwrap_or_default();
    if config.detach.unwrap_or(false) {
        engine.exec_start(&id, &config).await?;
        return Ok(StatusCode::OK.into_response());
    }
    // Unknown execs are refused before the switch; the process starts after it.
    let exec = engine.exec_inspect(&id).await?;
    let tty = config
        .tty
        .or(exec.process_config.as_ref().and_then(|p| p.tty))
        .unwrap_or(false);
    Ok(hijack.respond_deferred(tty, async move {
        engine.exec_start(&id, &config).await?.ok_or_else(|| {
            ApiError::new(
                skiff_core::ErrorKind::Internal,
                "exec started without its stdio",
            )
        })
    }))
}

pub async fn inspect(State(engine): Eng, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(engine.exec_inspect(&id).await?).into_response())
}

pub async fn resize(
    State(engine): Eng,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<StatusCode> {
    let (h, w) = size(&params)?;
    engine.exec_resize(&id, h, w).await?;
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_are_read_in_any_case() {
        let c = exec_config(serde_json::json!({"Cmd": ["sh"], "detachKeys": "ctrl-x,x"})).unwrap();
        assert_eq!(c.detach_keys.as_deref(), Some("ctrl-x,x"));
        let c = exec_config(serde_json::json!({"DetachKeys": "a", "detachkeys": "b"})).unwrap();
        assert_eq!(c.detach_keys.as_deref(), Some("a"));
        assert!(exec_config(serde_json::json!({"Cmd": "not a list"})).is_err());
    }
}
