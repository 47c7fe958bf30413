use super::*;
use crate::resources::find_kind;
use serde_json::json;

fn info() -> &'static ResourceInfo {
    find_kind("apps/v1", "Deployment").unwrap().info()
}

/// Server-side apply of `applied` by `manager` onto a deployment (`live`: None when new).
fn apply_deployment(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApiError> {
    server_side_apply(info(), live, applied, manager, force)
}

fn applied(replicas: i64, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": image}]}}}})
}

fn manager<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == name)
}

/// Whether `name`'s managedFields entry (which must exist) owns `.spec.replicas`.
fn owns_replicas(obj: &Value, name: &str) -> bool {
    manager(obj, name).unwrap_or_else(|| panic!("no managedFields entry for {name}"))["fieldsV1"]
        ["f:spec"]
        .get("f:replicas")
        .is_some()
}

#[test]
fn first_apply_creates_and_records_ownership() {
    let out = apply_deployment(None, &applied(2, "nginx:1"), "kubectl", false).unwrap();
    assert_eq!(out["spec"]["replicas"], 2);
    let entry = manager(&out, "kubectl").unwrap();
    assert_eq!(entry["operation"], "Apply");
    assert_eq!(entry["apiVersion"], "apps/v1");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert!(entry["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(entry["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
    assert_eq!(
        entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
            ["k:{\"name\":\"nginx\"}"],
        json!({".": {}, "f:image": {}, "f:name": {}})
    );
    assert!(entry["fieldsV1"]["f:metadata"].get("f:name").is_none());
}

#[test]
fn conflict_with_another_manager_is_409_with_kubectl_message() {
    let live = apply_deployment(None, &applied(2, "nginx:1"), "other-manager", false).unwrap();
    let err = apply_deployment(Some(&live), &applied(5, "nginx:1"), "kubectl", false).unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"other-manager\": .spec.replicas"
    );
    assert_eq!(
        err.causes,
        vec![Cause {
            reason: "FieldManagerConflict".into(),
            message: "conflict with \"other-manager\"".into(),
            field: ".spec.replicas".into()
        }]
    );

    // Same values are shared ownership, not a conflict.
    let shared = apply_deployment(Some(&live), &applied(2, "nginx:1"), "kubectl", false).unwrap();
    assert!(owns_replicas(&shared, "other-manager"));
    assert!(owns_replicas(&shared, "kubectl"));
}

#[test]
fn update_managers_are_named_with_their_api_version() {
    let mut live = applied(2, "nginx:1");
    record_update(info(), None, &mut live, "kubectl-client-side-apply");
    let err = apply_deployment(Some(&live), &applied(3, "nginx:2"), "kubectl", false).unwrap_err();
    assert!(err.message.starts_with("Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n- "), "{}", err.message);
    assert!(
        err.message
            .contains("\n- .spec.template.spec.containers[name=\"nginx\"].image"),
        "{}",
        err.message
    );
    assert_eq!(err.causes.len(), 2);
}

#[test]
fn force_takes_ownership() {
    let live = apply_deployment(None, &applied(2, "nginx:1"), "other-manager", false).unwrap();
    let out = apply_deployment(Some(&live), &applied(5, "nginx:1"), "kubectl", true).unwrap();
    assert_eq!(out["spec"]["replicas"], 5);
    assert!(!owns_replicas(&out, "other-manager"));
    assert!(owns_replicas(&out, "kubectl"));
}

#[test]
fn fields_no_longer_applied_are_removed_unless_someone_else_owns_them() {
    let mut first = applied(2, "nginx:1");
    first["metadata"]["labels"]["tier"] = json!("fe");
    first["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "busybox"}));
    let live = apply_deployment(None, &first, "kubectl", false).unwrap();
    let out = apply_deployment(Some(&live), &applied(2, "nginx:1"), "kubectl", false).unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "nginx", "image": "nginx:1"}])
    );

    // A field another manager also set survives this manager dropping it.
    let mut live = apply_deployment(None, &first, "kubectl", false).unwrap();
    let mut other = live.clone();
    other["metadata"]["labels"]["tier"] = json!("be");
    record_update(info(), Some(&live), &mut other, "editor");
    live = other;
    let out = apply_deployment(Some(&live), &applied(2, "nginx:1"), "kubectl", false).unwrap();
    assert_eq!(out["metadata"]["labels"]["tier"], "be");
}

