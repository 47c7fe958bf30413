//! `/containers/{id}/archive` (`docker cp`): stat in the `X-Docker-Container-Path-Stat` header
//! (base64 of JSON), tar bodies streamed both ways; `/containers/{id}/export` (`docker
//! export`): the container's filesystem as one streamed tar.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
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
///
/// If the engine stops reading before the end (a tar's end marker comes before the client's
/// record padding; a build fails at `FROM`), the rest is read in the background when the stream
/// is dropped — up to [`DRAIN_LIMIT`] bytes or [`DRAIN_TIME`], as Go's net/http server does.
/// Closing a socket with unread data makes the kernel answer with a reset, which throws away the
/// response the client has not read yet: the docker CLI then reports "use of closed network
/// connection" or "broken pipe" instead of skiff's answer.
pub fn body_stream(body: Body) -> ByteStream {
    Box::pin(DrainOnDrop {
        inner: Some(body.into_data_stream()),
        runtime: tokio::runtime::Handle::try_current().ok(),
    })
}

const DRAIN_LIMIT: usize = 8 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

struct DrainOnDrop {
    /// `None` once the body has ended.
    inner: Option<axum::body::BodyDataStream>,
    /// Where the drain runs: the stream may be dropped on a blocking thread.
    runtime: Option<tokio::runtime::Handle>,
}

impl futures::Stream for DrainOnDrop {
    type Item = std::io::Result<bytes::Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        let next = futures::ready!(std::pin::Pin::new(inner).poll_next(cx));
        if next.is_none() {
            self.inner = None;
        }
        std::task::Poll::Ready(next.map(|r| r.map_err(std::io::Error::other)))
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let (Some(mut rest), Some(runtime)) = (self.inner.take(), self.runtime.take()) else {
            return;
        };
        runtime.spawn(async move {
            let drain = async {
                let mut read = 0;
                while let Some(Ok(chunk)) = futures::StreamExt::next(&mut rest).await {
                    read += chunk.len();
                    if read > DRAIN_LIMIT {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        });
    }
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

/// `GET /containers/{id}/export`: a tar of the container's root filesystem.
pub async fn export(State(engine): Eng, Path(id): Path<String>) -> ApiResult<Response> {
    let tar = engine.container_export(&id).await?;
    let headers = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    )];
    Ok((headers, Body::from_stream(tar)).into_response())
}
