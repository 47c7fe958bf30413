//! The `rbac.authorization.k8s.io` group: Roles and ClusterRoles (rules), RoleBindings and
//! ClusterRoleBindings (subjects → a role). What they allow is decided in [`crate::rbac`].

pub mod clusterrole;
pub mod clusterrolebinding;
pub mod role;
pub mod rolebinding;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::error::ApiError;
use crate::rbac::escalation;
use crate::registry::Admission;
use crate::router::ApiState;
use crate::validation::{quote, Errs};

/// Which of the four kinds an admission is for.
#[derive(Clone, Copy)]
pub(crate) enum Which {
    Role { cluster: bool },
    Binding { cluster: bool },
}

/// Escalation prevention on creates and updates of the main resource
/// ([`crate::rbac::escalation`]).
pub(crate) fn admit<'a>(
    which: Which,
    state: &'a ApiState,
    op: Admission<'a>,
) -> BoxFuture<'a, Result<(), ApiError>> {
    Box::pin(async move {
        let (new, old, user) = match op {
            Admission::Create { obj, user, .. } => (&*obj, None, user),
            Admission::Update {
                new,
                old,
                user,
                sub: None,
                ..
            } => (&*new, Some(old), user),
            _ => return Ok(()),
        };
        match which {
            Which::Role { cluster } => escalation::check_role(state, cluster, user, new, old).await,
            Which::Binding { cluster } => {
                escalation::check_binding(state, cluster, user, new, old).await
            }
        }
    })
}

/// kubectl's columns of a binding: name, `Kind/name` of its role, age.
pub(crate) fn binding_cells(o: &Value) -> Vec<Value> {
    let r = &o["roleRef"];
    let role = format!(
        "{}/{}",
        r["kind"].as_str().unwrap_or_default(),
        r["name"].as_str().unwrap_or_default()
    );
    vec![
        crate::table::name(o),
        Value::from(role),
        crate::table::age(o),
    ]
}

const SUBJECT_KINDS: &[&str] = &["User", "Group", "ServiceAccount"];
const GROUP: &str = "rbac.authorization.k8s.io";

/// A binding's checks (upstream's `ValidateRoleBinding`): a roleRef to a role kind of this
/// group, named; subjects of known kinds, named, service accounts with a namespace unless
/// `namespace` gives one; roleRef unchanged by updates.
pub(crate) fn validate_binding(
    new: &Value,
    old: Option<&Value>,
    role_kinds: &[&str],
    namespace: Option<&str>,
    errs: &mut Errs,
) {
    let r = &new["roleRef"];
    if r["apiGroup"].as_str() != Some(GROUP) {
        errs.not_supported(
            "roleRef.apiGroup",
            r["apiGroup"].as_str().unwrap_or_default(),
            &[GROUP],
        );
    }
    let kind = r["kind"].as_str().unwrap_or_default();
    if !role_kinds.contains(&kind) {
        errs.not_supported("roleRef.kind", kind, role_kinds);
    }
    if r["name"].as_str().unwrap_or_default().is_empty() {
        errs.required("roleRef.name", "");
    }
    if let Some(old) = old {
        if old["roleRef"] != new["roleRef"] {
            errs.invalid("roleRef", quote(&r.to_string()), "cannot change roleRef");
        }
    }
    for (i, s) in new["subjects"].as_array().into_iter().flatten().enumerate() {
        let kind = s["kind"].as_str().unwrap_or_default();
        if !SUBJECT_KINDS.contains(&kind) {
            errs.not_supported(&format!("subjects[{i}].kind"), kind, SUBJECT_KINDS);
        }
        if s["name"].as_str().unwrap_or_default().is_empty() {
            errs.required(&format!("subjects[{i}].name"), "");
        }
        if kind == "ServiceAccount"
            && namespace.is_none()
            && s["namespace"].as_str().unwrap_or_default().is_empty()
        {
            errs.required(&format!("subjects[{i}].namespace"), "");
        }
    }
}

/// A role's checks: every rule names verbs, and either resources with API groups or
/// non-resource URLs.
pub(crate) fn validate_rules(new: &Value, errs: &mut Errs) {
    for (i, r) in new["rules"].as_array().into_iter().flatten().enumerate() {
        let empty = |f: &str| r[f].as_array().is_none_or(|a| a.is_empty());
        if empty("verbs") {
            errs.required(
                &format!("rules[{i}].verbs"),
                "verbs must contain at least one value",
            );
        }
        if empty("nonResourceURLs") && empty("apiGroups") {
            errs.required(
                &format!("rules[{i}].apiGroups"),
                "resource rules must supply at least one api group",
            );
        }
        if empty("nonResourceURLs") && empty("resources") {
            errs.required(
                &format!("rules[{i}].resources"),
                "resource rules must supply at least one resource",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    /// `kubectl get rolebindings` shows the role as `Kind/name`, as on Kubernetes.
    #[test]
    fn binding_rows_name_the_role_by_kind_and_name() {
        let binding = json!({
            "metadata": {"name": "jane-view"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        });
        let cells = super::binding_cells(&binding);
        assert_eq!(cells[0], json!("jane-view"));
        assert_eq!(cells[1], json!("ClusterRole/view"));
        assert_eq!(cells[2], json!("<unknown>"));
    }
}
