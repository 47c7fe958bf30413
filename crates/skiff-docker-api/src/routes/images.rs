//! `/images/…`: list, inspect, history, tag, remove, prune, load, save, import (pull and push
//! are in [`super::distribution`]). Image names may contain slashes, so the per-image routes
//! take the rest of the path and split off the verb.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{header, HeaderMap, StatusCode};
use skiff_core::ErrorKind;
use skiff_engine::{Engine, Filters};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::routes::archive::body_stream;
use crate::stream::json_lines;

type Eng = State<Arc<Engine>>;

pub async fn list(State(engine): Eng, params: Params) -> ApiResult<Response> {
    let filters = Filters::parse(params.str("filters"))?;
    Ok(Json(engine.image_list(params.bool("all")?, &filters).await?).into_response())
}

fn not_found() -> ApiError {
    ApiError::new(ErrorKind::NotFound, "page not found")
}

/// `GET /images/{name}/json|history|get`.
pub async fn get_by_name(State(engine): Eng, Path(rest): Path<String>) -> ApiResult<Response> {
    if let Some(name) = rest.strip_suffix("/json") {
        return Ok(Json(engine.image_inspect(name).await?).into_response());
    }
    if let Some(name) = rest.strip_suffix("/history") {
        return Ok(Json(engine.image_history(name).await?).into_response());
    }
    if let Some(name) = rest.strip_suffix("/get") {
        return save_names(&engine, vec![name.to_owned()]).await;
    }
    Err(not_found())
}

/// `POST /images/{name}/tag?repo=&tag=` and `POST /images/{name}/push?tag=`.
pub async fn post_by_name(
    State(engine): Eng,
    Path(rest): Path<String>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    if let Some(name) = rest.strip_suffix("/tag") {
        let repo = params.str("repo").ok_or_else(|| {
            ApiError::bad_request("repository name must have at least one component")
        })?;
        engine.image_tag(name, repo, params.str("tag")).await?;
        return Ok(StatusCode::CREATED.into_response());
    }
    if let Some(name) = rest.strip_suffix("/push") {
        return super::distribution::push(engine, name.to_owned(), params, headers, body).await;
    }
    Err(not_found())
}

pub async fn remove(
    State(engine): Eng,
    Path(name): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let (force, no_prune) = (params.bool("force")?, params.bool("noprune")?);
    Ok(Json(engine.image_remove(&name, force, no_prune).await?).into_response())
}

pub async fn prune(State(engine): Eng, params: Params) -> ApiResult<Response> {
    let filters = Filters::parse(params.str("filters"))?;
    Ok(Json(engine.image_prune(&filters).await?).into_response())
}

/// `POST /images/load?quiet=`: the tar body is streamed to the engine; the reply is Docker's
/// JSON message stream naming what was loaded. Like dockerd, a load that fails still answers
/// 200, with the error as the stream's last message (docker-py raises `ImageLoadError` from
/// it, the CLI prints it).
pub async fn load(State(engine): Eng, body: Body) -> ApiResult<Response> {
    let loaded = match engine.image_load(body_stream(body)).await {
        Ok(loaded) => loaded,
        Err(e) => {
            let failed: ApiResult<serde_json::Value> = Err(e.into());
            return Ok(json_lines(futures::stream::iter([failed])));
        }
    };
    let lines = loaded.into_iter().map(|name| {
        let line = if name.starts_with("sha256:") {
            format!("Loaded image ID: {name}\n")
        } else {
            format!("Loaded image: {name}\n")
        };
        Ok::<_, ApiError>(serde_json::json!({ "stream": line }))
    });
    Ok(json_lines(futures::stream::iter(lines)))
}

async fn save_names(engine: &Engine, names: Vec<String>) -> ApiResult<Response> {
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given"));
    }
    let tar = engine.image_save(&names).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(tar),
    )
        .into_response())
}

/// `GET /images/get?names=…`.
pub async fn save(State(engine): Eng, params: Params) -> ApiResult<Response> {
    save_names(&engine, params.all("names")).await
}

/// `POST /images/create`: `fromImage` pulls from a registry, `fromSrc=-` imports the body as
/// a root filesystem.
pub async fn create(
    State(engine): Eng,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    if params.str("fromImage").is_some() {
        return super::distribution::pull(engine, params, headers).await;
    }
    match params.str("fromSrc") {
        Some("-") => {}
        Some(_) => {
            return Err(ApiError::new(
                ErrorKind::NotImplemented,
                "importing from a URL is not supported by skiff yet",
            ))
        }
        None => return Err(ApiError::bad_request("fromImage or fromSrc is required")),
    }
    let reference = params.str("repo").map(|repo| match params.str("tag") {
        Some(tag) => format!("{repo}:{tag}"),
        None => repo.to_owned(),
    });
    let changes = params.all("changes");
    let id = engine
        .image_import(
            body_stream(body),
            reference.as_deref(),
            &changes,
            params.str("message"),
        )
        .await?;
    Ok(json_lines(futures::stream::iter([Ok::<_, ApiError>(
        serde_json::json!({ "status": id }),
    )])))
}
