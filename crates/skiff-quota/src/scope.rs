//! Quota scopes (Kubernetes' `ResourceQuotaScope`s and `scopeSelector`): which pods a scoped
//! quota tracks, and which resources a scope may be applied to. A quota's `spec.scopes`
//! count as `Exists` requirements besides its `spec.scopeSelector.matchExpressions`; a pod
//! must match all of them. A scoped quota tracks pods only (no other evaluator has scopes).

use serde_json::Value;

use crate::container_resources;

/// The scopes a quota may name.
pub const SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

/// Scope pairs no quota may name both of.
pub const CONFLICTING_SCOPES: &[(&str, &str)] = &[
    ("BestEffort", "NotBestEffort"),
    ("Terminating", "NotTerminating"),
];

/// The operators of a scope selector requirement.
pub const OPERATORS: &[&str] = &["In", "NotIn", "Exists", "DoesNotExist"];

/// Whether a quota with `scope` may track standard quota resource `resource`
/// (`IsResourceQuotaScopeValidForResource`): BestEffort pods use no compute, so only their
/// count; the other scopes allow the count and compute.
pub fn scope_allows(scope: &str, resource: &str) -> bool {
    match scope {
        "BestEffort" => resource == "pods",
        "Terminating"
        | "NotTerminating"
        | "NotBestEffort"
        | "PriorityClass"
        | "CrossNamespacePodAffinity" => {
            resource == "pods" || crate::POD_COMPUTE.contains(&resource)
        }
        _ => true,
    }
}

/// One scope requirement of a quota (`ScopedResourceSelectorRequirement`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub scope: String,
    pub operator: String,
    pub values: Vec<String>,
}

impl Requirement {
    /// The requirements of `quota`: its `spec.scopes`, then its `spec.scopeSelector`.
    pub fn of(quota: &Value) -> Vec<Requirement> {
        let scopes = quota
            .pointer("/spec/scopes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|s| Requirement {
                scope: s.as_str().unwrap_or_default().to_string(),
                operator: "Exists".into(),
                values: Vec::new(),
            });
        let selected = quota
            .pointer("/spec/scopeSelector/matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|e| Requirement {
                scope: e["scopeName"].as_str().unwrap_or_default().to_string(),
                operator: e["operator"].as_str().unwrap_or_default().to_string(),
                values: e["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            });
        scopes.chain(selected).collect()
    }

    /// Whether `pod` matches (`podMatchesScopeFunc`).
    fn matches(&self, pod: &Value) -> bool {
        match self.scope.as_str() {
            "Terminating" => is_terminating(pod),
            "NotTerminating" => !is_terminating(pod),
            "BestEffort" => is_best_effort(pod),
            "NotBestEffort" => !is_best_effort(pod),
            "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(pod),
            "PriorityClass" => {
                let class = pod
                    .pointer("/spec/priorityClassName")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                // As upstream: the pod is the label set {PriorityClass: its class}, where the
                // key is always present (so DoesNotExist never matches).
                let listed = self.values.iter().any(|v| v == class);
                match self.operator.as_str() {
                    "Exists" => !class.is_empty(),
                    "In" => listed,
                    "NotIn" => !listed,
                    _ => false,
                }
            }
            _ => false,
        }
    }
}

/// Whether `quota` (a ResourceQuota) applies to `obj` of `group/plural` by its scopes and
/// scope selector: an unscoped quota applies to everything, a scoped one to the pods that
/// match every requirement.
pub fn scopes_match(quota: &Value, group: &str, plural: &str, obj: &Value) -> bool {
    let requirements = Requirement::of(quota);
    if requirements.is_empty() {
        return true;
    }
    group.is_empty() && plural == "pods" && requirements.iter().all(|r| r.matches(obj))
}

/// A pod with an `activeDeadlineSeconds` (of at least 0).
fn is_terminating(pod: &Value) -> bool {
    pod.pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|s| s >= 0)
}

/// A pod of QoS class BestEffort: no container or init container requests or limits CPU
/// or memory (other resources do not count for the class).
fn is_best_effort(pod: &Value) -> bool {
    ["containers", "initContainers"].iter().all(|f| {
        pod.pointer(&format!("/spec/{f}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .all(|c| {
                let (r, l) = container_resources(c);
                ["cpu", "memory"]
                    .iter()
                    .all(|k| !r.contains_key(*k) && !l.contains_key(*k))
            })
    })
}

