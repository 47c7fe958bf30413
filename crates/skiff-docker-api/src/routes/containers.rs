//! `/containers/…`: lifecycle, inspection, logs, attach, stats. Each handler decodes the
//! request, makes one engine call and encodes the answer.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{FutureExt, StreamExt};
use http::{header, StatusCode};
use skiff_engine::models::{
    ContainerConfig, ContainerCreateBody, ContainerUpdateBody, ContainerWaitResponse,
};
use skiff_engine::{
    AttachOptions, CommitOptions, Engine, Filters, ListOptions, LogOptions, LogStream,
    WaitCondition,
};

use crate::error::{ApiError, ApiResult};
use crate::hijack::Hijack;
use crate::params::{DockerJson, Params};
use crate::routes::system::parse_timestamp;
use crate::stream::{encode, json_lines, StdStream, MULTIPLEXED, RAW_STREAM};

type Eng = State<Arc<Engine>>;

/// 204 when the operation happened, 304 when the container was already in the wanted state.
fn done_or_unchanged(changed: bool) -> StatusCode {
    if changed {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }
}

/// moby's refusal of a restart policy name it does not know, before the body is typed (the
/// typed decode would only say "unknown variant").
fn check_restart_policy(policy: Option<&serde_json::Value>) -> Result<(), ApiError> {
    match policy.and_then(|p| p.get("Name")).and_then(|n| n.as_str()) {
        Some("" | "no" | "always" | "on-failure" | "unless-stopped") | None => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        ))),
    }
}

/// Decodes a JSON body checked by [`check_restart_policy`] first.
fn typed<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

