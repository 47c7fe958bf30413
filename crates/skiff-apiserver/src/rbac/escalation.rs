//! Escalation prevention, as upstream's RBAC storage does it: a user may write a Role or
//! ClusterRole only with rules it holds itself (in that namespace), unless it may `escalate`
//! on roles/clusterroles; a ClusterRole with an `aggregationRule` needs every permission. A
//! user may write a binding only to a role whose rules it holds, unless it may `bind` that
//! role. `system:masters` and the server's own writes skip the checks.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{grant, is_master, rules_for, Request};
use crate::auth::{Attributes, UserInfo};
use crate::error::ApiError;
use crate::router::ApiState;

const GROUP: &str = "rbac.authorization.k8s.io";

/// One permission a rule grants: (API group, resource, name) or (URL) with a verb.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Atom {
    Resource {
        group: String,
        resource: String,
        name: Option<String>,
        verb: String,
    },
    Url {
        url: String,
        verb: String,
    },
}

fn strings(rule: &Value, field: &str) -> Vec<String> {
    rule[field]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect()
}

/// The permissions of `rule`, one by one.
fn atoms(rule: &Value) -> Vec<Atom> {
    let mut out = Vec::new();
    let verbs = strings(rule, "verbs");
    for url in strings(rule, "nonResourceURLs") {
        for verb in &verbs {
            out.push(Atom::Url {
                url: url.clone(),
                verb: verb.clone(),
            });
        }
    }
    let names = strings(rule, "resourceNames");
    let names: Vec<Option<String>> = if names.is_empty() {
        vec![None]
    } else {
        names.into_iter().map(Some).collect()
    };
    for group in strings(rule, "apiGroups") {
        for resource in strings(rule, "resources") {
            for name in &names {
                for verb in &verbs {
                    out.push(Atom::Resource {
                        group: group.clone(),
                        resource: resource.clone(),
                        name: name.clone(),
                        verb: verb.clone(),
                    });
                }
            }
        }
    }
    out
}

/// Whether the owner's `rule` grants `atom` (upstream's `ruleCovers`).
fn rule_covers(rule: &Value, atom: &Atom) -> bool {
    let any = |field: &str, want: &str| strings(rule, field).iter().any(|x| x == "*" || x == want);
    match atom {
        Atom::Url { url, verb } => {
            any("verbs", verb)
                && strings(rule, "nonResourceURLs")
                    .iter()
                    .any(|u| match u.strip_suffix('*') {
                        Some(prefix) => url.starts_with(prefix),
                        None => u == url,
                    })
        }
        Atom::Resource {
            group,
            resource,
            name,
            verb,
        } => {
            let resource_ok = strings(rule, "resources").iter().any(|r| {
                r == "*"
                    || r == resource
                    || r.strip_prefix('*')
                        .is_some_and(|sub| sub.starts_with('/') && resource.ends_with(sub))
            });
            let names = strings(rule, "resourceNames");
            let name_ok = names.is_empty() || name.as_ref().is_some_and(|n| names.contains(n));
            any("verbs", verb) && any("apiGroups", group) && resource_ok && name_ok
        }
    }
}

