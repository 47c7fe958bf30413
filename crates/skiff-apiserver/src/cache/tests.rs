//! The watch cache through the API router, over a real SQLite store: what clients see when
//! lists, gets and watches are served from memory.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use futures::StreamExt;
use http::{Request, StatusCode};
use serde_json::{json, Value};
use skiff_store::{KeyValue, ListResult, Store, StoreError, WatchStream};
use tower::ServiceExt;

use super::WatchCache;
use crate::auth::UserInfo;
use crate::router::ApiState;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// A real store whose watches can be broken on demand (a store failure seen by the feed),
/// or held (`hold` true: events wait, so the cache falls behind the store).
struct Breakable {
    inner: Arc<dyn Store>,
    breaker: tokio::sync::watch::Sender<u64>,
    hold: tokio::sync::watch::Sender<bool>,
}

#[async_trait::async_trait]
impl Store for Breakable {
    async fn get(&self, key: &str) -> skiff_store::Result<Option<KeyValue>> {
        self.inner.get(key).await
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<i64>,
    ) -> skiff_store::Result<ListResult> {
        self.inner.list(prefix, start_after, limit, revision).await
    }
    async fn create(&self, key: &str, value: Vec<u8>) -> skiff_store::Result<i64> {
        self.inner.create(key, value).await
    }
    async fn update(&self, key: &str, value: Vec<u8>, expected: i64) -> skiff_store::Result<i64> {
        self.inner.update(key, value, expected).await
    }
    async fn delete(
        &self,
        key: &str,
        expected: Option<i64>,
    ) -> skiff_store::Result<(KeyValue, i64)> {
        self.inner.delete(key, expected).await
    }
    async fn watch(&self, prefix: &str, after: i64) -> skiff_store::Result<WatchStream> {
        let inner = self.inner.watch(prefix, after).await?;
        let mut broken = self.breaker.subscribe();
        broken.borrow_and_update();
        let hold = self.hold.subscribe();
        Ok(Box::pin(futures::stream::unfold(
            (inner, broken, hold, false),
            |(mut inner, mut broken, mut hold, done)| async move {
                if done {
                    return None;
                }
                tokio::select! {
                    ev = inner.next() => {
                        let ev = ev?;
                        let _ = hold.wait_for(|held| !*held).await;
                        Some((ev, (inner, broken, hold, false)))
                    }
                    _ = broken.changed() => {
                        let e = StoreError::Unavailable("connection to the store lost".into());
                        Some((Err(e), (inner, broken, hold, true)))
                    }
                }
            },
        )))
    }
    async fn current_revision(&self) -> skiff_store::Result<i64> {
        self.inner.current_revision().await
    }
    async fn compact(&self, revision: i64) -> skiff_store::Result<()> {
        self.inner.compact(revision).await
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    state: Arc<ApiState>,
    app: axum::Router,
    store: Arc<dyn Store>,
    breaker: tokio::sync::watch::Sender<u64>,
    hold: tokio::sync::watch::Sender<bool>,
}

/// An API server whose watch cache keeps `capacity` changes per resource.
async fn harness(capacity: usize) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = skiff_store::open("sqlite", dir.path()).await.unwrap();
    let breaker = tokio::sync::watch::Sender::new(0);
    let hold = tokio::sync::watch::Sender::new(false);
    let store: Arc<dyn Store> = Arc::new(Breakable {
        inner: sqlite,
        breaker: breaker.clone(),
        hold: hold.clone(),
    });
    let encryptor = Arc::new(crate::encryption::Encryptor::load_or_create(dir.path()).unwrap());
    let mut state = ApiState::new(store.clone(), Default::default(), encryptor);
    state.cache = WatchCache::new(state.storage.clone(), capacity);
    state.bootstrap().await.unwrap();
    let state = Arc::new(state);
    let admin = UserInfo {
        name: "admin".into(),
        uid: "1".into(),
        groups: vec!["system:masters".into()],
    };
    Harness {
        _dir: dir,
        app: crate::router::in_process_router(state.clone(), admin),
        state,
        store,
        breaker,
        hold,
    }
}