#[test]
fn apply_merges_into_live_fields_set_by_others() {
    let mut live = apply_deployment(None, &applied(2, "nginx:1"), "kubectl", false).unwrap();
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    live["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 80, "protocol": "TCP"}]);
    let mut a = applied(2, "nginx:2");
    a["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 80, "name": "http"}]);
    let out = apply_deployment(Some(&live), &a, "kubectl", false).unwrap();
    let c = &out["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx:2");
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}]),
        "keyed with the defaulted protocol"
    );
}

#[test]
fn record_update_tracks_changes_and_steals_ownership() {
    let mut created = applied(2, "nginx:1");
    record_update(info(), None, &mut created, "kubectl-create");
    let entry = manager(&created, "kubectl-create").unwrap();
    assert_eq!(entry["operation"], "Update");
    assert_eq!(
        entry["fieldsV1"]["f:metadata"]["f:labels"],
        json!({".": {}, "f:app": {}})
    );

    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(4);
    record_update(info(), Some(&created), &mut scaled, "kubectl-scale");
    assert_eq!(
        manager(&scaled, "kubectl-scale").unwrap()["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert!(!owns_replicas(&scaled, "kubectl-create"));

    // An update that changes nothing adds no entry.
    let mut same = scaled.clone();
    record_update(info(), Some(&scaled), &mut same, "noop");
    assert!(manager(&same, "noop").is_none());
}

#[test]
fn bad_apply_requests() {
    assert_eq!(
        apply_deployment(None, &json!([1]), "kubectl", false)
            .unwrap_err()
            .code,
        400
    );
    assert_eq!(
        apply_deployment(None, &applied(1, "x"), "", false)
            .unwrap_err()
            .code,
        400
    );
}

/// What `kubectl apply -f` (client-side) leaves: the object created by manager
/// `kubectl-client-side-apply`, its configuration in the last-applied annotation.
fn client_side_applied(replicas: i64, image: &str) -> Value {
    let mut obj = applied(replicas, image);
    let config = serde_json::to_string(&obj).unwrap();
    obj["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": config});
    record_update(info(), None, &mut obj, "kubectl-client-side-apply");
    obj
}

#[test]
fn kubectl_server_side_apply_takes_over_from_client_side_apply() {
    let live = client_side_applied(2, "nginx:1");
    let out = apply_deployment(Some(&live), &applied(3, "nginx:2"), "kubectl", false).unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    assert!(owns_replicas(&out, "kubectl"));
    assert!(!owns_replicas(&out, "kubectl-client-side-apply"));
    // The annotation follows, so a later client-side apply patches from the right base.
    let recorded: Value = serde_json::from_str(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(recorded, applied(3, "nginx:2"));

    // Any other manager still conflicts, as in Kubernetes.
    let err = apply_deployment(Some(&live), &applied(3, "nginx:2"), "helm", false).unwrap_err();
    assert_eq!(err.code, 409);
    assert!(
        err.message.contains("kubectl-client-side-apply"),
        "{}",
        err.message
    );
}

#[test]
fn fields_changed_since_client_side_apply_still_conflict() {
    let live = client_side_applied(2, "nginx:1");
    // Someone else scaled it since: replicas is theirs, not client-side apply's.
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    record_update(info(), Some(&live), &mut scaled, "kubectl-scale");
    let err =
        apply_deployment(Some(&scaled), &applied(3, "nginx:1"), "kubectl", false).unwrap_err();
    assert_eq!(err.code, 409);
    assert!(
        err.message.contains("kubectl-scale") && err.message.contains(".spec.replicas"),
        "{}",
        err.message
    );
    // An object without the annotation has nothing to take over.
    let mut plain = applied(2, "nginx:1");
    record_update(info(), None, &mut plain, "kubectl-client-side-apply");
    let err = apply_deployment(Some(&plain), &applied(3, "nginx:1"), "kubectl", false).unwrap_err();
    assert_eq!(err.code, 409);
}
