//! Shared harness of the router-level tests: the public router over a real SQLite store in a
//! temporary directory, called without TLS with an admin bearer token.

#![allow(dead_code)] // each test target uses a different part of the harness

use std::sync::Arc;

use axum::body::Body;
use futures::StreamExt;
use http::{Request, StatusCode};
use serde_json::{json, Value};
use skiff_apiserver::auth::{TokenAuthenticator, UserInfo};
use skiff_apiserver::{router, ApiState};
use tower::ServiceExt;

pub mod counting;
pub mod users;

pub const TOKEN: &str = "test-token";
/// The collection paths most tests write to.
pub const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
pub const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";

pub struct Api {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn skiff_store::Store>,
    pub app: axum::Router,
    pub state: Arc<ApiState>,
}

pub async fn api() -> Api {
    api_over(|store| store).await
}

/// [`api`] over `wrap` of the SQLite store (e.g. a [`counting::CountingStore`]).
pub async fn api_over(
    wrap: impl FnOnce(Arc<dyn skiff_store::Store>) -> Arc<dyn skiff_store::Store>,
) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = wrap(skiff_store::open("sqlite", dir.path()).await.unwrap());
    let mut tokens = TokenAuthenticator::default();
    tokens.insert(
        TOKEN,
        UserInfo {
            name: "admin".into(),
            uid: "1".into(),
            groups: vec!["system:masters".into()],
        },
    );
    let encryptor =
        Arc::new(skiff_apiserver::encryption::Encryptor::load_or_create(dir.path()).unwrap());
    let state = Arc::new(ApiState::new(store.clone(), tokens, encryptor));
    state.bootstrap().await.unwrap();
    Api {
        dir,
        store,
        app: router(state.clone()),
        state,
    }
}

impl Api {
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        ct: &str,
        accept: &str,
        body: Vec<u8>,
    ) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("Content-Type", ct)
            .header("Accept", accept)
            .body(Body::from(body))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, parts.headers, bytes.to_vec())
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let b = body
            .map(|b| serde_json::to_vec(&b).unwrap())
            .unwrap_or_default();
        let (s, _, bytes) = self
            .send(method, path, "application/json", "application/json", b)
            .await;
        (s, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, None).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call("DELETE", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("PUT", path, Some(body)).await
    }

    /// A JSON merge patch; returns the status, headers and raw body.
    pub async fn merge_patch(
        &self,
        path: &str,
        patch: &[u8],
    ) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let (ct, accept) = ("application/merge-patch+json", "application/json");
        self.send("PATCH", path, ct, accept, patch.to_vec()).await
    }
}

/// A PEM certificate signing request for common name `cn` with a fresh key, base64-encoded
/// as a CertificateSigningRequest's `spec.request` holds it.
pub fn csr_request(cn: &str) -> String {
    use base64::Engine;
    let key = rcgen::KeyPair::generate().unwrap();
    let pem = rcgen::CertificateParams::new(vec![cn.to_string()])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode(pem)
}

pub fn deployment(name: &str, replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
}

/// Reads newline-delimited watch events from a streaming body until `n` arrived.
pub async fn read_events(
    stream: &mut (impl futures::Stream<Item = Result<bytes::Bytes, axum::Error>> + Unpin),
    n: usize,
) -> Vec<Value> {
    let mut buf = Vec::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    while events.len() < n {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("events in time");
        let Some(chunk) = chunk else { break };
        buf.extend_from_slice(&chunk.unwrap());
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            events.push(serde_json::from_slice::<Value>(&line).unwrap());
        }
    }
    events
}

impl Api {
    pub async fn watch(&self, query: &str) -> (StatusCode, axum::body::BodyDataStream) {
        let req = Request::builder()
            .uri(format!(
                "/api/v1/namespaces/default/configmaps?watch=true&{query}"
            ))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        (resp.status(), resp.into_body().into_data_stream())
    }

    pub async fn configmap(&self, name: &str) -> Value {
        let (s, cm) = self
            .post(CONFIGMAPS, json!({"metadata": {"name": name}}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{cm}");
        cm
    }
}