impl Harness {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap());
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .body(Body::from(body.unwrap_or_default()))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }

    async fn configmap(&self, name: &str, labels: Value) -> Value {
        let cm = json!({"metadata": {"name": name, "labels": labels}, "data": {"k": name}});
        self.ok("POST", CMS, Some(cm)).await
    }

    async fn list(&self, query: &str) -> Value {
        self.ok("GET", &format!("{CMS}?{query}"), None).await
    }

    /// Whether the cache of configmaps exists and holds `name` (read straight from it).
    fn cached(&self, name: &str) -> bool {
        let key = format!("/registry/core/configmaps/default/{name}");
        self.state
            .cache
            .0
            .cache("/registry/core/configmaps/")
            .is_some_and(|c| c.get(&key, 0).0.is_some())
    }

    async fn watch(&self, query: &str) -> (StatusCode, axum::body::BodyDataStream) {
        let req = Request::builder()
            .uri(format!("{CMS}?watch=true&{query}"))
            .body(Body::empty())
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        (resp.status(), resp.into_body().into_data_stream())
    }
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn rv(obj: &Value) -> i64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Reads watch lines until `n` arrived or the stream ends.
async fn events(stream: &mut axum::body::BodyDataStream, n: usize) -> Vec<Value> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while out.len() < n {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("watch events in time");
        let Some(chunk) = chunk else { break };
        buf.extend_from_slice(&chunk.unwrap());
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            out.push(serde_json::from_slice(&line).unwrap());
        }
    }
    out
}

/// Polls `f` until it holds (10 s).
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn wcache_reads_see_the_writers_writes_at_once() {
    let h = harness(super::resource::EVENTS_KEPT).await;
    h.list("").await; // creates the cache
    assert!(h
        .state
        .cache
        .0
        .cache("/registry/core/configmaps/")
        .is_some());
    for i in 0..20 {
        let name = format!("cm-{i}");
        let created = h.configmap(&name, json!({})).await;
        let list = h.list("").await;
        assert!(names(&list).contains(&name), "list after create {i}");
        assert!(
            rv(&list) >= rv(&created),
            "the list is not older than the write"
        );
        let path = format!("{CMS}/{name}");
        let mut cm = h.ok("GET", &path, None).await;
        cm["data"]["k"] = json!("changed");
        let updated = h.ok("PUT", &path, Some(cm)).await;
        let got = h.ok("GET", &path, None).await;
        assert_eq!(got["data"]["k"], "changed", "get after update {i}");
        assert_eq!(rv(&got), rv(&updated));
        h.ok("DELETE", &path, None).await;
        let (status, _) = h.call("GET", &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "get after delete {i}");
        assert!(
            !names(&h.list("").await).contains(&name),
            "list after delete {i}"
        );
    }
    assert!(!h.cached("cm-19"), "the cache saw the deletion");
}

#[tokio::test]
async fn wcache_resource_version_0_lists_what_the_cache_holds() {
    let h = harness(super::resource::EVENTS_KEPT).await;
    h.list("resourceVersion=0").await;
    let created = h.configmap("a", json!({})).await;
    eventually("the cache receives the write", || h.cached("a")).await;
    let list = h.list("resourceVersion=0").await;
    assert_eq!(names(&list), ["a"]);
    assert!(rv(&list) >= rv(&created));
    let not_older = h.list(&format!("resourceVersion={}", rv(&created))).await;
    assert_eq!(names(&not_older), ["a"]);
    let (status, v) = h
        .call("GET", &format!("{CMS}?resourceVersion=999999"), None)
        .await;
    assert_eq!(status.as_u16(), 504, "a future revision: {v}");
}

