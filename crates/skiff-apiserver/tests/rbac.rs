//! RBAC for every user through the public router over a real SQLite store: the default
//! roles and bindings, what a user without bindings gets (Kubernetes' 403), what a binding
//! gives, escalation prevention, ClusterRole aggregation, the access reviews and
//! impersonation.

mod common;

use std::time::Duration;

use axum::body::Body;
use common::*;
use http::{Request, StatusCode};
use serde_json::{json, Value};
use skiff_apiserver::auth::UserInfo;
use tower::ServiceExt;

const PODS: &str = "/api/v1/namespaces/default/pods";
const ROLES: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles";
const BINDINGS: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings";
const CLUSTERROLES: &str = "/apis/rbac.authorization.k8s.io/v1/clusterroles";
const CLUSTERBINDINGS: &str = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
const SSAR: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
const SSRR: &str = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews";
const SAR: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.into(),
        uid: String::new(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

/// A request made as `who` (as a client certificate would name it), with extra headers.
async fn as_user_with(
    api: &Api,
    who: &UserInfo,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let app = skiff_apiserver::in_process_router(api.state.clone(), who.clone());
    let mut req = Request::builder().method(method).uri(path);
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header("Content-Type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = body.map_or_else(Vec::new, |b| serde_json::to_vec(&b).unwrap());
    let resp = app
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn as_user(
    api: &Api,
    who: &UserInfo,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    as_user_with(api, who, method, path, body, &[]).await
}

fn role_binding(name: &str, kind: &str, role: &str, subjects: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": subjects})
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

/// Polls `check` until it gives Some or 20 s pass.
async fn eventually<T>(mut check: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
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

#[tokio::test]
async fn rbac_defaults_are_created_and_come_back() {
    let api = api().await;
    let (s, roles) = api.get(CLUSTERROLES).await;
    assert_eq!(s, StatusCode::OK, "{roles}");
    let roles = names(&roles);
    for want in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
    ] {
        assert!(roles.contains(&want.to_string()), "{want} in {roles:?}");
    }
    let (_, admin) = api.get(&format!("{CLUSTERBINDINGS}/cluster-admin")).await;
    assert_eq!(
        admin["subjects"],
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}])
    );
    assert_eq!(
        admin["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"],
        "true"
    );
    let (_, public) = api
        .get(&format!("{CLUSTERBINDINGS}/system:public-info-viewer"))
        .await;
    assert_eq!(public["subjects"][1]["name"], "system:unauthenticated");

    // Deleted: back at the next round of the cluster's own objects.
    let (s, _) = api.delete(&format!("{CLUSTERROLES}/view")).await;
    assert_eq!(s, StatusCode::OK);
    api.state.bootstrap().await.unwrap();
    let (s, view) = api.get(&format!("{CLUSTERROLES}/view")).await;
    assert_eq!(s, StatusCode::OK, "{view}");
    assert!(view["aggregationRule"]["clusterRoleSelectors"].is_array());

    // A changed default: reconciled back at start unless autoupdate is "false".
    let path = format!("{CLUSTERROLES}/system:basic-user");
    let (_, mut basic) = api.get(&path).await;
    basic["rules"] = json!([{"apiGroups": ["x"], "resources": ["y"], "verbs": ["get"]}]);
    let (s, changed) = api.put(&path, basic).await;
    assert_eq!(s, StatusCode::OK, "{changed}");
    skiff_apiserver::rbac::bootstrap::reconcile(&api.state)
        .await
        .unwrap();
    let (_, restored) = api.get(&path).await;
    assert_eq!(restored["rules"].as_array().unwrap().len(), 3, "{restored}");
    assert_eq!(
        restored["rules"][0]["apiGroups"],
        json!(["x"]),
        "user rules kept"
    );
    let mut kept = restored.clone();
    kept["rules"] = json!([{"apiGroups": ["x"], "resources": ["y"], "verbs": ["get"]}]);
    kept["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] = json!("false");
    let (s, _) = api.put(&path, kept).await;
    assert_eq!(s, StatusCode::OK);
    skiff_apiserver::rbac::bootstrap::reconcile(&api.state)
        .await
        .unwrap();
    let (_, untouched) = api.get(&path).await;
    assert_eq!(
        untouched["rules"].as_array().unwrap().len(),
        1,
        "{untouched}"
    );
}

#[tokio::test]
async fn rbac_applies_to_users_and_groups_of_certificates_and_tokens() {
    let api = api().await;
    let (s, p) = api.post(PODS, pod("p")).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let alice = user("alice", &["dev"]);

    let (s, e) = as_user(&api, &alice, "GET", PODS, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(
        e["message"],
        "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    assert_eq!(e["reason"], "Forbidden");
    assert_eq!(e["kind"], "Status");

    // Bound to `view` through her group: reads, but no writes.
    let b = role_binding(
        "dev-view",
        "ClusterRole",
        "view",
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "dev"}]),
    );
    let (s, created) = api.post(BINDINGS, b).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    // `view` gets its rules from the aggregation controller; here they are written by hand
    // (the controller has its own test).
    let (_, agg) = api
        .get(&format!("{CLUSTERROLES}/system:aggregate-to-view"))
        .await;
    let (_, mut view) = api.get(&format!("{CLUSTERROLES}/view")).await;
    view["rules"] = agg["rules"].clone();
    let (s, _) = api.put(&format!("{CLUSTERROLES}/view"), view).await;
    assert_eq!(s, StatusCode::OK);

    let (s, list) = as_user(&api, &alice, "GET", PODS, None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(names(&list), ["p"]);
    let (s, e) = as_user(&api, &alice, "DELETE", &format!("{PODS}/p"), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        e["message"],
        "pods \"p\" is forbidden: User \"alice\" cannot delete resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    let (s, _) = as_user(
        &api,
        &alice,
        "GET",
        "/api/v1/namespaces/kube-system/pods",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the binding is for default only");
    let (s, _) = as_user(
        &api,
        &alice,
        "GET",
        "/api/v1/namespaces/default/secrets",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "view does not read secrets");

    // The same user by name, from a token: bound by a ClusterRoleBinding to `User`.
    let bob = user("bob", &[]);
    let (s, _) = as_user(&api, &bob, "GET", "/api/v1/nodes", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let reader = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "node-reader"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]});
    assert_eq!(api.post(CLUSTERROLES, reader).await.0, StatusCode::CREATED);
    let crb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "bob-nodes"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "node-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]});
    assert_eq!(api.post(CLUSTERBINDINGS, crb).await.0, StatusCode::CREATED);
    let (s, nodes) = as_user(&api, &bob, "GET", "/api/v1/nodes", None).await;
    assert_eq!(s, StatusCode::OK, "{nodes}");

    // system:masters keeps everything without any binding of its own.
    let root = user("root", &["system:masters"]);
    let (s, _) = as_user(&api, &root, "DELETE", &format!("{PODS}/p"), None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn rbac_escalation_needs_the_rules_or_escalate_and_bind() {
    let api = api().await;
    let carol = user("carol", &[]);
    // carol may manage roles and bindings in default and read pods there.
    let manager = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "rbac-manager"},
        "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
                   "verbs": ["create", "get", "update", "patch", "delete"]},
                  {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]});
    assert_eq!(api.post(ROLES, manager).await.0, StatusCode::CREATED);
    let b = role_binding(
        "carol-manager",
        "Role",
        "rbac-manager",
        json!([{"kind": "User", "name": "carol"}]),
    );
    assert_eq!(api.post(BINDINGS, b).await.0, StatusCode::CREATED);

    let held = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]});
    let (s, r) = as_user(&api, &carol, "POST", ROLES, Some(held)).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");

    let more = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "pod-killer"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "delete"]}]});
    let (s, e) = as_user(&api, &carol, "POST", ROLES, Some(more.clone())).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(
        e["message"],
        "roles.rbac.authorization.k8s.io \"pod-killer\" is forbidden: user \"carol\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}"
    );
    // Widening a held role by a patch is refused too.
    let (s, _) = as_user_with(
        &api,
        &carol,
        "PATCH",
        &format!("{ROLES}/pod-reader"),
        Some(json!({"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]})),
        &[("Content-Type", "application/merge-patch+json")],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Binding a role she does not hold: refused; one she holds: allowed.
    let admin_binding = role_binding(
        "carol-admin",
        "ClusterRole",
        "cluster-admin",
        json!([{"kind": "User", "name": "carol"}]),
    );
    let (s, e) = as_user(&api, &carol, "POST", BINDINGS, Some(admin_binding.clone())).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("is attempting to grant RBAC permissions not currently held"),
        "{e}"
    );
    let reader_binding = role_binding(
        "dave-reader",
        "Role",
        "pod-reader",
        json!([{"kind": "User", "name": "dave"}]),
    );
    let (s, r) = as_user(&api, &carol, "POST", BINDINGS, Some(reader_binding)).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");

    // `escalate` on roles and `bind` on cluster-admin lift the checks.
    let powers = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "escalator"},
        "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]},
                  {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                   "resourceNames": ["cluster-admin"], "verbs": ["bind"]}]});
    assert_eq!(api.post(CLUSTERROLES, powers).await.0, StatusCode::CREATED);
    let b = role_binding(
        "carol-escalator",
        "ClusterRole",
        "escalator",
        json!([{"kind": "User", "name": "carol"}]),
    );
    assert_eq!(api.post(BINDINGS, b).await.0, StatusCode::CREATED);
    let (s, r) = as_user(&api, &carol, "POST", ROLES, Some(more)).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let (s, r) = as_user(&api, &carol, "POST", BINDINGS, Some(admin_binding)).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
}

