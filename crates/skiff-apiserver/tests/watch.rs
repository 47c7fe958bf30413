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
