//! RBAC through the public router over a real SQLite store, continued: the access reviews,
//! impersonation, CSR approval by signer, the Node authorizer falling through to RBAC, and
//! request attributes (namespaces in themselves, name-selected lists).

mod common;

use common::users::*;
use common::*;
use http::StatusCode;
use serde_json::json;

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
async fn rbac_csr_approval_needs_approve_on_the_signer() {
    let api = api().await;
    let request = csr_request("jane");
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
