//! The ClusterRole aggregation controller (kube-controller-manager's
//! `clusterrole-aggregation`): a ClusterRole with an `aggregationRule` gets as its rules the
//! rules of every other ClusterRole matching one of its `clusterRoleSelectors`, in
//! selector order then name order, each rule once. So `admin`, `edit` and `view` pick up
//! whatever a user labels `rbac.authorization.k8s.io/aggregate-to-view: "true"` etc.
//!
//! It runs in the API server (as the CSR signer does) because the defaults it fills are
//! the server's own bootstrap objects; it is an in-process API client like any controller,
//! following ClusterRoles with one watch and writing only rules that changed.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::json;

use crate::router::ApiState;
use crate::selector::{label_selector_string, LabelSelector};

/// Keeps aggregated ClusterRoles' rules up to date until `stop` completes.
pub async fn run(state: Arc<ApiState>, stop: impl Future<Output = ()>) {
    let api: Api<ClusterRole> = Api::all(crate::router::in_process_client(
        state,
        crate::auth::component("system:kube-controller-manager"),
    ));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            r = follow(&api) => if let Err(e) = r {
                tracing::warn!(error = %e, "clusterrole aggregation: watch failed");
            },
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

/// Lists every ClusterRole and aggregates, then again after each change until the watch
/// ends.
async fn follow(api: &Api<ClusterRole>) -> Result<(), kube::Error> {
    let list = api.list(&ListParams::default()).await?;
    let rv = list.metadata.resource_version.clone().unwrap_or_default();
    let mut roles: BTreeMap<String, ClusterRole> = list
        .items
        .into_iter()
        .map(|r| (r.metadata.name.clone().unwrap_or_default(), r))
        .collect();
    sync(api, &roles).await;
    let mut events = api
        .watch(&WatchParams::default().timeout(290), &rv)
        .await?
        .boxed();
    while let Some(event) = events.try_next().await? {
        match event {
            WatchEvent::Added(r) | WatchEvent::Modified(r) => {
                roles.insert(r.metadata.name.clone().unwrap_or_default(), r);
            }
            WatchEvent::Deleted(r) => {
                roles.remove(r.metadata.name.as_deref().unwrap_or_default());
            }
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(_) => return Ok(()),
        }
        sync(api, &roles).await;
    }
    Ok(())
}

/// Writes the rules of every aggregated role whose rules differ from what it aggregates.
async fn sync(api: &Api<ClusterRole>, roles: &BTreeMap<String, ClusterRole>) {
    for (name, role) in roles {
        let Some(want) = aggregate(name, role, roles) else {
            continue;
        };
        if role.rules.clone().unwrap_or_default() == want {
            continue;
        }
        tracing::info!(%name, rules = want.len(), "aggregating clusterrole rules");
        let patch = Patch::Merge(json!({"rules": want}));
        if let Err(e) = api.patch(name, &PatchParams::default(), &patch).await {
            tracing::warn!(%name, error = %e, "cannot write aggregated rules");
        }
    }
}

/// The rules `role` aggregates from `roles`; None when it has no aggregation rule.
pub fn aggregate(
    name: &str,
    role: &ClusterRole,
    roles: &BTreeMap<String, ClusterRole>,
) -> Option<Vec<PolicyRule>> {
    let selectors = &role.aggregation_rule.as_ref()?.cluster_role_selectors;
    let selectors = selectors.as_ref().filter(|s| !s.is_empty())?;
    let mut rules: Vec<PolicyRule> = Vec::new();
    for sel in selectors {
        let Ok(sel_json) = serde_json::to_value(sel) else {
            continue;
        };
        let Ok(sel) = LabelSelector::parse(&label_selector_string(&sel_json)) else {
            continue;
        };
        for (other_name, other) in roles {
            if other_name == name {
                continue;
            }
            let labels = other.metadata.labels.as_ref();
            if !sel.matches_with(|k| labels.and_then(|l| l.get(k)).map(String::as_str)) {
                continue;
            }
            for r in other.rules.iter().flatten() {
                if !rules.contains(r) {
                    rules.push(r.clone());
                }
            }
        }
    }
    Some(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, labels: &[(&str, &str)], verbs: &[&str]) -> ClusterRole {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels.iter().cloned().collect::<BTreeMap<_, _>>()},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs}],
        }))
        .unwrap()
    }

    #[test]
    fn aggregation_takes_matching_roles_rules_once_in_name_order() {
        let mut agg: ClusterRole = serde_json::from_value(json!({"metadata": {"name": "agg"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"to": "agg"}}]}}))
        .unwrap();
        agg.rules = None;
        let roles: BTreeMap<String, ClusterRole> = [
            agg.clone(),
            role("b", &[("to", "agg")], &["list"]),
            role("a", &[("to", "agg")], &["get"]),
            role("dup", &[("to", "agg")], &["get"]),
            role("other", &[("to", "else")], &["delete"]),
        ]
        .into_iter()
        .map(|r| (r.metadata.name.clone().unwrap(), r))
        .collect();
        let rules = aggregate("agg", &agg, &roles).unwrap();
        let verbs: Vec<&str> = rules.iter().map(|r| r.verbs[0].as_str()).collect();
        assert_eq!(verbs, ["get", "list"]);
        assert!(aggregate("b", &roles["b"], &roles).is_none());
    }
}
