//! Admission reads, watch cache against store (`cargo bench -p skiff-apiserver --bench
//! admission`): pod creates through the public router on a temporary SQLite store, in a
//! namespace with two ResourceQuotas and a LimitRange, once with the watch cache (admission
//! reads quotas, LimitRanges and the ServiceAccount from it) and once with
//! `--watch-cache=false` (every read goes to the store, as admission did before). Prints the
//! store reads per create and the creates per second, one client and 8 at once, for two
//! rounds. It measures; it asserts nothing.
//!
//! Knob: `SKIFF_BENCH_PODS` (creates per measurement, default 400).

#[path = "../tests/common/counting.rs"]
mod counting;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::{json, Value};
use skiff_apiserver::auth::{TokenAuthenticator, UserInfo};
use skiff_apiserver::{router, ApiState};
use tower::ServiceExt;

const TOKEN: &str = "bench";
const NS: &str = "/api/v1/namespaces/default";
/// Clients creating at once (more make quota charges lose all their retries: see the 409s).
const CONCURRENT: usize = 8;

async fn call(app: &axum::Router, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let s = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (s, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A server over a counting SQLite store, with quotas and a LimitRange in `default`.
async fn server(
    dir: &std::path::Path,
    cache: bool,
    pods: usize,
) -> (axum::Router, Arc<counting::CountingStore>) {
    let store = counting::CountingStore::new(skiff_store::open("sqlite", dir).await.unwrap());
    let mut tokens = TokenAuthenticator::default();
    tokens.insert(
        TOKEN,
        UserInfo {
            name: "admin".into(),
            uid: "1".into(),
            groups: vec!["system:masters".into()],
        },
    );
    let encryptor = Arc::new(skiff_apiserver::encryption::Encryptor::load_or_create(dir).unwrap());
    let state = ApiState::new(store.clone(), tokens, encryptor).with_watch_cache(cache);
    let state = Arc::new(state);
    state.bootstrap().await.unwrap();
    let app = router(state);
    let total = (2 * pods + 10).to_string();
    for (name, hard) in [
        ("count", json!({"pods": total})),
        (
            "compute",
            json!({"requests.cpu": "1000", "limits.memory": "1000Gi"}),
        ),
    ] {
        let (s, q) = call(
            &app,
            "POST",
            &format!("{NS}/resourcequotas"),
            json!({"metadata": {"name": name}, "spec": {"hard": hard}}),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{q}");
        let used: serde_json::Map<String, Value> = hard
            .as_object()
            .unwrap()
            .keys()
            .map(|k| (k.clone(), json!("0")))
            .collect();
        let mut synced = q.clone();
        synced["status"] = json!({"hard": hard, "used": used});
        let (s, e) = call(
            &app,
            "PUT",
            &format!("{NS}/resourcequotas/{name}/status"),
            synced,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{e}");
    }
    let (s, e) = call(
        &app,
        "POST",
        &format!("{NS}/limitranges"),
        json!({"metadata": {"name": "defaults"}, "spec": {"limits": [{"type": "Container",
            "defaultRequest": {"cpu": "10m"}, "default": {"memory": "16Mi"}}]}}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    (app, store)
}

fn pod(name: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

/// Creates `n` pods named `prefix-i` from `clients` tasks; returns the requests per second
/// and how many were refused with 409 (quota charges that lost every retry).
async fn creates(app: &axum::Router, prefix: &str, n: usize, clients: usize) -> (f64, usize) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let app = app.clone();
            let prefix = prefix.to_string();
            tokio::spawn(async move {
                let mut conflicts = 0;
                for i in (c..n).step_by(clients) {
                    let (s, e) = call(
                        &app,
                        "POST",
                        &format!("{NS}/pods"),
                        pod(&format!("{prefix}-{i}")),
                    )
                    .await;
                    match s {
                        StatusCode::CREATED => {}
                        StatusCode::CONFLICT => conflicts += 1,
                        _ => panic!("{s}: {e}"),
                    }
                }
                conflicts
            })
        })
        .collect();
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    (n as f64 / started.elapsed().as_secs_f64(), conflicts)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let pods: usize = std::env::var("SKIFF_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    println!(
        "{pods} pod creates per cell, namespace with 2 ResourceQuotas and 1 LimitRange, SQLite"
    );
    println!(
        "{:<7} {:<12} {:>16} {:>14} {:>18} {:>10}",
        "round",
        "reads from",
        "store reads/pod",
        "creates/s x1",
        format!("creates/s x{CONCURRENT}"),
        format!("409s x{CONCURRENT}")
    );
    for round in 1..=2 {
        for cache in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (app, store) = server(dir.path(), cache, pods).await;
            // Warm-up: makes the caches the creates read.
            creates(&app, "warm", 5, 1).await;
            let before = store.reads().len();
            let (one, _) = creates(&app, "one", pods, 1).await;
            let per_pod = (store.reads().len() - before) as f64 / pods as f64;
            let (many, conflicts) = creates(&app, "many", pods, CONCURRENT).await;
            println!(
                "{round:<7} {:<12} {per_pod:>16.2} {one:>14.0} {many:>18.0} {conflicts:>10}",
                if cache { "watch cache" } else { "store" },
            );
        }
    }
}
