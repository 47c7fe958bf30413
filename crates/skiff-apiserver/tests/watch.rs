//! Watch through the public router: selectors per event, initial events and bookmarks,
//! timeouts, 410 Gone after compaction.

mod common;

use common::*;
use futures::StreamExt;
use http::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn watch_streams_events_with_selectors() {
    let api = api().await;
    let (_, list) = api.get(CONFIGMAPS).await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, mut stream) = api
        .watch(&format!("resourceVersion={rv}&labelSelector=app%3Dx"))
        .await;
    assert_eq!(status, StatusCode::OK);

    api.post(CONFIGMAPS, json!({"metadata": {"name": "other"}}))
        .await;
    api.post(
        CONFIGMAPS,
        json!({"metadata": {"name": "a", "labels": {"app": "x"}}}),
    )
    .await;
    let (s, _, _) = api
        .merge_patch(
            "/api/v1/namespaces/default/configmaps/a",
            br#"{"metadata":{"labels":{"app":"y"}}}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let events = read_events(&mut stream, 2).await;
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "a");
    assert_eq!(
        events[1]["type"], "DELETED",
        "leaving the selector reads as a deletion"
    );
}

#[tokio::test]
async fn watch_from_compacted_revision_is_410_gone() {
    let api = api().await;
    let first = api.configmap("a").await;
    let old_rv = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    api.configmap("b").await;
    let now = api.store.current_revision().await.unwrap();
    api.store.compact(now).await.unwrap();
    let (s, mut body) = api
        .watch(&format!(
            "resourceVersion={}",
            old_rv.parse::<i64>().unwrap() - 1
        ))
        .await;
    assert_eq!(s, StatusCode::GONE);
    let status: Value = serde_json::from_slice(&body.next().await.unwrap().unwrap()).unwrap();
    assert_eq!(status["reason"], "Expired");
    let (s, list) = api.get(&format!("/api/v1/namespaces/default/configmaps?resourceVersion={old_rv}&resourceVersionMatch=Exact")).await;
    assert_eq!(s, StatusCode::GONE, "{list}");
}

#[tokio::test]
async fn watch_without_resource_version_replays_state_then_bookmarks() {
    let api = api().await;
    api.configmap("existing").await;
    let (s, mut body) = api
        .watch("allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan")
        .await;
    assert_eq!(s, StatusCode::OK);
    let events = read_events(&mut body, 2).await;
    assert_eq!(
        (
            events[0]["type"].as_str(),
            events[0]["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("existing"))
    );
    assert_eq!(events[1]["type"], "BOOKMARK");
    assert_eq!(
        events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

#[tokio::test]
async fn watch_ends_at_timeout_seconds() {
    let api = api().await;
    let (s, mut body) = api.watch("resourceVersion=0&timeoutSeconds=1").await;
    assert_eq!(s, StatusCode::OK);
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while body.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the watch outlived its timeoutSeconds");
}

/// A watch of configmaps from `rv` asking for metadata only, as kube's `metadata_watcher`.
async fn metadata_watch(api: &Api, rv: &str) -> axum::body::BodyDataStream {
    let req = http::Request::builder()
        .uri(format!("{CONFIGMAPS}?watch=true&resourceVersion={rv}"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header(
            "Accept",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json",
        )
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(api.app.clone(), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.into_body().into_data_stream()
}

/// A metadata-only watch (the garbage collector's, kube's `metadata_watcher`): every event
/// is a `PartialObjectMetadata` with the object's metadata and resourceVersion and nothing
/// else, the deletion at its own revision; two such watches get the same lines.
#[tokio::test]
async fn metadata_only_watches_get_partial_object_metadata() {
    let api = api().await;
    let (_, list) = api.get(CONFIGMAPS).await;
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap();
    let (mut first, mut second) = (
        metadata_watch(&api, rv).await,
        metadata_watch(&api, rv).await,
    );
    let (_, created) = api
        .post(
            CONFIGMAPS,
            json!({"metadata": {"name": "m", "labels": {"app": "x"}}, "data": {"k": "v"}}),
        )
        .await;
    let (s, _, body) = api
        .merge_patch(
            &format!("{CONFIGMAPS}/m"),
            br#"{"metadata":{"annotations":{"a":"b"}}}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let updated: Value = serde_json::from_slice(&body).unwrap();
    let (s, _) = api.delete(&format!("{CONFIGMAPS}/m")).await;
    assert_eq!(s, StatusCode::OK);

    let events = read_events(&mut first, 3).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"]);
    for e in &events {
        let o = &e["object"];
        assert_eq!(
            (o["kind"].as_str(), o["apiVersion"].as_str()),
            (Some("PartialObjectMetadata"), Some("meta.k8s.io/v1"))
        );
        assert_eq!(o.as_object().unwrap().len(), 3, "only metadata: {o}");
        assert_eq!(o["metadata"]["name"], "m");
        assert_eq!(o["metadata"]["labels"]["app"], "x");
        assert_eq!(o["metadata"]["uid"], created["metadata"]["uid"]);
    }
    let rvs: Vec<&Value> = events
        .iter()
        .map(|e| &e["object"]["metadata"]["resourceVersion"])
        .collect();
    assert_eq!(rvs[0], &created["metadata"]["resourceVersion"]);
    assert_eq!(rvs[1], &updated["metadata"]["resourceVersion"]);
    let number = |v: &Value| v.as_str().unwrap().parse::<i64>().unwrap();
    assert!(
        number(rvs[2]) > number(rvs[1]),
        "a deletion at its own revision: {rvs:?}"
    );
    assert_eq!(events[1]["object"]["metadata"]["annotations"]["a"], "b");
    assert_eq!(read_events(&mut second, 3).await, events);
}
