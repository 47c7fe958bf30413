//! Pod streams served through nodes: `GET /api/v1/namespaces/NS/pods/NAME/log` now (exec,
//! attach and port-forward later). The API server checks the request against the stored Pod
//! (bound to a node, a container of its own) the way kube-apiserver does, then hands it to
//! the node's [`NodeStreams`]: for a server's local node an in-process connection registered
//! with [`crate::ApiState::connect_node`]; remote nodes (the kubelet API on :10250) come with
//! a later slice.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::router::ApiState;

/// What `pods/log` asks for (`PodLogOptions`), with the container chosen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    pub container: String,
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<i64>,
    /// Unix seconds (from `sinceSeconds` or `sinceTime`).
    pub since: Option<f64>,
    pub timestamps: bool,
    pub limit_bytes: Option<i64>,
}

/// A log body, chunk by chunk.
pub type ByteStream = BoxStream<'static, Bytes>;

/// A node's side of pod streams.
pub trait NodeStreams: Send + Sync {
    /// The log of one container of `pod` (the stored Pod, as JSON).
    fn logs(
        &self,
        pod: Value,
        opts: LogOptions,
    ) -> BoxFuture<'static, Result<ByteStream, ApiError>>;
}

/// Nodes reachable from this server, by name.
#[derive(Default)]
pub(crate) struct Nodes {
    connected: std::sync::RwLock<HashMap<String, Arc<dyn NodeStreams>>>,
}

impl Nodes {
    pub(crate) fn connect(&self, name: &str, streams: Arc<dyn NodeStreams>) {
        self.lock_mut().insert(name.to_string(), streams);
    }

    pub(crate) fn disconnect(&self, name: &str) {
        self.lock_mut().remove(name);
    }

    fn get(&self, name: &str) -> Option<Arc<dyn NodeStreams>> {
        self.connected
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn lock_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<dyn NodeStreams>>> {
        self.connected.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The query of `pods/log`, as kubectl sends it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    container: Option<String>,
    follow: Option<String>,
    previous: Option<String>,
    tail_lines: Option<String>,
    since_seconds: Option<String>,
    since_time: Option<String>,
    timestamps: Option<String>,
    limit_bytes: Option<String>,
}

fn flag(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|v| v == "true" || v == "1")
}

fn positive(name: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    let Some(text) = v.as_deref() else {
        return Ok(None);
    };
    let n: i64 = text.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{name}: invalid value {text:?}: must be an integer"
        ))
    })?;
    if n < 0 || (n == 0 && name != "tailLines") {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "PodLogOptions \"\" is invalid: {name}: Invalid value: {n}: must be greater than 0"
            ),
        ));
    }
    Ok(Some(n))
}

/// `GET …/pods/NAME/log`.
pub(crate) async fn pod_log(
    state: &ApiState,
    namespace: &str,
    name: &str,
    uri: &http::Uri,
) -> Result<Response, ApiError> {
    let query = axum::extract::Query::<LogQuery>::try_from_uri(uri)
        .map_err(|e| ApiError::bad_request(format!("invalid query parameters: {e}")))?
        .0;
    let info = crate::resources::find("", "v1", "pods")
        .expect("pods are served")
        .info();
    let pod = state.storage.must_get(info, Some(namespace), name).await?;
    let container = choose_container(&pod, name, query.container.as_deref())?;
    let since = match (&query.since_seconds, &query.since_time) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                422,
                "Invalid",
                "PodLogOptions \"\" is invalid: : Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
            ))
        }
        (Some(_), None) => positive("sinceSeconds", &query.since_seconds)?.map(|s| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            now - s as f64
        }),
        (None, Some(t)) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|_| ApiError::bad_request(format!("sinceTime: invalid value {t:?}: must be RFC 3339")))?
                .timestamp() as f64,
        ),
        (None, None) => None,
    };
    let opts = LogOptions {
        container,
        follow: flag(&query.follow),
        previous: flag(&query.previous),
        tail_lines: positive("tailLines", &query.tail_lines)?,
        since,
        timestamps: flag(&query.timestamps),
        limit_bytes: positive("limitBytes", &query.limit_bytes)?,
    };
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("pod {name} does not have a host assigned")))?
        .to_string();
    let streams = state.nodes.get(&node).ok_or_else(|| {
        ApiError::new(
            502,
            "InternalError",
            format!("node {node:?} is not reachable from this server: it serves pod streams only for its local node yet"),
        )
    })?;
    let body = streams.logs(pod, opts).await?;
    let mut response = Response::new(Body::from_stream(
        body.map(Ok::<_, std::convert::Infallible>),
    ));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    Ok(response)
}

/// The container `asked` names, or the pod's only one; kube-apiserver's errors otherwise.
fn choose_container(pod: &Value, pod_name: &str, asked: Option<&str>) -> Result<String, ApiError> {
    let names = |list: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    let (containers, init) = (names("containers"), names("initContainers"));
    match asked.filter(|c| !c.is_empty()) {
        Some(c) if containers.iter().chain(&init).any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {pod_name}"
        ))),
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => {
            let mut message = format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !init.is_empty() {
                message.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::bad_request(message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_container_is_named_or_the_only_one() {
        let one = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(choose_container(&one, "p", None).unwrap(), "a");
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "i"}]}});
        let err = choose_container(&two, "p", None).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(
            err.message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
        );
        assert_eq!(choose_container(&two, "p", Some("i")).unwrap(), "i");
        let err = choose_container(&two, "p", Some("zz")).unwrap_err();
        assert_eq!(err.message, "container zz is not valid for pod p");
    }

    #[test]
    fn numbers_must_be_positive() {
        assert_eq!(positive("tailLines", &Some("0".into())).unwrap(), Some(0));
        assert_eq!(
            positive("limitBytes", &Some("0".into())).unwrap_err().code,
            422
        );
        assert_eq!(
            positive("tailLines", &Some("x".into())).unwrap_err().code,
            400
        );
        assert_eq!(positive("tailLines", &None).unwrap(), None);
    }
}