pub async fn create(
    State(engine): Eng,
    params: Params,
    DockerJson(body): DockerJson<Option<serde_json::Value>>,
) -> ApiResult<Response> {
    let body = body.filter(|b| !b.is_null()).ok_or_else(|| {
        ApiError::bad_request("config cannot be empty in order to create a container")
    })?;
    check_restart_policy(body.get("HostConfig").and_then(|h| h.get("RestartPolicy")))?;
    let body: ContainerCreateBody = typed(body)?;
    let created = engine
        .container_create(params.str("name"), body, params.str("platform"))
        .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub async fn list(State(engine): Eng, params: Params) -> ApiResult<Response> {
    let opts = ListOptions {
        all: params.bool("all")?,
        limit: params.num("limit")?,
        size: params.bool("size")?,
        filters: Filters::parse(params.str("filters"))?,
    };
    Ok(Json(engine.container_list(&opts).await?).into_response())
}

pub async fn inspect(
    State(engine): Eng,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let inspected = engine.container_inspect(&id, params.bool("size")?).await?;
    let mut value = serde_json::to_value(&inspected).map_err(|e| {
        ApiError::new(
            skiff_core::ErrorKind::Internal,
            format!("encoding the inspect result: {e}"),
        )
    })?;
    always_present(&mut value);
    if let Some(ns) = value
        .get_mut("NetworkSettings")
        .and_then(serde_json::Value::as_object_mut)
    {
        legacy_network_settings(ns);
    }
    Ok(Json(value).into_response())
}

/// Fields moby's types always encode (no `omitempty`), as null when unset: clients index them
/// (`attrs["Config"]["Entrypoint"]`, `{{range .HostConfig.CapAdd}}`) without checking first.
fn always_present(value: &mut serde_json::Value) {
    const FIELDS: [(&str, &[&str]); 3] = [
        ("", &["ExecIDs"]),
        ("Config", &["Entrypoint", "Volumes"]),
        (
            "HostConfig",
            &[
                "MemorySwappiness",
                "CapAdd",
                "CapDrop",
                "DeviceCgroupRules",
                "DeviceRequests",
                "ExtraHosts",
                "GroupAdd",
                "Links",
                "SecurityOpt",
                "VolumesFrom",
                "MaskedPaths",
                "ReadonlyPaths",
            ],
        ),
    ];
    for (object, keys) in FIELDS {
        let target = if object.is_empty() {
            Some(&mut *value)
        } else {
            value.get_mut(object)
        };
        if let Some(map) = target.and_then(serde_json::Value::as_object_mut) {
            for key in keys {
                map.entry(key.to_string())
                    .or_insert(serde_json::Value::Null);
            }
        }
    }
}

/// The fields API versions before 1.52 still show at the top of `NetworkSettings`: the
/// container's endpoint on the default `bridge` network (empty on other networks), which
/// `docker inspect -f '{{.NetworkSettings.IPAddress}}'` and older clients read.
fn legacy_network_settings(ns: &mut serde_json::Map<String, serde_json::Value>) {
    use serde_json::{json, Value};
    let bridge = ns
        .get("Networks")
        .and_then(|n| n.get("bridge"))
        .cloned()
        .unwrap_or(Value::Null);
    let field = |k: &str, empty: Value| bridge.get(k).cloned().unwrap_or(empty);
    let fields = [
        ("Bridge", json!("")),
        ("HairpinMode", json!(false)),
        ("LinkLocalIPv6Address", json!("")),
        ("LinkLocalIPv6PrefixLen", json!(0)),
        ("SecondaryIPAddresses", Value::Null),
        ("SecondaryIPv6Addresses", Value::Null),
        ("EndpointID", field("EndpointID", json!(""))),
        ("Gateway", field("Gateway", json!(""))),
        ("GlobalIPv6Address", field("GlobalIPv6Address", json!(""))),
        (
            "GlobalIPv6PrefixLen",
            field("GlobalIPv6PrefixLen", json!(0)),
        ),
        ("IPAddress", field("IPAddress", json!(""))),
        ("IPPrefixLen", field("IPPrefixLen", json!(0))),
        ("IPv6Gateway", field("IPv6Gateway", json!(""))),
        ("MacAddress", field("MacAddress", json!(""))),
    ];
    for (k, v) in fields {
        ns.entry(k.to_string()).or_insert(v);
    }
}

pub async fn start(State(engine): Eng, Path(id): Path<String>) -> ApiResult<StatusCode> {
    Ok(done_or_unchanged(engine.container_start(&id).await?))
}

/// The stop timeout: `t` (or the older `timeout`), seconds.
fn stop_timeout(params: &Params) -> ApiResult<Option<i64>> {
    match params.num("t")? {
        Some(t) => Ok(Some(t)),
        None => params.num("timeout"),
    }
}

pub async fn stop(
    State(engine): Eng,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<StatusCode> {
    let changed = engine
        .container_stop(&id, params.str("signal"), stop_timeout(&params)?)
        .await?;
    Ok(done_or_unchanged(changed))
}

pub async fn restart(
    State(engine): Eng,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<StatusCode> {
    engine
        .container_restart(&id, params.str("signal"), stop_timeout(&params)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn kill(
    State(engine): Eng,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<StatusCode> {
    engine.container_kill(&id, params.str("signal")).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn pause(State(engine): Eng, Path(id): Path<String>) -> ApiResult<StatusCode> {
    engine.container_pause(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn unpause(State(engine): Eng, Path(id): Path<String>) -> ApiResult<StatusCode> {
    engine.container_unpause(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove(
    State(engine): Eng,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<StatusCode> {
    engine
        .container_remove(&id, params.bool("force")?, params.bool("v")?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn rename(
    State(engine): Eng,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<StatusCode> {
    let name = params
        .str("name")
        .ok_or_else(|| ApiError::bad_request("name cannot be empty"))?;
    engine.container_rename(&id, name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn changes(State(engine): Eng, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(engine.container_changes(&id).await?).into_response())
}

pub async fn update(
    State(engine): Eng,
    Path(id): Path<String>,
    DockerJson(body): DockerJson<serde_json::Value>,
) -> ApiResult<Response> {
    check_restart_policy(body.get("RestartPolicy"))?;
    let body: ContainerUpdateBody = typed(body)?;
    Ok(Json(engine.container_update(&id, &body).await?).into_response())
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`, the body an optional
/// container config: 201 `{"Id": "sha256:…"}`.
pub async fn commit(
    State(engine): Eng,
    params: Params,
    DockerJson(config): DockerJson<Option<ContainerConfig>>,
) -> ApiResult<Response> {
    let container = params.str("container").unwrap_or_default();
    let opts = CommitOptions {
        repo: params.str("repo").map(str::to_owned),
        tag: params.str("tag").map(str::to_owned),
        comment: params.str("comment").map(str::to_owned),
        author: params.str("author").map(str::to_owned),
        changes: params.all("changes"),
        pause: params.bool_or_true("pause")?,
        config,
    };
    let id = engine.container_commit(container, opts).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "Id": id }))).into_response())
}

pub async fn prune(State(engine): Eng, params: Params) -> ApiResult<Response> {
    let filters = Filters::parse(params.str("filters"))?;
    Ok(Json(engine.container_prune(&filters).await?).into_response())
}

/// `POST /containers/{id}/wait`: the 200 head goes out at once, the body at the condition.
pub async fn wait(
    State(engine): Eng,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let condition: WaitCondition = params.str("condition").unwrap_or_default().parse()?;
    let exited = engine.container_wait(&id, condition).await?;
    let body = exited.map(|resp: ContainerWaitResponse| {
        let mut line = serde_json::to_vec(&serde_json::json!({
            "StatusCode": resp.status_code,
            "Error": resp.error,
        }))
        .unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(line))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body.into_stream()),
    )
        .into_response())
}

pub async fn attach(
    State(engine): Eng,
    Path(id): Path<String>,
    params: Params,
    hijack: Hijack,
) -> ApiResult<Response> {
    let opts = AttachOptions {
        stdin: params.bool("stdin")?,
        stdout: params.bool("stdout")?,
        stderr: params.bool("stderr")?,
        logs: params.bool("logs")?,
        stream: params.bool("stream")?,
        detach_keys: params.str("detachKeys").map(str::to_owned),
    };
    let attached = engine.container_attach(&id, opts).await?;
    Ok(hijack.respond(attached))
}

pub async fn logs(
    State(engine): Eng,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let ts = |key: &str| {
        params
            .str(key)
            .map(|raw| parse_timestamp(key, raw))
            .transpose()
    };
    let opts = LogOptions {
        stdout: params.bool("stdout")?,
        stderr: params.bool("stderr")?,
        follow: params.bool("follow")?,
        since: ts("since")?,
        until: ts("until")?,
        timestamps: params.bool("timestamps")?,
        tail: params.str("tail").map(str::to_owned),
        details: params.bool("details")?,
    };
    if !opts.stdout && !opts.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let logs = engine.container_logs(&id, opts).await?;
    let multiplexed = !logs.tty;
    let body = logs.stream.map(move |chunk| {
        let stream = match chunk.stream {
            LogStream::Stdout => StdStream::Stdout,
            LogStream::Stderr => StdStream::Stderr,
        };
        Ok::<_, std::convert::Infallible>(encode(multiplexed, stream, &chunk.data))
    });
    let content_type = if multiplexed { MULTIPLEXED } else { RAW_STREAM };
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(body),
    )
        .into_response())
}

/// Reads the `h` and `w` parameters of a resize.
pub fn size(params: &Params) -> ApiResult<(u16, u16)> {
    let h = params.num("h")?.unwrap_or(0);
    let w = params.num("w")?.unwrap_or(0);
    Ok((h, w))
}

pub async fn resize(
    State(engine): Eng,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<StatusCode> {
    let (h, w) = size(&params)?;
    engine.container_resize(&id, h, w).await?;
    Ok(StatusCode::OK)
}

pub async fn top(
    State(engine): Eng,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    Ok(Json(engine.container_top(&id, params.str("ps_args")).await?).into_response())
}

/// `GET /containers/{id}/stats`: a JSON line per sample when streaming, one document otherwise.
pub async fn stats(
    State(engine): Eng,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let stream = params.bool_or_true("stream")?;
    let samples = engine
        .container_stats(&id, stream, params.bool("one-shot")?)
        .await?;
    if stream {
        return Ok(json_lines(samples.map(Ok::<_, ApiError>)));
    }
    let mut samples = samples;
    match samples.next().await {
        Some(sample) => Ok(Json(sample).into_response()),
        None => Err(ApiError::new(
            skiff_core::ErrorKind::Internal,
            format!("no statistics for container {id}"),
        )),
    }
}
