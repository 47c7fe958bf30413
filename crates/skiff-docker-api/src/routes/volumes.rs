//! `/volumes/…`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use skiff_engine::models::{VolumeCreateRequest, VolumeListResponse};
use skiff_engine::{Engine, Filters};

use crate::error::ApiResult;
use crate::params::{DockerJson, Params};

type Eng = State<Arc<Engine>>;

pub async fn list(State(engine): Eng, params: Params) -> ApiResult<Response> {
    let filters = Filters::parse(params.str("filters"))?;
    let volumes = engine.volume_list(&filters).await?;
    Ok(Json(VolumeListResponse {
        volumes: Some(volumes),
        warnings: Some(vec![]),
    })
    .into_response())
}

pub async fn create(
    State(engine): Eng,
    DockerJson(body): DockerJson<Option<VolumeCreateRequest>>,
) -> ApiResult<Response> {
    let volume = engine.volume_create(body.unwrap_or_default()).await?;
    Ok((StatusCode::CREATED, Json(volume)).into_response())
}

pub async fn inspect(State(engine): Eng, Path(name): Path<String>) -> ApiResult<Response> {
    Ok(Json(engine.volume_inspect(&name).await?).into_response())
}

pub async fn remove(
    State(engine): Eng,
    Path(name): Path<String>,
    params: Params,
) -> ApiResult<StatusCode> {
    engine.volume_remove(&name, params.bool("force")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn prune(State(engine): Eng, params: Params) -> ApiResult<Response> {
    let filters = Filters::parse(params.str("filters"))?;
    Ok(Json(engine.volume_prune(&filters).await?).into_response())
}
