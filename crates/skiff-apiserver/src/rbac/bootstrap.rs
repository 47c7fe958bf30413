//! The roles and bindings kube-apiserver creates on start (its bootstrap policy, for the
//! part of it that applies to people): `cluster-admin`, the aggregated `admin`, `edit` and
//! `view` with the `system:aggregate-to-*` roles feeding them, `system:basic-user`,
//! `system:discovery`, `system:public-info-viewer`, `system:auth-delegator` (not bound),
//! and their ClusterRoleBindings.
//!
//! [`ensure`] creates the missing ones (run at start and every few seconds, so a deleted
//! default comes back); [`reconcile`] (run once at start) also adds to existing defaults
//! the rules, subjects, labels and annotations they lack, unless the object carries
//! `rbac.authorization.kubernetes.io/autoupdate: "false"` — upstream's contract for keeping
//! a changed default. Nothing is ever removed from an existing object.

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::handlers::{create_object, write_update, UpdateKind};
use crate::kinds::rbac::{clusterrole::ClusterRoles, clusterrolebinding::ClusterRoleBindings};
use crate::registry::Kind;
use crate::router::ApiState;

/// The annotation that lets a user keep changes to a default.
pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
/// The label every default carries.
const BOOTSTRAPPING: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");
/// The labels that aggregate a ClusterRole into `admin`, `edit` and `view`.
pub const TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
pub const TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
pub const TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn urls(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": verbs})
}

fn meta(name: &str, labels: &[(&str, &str)]) -> Value {
    let mut l = serde_json::Map::new();
    l.insert(BOOTSTRAPPING.0.into(), json!(BOOTSTRAPPING.1));
    for (k, v) in labels {
        l.insert((*k).into(), json!(v));
    }
    json!({"name": name, "labels": l, "annotations": {AUTOUPDATE: "true"}})
}

fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": meta(name, labels), "rules": rules})
}

fn aggregated(name: &str, labels: &[(&str, &str)], selector_label: &str) -> Value {
    let mut role = cluster_role(name, labels, Vec::new());
    role["aggregationRule"] =
        json!({"clusterRoleSelectors": [{"matchLabels": {selector_label: "true"}}]});
    role
}

fn binding(name: &str, role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
        .collect();
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": meta(name, &[]),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects})
}

/// The default ClusterRoles, as the Kubernetes documentation lists them ("Default roles and
/// role bindings").
pub fn cluster_roles() -> Vec<Value> {
    let core = &[""];
    vec![
        cluster_role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        cluster_role(
            "system:discovery",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        // Bound by whoever delegates authentication and authorization to the API (webhooks,
        // aggregated API servers): may ask who a token is and whether its user may.
        cluster_role(
            "system:auth-delegator",
            &[],
            vec![
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
        ),
        aggregated("admin", &[], TO_ADMIN),
        aggregated("edit", &[(TO_ADMIN, "true")], TO_EDIT),
        aggregated("view", &[(TO_EDIT, "true")], TO_VIEW),
        cluster_role(
            "system:aggregate-to-admin",
            &[(TO_ADMIN, "true")],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                ),
                rule(
                    READ_WRITE,
                    &["rbac.authorization.k8s.io"],
                    &["rolebindings", "roles"],
                ),
            ],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[(TO_EDIT, "true")],
            vec![
                rule(
                    READ,
                    core,
                    &[
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                        "secrets",
                        "services/proxy",
                    ],
                ),
                rule(&["impersonate"], core, &["serviceaccounts"]),
                rule(
                    WRITE,
                    core,
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                    ],
                ),
                rule(&["create"], core, &["pods/eviction"]),
                rule(
                    WRITE,
                    core,
                    &[
                        "configmaps",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                ),
                rule(&["create"], core, &["serviceaccounts/token"]),
                rule(
                    WRITE,
                    &["apps"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale",
                    ],
                ),
                rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
                rule(WRITE, &["batch"], &["cronjobs", "jobs"]),
                rule(
                    WRITE,
                    &["extensions"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "ingresses",
                        "networkpolicies",
                        "replicasets",
                        "replicasets/scale",
                        "replicationcontrollers/scale",
                    ],
                ),
                rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
                rule(
                    WRITE,
                    &["networking.k8s.io"],
                    &["ingresses", "networkpolicies"],
                ),
            ],
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[(TO_VIEW, "true")],
            vec![
                rule(
                    READ,
                    core,
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                ),
                rule(
                    READ,
                    core,
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                    ],
                ),
                rule(READ, core, &["namespaces"]),
                rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
                rule(
                    READ,
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                ),
                rule(
                    READ,
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                ),
                rule(
                    READ,
                    &["batch"],
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                ),
                rule(
                    READ,
                    &["extensions"],
                    &[
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "ingresses",
                        "ingresses/status",
                        "networkpolicies",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "replicationcontrollers/scale",
                    ],
                ),
                rule(
                    READ,
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                ),
                rule(
                    READ,
                    &["networking.k8s.io"],
                    &["ingresses", "ingresses/status", "networkpolicies"],
                ),
            ],
        ),
    ]
}