#[tokio::test]
async fn rbac_aggregation_fills_view_edit_and_admin() {
    let api = api().await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(skiff_apiserver::rbac::aggregation::run(
        api.state.clone(),
        async {
            let _ = stop_rx.await;
        },
    ));
    let has_rule = |role: &Value, resource: &str, verb: &str| {
        role["rules"].as_array().is_some_and(|rules| {
            rules.iter().any(|r| {
                r["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x == resource)
                    && r["verbs"].as_array().unwrap().iter().any(|x| x == verb)
            })
        })
    };
    let role_has = async |name: &str, resource: &str, verb: &str| {
        let (_, role) = api.get(&format!("{CLUSTERROLES}/{name}")).await;
        has_rule(&role, resource, verb)
    };
    // The defaults: view reads pods, edit deletes them and reads them (view's rules), admin
    // manages roles and has both.
    let filled = eventually(async || {
        (role_has("view", "pods", "list").await
            && role_has("edit", "pods", "delete").await
            && role_has("edit", "pods", "list").await
            && role_has("admin", "roles", "create").await
            && role_has("admin", "pods", "list").await)
            .then_some(())
    })
    .await;
    assert!(filled.is_some(), "default aggregated roles not filled");
    assert!(!role_has("view", "pods", "delete").await);

    // A user's role labelled aggregate-to-view reaches view, edit and admin.
    let widgets = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "widgets-view",
            "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]});
    assert_eq!(api.post(CLUSTERROLES, widgets).await.0, StatusCode::CREATED);
    let spread = eventually(async || {
        (role_has("view", "widgets", "get").await
            && role_has("edit", "widgets", "get").await
            && role_has("admin", "widgets", "get").await)
            .then_some(())
    })
    .await;
    assert!(spread.is_some(), "widgets-view not aggregated");

    // Gone again when the role goes.
    let (s, _) = api.delete(&format!("{CLUSTERROLES}/widgets-view")).await;
    assert_eq!(s, StatusCode::OK);
    let removed =
        eventually(async || (!role_has("view", "widgets", "get").await).then_some(())).await;
    assert!(removed.is_some(), "widgets rule stayed in view");

    // Only privileged users may write an aggregation rule.
    let erin = user("erin", &[]);
    let writer = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "role-writer"},
        "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["create"]}]});
    assert_eq!(api.post(CLUSTERROLES, writer).await.0, StatusCode::CREATED);
    let crb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "erin-writer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "role-writer"},
        "subjects": [{"kind": "User", "name": "erin"}]});
    assert_eq!(api.post(CLUSTERBINDINGS, crb).await.0, StatusCode::CREATED);
    let sneaky = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "sneaky"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}]}});
    let (s, e) = as_user(&api, &erin, "POST", CLUSTERROLES, Some(sneaky)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .ends_with("must have cluster-admin privileges to use the aggregationRule"));

    let _ = stop_tx.send(());
    controller.await.unwrap();
}

