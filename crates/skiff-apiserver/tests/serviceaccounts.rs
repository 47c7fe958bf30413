//! Service-account tokens through the public router over a real SQLite store: TokenRequest,
//! authentication of the tokens it gives (and their death with the pod or account they are
//! bound to), `SelfSubjectReview`, legacy Secret tokens, the ServiceAccount admission of
//! pods and what the Node authorizer lets a node ask for.

mod common;

use axum::body::Body;
use common::*;
use http::{Request, StatusCode};
use serde_json::{json, Value};
use skiff_apiserver::auth::UserInfo;
use tower::ServiceExt;

const SA: &str = "/api/v1/namespaces/default/serviceaccounts";
const PODS: &str = "/api/v1/namespaces/default/pods";

/// A request with `token` as the bearer (no admin token).
async fn as_token(
    api: &Api,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let resp = api.app.clone().oneshot(req).await.unwrap();
    let s = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (s, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn whoami(api: &Api, token: &str) -> (StatusCode, Value) {
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    as_token(
        api,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        token,
        review,
    )
    .await
}

fn pod(name: &str, extra: Value) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}],
                 "initContainers": [{"name": "i", "image": "busybox"}]}});
    if let (Some(spec), Some(more)) = (p["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(more.clone());
    }
    p
}

async fn token_for(api: &Api, sa: &str, spec: Value) -> (StatusCode, Value) {
    api.post(
        &format!("{SA}/{sa}/token"),
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}),
    )
    .await
}