/// The default ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", "cluster-admin", &[super::MASTERS]),
        binding(
            "system:discovery",
            "system:discovery",
            &["system:authenticated"],
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            &["system:authenticated"],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
    ]
}

fn defaults() -> [(&'static dyn Kind, Vec<Value>); 2] {
    [
        (&ClusterRoles, cluster_roles()),
        (&ClusterRoleBindings, cluster_role_bindings()),
    ]
}

/// Creates every default that is missing.
pub async fn ensure(state: &ApiState) -> Result<(), ApiError> {
    for (kind, objects) in defaults() {
        for obj in objects {
            let name = crate::object::name(&obj).to_string();
            if crate::lookup::get(state, kind, None, &name)
                .await?
                .is_none()
            {
                create(state, kind, obj).await?;
            }
        }
    }
    Ok(())
}

/// [`ensure`], and adds to each existing default what it lacks unless its autoupdate
/// annotation is `"false"`.
pub async fn reconcile(state: &ApiState) -> Result<(), ApiError> {
    for (kind, objects) in defaults() {
        for obj in objects {
            let name = crate::object::name(&obj).to_string();
            let Some(current) = state.storage.get(kind.info(), None, &name).await? else {
                create(state, kind, obj).await?;
                continue;
            };
            if current.pointer(&format!(
                "/metadata/annotations/{}",
                AUTOUPDATE.replace('/', "~1")
            )) == Some(&json!("false"))
            {
                continue;
            }
            let merged = merge(&current, &obj);
            if merged != current {
                tracing::info!(kind = kind.info().kind, %name, "reconciling a default RBAC object");
                write_update(state, kind, &current, merged, UpdateKind::Main, false, None).await?;
            }
        }
    }
    Ok(())
}

async fn create(state: &ApiState, kind: &dyn Kind, obj: Value) -> Result<(), ApiError> {
    match create_object(state, kind, obj, None, false).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "AlreadyExists" => Ok(()),
        Err(e) => Err(e),
    }
}

/// `current` with the labels, annotations, rules, selectors and subjects of `want` it lacks
/// (rules of aggregated roles belong to the aggregation controller).
fn merge(current: &Value, want: &Value) -> Value {
    let mut out = current.clone();
    for field in ["labels", "annotations"] {
        let map = crate::object::meta_mut(&mut out)
            .entry(field)
            .or_insert_with(|| json!({}));
        if !map.is_object() {
            *map = json!({});
        }
        if let (Some(m), Some(w)) = (map.as_object_mut(), want["metadata"][field].as_object()) {
            for (k, v) in w {
                m.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    if want.get("aggregationRule").is_some() {
        if out.get("aggregationRule").is_none_or(Value::is_null) {
            out["aggregationRule"] = json!({});
        }
        add_missing(&mut out, want, "/aggregationRule/clusterRoleSelectors");
    } else {
        add_missing(&mut out, want, "/rules");
    }
    add_missing(&mut out, want, "/subjects");
    out
}

/// Appends to the list at `path` in `out` the elements of `want`'s list there it lacks.
fn add_missing(out: &mut Value, want: &Value, path: &str) {
    let Some(wanted) = want.pointer(path).and_then(Value::as_array) else {
        return;
    };
    let (parent, field) = path.rsplit_once('/').expect("a path with a field");
    let target = if parent.is_empty() {
        Some(out)
    } else {
        out.pointer_mut(parent)
    };
    let list = target
        .and_then(Value::as_object_mut)
        .map(|o| o.entry(field).or_insert_with(|| json!([])));
    if let Some(Value::Array(have)) = list {
        for w in wanted {
            if !have.contains(w) {
                have.push(w.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_what_a_default_lacks_and_keeps_the_rest() {
        let want = cluster_role("r", &[("a", "1")], vec![rule(&["get"], &[""], &["pods"])]);
        let mut current = want.clone();
        current["rules"] = json!([{"apiGroups": ["x"], "resources": ["y"], "verbs": ["list"]}]);
        current["metadata"]["labels"] = json!({"mine": "yes"});
        let merged = merge(&current, &want);
        assert_eq!(merged["rules"].as_array().unwrap().len(), 2, "{merged}");
        assert_eq!(merged["metadata"]["labels"]["mine"], "yes");
        assert_eq!(merged["metadata"]["labels"]["a"], "1");
        assert_eq!(
            merge(&merged, &want),
            merged,
            "merging twice changes nothing"
        );
        let b = binding("b", "r", &["g1", "g2"]);
        let mut mine = b.clone();
        mine["subjects"] = json!([{"kind": "User", "name": "u"}]);
        assert_eq!(merge(&mine, &b)["subjects"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn aggregated_defaults_chain_view_into_edit_into_admin() {
        let roles = cluster_roles();
        let find = |n: &str| roles.iter().find(|r| r["metadata"]["name"] == n).unwrap();
        assert_eq!(find("view")["metadata"]["labels"][TO_EDIT], "true");
        assert_eq!(find("edit")["metadata"]["labels"][TO_ADMIN], "true");
        assert_eq!(
            find("admin")["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"][TO_ADMIN],
            "true"
        );
    }
}