#[tokio::test]
async fn rbac_reviews_and_impersonation() {
    let api = api().await;
    let frank = user("frank", &[]);
    let review = |verb: &str, resource: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": "default", "verb": verb, "resource": resource}}})
    };
    let (s, r) = as_user(&api, &frank, "POST", SSAR, Some(review("get", "pods"))).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["status"]["allowed"], false);

    let reader = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]});
    assert_eq!(api.post(ROLES, reader).await.0, StatusCode::CREATED);
    let b = role_binding(
        "frank-reader",
        "Role",
        "pod-reader",
        json!([{"kind": "User", "name": "frank"}]),
    );
    assert_eq!(api.post(BINDINGS, b).await.0, StatusCode::CREATED);
    let (_, r) = as_user(&api, &frank, "POST", SSAR, Some(review("get", "pods"))).await;
    assert_eq!(r["status"]["allowed"], true);
    assert_eq!(
        r["status"]["reason"],
        "RBAC: allowed by RoleBinding \"frank-reader/default\" of Role \"pod-reader\" to User \"frank\""
    );
    let (_, r) = as_user(&api, &frank, "POST", SSAR, Some(review("delete", "pods"))).await;
    assert_eq!(r["status"]["allowed"], false);
    // Discovery URLs: every authenticated user (system:discovery).
    let url = json!({"spec": {"nonResourceAttributes": {"verb": "get", "path": "/apis/apps"}}});
    let (_, r) = as_user(&api, &frank, "POST", SSAR, Some(url)).await;
    assert_eq!(r["status"]["allowed"], true, "{r}");

    // Rules review: the role's rules plus what every user holds.
    let (s, r) = as_user(
        &api,
        &frank,
        "POST",
        SSRR,
        Some(json!({"spec": {"namespace": "default"}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let rules = r["status"]["resourceRules"].as_array().unwrap();
    assert!(
        rules
            .iter()
            .any(|x| x["resources"] == json!(["pods"]) && x["verbs"] == json!(["get", "list"])),
        "{r}"
    );
    assert!(rules.iter().any(|x| x["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|y| y == "selfsubjectaccessreviews")));
    assert!(!r["status"]["nonResourceRules"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(r["status"]["incomplete"], false);

    // SubjectAccessReview: an admin asks about frank; frank may not ask about others.
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "frank", "resourceAttributes": {"namespace": "default", "verb": "list", "resource": "pods"}}});
    let (s, r) = api.post(SAR, sar.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["status"]["allowed"], true);
    let (s, e) = as_user(&api, &frank, "POST", SAR, Some(sar)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        e["message"],
        "subjectaccessreviews.authorization.k8s.io is forbidden: User \"frank\" cannot create resource \"subjectaccessreviews\" in API group \"authorization.k8s.io\" at the cluster scope"
    );
    // Bad reviews are Kubernetes' 422.
    let (s, e) = as_user(&api, &frank, "POST", SSAR, Some(json!({"spec": {}}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["reason"], "Invalid");
    assert_eq!(
        e["details"]["causes"][0]["field"],
        "spec.resourceAttributes"
    );
    let (s, _) = api
        .post(
            SAR,
            json!({"spec": {"resourceAttributes": {"verb": "get"}}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // Impersonation: the admin acts as frank (and is refused what frank is refused) ...
    let (s, r) = as_user_with(
        &api,
        &user("admin", &["system:masters"]),
        "GET",
        PODS,
        None,
        &[("Impersonate-User", "frank")],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let (s, e) = as_user_with(
        &api,
        &user("admin", &["system:masters"]),
        "GET",
        "/api/v1/namespaces/default/secrets",
        None,
        &[("Impersonate-User", "frank")],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        e["message"].as_str().unwrap().contains("User \"frank\""),
        "{e}"
    );
    // ... frank may not impersonate anyone without the `impersonate` verb.
    let (s, e) = as_user_with(
        &api,
        &frank,
        "GET",
        PODS,
        None,
        &[
            ("Impersonate-User", "admin"),
            ("Impersonate-Group", "system:masters"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        e["message"],
        "users \"admin\" is forbidden: User \"frank\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
    );
}

#[tokio::test]
async fn rbac_invalid_rules_and_bindings_are_422() {
    let api = api().await;
    let bad_role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "bad"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]});
    let (s, e) = api.post(ROLES, bad_role).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["kind"], "Status");
    assert_eq!(
        e["message"],
        "Role.rbac.authorization.k8s.io \"bad\" is invalid: rules[0].verbs: Required value: verbs must contain at least one value"
    );
    let bad_binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "bad"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Pod", "name": "r"},
        "subjects": [{"kind": "Robot", "name": "x"}]});
    let (s, e) = api.post(BINDINGS, bad_binding).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let fields: Vec<&str> = e["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["roleRef.kind", "subjects[0].kind"]);
    let (_, list) = api.get(BINDINGS).await;
    assert!(names(&list).is_empty(), "nothing stored: {list}");
}

#[tokio::test]
async fn rbac_csr_approval_needs_approve_on_the_signer() {
    let api = api().await;
    let key = rcgen::KeyPair::generate().unwrap();
    let pem = rcgen::CertificateParams::new(vec!["jane".to_string()])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    use base64::Engine;
    let request = base64::engine::general_purpose::STANDARD.encode(pem);
    let csrs = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    let csr = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": "jane"},
        "spec": {"request": request, "signerName": "kubernetes.io/kube-apiserver-client",
            "usages": ["client auth"]}});
    let (s, created) = api.post(csrs, csr).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");

    // gina may write approvals, but not approve for this signer.
    let approver = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "csr-approver"},
        "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/approval"],
                   "verbs": ["update"]}]});
    assert_eq!(
        api.post(CLUSTERROLES, approver).await.0,
        StatusCode::CREATED
    );
    let crb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "gina-approver"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "csr-approver"},
        "subjects": [{"kind": "User", "name": "gina"}]});
    assert_eq!(api.post(CLUSTERBINDINGS, crb).await.0, StatusCode::CREATED);
    let gina = user("gina", &[]);
    let mut approve = created.clone();
    approve["status"]["conditions"] = json!([{"type": "Approved", "status": "True",
        "reason": "KubectlApprove", "message": "approved"}]);
    let path = format!("{csrs}/jane/approval");
    let (s, e) = as_user(&api, &gina, "PUT", &path, Some(approve.clone())).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(
        e["message"],
        "certificatesigningrequests.certificates.k8s.io \"jane\" is forbidden: user not permitted to approve requests with signerName \"kubernetes.io/kube-apiserver-client\""
    );
    // `approve` on the signer's domain wildcard lets her.
    let signers = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "signer-approver"},
        "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"],
                   "resourceNames": ["kubernetes.io/*"], "verbs": ["approve"]}]});
    assert_eq!(api.post(CLUSTERROLES, signers).await.0, StatusCode::CREATED);
    let crb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "gina-signers"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "signer-approver"},
        "subjects": [{"kind": "User", "name": "gina"}]});
    assert_eq!(api.post(CLUSTERBINDINGS, crb).await.0, StatusCode::CREATED);
    let (s, approved) = as_user(&api, &gina, "PUT", &path, Some(approve)).await;
    assert_eq!(s, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"]["conditions"][0]["type"], "Approved");
}

