//! `/containers/{id}/archive` (`docker cp`): stat in the `X-Docker-Container-Path-Stat` header
//! (base64 of JSON), tar bodies streamed both ways.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::TryStreamExt;
use http::{header, HeaderValue, StatusCode};
use skiff_engine::{ByteStream, Engine, PathStat};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;

type Eng = State<Arc<Engine>>;

const STAT_HEADER: &str = "x-docker-container-path-stat";

fn path_param(params: &Params) -> ApiResult<&str> {
    params
        .str("path")
        .ok_or_else(|| ApiError::bad_request("path cannot be empty"))
}

fn stat_header(stat: &PathStat) -> ApiResult<HeaderValue> {
    let json = serde_json::to_vec(stat).map_err(|e| {
        ApiError::new(
            skiff_core::ErrorKind::Internal,
            format!("encoding path stat: {e}"),
        )
    })?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(json);
    HeaderValue::from_str(&encoded).map_err(|e| {
        ApiError::new(
            skiff_core::ErrorKind::Internal,
            format!("encoding path stat: {e}"),
        )
    })
}

/// A request body as the engine's byte stream, never buffered whole.
pub fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}

pub async fn head(
    State(engine): Eng,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let stat = engine
        .container_archive_stat(&id, path_param(&params)?)
        .await?;
    Ok(([(STAT_HEADER, stat_header(&stat)?)], StatusCode::OK).into_response())
}

pub async fn get(
    State(engine): Eng,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let (stat, tar) = engine
        .container_archive_get(&id, path_param(&params)?)
        .await?;
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-tar"),
        ),
        (
            header::HeaderName::from_static(STAT_HEADER),
            stat_header(&stat)?,
        ),
    ];
    Ok((headers, Body::from_stream(tar)).into_response())
}

pub async fn put(
    State(engine): Eng,
    Path(id): Path<String>,
    params: Params,
    body: Body,
) -> ApiResult<StatusCode> {
    let no_overwrite = params.bool("noOverwriteDirNonDir")?;
    engine
        .container_archive_put(&id, path_param(&params)?, body_stream(body), no_overwrite)
        .await?;
    Ok(StatusCode::OK)
}
