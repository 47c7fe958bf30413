//! Requests as arbitrary users (as a client certificate would name them) and the RBAC
//! objects the RBAC tests write.

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::{json, Value};
use skiff_apiserver::auth::UserInfo;
use tower::ServiceExt;

use super::Api;

pub const PODS: &str = "/api/v1/namespaces/default/pods";
pub const ROLES: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles";
pub const BINDINGS: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings";
pub const CLUSTERROLES: &str = "/apis/rbac.authorization.k8s.io/v1/clusterroles";
pub const CLUSTERBINDINGS: &str = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
pub const SSAR: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
pub const SSRR: &str = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews";
pub const SAR: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

pub fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.into(),
        uid: String::new(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

/// A request made as `who` (as a client certificate would name it), with extra headers.
pub async fn as_user_with(
    api: &Api,
    who: &UserInfo,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let app = skiff_apiserver::in_process_router(api.state.clone(), who.clone());
    let mut req = Request::builder().method(method).uri(path);
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header("Content-Type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = body.map_or_else(Vec::new, |b| serde_json::to_vec(&b).unwrap());
    let resp = app
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub async fn as_user(
    api: &Api,
    who: &UserInfo,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    as_user_with(api, who, method, path, body, &[]).await
}

pub fn role_binding(name: &str, kind: &str, role: &str, subjects: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": subjects})
}

pub fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

/// Polls `check` until it gives Some or 20 s pass.
pub async fn eventually<T>(mut check: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}