#[tokio::test]
async fn rbac_grants_what_the_node_authorizer_refuses_and_service_accounts_are_impersonated() {
    let api = api().await;
    for n in ["n1", "n2"] {
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}});
        let (s, created) = api.post("/api/v1/nodes", node).await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
    }
    let n1 = user("system:node:n1", &["system:nodes"]);
    let label = || {
        as_user_with(
            &api,
            &n1,
            "PATCH",
            "/api/v1/nodes/n2",
            Some(json!({"metadata": {"labels": {"by": "n1"}}})),
            &[("Content-Type", "application/merge-patch+json")],
        )
    };
    let (s, e) = label().await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .ends_with("node 'n1' cannot modify node \"n2\""),
        "{e}"
    );
    // Node,RBAC: a binding grants what the Node authorizer does not.
    let writer = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "node-labeller"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["patch"]}]});
    assert_eq!(api.post(CLUSTERROLES, writer).await.0, StatusCode::CREATED);
    let crb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "n1-labeller"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "node-labeller"},
        "subjects": [{"kind": "User", "name": "system:node:n1"}]});
    assert_eq!(api.post(CLUSTERBINDINGS, crb).await.0, StatusCode::CREATED);
    let (s, patched) = label().await;
    assert_eq!(s, StatusCode::OK, "{patched}");
    assert_eq!(patched["metadata"]["labels"]["by"], "n1");

    // A user allowed to impersonate one service account becomes it, with its groups.
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}});
    assert_eq!(
        api.post("/api/v1/namespaces/default/serviceaccounts", sa)
            .await
            .0,
        StatusCode::CREATED
    );
    let imp = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "be-robot"},
        "rules": [{"apiGroups": [""], "resources": ["serviceaccounts"], "resourceNames": ["robot"],
                   "verbs": ["impersonate"]}]});
    assert_eq!(api.post(ROLES, imp).await.0, StatusCode::CREATED);
    let b = role_binding(
        "hank-robot",
        "Role",
        "be-robot",
        json!([{"kind": "User", "name": "hank"}]),
    );
    assert_eq!(api.post(BINDINGS, b).await.0, StatusCode::CREATED);
    let hank = user("hank", &[]);
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let whoami = async |name: &str| {
        as_user_with(
            &api,
            &hank,
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            Some(review.clone()),
            &[("Impersonate-User", name)],
        )
        .await
    };
    let (s, me) = whoami("system:serviceaccount:default:robot").await;
    assert_eq!(s, StatusCode::CREATED, "{me}");
    assert_eq!(
        me["status"]["userInfo"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    let (s, e) = whoami("system:serviceaccount:default:other").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        e["message"],
        "serviceaccounts \"other\" is forbidden: User \"hank\" cannot impersonate resource \"serviceaccounts\" in API group \"\" in the namespace \"default\""
    );
}