#[tokio::test]
async fn wcache_pages_keep_one_snapshot_in_order() {
    let h = harness(super::resource::EVENTS_KEPT).await;
    for i in 0..5 {
        h.configmap(&format!("c{i}"), json!({})).await;
    }
    let first = h.list("limit=2").await;
    assert_eq!(names(&first), ["c0", "c1"]);
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    // A write to another resource: the configmaps are unchanged, the page comes from memory.
    h.ok(
        "POST",
        "/api/v1/namespaces/default/secrets",
        Some(json!({"metadata": {"name": "s"}})),
    )
    .await;
    let second = h.list(&format!("limit=2&continue={token}")).await;
    assert_eq!(names(&second), ["c2", "c3"]);
    assert_eq!(
        rv(&second),
        rv(&first),
        "pages share the first page's revision"
    );
    let token = second["metadata"]["continue"].as_str().unwrap().to_string();
    // A new configmap after the snapshot stays out of the remaining pages.
    h.configmap("c5", json!({})).await;
    let third = h.list(&format!("limit=2&continue={token}")).await;
    assert_eq!(names(&third), ["c4"]);
    assert!(third["metadata"].get("continue").is_none(), "{third}");
    let exact = h
        .list(&format!(
            "resourceVersion={}&resourceVersionMatch=Exact",
            rv(&first)
        ))
        .await;
    assert_eq!(names(&exact), ["c0", "c1", "c2", "c3", "c4"]);
    assert_eq!(names(&h.list("").await).len(), 6);
    let (status, _) = h.call("GET", &format!("{CMS}?continue=bogus"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn wcache_selected_pages_hold_only_matching_objects() {
    let h = harness(super::resource::EVENTS_KEPT).await;
    for i in 0..7 {
        let app = if i % 2 == 0 { "x" } else { "y" };
        h.configmap(&format!("c{i}"), json!({"app": app})).await;
    }
    let mut pages = Vec::new();
    let mut query = "labelSelector=app%3Dx&limit=2".to_string();
    loop {
        let page = h.list(&query).await;
        pages.push(names(&page));
        match page["metadata"]["continue"].as_str() {
            Some(token) => query = format!("labelSelector=app%3Dx&limit=2&continue={token}"),
            None => break,
        }
        assert!(pages.len() < 5, "pagination ends: {pages:?}");
    }
    assert_eq!(pages, [vec!["c0", "c2"], vec!["c4", "c6"]]);
}

#[tokio::test]
async fn wcache_selectors_filter_cached_objects() {
    let h = harness(super::resource::EVENTS_KEPT).await;
    h.configmap("web-1", json!({"app": "web", "tier": "front"}))
        .await;
    h.configmap("web-2", json!({"app": "web"})).await;
    h.configmap("db-1", json!({"app": "db"})).await;
    for (query, want) in [
        ("labelSelector=app%3Dweb", vec!["web-1", "web-2"]),
        (
            "labelSelector=app%20in%20(db,web),!tier",
            vec!["db-1", "web-2"],
        ),
        ("labelSelector=app!%3Dweb", vec!["db-1"]),
        ("fieldSelector=metadata.name%3Dweb-2", vec!["web-2"]),
        (
            "fieldSelector=metadata.name!%3Dweb-2,metadata.namespace%3Ddefault",
            vec!["db-1", "web-1"],
        ),
        ("labelSelector=app%3Dweb&limit=1", vec!["web-1"]),
    ] {
        assert_eq!(names(&h.list(query).await), want, "{query}");
    }
    let (status, _) = h
        .call(
            "GET",
            &format!("{CMS}?fieldSelector=spec.nodeName%3Dx"),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a field configmaps do not have"
    );

    // Pods: the kind's own field (spec.nodeName) is kept in the cache.
    let pods = "/api/v1/namespaces/default/pods";
    for (name, node) in [("p1", "n1"), ("p2", "n2"), ("p3", "n1")] {
        let pod = json!({"metadata": {"name": name}, "spec": {"nodeName": node,
            "containers": [{"name": "c", "image": "busybox"}]}});
        h.ok("POST", pods, Some(pod)).await;
    }
    let on_n1 = h
        .ok(
            "GET",
            &format!("{pods}?fieldSelector=spec.nodeName%3Dn1"),
            None,
        )
        .await;
    assert_eq!(names(&on_n1), ["p1", "p3"]);
}

#[tokio::test]
async fn wcache_watch_resumes_from_a_cached_revision() {
    let h = harness(super::resource::EVENTS_KEPT).await;
    let start = rv(&h.list("").await);
    let a = h.configmap("a", json!({"app": "x"})).await;
    let path = format!("{CMS}/a");
    let mut changed = a.clone();
    changed["data"]["k"] = json!("v2");
    h.ok("PUT", &path, Some(changed)).await;
    h.configmap("b", json!({"app": "y"})).await;
    h.ok("DELETE", &path, None).await;

    let (status, mut all) = h.watch(&format!("resourceVersion={start}")).await;
    assert_eq!(status, StatusCode::OK);
    let got = events(&mut all, 4).await;
    let seen: Vec<(&str, &str)> = got
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("ADDED", "a"),
            ("MODIFIED", "a"),
            ("ADDED", "b"),
            ("DELETED", "a")
        ]
    );
    assert_eq!(got[1]["object"]["data"]["k"], "v2");
    let revs: Vec<i64> = got.iter().map(|e| rv(&e["object"])).collect();
    assert!(revs.windows(2).all(|w| w[0] < w[1]), "in order: {revs:?}");

    let (_, mut selected) = h
        .watch(&format!("resourceVersion={}&labelSelector=app%3Dy", rv(&a)))
        .await;
    let got = events(&mut selected, 1).await;
    assert_eq!(got[0]["object"]["metadata"]["name"], "b");

    // Live: a write after the watch started arrives too.
    h.configmap("c", json!({"app": "y"})).await;
    let got = events(&mut selected, 1).await;
    assert_eq!(
        (
            got[0]["type"].as_str(),
            got[0]["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("c"))
    );
}

#[tokio::test]
async fn wcache_watch_older_than_the_ring_is_410_gone() {
    let h = harness(4).await;
    let start = rv(&h.list("").await);
    let mut revs = Vec::new();
    for i in 0..6 {
        revs.push(rv(&h.configmap(&format!("c{i}"), json!({})).await));
    }
    eventually("the cache receives the writes", || h.cached("c5")).await;
    let (status, body) = h.watch(&format!("resourceVersion={start}")).await;
    assert_eq!(
        status.as_u16(),
        410,
        "the ring holds only the last 4 changes"
    );
    let bytes: Vec<u8> = body.map(|c| c.unwrap().to_vec()).concat().await;
    let status: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status["reason"], "Expired", "{status}");
    // Inside the ring: served.
    let (status, mut stream) = h.watch(&format!("resourceVersion={}", revs[2])).await;
    assert_eq!(status, StatusCode::OK);
    let got = events(&mut stream, 3).await;
    let got: Vec<&str> = got
        .iter()
        .map(|e| e["object"]["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["c3", "c4", "c5"]);
}

#[tokio::test]
async fn wcache_recovers_from_a_store_watch_error() {
    let h = harness(super::resource::EVENTS_KEPT).await;
    h.configmap("before", json!({})).await;
    let list = h.list("").await;
    let (_, mut watching) = h.watch(&format!("resourceVersion={}", rv(&list))).await;
    h.breaker.send_modify(|n| *n += 1);
    let created = h.configmap("after", json!({})).await;
    // Reads are right whether the feed is still re-listing (the store answers) or done.
    assert_eq!(names(&h.list("").await), ["after", "before"]);
    eventually("the feed re-lists and follows the store again", || {
        h.cached("after") && h.state.cache.fed() >= rv(&created)
    })
    .await;
    h.configmap("later", json!({})).await;
    assert_eq!(names(&h.list("").await), ["after", "before", "later"]);
    assert!(h.cached("later"), "the restarted feed applies new writes");
    // A watch from before the failure cannot know what it missed: it ends with 410 Expired
    // (the client re-lists), possibly after the events it got before the failure.
    let got = events(&mut watching, 3).await;
    let last = got.last().expect("the watch ends with an error event");
    assert_eq!(last["type"], "ERROR", "{got:?}");
    assert_eq!(last["object"]["code"], 410, "{last}");
}

#[tokio::test]
async fn wcache_secrets_are_cached_as_the_api_returns_them() {
    let h = harness(super::resource::EVENTS_KEPT).await;
    let secrets = "/api/v1/namespaces/default/secrets";
    h.ok("GET", secrets, None).await;
    h.ok(
        "POST",
        secrets,
        Some(json!({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}})),
    )
    .await;
    let list = h.ok("GET", secrets, None).await;
    assert_eq!(list["items"][0]["data"]["password"], "aHVudGVyMg==");
    let one = h.ok("GET", &format!("{secrets}/s"), None).await;
    assert_eq!(one["data"]["password"], "aHVudGVyMg==");
    let stored = h
        .store
        .get("/registry/core/secrets/default/s")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&stored.value).contains("aHVudGVyMg"),
        "the store holds ciphertext"
    );
}

#[tokio::test]
async fn wcache_holds_each_object_once_as_its_json() {
    let h = harness(super::resource::EVENTS_KEPT).await;
    h.list("").await;
    // The server's own ConfigMaps (kube-system/skiff-cluster, published to nodes).
    let own = h
        .state
        .cache
        .0
        .cache("/registry/core/configmaps/")
        .map_or(0, |c| c.len());
    let mut json_bytes = 0;
    for i in 0..300 {
        let cm = h
            .configmap(
                &format!("cm-{i:03}"),
                json!({"app": "bench", "i": i.to_string()}),
            )
            .await;
        json_bytes += serde_json::to_vec(&cm).unwrap().len();
    }
    assert_eq!(names(&h.list("").await).len(), 300);
    let cache = h.state.cache.0.cache("/registry/core/configmaps/").unwrap();
    assert_eq!(cache.len(), own + 300);
    let held = cache.heap_bytes();
    // Packed against the resource's dictionary, labels and fields included, the cache holds
    // less than the JSON it serves.
    assert!(
        held < json_bytes,
        "the cache holds {held} bytes for {json_bytes} bytes of JSON"
    );
}

/// A metadata-only watch of configmaps from `rv` (the garbage collector's kind of watch).
async fn metadata_watch(h: &Harness, rv: i64) -> axum::body::BodyDataStream {
    let req = Request::builder()
        .uri(format!("{CMS}?watch=true&resourceVersion={rv}"))
        .header(
            "Accept",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json",
        )
        .body(Body::empty())
        .unwrap();
    let resp = h.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.into_body().into_data_stream()
}

/// The ring keeps the metadata JSON of only its newest changes; a metadata-only watch
/// resuming from before them still gets every change's metadata at its own revision, the
/// same lines a watch that kept up got.
#[tokio::test]
async fn wcache_metadata_of_older_changes_is_written_again_for_late_watches() {
    let h = harness(super::resource::EVENTS_KEPT).await;
    let start = rv(&h.list("").await);
    let mut live = metadata_watch(&h, start).await;
    let writes = super::resource::METADATA_KEPT + 40;
    let mut created = Vec::new();
    for i in 0..writes {
        created.push(
            h.configmap(&format!("cm-{i:03}"), json!({"i": i.to_string()}))
                .await,
        );
    }
    let kept_up = events(&mut live, writes).await;
    assert_eq!(kept_up.len(), writes);
    let cache = h.state.cache.0.cache("/registry/core/configmaps/").unwrap();
    let held = cache.metadata_held();
    assert!(
        held > 0 && held <= super::resource::METADATA_KEPT,
        "{held} changes hold their metadata JSON"
    );
    let mut late = metadata_watch(&h, start).await;
    let resumed = events(&mut late, writes).await;
    assert_eq!(
        resumed, kept_up,
        "a late watch gets the lines a live one got"
    );
    for (event, cm) in resumed.iter().zip(&created) {
        let meta = &event["object"]["metadata"];
        assert_eq!(event["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(meta["name"], cm["metadata"]["name"]);
        assert_eq!(meta["resourceVersion"], cm["metadata"]["resourceVersion"]);
    }
}

const PODS: &str = "/api/v1/namespaces/default/pods";

impl Harness {
    /// A pending pod the watch cache holds.
    async fn cached_pod(&self, name: &str) {
        let pod = json!({"metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        self.ok("POST", PODS, Some(pod)).await;
        let key = format!("/registry/core/pods/default/{name}");
        let cache = || self.state.cache.0.cache("/registry/core/pods/");
        eventually("the cache holds the pod", || {
            cache().is_some_and(|c| c.get(&key, 0).0.is_some())
        })
        .await;
    }

    /// Changes the stored pod behind the API's back (as another server on the same etcd).
    async fn change_stored_pod(&self, name: &str, change: impl FnOnce(&mut Value)) {
        let key = format!("/registry/core/pods/default/{name}");
        let kv = self.store.get(&key).await.unwrap().unwrap();
        let mut pod: Value = serde_json::from_slice(&kv.value).unwrap();
        change(&mut pod);
        let bytes = serde_json::to_vec(&pod).unwrap();
        self.store
            .update(&key, bytes, kv.mod_revision)
            .await
            .unwrap();
    }

    async fn bind(&self, pod: &str, node: &str) -> (StatusCode, Value) {
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
            "target": {"kind": "Node", "name": node}});
        self.call("POST", &format!("{PODS}/{pod}/binding"), Some(binding))
            .await
    }
}

#[tokio::test]
async fn binding_from_a_stale_cached_pod_lands_once_on_the_stored_pod() {
    let h = harness(super::resource::EVENTS_KEPT).await;
    h.ok("GET", PODS, None).await; // creates the cache of pods
    h.cached_pod("fresh").await;
    let (status, body) = h.bind("fresh", "n1").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    h.cached_pod("stale").await;
    // The cache keeps the pod as it was; the store gets a new label.
    h.hold.send_replace(true);
    h.change_stored_pod("stale", |p| {
        p["metadata"]["labels"] = json!({"changed": "yes"});
    })
    .await;
    let (status, body) = h.bind("stale", "n2").await;
    h.hold.send_replace(false);
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (name, node) in [("fresh", "n1"), ("stale", "n2")] {
        let pod = h.ok("GET", &format!("{PODS}/{name}"), None).await;
        assert_eq!(pod["spec"]["nodeName"], node, "{pod}");
        let scheduled = pod["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["type"] == "PodScheduled")
            .collect::<Vec<_>>();
        assert_eq!(scheduled.len(), 1, "{pod}");
        assert_eq!(scheduled[0]["status"], "True");
    }
    let pod = h.ok("GET", &format!("{PODS}/stale"), None).await;
    assert_eq!(
        pod["metadata"]["labels"]["changed"], "yes",
        "the binding kept the write the cache had not seen: {pod}"
    );
}

#[tokio::test]
async fn binding_a_pod_bound_after_the_cache_saw_it_is_409() {
    let h = harness(super::resource::EVENTS_KEPT).await;
    h.ok("GET", PODS, None).await;
    h.cached_pod("p").await;
    h.hold.send_replace(true);
    h.change_stored_pod("p", |p| p["spec"]["nodeName"] = json!("n0"))
        .await;
    let (status, body) = h.bind("p", "n1").await;
    h.hold.send_replace(false);
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        body["message"],
        "Operation cannot be fulfilled on pods/binding \"p\": pod p is already assigned to node \"n0\""
    );
    let pod = h.ok("GET", &format!("{PODS}/p"), None).await;
    assert_eq!(pod["spec"]["nodeName"], "n0");
}