/// The permissions of `wanted` that none of `owner` grants.
fn uncovered(owner: &[Value], wanted: &[Value]) -> Vec<Atom> {
    let mut missing: Vec<Atom> = wanted
        .iter()
        .flat_map(atoms)
        .filter(|a| !owner.iter().any(|r| rule_covers(r, a)))
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

/// Upstream's listing of missing permissions: one line per group/resource/name (or URL)
/// with its verbs.
fn describe(missing: &[Atom]) -> String {
    let mut by: BTreeMap<(bool, String, String, Option<String>), Vec<String>> = BTreeMap::new();
    for a in missing {
        match a {
            Atom::Resource {
                group,
                resource,
                name,
                verb,
            } => by
                .entry((false, group.clone(), resource.clone(), name.clone()))
                .or_default()
                .push(verb.clone()),
            Atom::Url { url, verb } => by
                .entry((true, String::new(), url.clone(), None))
                .or_default()
                .push(verb.clone()),
        }
    }
    let q = |v: &[String]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    by.into_iter()
        .map(|((url, group, what, name), verbs)| {
            if url {
                format!("{{NonResourceURLs:[{what:?}], Verbs:[{}]}}", q(&verbs))
            } else {
                let names = name.map_or(String::new(), |n| format!(", ResourceNames:[{n:?}]"));
                format!(
                    "{{APIGroups:[{group:?}], Resources:[{what:?}]{names}, Verbs:[{}]}}",
                    q(&verbs)
                )
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn refusal(user: &UserInfo, plural: &str, name: &str, missing: &[Atom]) -> ApiError {
    let groups = user
        .groups
        .iter()
        .map(|g| format!("{g:?}"))
        .collect::<Vec<_>>()
        .join(" ");
    ApiError::forbidden(
        GROUP,
        plural,
        name,
        &format!(
            "user {:?} (groups=[{groups}]) is attempting to grant RBAC permissions not currently held:\n{}",
            user.name,
            describe(missing)
        ),
    )
}

/// Whether `user` may `verb` the `plural` object `name` (in `ns`) by its bindings.
async fn may(
    state: &ApiState,
    user: &UserInfo,
    verb: &str,
    plural: &str,
    ns: Option<&str>,
    name: &str,
) -> Result<bool, ApiError> {
    let a = Attributes {
        verb,
        group: GROUP,
        resource: plural,
        subresource: None,
        namespace: ns,
        name: Some(name),
    };
    Ok(grant(state, user, Request::Resource(&a)).await?.is_some())
}

/// Checks a write of Role (ClusterRole when `cluster`) `new` (replacing `old`) by `user` (None: the
/// server itself).
pub async fn check_role(
    state: &ApiState,
    cluster: bool,
    user: Option<&UserInfo>,
    new: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let Some(user) = user.filter(|u| !is_master(u)) else {
        return Ok(());
    };
    if old.is_some_and(|o| {
        o["rules"] == new["rules"] && o["aggregationRule"] == new["aggregationRule"]
    }) {
        return Ok(());
    }
    let plural = if cluster { "clusterroles" } else { "roles" };
    let ns = (!cluster).then(|| crate::object::namespace(new));
    let name = crate::object::name(new);
    if may(state, user, "escalate", plural, ns, name).await? {
        return Ok(());
    }
    let owner = rules_for(state, user, ns).await?;
    let aggregating = new["aggregationRule"]["clusterRoleSelectors"]
        .as_array()
        .is_some_and(|s| !s.is_empty());
    if aggregating {
        let everything = super::bootstrap::cluster_roles()
            .into_iter()
            .find(|r| r["metadata"]["name"] == "cluster-admin")
            .and_then(|r| r["rules"].as_array().cloned())
            .unwrap_or_default();
        if !uncovered(&owner, &everything).is_empty() {
            return Err(ApiError::forbidden(
                GROUP,
                plural,
                name,
                "must have cluster-admin privileges to use the aggregationRule",
            ));
        }
        return Ok(());
    }
    let wanted = new["rules"].as_array().cloned().unwrap_or_default();
    let missing = uncovered(&owner, &wanted);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(refusal(user, plural, name, &missing))
    }
}

/// Checks a write of RoleBinding (ClusterRoleBinding when `cluster`) `new` (replacing `old`) by `user`
/// (None: the server itself).
pub async fn check_binding(
    state: &ApiState,
    cluster: bool,
    user: Option<&UserInfo>,
    new: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let Some(user) = user.filter(|u| !is_master(u)) else {
        return Ok(());
    };
    if old.is_some_and(|o| o["subjects"] == new["subjects"] && o["roleRef"] == new["roleRef"]) {
        return Ok(());
    }
    let plural = if cluster {
        "clusterrolebindings"
    } else {
        "rolebindings"
    };
    let ns = (!cluster).then(|| crate::object::namespace(new));
    let r = &new["roleRef"];
    let role_name = r["name"].as_str().unwrap_or_default();
    let (role_plural, role_ns) = match r["kind"].as_str() {
        Some("Role") => ("roles", ns),
        _ => ("clusterroles", None),
    };
    if may(state, user, "bind", role_plural, ns, role_name).await? {
        return Ok(());
    }
    let role = match role_plural {
        "roles" => {
            crate::lookup::get(state, &crate::kinds::rbac::role::Roles, role_ns, role_name).await?
        }
        _ => {
            crate::lookup::get(
                state,
                &crate::kinds::rbac::clusterrole::ClusterRoles,
                None,
                role_name,
            )
            .await?
        }
    };
    let Some(role) = role else {
        return Err(ApiError::not_found(GROUP, role_plural, role_name));
    };
    let owner = rules_for(state, user, ns).await?;
    let wanted = role["rules"].as_array().cloned().unwrap_or_default();
    let missing = uncovered(&owner, &wanted);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(refusal(user, plural, crate::object::name(new), &missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escalation_coverage_follows_upstream_wildcards_and_names() {
        let owner = vec![
            json!({"apiGroups": [""], "resources": ["pods", "*/status"], "verbs": ["get", "list"]}),
            json!({"apiGroups": ["apps"], "resources": ["*"], "verbs": ["*"]}),
            json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"], "verbs": ["get"]}),
            json!({"nonResourceURLs": ["/logs/*"], "verbs": ["get"]}),
        ];
        let ok = |r: Value| uncovered(&owner, &[r]).is_empty();
        assert!(ok(
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]})
        ));
        assert!(ok(
            json!({"apiGroups": [""], "resources": ["pods/status"], "verbs": ["list"]})
        ));
        assert!(ok(
            json!({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["delete"]})
        ));
        assert!(ok(
            json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"], "verbs": ["get"]})
        ));
        assert!(ok(
            json!({"nonResourceURLs": ["/logs/x"], "verbs": ["get"]})
        ));
        assert!(!ok(
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]})
        ));
        assert!(!ok(
            json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
        ));
        assert!(!ok(
            json!({"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]})
        ));
        let missing = uncovered(
            &owner,
            &[
                json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "delete", "patch"]}),
            ],
        );
        assert_eq!(
            describe(&missing),
            "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\" \"patch\"]}"
        );
    }
}
