//! `/networks/…`: create, list, inspect, remove, prune, connect and disconnect.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use skiff_engine::models::{NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest};
use skiff_engine::{Engine, Filters};

use crate::error::{ApiError, ApiResult};
use crate::params::{DockerJson, Params};

type Eng = State<Arc<Engine>>;

pub async fn list(State(engine): Eng, params: Params) -> ApiResult<Response> {
    let filters = Filters::parse(params.str("filters"))?;
    Ok(Json(engine.network_list(&filters).await?).into_response())
}

pub async fn inspect(
    State(engine): Eng,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    // `verbose` only adds swarm services; it must still be a boolean.
    params.bool("verbose")?;
    if let Some(scope) = params.str("scope") {
        if scope != "local" {
            return Err(ApiError::new(
                skiff_core::ErrorKind::NotFound,
                format!("network {id} not found"),
            ));
        }
    }
    Ok(Json(engine.network_inspect(&id).await?).into_response())
}

pub async fn create(
    State(engine): Eng,
    DockerJson(body): DockerJson<Option<NetworkCreateRequest>>,
) -> ApiResult<Response> {
    let body = body.ok_or_else(|| ApiError::bad_request("invalid JSON: the body is empty"))?;
    let created = engine.network_create(body).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub async fn remove(State(engine): Eng, Path(id): Path<String>) -> ApiResult<StatusCode> {
    engine.network_remove(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn prune(State(engine): Eng, params: Params) -> ApiResult<Response> {
    let filters = Filters::parse(params.str("filters"))?;
    Ok(Json(engine.network_prune(&filters).await?).into_response())
}

pub async fn connect(
    State(engine): Eng,
    Path(id): Path<String>,
    DockerJson(body): DockerJson<Option<NetworkConnectRequest>>,
) -> ApiResult<StatusCode> {
    let body = body.ok_or_else(|| ApiError::bad_request("invalid JSON: the body is empty"))?;
    engine.network_connect(&id, body).await?;
    Ok(StatusCode::OK)
}

pub async fn disconnect(
    State(engine): Eng,
    Path(id): Path<String>,
    DockerJson(body): DockerJson<Option<NetworkDisconnectRequest>>,
) -> ApiResult<StatusCode> {
    let body = body.ok_or_else(|| ApiError::bad_request("invalid JSON: the body is empty"))?;
    engine.network_disconnect(&id, body).await?;
    Ok(StatusCode::OK)
}
