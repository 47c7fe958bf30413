//! Pod streams served through nodes, as kube-apiserver serves them: `pods/log`, `pods/exec`,
//! `pods/attach`, `pods/portforward` and `nodes/proxy`. The API server checks the request
//! against the stored Pod (bound to a node, a container of its own), then proxies it to the
//! node's kubelet API over HTTPS ([`crate::kubelet_client`]): the node's InternalIP and
//! `status.daemonEndpoints.kubeletEndpoint.Port`, the API server's kubelet-client
//! certificate, the kubelet's serving certificate verified against the cluster CA. Upgrade
//! requests (WebSocket, SPDY) become raw byte streams between client and kubelet, so the
//! kubelet speaks the client's protocol.

use axum::body::Body;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::router::ApiState;

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

/// `GET …/pods/NAME/log`: validated here (kube-apiserver's errors), read from the node's
/// kubelet (`/containerLogs/NS/POD/CONTAINER`).
pub(crate) async fn pod_log(
    state: &ApiState,
    namespace: &str,
    name: &str,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let query = axum::extract::Query::<LogQuery>::try_from_uri(req.uri())
        .map_err(|e| ApiError::bad_request(format!("invalid query parameters: {e}")))?
        .0;
    let pod = get_pod(state, namespace, name).await?;
    let container = choose_container(&pod, name, query.container.as_deref())?;
    if query.since_seconds.is_some() && query.since_time.is_some() {
        return Err(ApiError::new(
            422,
            "Invalid",
            "PodLogOptions \"\" is invalid: : Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
        ));
    }
    positive("sinceSeconds", &query.since_seconds)?;
    positive("tailLines", &query.tail_lines)?;
    positive("limitBytes", &query.limit_bytes)?;
    if let Some(t) = &query.since_time {
        chrono::DateTime::parse_from_rfc3339(t).map_err(|_| {
            ApiError::bad_request(format!("sinceTime: invalid value {t:?}: must be RFC 3339"))
        })?;
    }
    let mut params = form(&[
        ("follow", flag(&query.follow).then(|| "true".into())),
        ("previous", flag(&query.previous).then(|| "true".into())),
        ("timestamps", flag(&query.timestamps).then(|| "true".into())),
        ("tailLines", query.tail_lines.clone()),
        ("sinceSeconds", query.since_seconds.clone()),
        ("sinceTime", query.since_time.clone()),
        ("limitBytes", query.limit_bytes.clone()),
    ]);
    if !params.is_empty() {
        params.insert(0, '?');
    }
    let path = format!("/containerLogs/{namespace}/{name}/{container}{params}");
    let node = node_of(state, &pod, name).await?;
    let kubelet = state.kubelet()?;
    let response = kubelet.request(&node, plain_request(&path)?).await?;
    if !response.status().is_success() {
        return Err(kubelet_error(response).await);
    }
    let mut out = Response::new(Body::new(response.into_body()));
    out.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    Ok(out)
}

/// Which pod stream a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PodStream {
    Exec,
    Attach,
    PortForward,
}

impl PodStream {
    pub(crate) fn parse(sub: &str) -> Option<PodStream> {
        match sub {
            "exec" => Some(PodStream::Exec),
            "attach" => Some(PodStream::Attach),
            "portforward" => Some(PodStream::PortForward),
            _ => None,
        }
    }

    /// The subresource as authorization names it.
    pub(crate) fn subresource(self) -> &'static str {
        match self {
            PodStream::Exec => "exec",
            PodStream::Attach => "attach",
            PodStream::PortForward => "portforward",
        }
    }
}

/// The query of `pods/exec` and `pods/attach` that the API server checks itself.
#[derive(Debug, Default)]
struct StreamQuery {
    container: Option<String>,
    command: Vec<String>,
}

