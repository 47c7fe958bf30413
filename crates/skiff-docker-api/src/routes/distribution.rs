//! Registry routes: `POST /images/create?fromImage=` (pull; without a tag every tag, as
//! `docker pull --all-tags`), `POST /images/{name}/push`
//! and `POST /auth`.
//!
//! Pull and push answer Docker's JSON progress stream. As dockerd does, a failure before the
//! first progress message (an unknown tag, bad credentials, an unreachable registry) is an
//! HTTP error with its status code, and a failure after it is the stream's last message,
//! `{"errorDetail":{"message":…},"error":…}`, which the docker CLI prints before exiting 1.
//! The work runs on a task of its own and is cancelled when the client goes away.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use http::HeaderMap;
use skiff_core::ErrorKind;
use skiff_engine::registry::{Credentials, Platform, Progress, PullOptions, PushOptions};
use skiff_engine::{Engine, ImageRef};
use tokio::sync::mpsc;

use crate::error::{ApiError, ApiResult};
use crate::params::{read_limited, Params, MAX_JSON_BODY};
use crate::stream::json_lines;

/// Docker's header carrying base64url JSON credentials.
const AUTH_HEADER: &str = "x-registry-auth";

/// What the working task reports.
enum Event {
    Progress(Progress),
    Done(ApiResult<()>),
}

/// Credentials from `X-Registry-Auth`. Like dockerd, an undecodable header is ignored (the
/// request goes on anonymously and the registry says what it needs).
fn header_credentials(headers: &HeaderMap) -> Option<Credentials> {
    let value = headers.get(AUTH_HEADER)?.to_str().ok()?;
    match Credentials::from_header(value) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::debug!(error = %e, "ignoring an undecodable X-Registry-Auth header");
            None
        }
    }
}

/// `POST /images/create?fromImage=NAME&tag=TAG&platform=OS/ARCH`.
pub async fn pull(engine: Arc<Engine>, params: Params, headers: HeaderMap) -> ApiResult<Response> {
    // `docker pull -a` sends a trailing ':' (dockerd trims it too).
    let image = params
        .str("fromImage")
        .unwrap_or_default()
        .trim_end_matches(':');
    let last = image.rsplit('/').next().unwrap_or(image);
    // No tag anywhere: dockerd pulls every tag of the repository (`docker pull --all-tags`).
    let all_tags = params.str("tag").is_none() && !last.contains(':') && !image.contains('@');
    let reference = ImageRef::with_tag_param(image, params.str("tag"))
        .map_err(|e| ApiError::from_kinded(&e))?;
    let platform = params
        .str("platform")
        .map(Platform::parse)
        .transpose()
        .map_err(|e| ApiError::from_kinded(&e))?;
    let opts = PullOptions {
        credentials: header_credentials(&headers).unwrap_or_default(),
        platform,
    };
    progress_response(move |sink| async move {
        if all_tags {
            engine
                .image_pull_all_tags(&reference, &opts, &*sink)
                .await
                .map(drop)
                .map_err(pull_error)
        } else {
            engine
                .image_pull(&reference, &opts, &*sink)
                .await
                .map(drop)
                .map_err(pull_error)
        }
    })
    .await
}

/// dockerd answers a pull the registry refused with 404 (`pull access denied for …`), never
/// with 401: the docker CLI takes a 401 to a pull as its cue to prompt for a login and retry.
fn pull_error(e: skiff_engine::EngineError) -> ApiError {
    let e = ApiError::from(e);
    if e.kind() == ErrorKind::Unauthorized {
        return ApiError::new(ErrorKind::NotFound, e.to_string());
    }
    e
}

/// `POST /images/{name}/push?tag=`: credentials from `X-Registry-Auth`, else (old clients)
/// from a JSON body.
pub async fn push(
    engine: Arc<Engine>,
    name: String,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let credentials = match headers.get(AUTH_HEADER) {
        Some(_) => header_credentials(&headers).unwrap_or_default(),
        None => {
            let bytes = read_limited(body, MAX_JSON_BODY).await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                Credentials::anonymous()
            } else {
                Credentials::from_json(&bytes).map_err(|e| {
                    ApiError::bad_request(format!(
                        "bad parameters and missing X-Registry-Auth: {e}"
                    ))
                })?
            }
        }
    };
    let tag = params.str("tag").map(str::to_owned);
    let opts = PushOptions { credentials };
    progress_response(move |sink| async move {
        engine
            .image_push(&name, tag.as_deref(), &opts, &*sink)
            .await
            .map(drop)
            .map_err(ApiError::from)
    })
    .await
}

/// `GET /images/search?term=&limit=`: the registry's results, or its refusal
/// (`Unexpected status code 404` from a registry without the search API, as dockerd).
pub async fn search(
    State(engine): State<Arc<Engine>>,
    params: Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let term = params.str("term").unwrap_or_default();
    let limit = params
        .str("limit")
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))
        })
        .transpose()?;
    let credentials = header_credentials(&headers).unwrap_or_default();
    let results = engine.image_search(term, limit, &credentials).await?;
    Ok(Json(results).into_response())
}

/// `POST /auth`: `{"Status":"Login Succeeded","IdentityToken":""}`, or Docker's error
/// (401 for bad credentials).
pub async fn auth(State(engine): State<Arc<Engine>>, body: Body) -> ApiResult<Response> {
    let bytes = read_limited(body, MAX_JSON_BODY).await?;
    let credentials = Credentials::from_json(&bytes).map_err(|e| ApiError::from_kinded(&e))?;
    let outcome = engine.registry_login(&credentials).await?;
    Ok(Json(serde_json::json!({
        "Status": outcome.status,
        "IdentityToken": "",
    }))
    .into_response())
}

/// A progress sink that forwards to the response.
type Sink = Box<dyn Fn(Progress) + Send + Sync>;

/// Runs `work` on its own task with a sink feeding the response, and answers once its first
/// message (or its failure) is known.
async fn progress_response<F, Fut>(work: F) -> ApiResult<Response>
where
    F: FnOnce(Sink) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ApiResult<()>> + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let progress_tx = tx.clone();
    let sink: Sink = Box::new(move |p| {
        let _ = progress_tx.send(Event::Progress(p));
    });
    let task = tokio::spawn(async move {
        let result = work(sink).await;
        let _ = tx.send(Event::Done(result));
    });
    let guard = AbortOnDrop(task);
    let first = match rx.recv().await {
        Some(Event::Done(Err(e))) => return Err(e),
        Some(event) => event,
        None => {
            return Err(ApiError::new(
                ErrorKind::Internal,
                "the registry task ended without an answer",
            ))
        }
    };
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (event, rx))
    });
    let lines = futures::stream::once(async { first })
        .chain(rest)
        .filter_map(move |event| {
            // The guard lives as long as the response body: a client that hangs up cancels
            // the work.
            let _guard = &guard;
            futures::future::ready(match event {
                Event::Progress(p) => Some(Ok(p)),
                Event::Done(Ok(())) => None,
                Event::Done(Err(e)) => Some(Err(e)),
            })
        });
    Ok(json_lines(lines))
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
