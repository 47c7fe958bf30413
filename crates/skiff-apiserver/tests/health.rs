//! `/healthz`, `/livez` and `/readyz` as kube-apiserver answers them, without credentials:
//! `ok`, the named checks with `?verbose`, one check by name, `?exclude=`, and a failing
//! datastore turning readiness into a 500 that names the failed check.

mod common;

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use http::{Request, StatusCode};
use tower::ServiceExt;

/// `GET path` without credentials: status and body.
async fn get(app: &axum::Router, path: &str) -> (StatusCode, String) {
    let req = Request::builder().uri(path).body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn health_endpoints_report_named_checks_and_a_datastore_that_is_down() {
    let counting = Arc::new(OnceLock::new());
    let keep = counting.clone();
    let api = common::api_over(move |store| {
        let c = common::counting::CountingStore::new(store);
        let _ = keep.set(c.clone());
        c
    })
    .await;
    let store: &Arc<common::counting::CountingStore> = counting.get().unwrap();
    for endpoint in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(get(&api.app, endpoint).await, (StatusCode::OK, "ok".into()));
    }
    let name = "readyz";
    assert_eq!(
        get(&api.app, "/readyz?verbose").await,
        (
            StatusCode::OK,
            format!("[+]ping ok\n[+]log ok\n[+]etcd ok\n{name} check passed\n")
        )
    );
    assert_eq!(
        get(&api.app, "/livez/etcd").await,
        (StatusCode::OK, "ok".into())
    );
    assert_eq!(
        get(&api.app, "/readyz/nonsense").await.0,
        StatusCode::NOT_FOUND
    );

    store.set_down(true);
    let (status, body) = get(&api.app, "/readyz").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        "[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\nreadyz check failed\n"
    );
    assert_eq!(
        get(&api.app, "/readyz/etcd").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        get(&api.app, "/readyz?exclude=etcd").await,
        (StatusCode::OK, "ok".into())
    );
    assert_eq!(
        get(&api.app, "/livez/ping").await,
        (StatusCode::OK, "ok".into())
    );
    store.set_down(false);
    assert_eq!(
        get(&api.app, "/readyz").await,
        (StatusCode::OK, "ok".into())
    );
}