/// `…/pods/NAME/exec|attach|portforward`: checked against the pod, then proxied (with its
/// upgrade) to the kubelet's `/exec|attach/NS/POD/CONTAINER` or `/portForward/NS/POD`.
pub(crate) async fn pod_stream(
    state: &ApiState,
    namespace: &str,
    name: &str,
    which: PodStream,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let pod = get_pod(state, namespace, name).await?;
    let query = req.uri().query().unwrap_or("");
    let path = match which {
        PodStream::PortForward => format!("/portForward/{namespace}/{name}"),
        PodStream::Exec | PodStream::Attach => {
            let parsed = stream_query(query);
            let container = choose_container(&pod, name, parsed.container.as_deref())?;
            if which == PodStream::Exec && parsed.command.iter().all(String::is_empty) {
                return Err(ApiError::bad_request(
                    "you must specify at least one command for the container",
                ));
            }
            let verb = if which == PodStream::Exec {
                "exec"
            } else {
                "attach"
            };
            format!("/{verb}/{namespace}/{name}/{container}")
        }
    };
    if pod.pointer("/status/phase").and_then(Value::as_str) == Some("Succeeded")
        || pod.pointer("/status/phase").and_then(Value::as_str) == Some("Failed")
    {
        return Err(ApiError::bad_request(format!(
            "cannot {} a container in a completed pod; current phase is {}",
            match which {
                PodStream::Exec => "exec into",
                PodStream::Attach => "attach to",
                PodStream::PortForward => "port-forward to",
            },
            pod.pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("")
        )));
    }
    let node = node_of(state, &pod, name).await?;
    let path = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    state.kubelet()?.proxy(&node, &path, req, true).await
}

/// `/api/v1/nodes/NAME/proxy/PATH`: any request to the node's kubelet API.
pub(crate) async fn node_proxy(
    state: &ApiState,
    name: &str,
    rest: &str,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let info = crate::resources::find("", "v1", "nodes")
        .expect("nodes are served")
        .info();
    let node = state.storage.must_get(info, None, name).await?;
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let path = format!("/{}{query}", rest.trim_start_matches('/'));
    state.kubelet()?.proxy(&node, &path, req, false).await
}

async fn get_pod(state: &ApiState, namespace: &str, name: &str) -> Result<Value, ApiError> {
    let info = crate::resources::find("", "v1", "pods")
        .expect("pods are served")
        .info();
    state.storage.must_get(info, Some(namespace), name).await
}

/// The stored Node the pod is bound to.
async fn node_of(state: &ApiState, pod: &Value, pod_name: &str) -> Result<Value, ApiError> {
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!("pod {pod_name} does not have a host assigned"))
        })?;
    let info = crate::resources::find("", "v1", "nodes")
        .expect("nodes are served")
        .info();
    state.storage.must_get(info, None, node).await
}

/// A body-less GET of `path` for the kubelet.
fn plain_request(path: &str) -> Result<http::Request<Body>, ApiError> {
    http::Request::get(path)
        .body(Body::empty())
        .map_err(|e| ApiError::bad_request(format!("invalid request: {e}")))
}

/// A kubelet's error answer as a `Status` with its code and text (kube-apiserver's
/// generic response checker).
pub(crate) async fn kubelet_error(response: http::Response<hyper::body::Incoming>) -> ApiError {
    use http_body_util::BodyExt;
    let code = response.status().as_u16();
    let body = http_body_util::Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let reason = match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        _ => "InternalError",
    };
    ApiError::new(code, reason, text)
}

/// `k=v&…` of the given pairs (values encoded), skipping the absent ones.
fn form(pairs: &[(&str, Option<String>)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            out.append_pair(k, v);
        }
    }
    out.finish()
}

/// `container` and the repeated `command` of a query.
fn stream_query(query: &str) -> StreamQuery {
    let mut out = StreamQuery::default();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "container" => out.container = Some(v.into_owned()),
            "command" => out.command.push(v.into_owned()),
            _ => {}
        }
    }
    out
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