#[tokio::test]
async fn rbac_namespaces_are_authorized_in_themselves_and_name_selectors_as_names() {
    let api = api().await;
    let ivy = user("ivy", &[]);
    let ns = "/api/v1/namespaces/default";
    let (s, e) = as_user(&api, &ivy, "GET", ns, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        e["message"],
        "namespaces \"default\" is forbidden: User \"ivy\" cannot get resource \"namespaces\" in API group \"\" in the namespace \"default\""
    );
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "ns-and-one-cm"},
        "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
                  {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["mine"],
                   "verbs": ["get", "list", "watch"]}]});
    assert_eq!(api.post(ROLES, role).await.0, StatusCode::CREATED);
    let b = role_binding(
        "ivy",
        "Role",
        "ns-and-one-cm",
        json!([{"kind": "User", "name": "ivy"}]),
    );
    assert_eq!(api.post(BINDINGS, b).await.0, StatusCode::CREATED);
    let (s, got) = as_user(&api, &ivy, "GET", ns, None).await;
    assert_eq!(s, StatusCode::OK, "{got}");
    let (s, _) = as_user(&api, &ivy, "GET", "/api/v1/namespaces/kube-system", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    api.configmap("mine").await;
    let one = format!("{CONFIGMAPS}?fieldSelector=metadata.name%3Dmine");
    let (s, list) = as_user(&api, &ivy, "GET", &one, None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(names(&list), ["mine"]);
    let (s, _) = as_user(&api, &ivy, "GET", CONFIGMAPS, None).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a list of all is not a list of one"
    );
}