#[tokio::test]
async fn satoken_bound_token_is_the_service_account_until_its_pod_goes() {
    let counting = std::sync::OnceLock::new();
    let api = api_over(|store| {
        let c = counting::CountingStore::new(store);
        counting.set(c.clone()).ok();
        c
    })
    .await;
    let store = counting.get().unwrap();
    let (s, p) = api.post(PODS, pod("web", json!({}))).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let uid = p["metadata"]["uid"].as_str().unwrap();
    let (s, tr) = token_for(
        &api,
        "default",
        json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": uid}}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{tr}");
    assert_eq!(tr["kind"], "TokenRequest");
    assert_eq!(tr["spec"]["expirationSeconds"], 3600);
    let token = tr["status"]["token"].as_str().unwrap().to_string();
    assert!(tr["status"]["expirationTimestamp"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    let (s, review) = whoami(&api, &token).await;
    assert_eq!(s, StatusCode::CREATED, "{review}");
    let info = &review["status"]["userInfo"];
    assert_eq!(info["username"], "system:serviceaccount:default:default");
    assert_eq!(
        info["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    // The account and the pod are checked in the watch cache (the first check made it).
    let before = store.reads().len();
    let (s, again) = whoami(&api, &token).await;
    assert_eq!(s, StatusCode::CREATED, "{again}");
    assert_eq!(store.reads()[before..], [] as [String; 0]);
    // RBAC: nothing without a binding, what a bound Role allows with one.
    let (s, body) = as_token(
        &api,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        &token,
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["message"],
        "configmaps is forbidden: User \"system:serviceaccount:default:default\" cannot list \
         resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
    let rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default";
    let (s, body) = api
        .call(
            "POST",
            &format!("{rbac}/roles"),
            Some(json!({"metadata": {"name": "cm-reader"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let (s, body) = api
        .call(
            "POST",
            &format!("{rbac}/rolebindings"),
            Some(json!({"metadata": {"name": "cm-reader"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "default"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let (s, body) = as_token(
        &api,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        &token,
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, _) = as_token(
        &api,
        "GET",
        "/api/v1/namespaces/default/secrets",
        &token,
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the Role names configmaps only");

    let (s, _) = api
        .call("DELETE", &format!("{PODS}/web?gracePeriodSeconds=0"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, e) = whoami(&api, &token).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{e}");
}

#[tokio::test]
async fn satoken_request_errors_as_kubernetes_words_them() {
    let api = api().await;
    let (s, e) = token_for(&api, "nobody", json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    assert_eq!(e["message"], "serviceaccounts \"nobody\" not found");
    let (s, e) = token_for(&api, "default", json!({"expirationSeconds": 60})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (s, e) = token_for(
        &api,
        "default",
        json!({"boundObjectRef": {"kind": "ConfigMap", "apiVersion": "v1", "name": "x"}}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, e) = token_for(
        &api,
        "default",
        json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "gone"}}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    api.post(PODS, pod("p", json!({}))).await;
    let (s, e) = token_for(
        &api,
        "default",
        json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "other"}}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("does not match the UID"),
        "{e}"
    );

    // An audience the API does not accept: the token exists but is not for this server.
    let (s, tr) = token_for(&api, "default", json!({"audiences": ["vault"]})).await;
    assert_eq!(s, StatusCode::CREATED, "{tr}");
    let (s, _) = whoami(&api, tr["status"]["token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Garbage and tokens of a deleted and recreated account.
    assert_eq!(whoami(&api, "a.b.c").await.0, StatusCode::UNAUTHORIZED);
    api.post(SA, json!({"metadata": {"name": "robot"}})).await;
    let (_, tr) = token_for(&api, "robot", json!({})).await;
    let token = tr["status"]["token"].as_str().unwrap().to_string();
    assert_eq!(whoami(&api, &token).await.0, StatusCode::CREATED);
    api.delete(&format!("{SA}/robot")).await;
    api.post(SA, json!({"metadata": {"name": "robot"}})).await;
    assert_eq!(whoami(&api, &token).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn satoken_legacy_secret_token_authenticates_while_the_secret_holds_it() {
    let api = api().await;
    let (_, sa) = api.get(&format!("{SA}/default")).await;
    let uid = sa["metadata"]["uid"].as_str().unwrap();
    let token = api
        .state
        .service_account_signer()
        .sign_legacy("default", "default", uid, "default-token")
        .unwrap();
    let secret = |t: &str| {
        json!({"metadata": {"name": "default-token",
        "annotations": {"kubernetes.io/service-account.name": "default"}},
        "type": "kubernetes.io/service-account-token", "stringData": {"token": t}})
    };
    let (s, e) = api
        .post("/api/v1/namespaces/default/secrets", secret(&token))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    let (s, review) = whoami(&api, &token).await;
    assert_eq!(s, StatusCode::CREATED, "{review}");
    assert_eq!(
        review["status"]["userInfo"]["username"],
        "system:serviceaccount:default:default"
    );
    api.delete("/api/v1/namespaces/default/secrets/default-token")
        .await;
    assert_eq!(whoami(&api, &token).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn satoken_admission_mounts_the_token_unless_told_not_to() {
    let api = api().await;
    let (s, p) = api.post(PODS, pod("a", json!({}))).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert_eq!(p["spec"]["serviceAccountName"], "default");
    let vol = p["spec"]["volumes"][0]["name"].as_str().unwrap();
    assert!(vol.starts_with("kube-api-access-"), "{p}");
    for c in ["containers", "initContainers"] {
        assert_eq!(
            p["spec"][c][0]["volumeMounts"][0],
            json!({"name": vol, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})
        );
    }
    let (_, p) = api
        .post(
            PODS,
            pod("b", json!({"automountServiceAccountToken": false})),
        )
        .await;
    assert!(p["spec"].get("volumes").is_none(), "{p}");
    api.post(
        SA,
        json!({"metadata": {"name": "quiet"}, "automountServiceAccountToken": false}),
    )
    .await;
    let (_, p) = api
        .post(PODS, pod("c", json!({"serviceAccountName": "quiet"})))
        .await;
    assert!(p["spec"].get("volumes").is_none(), "{p}");
    let (s, e) = api
        .post(PODS, pod("d", json!({"serviceAccountName": "ghost"})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(
        e["message"],
        "pods \"d\" is forbidden: error looking up service account default/ghost: serviceaccount \"ghost\" not found"
    );
}

#[tokio::test]
async fn satoken_nodes_get_tokens_only_for_their_own_pods() {
    let api = api().await;
    let node = |name: &str| {
        skiff_apiserver::in_process_router(
            api.state.clone(),
            UserInfo {
                name: format!("system:node:{name}"),
                uid: String::new(),
                groups: vec!["system:nodes".into()],
            },
        )
    };
    api.post(PODS, pod("mine", json!({}))).await;
    let ask = |pod: &str| {
        let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod}}});
        Request::builder()
            .method("POST")
            .uri(format!("{SA}/default/token"))
            .header("Content-Type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap()
    };
    let ok = node("n1").oneshot(ask("mine")).await.unwrap();
    assert_eq!(ok.status(), StatusCode::CREATED);
    let other = node("n2").oneshot(ask("mine")).await.unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    let unbound = node("n1")
        .oneshot(
            Request::builder()
                .method("POST")
                .uri(format!("{SA}/default/token"))
                .header("Content-Type", "application/json")
                .body(Body::from(r#"{"spec":{}}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(unbound.status(), StatusCode::FORBIDDEN);
}

const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

fn token_review(token: &str, audiences: &[&str]) -> Value {
    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token, "audiences": audiences}})
}

#[tokio::test]
async fn token_review_says_who_a_token_is_for_the_audiences_asked() {
    let api = api().await;
    let issuer = skiff_apiserver::serviceaccount::DEFAULT_ISSUER;
    // The token file's admin: the API's own audience.
    let (s, r) = api.post(TOKEN_REVIEWS, token_review(TOKEN, &[])).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["kind"], "TokenReview");
    assert_eq!(r["spec"]["token"], TOKEN, "the request comes back");
    assert_eq!(r["status"]["authenticated"], true, "{r}");
    assert_eq!(r["status"]["user"]["username"], "admin");
    assert_eq!(
        r["status"]["user"]["groups"],
        json!(["system:masters", "system:authenticated"])
    );
    assert_eq!(r["status"]["audiences"], json!([issuer]));
    // ...but not for an audience the API is not.
    let (_, r) = api
        .post(TOKEN_REVIEWS, token_review(TOKEN, &["vault"]))
        .await;
    assert_eq!(r["status"], json!({"user": {}}), "{r}");

    // A bound service-account token for another audience: valid for it alone.
    let (s, tr) = token_for(&api, "default", json!({"audiences": ["vault"]})).await;
    assert_eq!(s, StatusCode::CREATED, "{tr}");
    let vault = tr["status"]["token"].as_str().unwrap().to_string();
    let (_, r) = api
        .post(TOKEN_REVIEWS, token_review(&vault, &["vault", "other"]))
        .await;
    assert_eq!(r["status"]["authenticated"], true, "{r}");
    assert_eq!(
        r["status"]["user"]["username"],
        "system:serviceaccount:default:default"
    );
    assert_eq!(r["status"]["audiences"], json!(["vault"]));
    let (_, r) = api.post(TOKEN_REVIEWS, token_review(&vault, &[])).await;
    assert_eq!(r["status"]["authenticated"], Value::Null, "{r}");
    let error = r["status"]["error"].as_str().unwrap();
    assert!(
        error.contains("is invalid for the target audiences"),
        "{error}"
    );
    // The API itself refuses it as a bearer token.
    assert_eq!(whoami(&api, &vault).await.0, StatusCode::UNAUTHORIZED);

    // A token nobody knows; no token at all.
    let (s, r) = api
        .post(TOKEN_REVIEWS, token_review("not-a-token", &[]))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["status"], json!({"user": {}}));
    let (s, e) = api.post(TOKEN_REVIEWS, token_review("", &[])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(
        e["message"],
        "token is required for TokenReview in authentication"
    );

    // Asking is `create tokenreviews`: a service account may not, unless bound to
    // system:auth-delegator.
    let (_, tr) = token_for(&api, "default", json!({})).await;
    let sa = tr["status"]["token"].as_str().unwrap().to_string();
    let (s, e) = as_token(&api, "POST", TOKEN_REVIEWS, &sa, token_review(TOKEN, &[])).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "default-delegates"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]});
    let (s, b) = api
        .post(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            binding,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, r) = as_token(&api, "POST", TOKEN_REVIEWS, &sa, token_review(TOKEN, &[])).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["status"]["user"]["username"], "admin");
}
