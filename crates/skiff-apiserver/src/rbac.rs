//! RBAC for service accounts: a request made with a service-account token is allowed when a
//! RoleBinding in the request's namespace or a ClusterRoleBinding names the account (or one of
//! its groups) and the Role or ClusterRole it refers to has a rule covering the verb, API
//! group, resource (with subresource) and name — Kubernetes' RBAC authorizer, rules only
//! adding. What every authenticated user may do (upstream's `system:basic-user`: review who it
//! is and what it may do) is allowed without a binding; discovery and `/version` are not
//! authorized at all here. Other users keep what [`crate::nodeauth`] gives them: RBAC does not
//! apply to them yet.
//!
//! Every check reads the bindings and roles from the store (no cache yet).

use serde_json::Value;

use crate::auth::{Attributes, UserInfo};
use crate::error::ApiError;
use crate::kinds::rbac::{clusterrole, clusterrolebinding, role, rolebinding};
use crate::registry::Kind;
use crate::router::ApiState;

/// The user-name prefix of service accounts.
const SA_PREFIX: &str = "system:serviceaccount:";

/// Whether RBAC decides for `user` (a service account).
pub fn applies_to(user: &UserInfo) -> bool {
    user.name.starts_with(SA_PREFIX)
}

/// What every authenticated user may do (`system:basic-user`).
fn basic(a: &Attributes<'_>) -> bool {
    a.verb == "create"
        && matches!(
            (a.group, a.resource),
            ("authentication.k8s.io", "selfsubjectreviews")
                | ("authorization.k8s.io", "selfsubjectaccessreviews")
                | ("authorization.k8s.io", "selfsubjectrulesreviews")
        )
}

/// Ok when a binding grants `user` the request `a`; else Kubernetes' 403.
pub async fn authorize(
    state: &ApiState,
    user: &UserInfo,
    a: &Attributes<'_>,
    denied: impl FnOnce() -> ApiError,
) -> Result<(), ApiError> {
    if basic(a) {
        return Ok(());
    }
    let mut bindings: Vec<(Value, Option<String>)> = Vec::new();
    for b in list(state, &clusterrolebinding::ClusterRoleBindings, None).await? {
        bindings.push((b, None));
    }
    if let Some(ns) = a.namespace {
        for b in list(state, &rolebinding::RoleBindings, Some(ns)).await? {
            bindings.push((b, Some(ns.to_string())));
        }
    }
    for (binding, ns) in bindings {
        if !binds(&binding, ns.as_deref(), user) {
            continue;
        }
        let r = &binding["roleRef"];
        let name = r["name"].as_str().unwrap_or_default();
        let role = match (r["kind"].as_str(), ns.as_deref()) {
            (Some("Role"), Some(ns)) => {
                state
                    .storage
                    .get(role::Roles.info(), Some(ns), name)
                    .await?
            }
            (Some("ClusterRole"), _) => {
                state
                    .storage
                    .get(clusterrole::ClusterRoles.info(), None, name)
                    .await?
            }
            _ => None,
        };
        let allowed = role
            .as_ref()
            .and_then(|r| r["rules"].as_array())
            .is_some_and(|rules| rules.iter().any(|rule| covers(rule, a)));
        if allowed {
            return Ok(());
        }
    }
    Err(denied())
}

async fn list(state: &ApiState, kind: &dyn Kind, ns: Option<&str>) -> Result<Vec<Value>, ApiError> {
    Ok(state
        .storage
        .list(kind.info(), ns, None, usize::MAX, None)
        .await?
        .items)
}

/// Whether `binding` (in namespace `ns`, None for a ClusterRoleBinding) names `user`.
pub fn binds(binding: &Value, ns: Option<&str>, user: &UserInfo) -> bool {
    binding["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| {
            let name = s["name"].as_str().unwrap_or_default();
            match s["kind"].as_str() {
                Some("User") => user.name == name,
                Some("Group") => user.groups.iter().any(|g| g == name),
                Some("ServiceAccount") => {
                    let sns = s["namespace"].as_str().filter(|n| !n.is_empty()).or(ns);
                    sns.is_some_and(|sns| user.name == format!("{SA_PREFIX}{sns}:{name}"))
                }
                _ => false,
            }
        })
}

/// Whether a PolicyRule covers the request.
pub fn covers(rule: &Value, a: &Attributes<'_>) -> bool {
    let has = |field: &str, want: &str| {
        rule[field]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x == "*" || x == want))
    };
    let resource = match a.subresource {
        Some(sub) => format!("{}/{sub}", a.resource),
        None => a.resource.to_string(),
    };
    let resource_ok = rule["resources"].as_array().is_some_and(|v| {
        v.iter().any(|x| {
            let x = x.as_str().unwrap_or_default();
            x == "*" || x == resource || a.subresource.is_some_and(|sub| x == format!("*/{sub}"))
        })
    });
    let names = rule["resourceNames"].as_array().filter(|v| !v.is_empty());
    let name_ok = match names {
        None => true,
        Some(v) => a.name.is_some_and(|n| v.iter().any(|x| x == n)),
    };
    has("verbs", a.verb) && has("apiGroups", a.group) && resource_ok && name_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sa(ns: &str, name: &str) -> UserInfo {
        UserInfo {
            name: format!("{SA_PREFIX}{ns}:{name}"),
            uid: String::new(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
        }
    }

    fn req<'a>(verb: &'a str, resource: &'a str, name: Option<&'a str>) -> Attributes<'a> {
        Attributes {
            verb,
            group: "",
            resource,
            subresource: None,
            namespace: Some("ns"),
            name,
        }
    }

    #[test]
    fn inpod_rules_match_verbs_groups_resources_and_names() {
        let rule = json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]});
        assert!(covers(&rule, &req("list", "pods", None)));
        assert!(!covers(&rule, &req("delete", "pods", Some("p"))));
        assert!(!covers(&rule, &req("list", "secrets", None)));
        let named = json!({"apiGroups": [""], "resources": ["configmaps"],
            "resourceNames": ["a"], "verbs": ["*"]});
        assert!(covers(&named, &req("get", "configmaps", Some("a"))));
        assert!(!covers(&named, &req("get", "configmaps", Some("b"))));
        assert!(!covers(&named, &req("list", "configmaps", None)));
        let logs = json!({"apiGroups": ["*"], "resources": ["pods/log"], "verbs": ["get"]});
        let mut a = req("get", "pods", Some("p"));
        assert!(!covers(&logs, &a));
        a.subresource = Some("log");
        assert!(covers(&logs, &a));
    }

    #[test]
    fn inpod_bindings_name_accounts_groups_and_users() {
        let b = json!({"subjects": [{"kind": "ServiceAccount", "name": "reader"}]});
        assert!(binds(&b, Some("ns"), &sa("ns", "reader")));
        assert!(!binds(&b, Some("ns"), &sa("other", "reader")));
        assert!(!binds(&b, Some("ns"), &sa("ns", "writer")));
        let g = json!({"subjects": [{"kind": "Group", "name": "system:serviceaccounts:ns"}]});
        assert!(binds(&g, None, &sa("ns", "any")));
        let crb = json!({"subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": "ns"}]});
        assert!(binds(&crb, None, &sa("ns", "x")));
        assert!(!binds(&json!({}), None, &sa("ns", "x")));
        assert!(applies_to(&sa("ns", "x")));
    }
}
