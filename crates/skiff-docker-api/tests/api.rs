//! The HTTP surface without containers: negotiation, routing and Docker's error format, driven
//! through the router in-process against an engine on a temporary root.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use skiff_engine::{Engine, EngineConfig};
use tower::ServiceExt;

struct Api {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
}

impl Api {
    async fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("skiff-api-test")
            .tempdir()
            .expect("tempdir");
        let (root, state) = (dir.path().join("root"), dir.path().join("state"));
        let config = EngineConfig {
            network: no_host_network(&root, &state),
            root,
            state,
            default_runtime: "runc".into(),
            exe: std::path::PathBuf::from("/bin/false"),
            cgroup_parent: "skiff-api-test".into(),
            registry: Default::default(),
        };
        let engine = Engine::open(config)
            .await
            .expect("engine opens on an empty root");
        Self { _dir: dir, engine }
    }

    async fn call(&self, req: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let resp = skiff_docker_api::app(self.engine.clone())
            .oneshot(req)
            .await
            .expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        (status, headers, body)
    }

    async fn get(&self, path: &str) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        self.call(Request::get(path).body(Body::empty()).unwrap())
            .await
    }
}

fn message(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).expect("error bodies are JSON");
    v["message"].as_str().expect("message field").to_owned()
}

#[tokio::test]
async fn ping_advertises_the_api_version() {
    let api = Api::new().await;
    for path in ["/_ping", "/v1.50/_ping", "/v1.41/_ping"] {
        let (status, headers, body) = api.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body, b"OK");
        assert_eq!(headers["api-version"], "1.50");
        assert_eq!(headers["ostype"], "linux");
        assert_eq!(headers["docker-experimental"], "false");
    }
    let (status, headers, body) = api
        .call(Request::head("/_ping").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(headers["api-version"], "1.50");
}

#[tokio::test]
async fn version_reports_the_supported_range() {
    let api = Api::new().await;
    let (status, _, body) = api.get("/v1.44/version").await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["ApiVersion"], "1.50");
    assert_eq!(v["MinAPIVersion"], "1.41");
}

#[tokio::test]
async fn versions_outside_the_range_are_refused_in_docker_format() {
    let api = Api::new().await;
    let (status, headers, body) = api.get("/v1.12/containers/json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["content-type"], "application/json");
    assert!(
        message(&body).contains("client version 1.12 is too old"),
        "{}",
        message(&body)
    );
    let (status, _, body) = api.get("/v1.99/info").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&body).contains("too new"));
}

#[tokio::test]
async fn unknown_paths_are_404_with_a_message() {
    let api = Api::new().await;
    let (status, _, body) = api.get("/v1.50/nothing/here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(message(&body), "page not found");
}

#[tokio::test]
async fn unknown_container_is_404_no_such_container() {
    let api = Api::new().await;
    let (status, _, body) = api.get("/v1.50/containers/nonexistent/json").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(message(&body), "No such container: nonexistent");
}

#[tokio::test]
async fn image_names_with_slashes_route_to_the_image() {
    let api = Api::new().await;
    let (status, _, body) = api
        .get("/v1.50/images/registry.local:5000/team/app:1.0/json")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        message(&body).contains("registry.local:5000/team/app:1.0"),
        "{}",
        message(&body)
    );
}

fn create(body: impl Into<Body>) -> Request<Body> {
    Request::post("/v1.50/containers/create?name=skiff-bad")
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

#[tokio::test]
async fn malformed_json_is_400() {
    let api = Api::new().await;
    let (status, _, body) = api.call(create("{\"Image\": ")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        message(&body).starts_with("invalid JSON"),
        "{}",
        message(&body)
    );
    let (status, _, body) = api.call(create("")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        message(&body),
        "config cannot be empty in order to create a container"
    );
}

#[tokio::test]
async fn oversized_json_body_is_413() {
    let api = Api::new().await;
    let huge = format!(
        "{{\"Image\":\"busybox\",\"Env\":[\"X={}\"]}}",
        "a".repeat(8 << 20)
    );
    let (status, _, body) = api.call(create(huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(message(&body).contains("too large"));
}

#[tokio::test]
async fn bad_query_values_are_400() {
    let api = Api::new().await;
    let (status, _, body) = api.get("/v1.50/containers/json?all=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&body).contains("all"));
    let (status, _, _) = api.get("/v1.50/containers/json?filters=notjson").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn pulls_failing_before_any_progress_are_http_errors() {
    let api = Api::new().await;
    let post = |path: &str| Request::post(path).body(Body::empty()).unwrap();
    let (status, _, body) = api
        .call(post("/v1.50/images/create?fromImage=Bad_Name&tag=latest"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        message(&body).contains("invalid reference format"),
        "{}",
        message(&body)
    );
    let (status, _, body) = api
        .call(post(
            "/v1.50/images/create?fromImage=busybox&tag=latest&platform=linux/amd64/v1/x",
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        message(&body).contains("invalid platform"),
        "{}",
        message(&body)
    );
    // Without a tag every tag is pulled (--all-tags): listing them fails first.
    let (status, _, body) = api
        .call(post("/v1.50/images/create?fromImage=127.0.0.1:1/app"))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        message(&body).contains("cannot list the tags of 127.0.0.1:1/app"),
        "{}",
        message(&body)
    );
    // Nothing listens on port 1: dockerd answers 500 with the connection error.
    let (status, _, body) = api
        .call(post("/v1.50/images/create?fromImage=127.0.0.1:1/app&tag=1"))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(message(&body).contains("127.0.0.1:1"), "{}", message(&body));
}

#[tokio::test]
async fn pushing_an_unknown_image_fails_inside_the_progress_stream() {
    let api = Api::new().await;
    let req = Request::post("/v1.50/images/127.0.0.1:1/nosuch/push?tag=1")
        .header("X-Registry-Auth", "e30=")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = api.call(req).await;
    // As dockerd: the first message is out before the image is looked up.
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let lines: Vec<serde_json::Value> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(
        lines[0]["status"],
        "The push refers to repository [127.0.0.1:1/nosuch]"
    );
    let want = "An image does not exist locally with the tag: 127.0.0.1:1/nosuch";
    assert_eq!(lines[1]["error"], want);
    assert_eq!(lines[1]["errorDetail"]["message"], want);
    assert_eq!(lines.len(), 2);
}

#[tokio::test]
async fn auth_refuses_malformed_bodies() {
    let api = Api::new().await;
    let req = Request::post("/v1.50/auth")
        .header("Content-Type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let (status, _, body) = api.call(req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&body).contains("invalid registry credentials"));
}

/// Networking that creates nothing on the host: no default bridge, names of this test's own.
fn no_host_network(root: &std::path::Path, state: &std::path::Path) -> skiff_engine::NetworkConfig {
    let mut network = skiff_engine::NetworkConfig::new(root, state);
    network.default_bridge = None;
    network.net.prefix = format!("skiffa{:02}", std::process::id() % 100);
    network.net.table = format!("skiff-api-a-{}", std::process::id());
    network
}