/// Whether a pod (anti-)affinity term of `pod` names other namespaces or a namespace
/// selector.
fn uses_cross_namespace_affinity(pod: &Value) -> bool {
    let affinity = &pod["spec"]["affinity"];
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let required = affinity[kind]["requiredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten();
        let preferred = affinity[kind]["preferredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w| &w["podAffinityTerm"]);
        required.chain(preferred).any(|t| {
            t["namespaces"].as_array().is_some_and(|n| !n.is_empty())
                || t["namespaceSelector"].is_object()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Value {
        json!({ "spec": spec })
    }

    #[test]
    fn scoped_quotas_match_pods_by_qos_and_deadline() {
        let quota = json!({"spec": {"scopes": ["BestEffort"]}});
        let bare = pod(json!({"containers": [{"name": "a"}]}));
        let sized =
            pod(json!({"containers": [{"name": "a", "resources": {"limits": {"cpu": "1"}}}]}));
        // Ephemeral storage does not change the QoS class.
        let disk = pod(
            json!({"containers": [{"name": "a", "resources": {"requests": {"ephemeral-storage": "1Gi"}}}]}),
        );
        assert!(scopes_match(&quota, "", "pods", &bare));
        assert!(scopes_match(&quota, "", "pods", &disk));
        assert!(!scopes_match(&quota, "", "pods", &sized));
        assert!(!scopes_match(&quota, "", "configmaps", &json!({})));
        assert!(scopes_match(
            &json!({"spec": {}}),
            "",
            "configmaps",
            &json!({})
        ));
        let deadline = pod(json!({"activeDeadlineSeconds": 30, "containers": [{"name": "a"}]}));
        let both = json!({"spec": {"scopes": ["Terminating"], "scopeSelector": {"matchExpressions": [
            {"scopeName": "BestEffort", "operator": "Exists"}]}}});
        assert!(scopes_match(&both, "", "pods", &deadline));
        assert!(!scopes_match(&both, "", "pods", &bare), "not terminating");
    }

    #[test]
    fn priority_class_selectors_match_as_upstream() {
        let sel = |op: &str, values: Value| {
            json!({"spec": {"scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": op, "values": values}]}}})
        };
        let high = pod(json!({"priorityClassName": "high", "containers": []}));
        let none = pod(json!({"containers": []}));
        assert!(scopes_match(
            &sel("In", json!(["high", "mid"])),
            "",
            "pods",
            &high
        ));
        assert!(!scopes_match(&sel("In", json!(["mid"])), "", "pods", &high));
        assert!(!scopes_match(
            &sel("In", json!(["high"])),
            "",
            "pods",
            &none
        ));
        assert!(scopes_match(
            &sel("NotIn", json!(["mid"])),
            "",
            "pods",
            &none
        ));
        assert!(!scopes_match(
            &sel("NotIn", json!(["high"])),
            "",
            "pods",
            &high
        ));
        assert!(scopes_match(&sel("Exists", json!(null)), "", "pods", &high));
        assert!(!scopes_match(
            &sel("Exists", json!(null)),
            "",
            "pods",
            &none
        ));
        assert!(!scopes_match(
            &sel("DoesNotExist", json!(null)),
            "",
            "pods",
            &none
        ));
    }

    #[test]
    fn cross_namespace_affinity_is_namespaces_or_a_namespace_selector() {
        let quota = json!({"spec": {"scopes": ["CrossNamespacePodAffinity"]}});
        let term = |t: Value| {
            pod(json!({"containers": [], "affinity": {"podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "podAffinityTerm": t}]}}}))
        };
        let other = term(json!({"topologyKey": "k", "namespaces": ["other"]}));
        let selected = term(json!({"topologyKey": "k", "namespaceSelector": {}}));
        let own = term(json!({"topologyKey": "k"}));
        assert!(scopes_match(&quota, "", "pods", &other));
        assert!(scopes_match(&quota, "", "pods", &selected));
        assert!(!scopes_match(&quota, "", "pods", &own));
    }

    #[test]
    fn best_effort_quotas_track_only_the_pod_count() {
        assert!(scope_allows("BestEffort", "pods"));
        assert!(!scope_allows("BestEffort", "requests.cpu"));
        assert!(scope_allows("NotBestEffort", "limits.memory"));
        assert!(!scope_allows("Terminating", "requests.storage"));
        assert!(!scope_allows("PriorityClass", "requests.ephemeral-storage"));
    }
}
