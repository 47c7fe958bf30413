//! A Job's `podFailurePolicy`: the first rule that matches a failed pod decides what its
//! failure means — `FailJob` (the Job fails at once), `Ignore` (not counted toward
//! `backoffLimit`, the pod is replaced), `Count` (the default) or `FailIndex` (the pod's
//! index fails at once, see [`per_index`](super::per_index)). Rules match on the exit codes
//! of the pod's terminated containers (non-zero ones, optionally of one container) or on
//! its conditions (e.g. `DisruptionTarget` after an eviction), as kube-controller-manager
//! matches them.

use crate::cachedpod::CachedPod;
use k8s_openapi::api::batch::v1::{PodFailurePolicy, PodFailurePolicyRule};
use kube::ResourceExt;

/// What a failed pod's failure counts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Fail the Job, with this message.
    FailJob(String),
    /// Not a failure that counts.
    Ignore,
    /// Counted toward `backoffLimit`.
    Count,
    /// Counted, and the pod's index fails without further retries (only with
    /// `backoffLimitPerIndex`, which the API requires for this action).
    FailIndex,
}

/// The verdict of `policy` (None: count every failure) on the failed pod `p`.
pub fn judge(policy: Option<&PodFailurePolicy>, p: &CachedPod) -> Verdict {
    let Some(policy) = policy else {
        return Verdict::Count;
    };
    for (i, rule) in policy.rules.iter().enumerate() {
        let Some(what) = matches(rule, p) else {
            continue;
        };
        return match rule.action.as_str() {
            "FailJob" => Verdict::FailJob(format!("{what} matching FailJob rule at index {i}")),
            "Ignore" => Verdict::Ignore,
            "FailIndex" => Verdict::FailIndex,
            _ => Verdict::Count,
        };
    }
    Verdict::Count
}

/// How `rule` matches `p`, worded for the Job's condition message; None if it does not.
fn matches(rule: &PodFailurePolicyRule, p: &CachedPod) -> Option<String> {
    let pod = format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any());
    let status = p.status.as_ref()?;
    if let Some(req) = &rule.on_exit_codes {
        let statuses = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for c in statuses {
            if req.container_name.as_ref().is_some_and(|n| *n != c.name) {
                continue;
            }
            let Some(code) = c
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(|t| t.exit_code)
            else {
                continue;
            };
            if code == 0 {
                continue;
            }
            let listed = req.values.contains(&code);
            let hit = match req.operator.as_str() {
                "In" => listed,
                "NotIn" => !listed,
                _ => false,
            };
            if hit {
                return Some(format!(
                    "Container {} for pod {pod} failed with exit code {code}",
                    c.name
                ));
            }
        }
    }
    for want in rule.on_pod_conditions.iter().flatten() {
        // The API server defaults an omitted status to "True".
        let want_status = if want.status.is_empty() {
            "True"
        } else {
            want.status.as_str()
        };
        let has = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == want.type_ && c.status == want_status);
        if has {
            return Some(format!("Pod {pod} has condition {}", want.type_));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(rules: serde_json::Value) -> PodFailurePolicy {
        serde_json::from_value(json!({"rules": rules})).unwrap()
    }

    fn failed(code: i32, conditions: serde_json::Value) -> CachedPod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "conditions": conditions, "containerStatuses": [
                {"name": "main", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": code}}}]},
        }))
        .unwrap()
    }

    #[test]
    fn first_matching_rule_decides() {
        let p = policy(json!([
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}},
        ]));
        assert_eq!(
            judge(Some(&p), &failed(42, json!([]))),
            Verdict::FailJob("Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 0".into())
        );
        let evicted = failed(137, json!([{"type": "DisruptionTarget", "status": "True"}]));
        assert_eq!(judge(Some(&p), &evicted), Verdict::Ignore);
        assert_eq!(judge(Some(&p), &failed(1, json!([]))), Verdict::Count);
        assert_eq!(judge(None, &failed(42, json!([]))), Verdict::Count);
        let not_in = policy(
            json!([{"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}}]),
        );
        assert!(matches!(
            judge(Some(&not_in), &failed(3, json!([]))),
            Verdict::FailJob(_)
        ));
        assert_eq!(judge(Some(&not_in), &failed(2, json!([]))), Verdict::Count);
        let on_condition = policy(
            json!([{"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]),
        );
        assert_eq!(
            judge(Some(&on_condition), &evicted),
            Verdict::FailJob(
                "Pod ns/p has condition DisruptionTarget matching FailJob rule at index 0".into()
            )
        );
    }
}
