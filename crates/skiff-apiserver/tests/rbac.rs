//! RBAC for every user through the public router over a real SQLite store: the default
//! roles and bindings, what a user without bindings gets (Kubernetes' 403), what a binding
//! gives, escalation prevention, ClusterRole aggregation and invalid objects.

mod common;

use common::users::*;
use common::*;
use http::StatusCode;
use serde_json::{json, Value};

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
