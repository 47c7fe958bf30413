//! RBAC for every user, as Kubernetes' RBAC authorizer: a request is allowed when a
//! RoleBinding in the request's namespace or a ClusterRoleBinding names the user (or one of
//! its groups, or its service account) and the Role or ClusterRole it refers to has a rule
//! covering the verb, API group, resource (with subresource) and name — rules only add.
//! Members of `system:masters` are allowed everything without a look at the bindings, as
//! kube-apiserver's privileged-group authorizer does. Nodes and join-token callers meet
//! [`crate::nodeauth`] first; what it refuses, RBAC may still allow.
//!
//! Also here: the default roles and bindings ([`bootstrap`]), escalation prevention on role
//! and binding writes ([`escalation`]), the access reviews ([`review`]), impersonation
//! ([`impersonate`]) and the ClusterRole aggregation controller ([`aggregation`]).
//!
//! Bindings and roles are read through [`crate::lookup`] (the watch cache).

pub mod aggregation;
pub mod bootstrap;
pub mod escalation;
pub mod impersonate;
pub mod review;

use serde_json::Value;

use crate::auth::{Attributes, UserInfo};
use crate::error::ApiError;
use crate::kinds::rbac::{clusterrole, clusterrolebinding, role, rolebinding};
use crate::router::ApiState;

/// The user-name prefix of service accounts.
pub const SA_PREFIX: &str = "system:serviceaccount:";
/// The group allowed everything (the admin kubeconfig's certificate carries it).
pub const MASTERS: &str = "system:masters";

/// Whether `user` is in `system:masters`.
pub fn is_master(user: &UserInfo) -> bool {
    user.groups.iter().any(|g| g == MASTERS)
}

/// What a request is about: a resource or a non-resource URL (`/healthz`, `/api`).
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    Resource(&'a Attributes<'a>),
    NonResource { verb: &'a str, path: &'a str },
}

/// Which binding allowed a request, for the reviews' `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `ClusterRoleBinding "x"` or `RoleBinding "x/ns"`.
    pub binding: String,
    /// `ClusterRole "y"` or `Role "y"`.
    pub role: String,
    /// `User "u"`, `Group "g"` or `ServiceAccount "ns/sa"`.
    pub subject: String,
}

impl Grant {
    /// Upstream's wording of an RBAC allow.
    pub fn reason(&self) -> String {
        format!(
            "RBAC: allowed by {} of {} to {}",
            self.binding, self.role, self.subject
        )
    }
}

/// Ok when `user` is a master or a binding grants the request `a`; else `denied()`.
pub async fn authorize(
    state: &ApiState,
    user: &UserInfo,
    a: &Attributes<'_>,
    denied: impl FnOnce() -> ApiError,
) -> Result<(), ApiError> {
    if is_master(user) || grant(state, user, Request::Resource(a)).await?.is_some() {
        Ok(())
    } else {
        Err(denied())
    }
}

/// The binding that grants `user` the request, if any (masters are not special here).
pub async fn grant(
    state: &ApiState,
    user: &UserInfo,
    req: Request<'_>,
) -> Result<Option<Grant>, ApiError> {
    let ns = match req {
        Request::Resource(a) => a.namespace,
        Request::NonResource { .. } => None,
    };
    let lists = bindings(state, ns).await?;
    let mut all: Vec<(&Value, &Option<String>)> = Vec::new();
    for (list, bns) in &lists {
        all.extend(list.iter().map(|b| (b, bns)));
    }
    for (binding, bns) in all {
        let Some(subject) = bound_subject(binding, bns.as_deref(), user) else {
            continue;
        };
        let Some((role_desc, rules)) = role_rules(state, binding, bns.as_deref()).await? else {
            continue;
        };
        let allowed = rules.iter().any(|rule| match req {
            Request::Resource(a) => covers(rule, a),
            Request::NonResource { verb, path } => covers_url(rule, verb, path),
        });
        if allowed {
            let name = crate::object::name(binding);
            let binding = match &bns {
                Some(ns) => format!("RoleBinding \"{name}/{ns}\""),
                None => format!("ClusterRoleBinding \"{name}\""),
            };
            return Ok(Some(Grant {
                binding,
                role: role_desc,
                subject,
            }));
        }
    }
    Ok(None)
}

/// Every rule `user` holds in namespace `ns` (cluster-wide ones included; None: only those),
/// as upstream's rule resolver gathers them for rules reviews and escalation checks.
pub async fn rules_for(
    state: &ApiState,
    user: &UserInfo,
    ns: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    let lists = bindings(state, ns).await?;
    let mut all: Vec<(&Value, &Option<String>)> = Vec::new();
    for (list, bns) in &lists {
        all.extend(list.iter().map(|b| (b, bns)));
    }
    for (binding, bns) in all {
        if bound_subject(binding, bns.as_deref(), user).is_none() {
            continue;
        }
        if let Some((_, rules)) = role_rules(state, binding, bns.as_deref()).await? {
            out.extend(rules);
        }
    }
    Ok(out)
}

/// The ClusterRoleBindings, then the RoleBindings of `ns`, each list with its namespace.
async fn bindings(
    state: &ApiState,
    ns: Option<&str>,
) -> Result<Vec<(std::sync::Arc<Vec<Value>>, Option<String>)>, ApiError> {
    let mut out = vec![(
        memo_list(state, &clusterrolebinding::ClusterRoleBindings, "").await?,
        None,
    )];
    if let Some(ns) = ns.filter(|n| !n.is_empty()) {
        out.push((
            memo_list(state, &rolebinding::RoleBindings, ns).await?,
            Some(ns.to_string()),
        ));
    }
    Ok(out)
}

