//! The cost of RBAC on reads (`cargo bench -p skiff-apiserver --bench rbac`): GETs of one
//! ConfigMap through the router on a temporary SQLite store, as a `system:masters` user (no
//! binding looked at) and as a user a RoleBinding grants `view`, with the default bindings
//! only and with `SKIFF_BENCH_BINDINGS` more ClusterRoleBindings and as many RoleBindings in
//! the namespace that name other users (every check reads and decodes them all from the watch
//! cache). Prints GETs per second of each, two rounds. It measures; it asserts nothing.
//!
//! Knobs: `SKIFF_BENCH_GETS` (GETs per measurement, default 2000), `SKIFF_BENCH_BINDINGS`
//! (default 500).

mod common;

use std::time::Instant;

use axum::body::Body;
use common::{knob, sqlite_state, user};
use http::{Request, StatusCode};
use serde_json::{json, Value};
use skiff_apiserver::in_process_router;
use tower::ServiceExt;

const CM: &str = "/api/v1/namespaces/default/configmaps";

async fn call(app: &axum::Router, method: &str, path: &str, body: Option<Value>) -> StatusCode {
    let body = body.map_or_else(Vec::new, |b| serde_json::to_vec(&b).unwrap());
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let s = resp.status();
    let _ = axum::body::to_bytes(resp.into_body(), usize::MAX).await;
    s
}

fn binding(kind: &str, name: &str, role: &str, user: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})
}

async fn gets_per_second(app: &axum::Router, n: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        let s = call(app, "GET", &format!("{CM}/c"), None).await;
        assert_eq!(s, StatusCode::OK);
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let gets = knob("SKIFF_BENCH_GETS", 2000);
        let extra = knob("SKIFF_BENCH_BINDINGS", 500);
        let dir = tempfile::tempdir().unwrap();
        let state = sqlite_state(dir.path()).await;
        let admin = in_process_router(state.clone(), user("admin", &["system:masters"]));
        let reader = in_process_router(state.clone(), user("reader", &[]));
        let s = call(&admin, "POST", CM, Some(json!({"metadata": {"name": "c"}}))).await;
        assert_eq!(s, StatusCode::CREATED);
        // `view` with the rules aggregation gives it (the controller does not run here).
        let rules = json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]);
        let path = "/apis/rbac.authorization.k8s.io/v1/clusterroles/view";
        let patch = Request::builder()
            .method("PATCH")
            .uri(path)
            .header("Content-Type", "application/merge-patch+json")
            .body(Body::from(serde_json::to_vec(&json!({"rules": rules})).unwrap()))
            .unwrap();
        assert!(admin.clone().oneshot(patch).await.unwrap().status().is_success());
        let rb = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings";
        let crb = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
        let s = call(&admin, "POST", rb, Some(binding("RoleBinding", "reader", "view", "reader"))).await;
        assert_eq!(s, StatusCode::CREATED);
        println!("rbac: {gets} GETs of one ConfigMap per measurement");
        for round in 1..=2 {
            if round == 2 {
                for i in 0..extra {
                    let other = format!("other-{i}");
                    let b = binding("ClusterRoleBinding", &other, "view", &other);
                    assert_eq!(call(&admin, "POST", crb, Some(b)).await, StatusCode::CREATED);
                    let b = binding("RoleBinding", &other, "view", &other);
                    assert_eq!(call(&admin, "POST", rb, Some(b)).await, StatusCode::CREATED);
                }
            }
            let bindings = if round == 1 { 0 } else { extra };
            for pass in 1..=2 {
                let masters = gets_per_second(&admin, gets).await;
                let bound = gets_per_second(&reader, gets).await;
                println!(
                    "  +{bindings} cluster and {bindings} namespace bindings, pass {pass}: system:masters {masters:.0}/s, bound user {bound:.0}/s ({:.2}x)",
                    masters / bound
                );
            }
        }
    });
}
