//! The cost of metadata-only watches (`cargo bench -p skiff-apiserver --bench
//! metadata_watch`): the garbage collector's and the quota controller's watches, and any
//! client asking for `PartialObjectMetadata`. Creates `SKIFF_BENCH_PODS` pods (default 1000)
//! through the router on a temporary SQLite store, then opens `SKIFF_BENCH_WATCHERS`
//! metadata-only watches (default 4) from the revision before them and reads every event:
//! the watch cache's ring serves them all. Prints, for that read phase only, the heap
//! allocations and bytes (a counting allocator: the same on a loaded machine) and the wall
//! time. It measures; it asserts nothing.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::body::Body;
use common::{knob, sqlite_state, user};
use futures::StreamExt;
use http::{Request, StatusCode};
use serde_json::{json, Value};
use skiff_apiserver::in_process_router;
use tower::ServiceExt;

/// The system allocator, counting.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call goes to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PODS: &str = "/api/v1/namespaces/default/pods";
const METADATA: &str =
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";

/// A pod as a Deployment's ReplicaSet makes it: labels, an owner, two containers.
fn pod(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("web-{i}"), "labels": {"app": "web", "pod-template-hash": "5d8f9c7b6"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f9c7b6",
                "uid": "0b6f3c1e-8a52-4c7e-9d1a-2f4e6b8a0c11", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"containers": [
            {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
             "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
             "env": [{"name": "MODE", "value": "production"}]},
            {"name": "sidecar", "image": "busybox:1", "command": ["sh", "-c", "sleep 3600"]}]}})
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pods = knob("SKIFF_BENCH_PODS", 1000);
        let watchers = knob("SKIFF_BENCH_WATCHERS", 4);
        let dir = tempfile::tempdir().unwrap();
        let state = sqlite_state(dir.path()).await;
        let admin = in_process_router(state.clone(), user("admin", &["system:masters"]));
        let send = |method: &str, uri: String, accept: &str, body: Vec<u8>| {
            Request::builder()
                .method(method)
                .uri(uri)
                .header("Content-Type", "application/json")
                .header("Accept", accept)
                .body(Body::from(body))
                .unwrap()
        };
        // The revision before the pods: a list of none.
        let resp = admin
            .clone()
            .oneshot(send("GET", format!("{PODS}?limit=1"), "application/json", vec![]))
            .await
            .unwrap();
        let list: Value =
            serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap())
                .unwrap();
        let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        for i in 0..pods {
            let body = serde_json::to_vec(&pod(i)).unwrap();
            let resp = admin
                .clone()
                .oneshot(send("POST", PODS.into(), "application/json", body))
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::CREATED);
        }

        let (allocs, bytes) = (ALLOCS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
        let start = Instant::now();
        let mut readers = Vec::new();
        for _ in 0..watchers {
            let uri = format!("{PODS}?watch=true&resourceVersion={rv}&timeoutSeconds=600");
            let resp = admin
                .clone()
                .oneshot(send("GET", uri, METADATA, vec![]))
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let mut body = resp.into_body().into_data_stream();
            readers.push(tokio::spawn(async move {
                let (mut lines, mut size) = (0, 0);
                while lines < pods {
                    let Some(chunk) = body.next().await else { break };
                    let chunk = chunk.unwrap();
                    size += chunk.len();
                    lines += chunk.iter().filter(|b| **b == b'\n').count();
                }
                (lines, size)
            }));
        }
        let mut read = 0;
        let mut size = 0;
        for r in readers {
            let (l, s) = r.await.unwrap();
            read += l;
            size += s;
        }
        let took = start.elapsed();
        let allocs = ALLOCS.load(Ordering::Relaxed) - allocs;
        let bytes = BYTES.load(Ordering::Relaxed) - bytes;
        let events = read.max(1) as f64;
        println!(
            "metadata_watch: {watchers} metadata-only watches x {pods} pods: {read} events ({} KiB sent) in {:.1} ms; \
             {allocs} allocations ({:.1}/event), {:.1} MiB allocated ({:.0} B/event)",
            size / 1024,
            took.as_secs_f64() * 1000.0,
            allocs as f64 / events,
            bytes as f64 / 1048576.0,
            bytes as f64 / events,
        );
    });
}