/// Decoded bindings kept while the watch cache stays at one revision: decoding every
/// binding for every request cost 8 ms a request with a thousand of them. Used only when
/// the cache is live and has every write this server made; an entry is dropped as soon as
/// the cache moves on, so nothing older than what [`crate::lookup::list`] reads is served.
#[derive(Default)]
pub struct BindingsMemo(std::sync::Mutex<Option<Memo>>);

struct Memo {
    /// The cache revision the lists were read at (or after).
    revision: i64,
    /// Per resource plural and namespace ("" for ClusterRoleBindings).
    lists: std::collections::HashMap<(&'static str, String), std::sync::Arc<Vec<Value>>>,
}

/// [`crate::lookup::list`] of `kind` in `ns`, from the memo when the cache has not moved.
async fn memo_list(
    state: &ApiState,
    kind: &'static dyn crate::registry::Kind,
    ns: &str,
) -> Result<std::sync::Arc<Vec<Value>>, ApiError> {
    let at = crate::cache::ReadAt::NotOlderThan(state.storage.written());
    let revision = match state.cache.ready(&state.storage, kind, at).await? {
        Some((_, fed)) => fed,
        None => {
            return Ok(std::sync::Arc::new(
                crate::lookup::list(state, kind, ns).await?,
            ))
        }
    };
    let key = (kind.info().plural, ns.to_string());
    {
        let memo = state
            .rbac_bindings
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(list) = memo
            .as_ref()
            .filter(|m| m.revision == revision)
            .and_then(|m| m.lists.get(&key))
        {
            return Ok(list.clone());
        }
    }
    // Read at `revision` or later: kept under `revision`, so it is used only while the
    // cache is still there (then it is exactly what the cache holds).
    let list = std::sync::Arc::new(crate::lookup::list(state, kind, ns).await?);
    let mut memo = state
        .rbac_bindings
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    match memo.as_mut() {
        Some(m) if m.revision == revision => {
            m.lists.insert(key, list.clone());
        }
        Some(m) if m.revision > revision => {}
        _ => {
            *memo = Some(Memo {
                revision,
                lists: [(key, list.clone())].into_iter().collect(),
            });
        }
    }
    Ok(list)
}

/// The role a binding refers to (its description and rules), None when it does not exist.
async fn role_rules(
    state: &ApiState,
    binding: &Value,
    ns: Option<&str>,
) -> Result<Option<(String, Vec<Value>)>, ApiError> {
    let r = &binding["roleRef"];
    let name = r["name"].as_str().unwrap_or_default();
    let found = match (r["kind"].as_str(), ns) {
        (Some("Role"), Some(ns)) => crate::lookup::get(state, &role::Roles, Some(ns), name)
            .await?
            .map(|role| (format!("Role \"{name}\""), role)),
        (Some("ClusterRole"), _) => {
            crate::lookup::get(state, &clusterrole::ClusterRoles, None, name)
                .await?
                .map(|role| (format!("ClusterRole \"{name}\""), role))
        }
        _ => None,
    };
    Ok(found.map(|(desc, role)| {
        let rules = role["rules"].as_array().cloned().unwrap_or_default();
        (desc, rules)
    }))
}

/// Whether `binding` (in namespace `ns`, None for a ClusterRoleBinding) names `user`.
pub fn binds(binding: &Value, ns: Option<&str>, user: &UserInfo) -> bool {
    bound_subject(binding, ns, user).is_some()
}

/// The subject of `binding` that names `user`, worded as upstream's allow reasons.
fn bound_subject(binding: &Value, ns: Option<&str>, user: &UserInfo) -> Option<String> {
    binding["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|s| {
            let name = s["name"].as_str().unwrap_or_default();
            match s["kind"].as_str() {
                Some("User") if user.name == name => Some(format!("User \"{name}\"")),
                Some("Group") if user.groups.iter().any(|g| g == name) => {
                    Some(format!("Group \"{name}\""))
                }
                Some("ServiceAccount") => {
                    let sns = s["namespace"].as_str().filter(|n| !n.is_empty()).or(ns)?;
                    (user.name == format!("{SA_PREFIX}{sns}:{name}"))
                        .then(|| format!("ServiceAccount \"{sns}/{name}\""))
                }
                _ => None,
            }
        })
}

/// Whether a PolicyRule covers the resource request.
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

/// Whether a PolicyRule covers a non-resource request: its URLs match the path exactly or
/// by a prefix ending in `*`.
pub fn covers_url(rule: &Value, verb: &str, path: &str) -> bool {
    let verb_ok = rule["verbs"]
        .as_array()
        .is_some_and(|v| v.iter().any(|x| x == "*" || x == verb));
    let url_ok = rule["nonResourceURLs"].as_array().is_some_and(|v| {
        v.iter()
            .filter_map(Value::as_str)
            .any(|u| match u.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => u == path,
            })
    });
    verb_ok && url_ok
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
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_star_prefix() {
        let rule = json!({"nonResourceURLs": ["/healthz", "/apis/*"], "verbs": ["get"]});
        assert!(covers_url(&rule, "get", "/healthz"));
        assert!(!covers_url(&rule, "get", "/healthz/etcd"));
        assert!(covers_url(&rule, "get", "/apis/apps/v1"));
        assert!(!covers_url(&rule, "post", "/healthz"));
        assert!(!covers_url(&json!({"verbs": ["*"]}), "get", "/healthz"));
    }
}
