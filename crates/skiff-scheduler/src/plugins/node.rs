//! Plugins that look at one node alone: NodeUnschedulable (cordon), TaintToleration,
//! NodeAffinity (with `nodeSelector`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Taint, Toleration};

use super::Reason;
use crate::cache::{NodeInfo, UNSCHEDULABLE};
use crate::podinfo::PodInfo;

/// Whether `t` tolerates `taint` (Kubernetes' `Toleration.ToleratesTaint`).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

fn tolerated(pod: &PodInfo, taint: &Taint) -> bool {
    pod.tolerations.iter().any(|t| tolerates(t, taint))
}

/// NodeUnschedulable: a cordoned node takes only pods tolerating its unschedulable taint.
pub fn unschedulable(pod: &PodInfo, node: &NodeInfo) -> Option<Reason> {
    if !node.unschedulable {
        return None;
    }
    let taint = Taint {
        key: UNSCHEDULABLE.into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    (!tolerated(pod, &taint)).then_some(Reason::Unschedulable)
}

/// TaintToleration's filter: the first NoSchedule or NoExecute taint the pod does not
/// tolerate.
pub fn untolerated_taint(pod: &PodInfo, node: &NodeInfo) -> Option<Reason> {
    node.taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerated(pod, t))
        .map(|t| Reason::UntoleratedTaint {
            key: t.key.clone(),
            value: t.value.clone().unwrap_or_default(),
        })
}

/// TaintToleration's score input: PreferNoSchedule taints the pod does not tolerate.
pub fn prefer_no_schedule(pod: &PodInfo, node: &NodeInfo) -> i64 {
    node.taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule")
        .filter(|t| {
            !pod.tolerations.iter().any(|tol| {
                matches!(
                    tol.effect.as_deref(),
                    None | Some("") | Some("PreferNoSchedule")
                ) && tolerates(tol, t)
            })
        })
        .count() as i64
}

/// NodeAffinity's filter: the node has every `nodeSelector` label and matches one of the
/// required node selector terms.
pub fn matches_affinity(pod: &PodInfo, node: &NodeInfo) -> bool {
    let placement = pod.placement();
    placement
        .node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v))
        && placement.required_node_affinity.as_ref().is_none_or(|sel| {
            sel.node_selector_terms
                .iter()
                .any(|t| term_matches(t, node))
        })
}

/// NodeAffinity's score input: the weights of the preferred terms the node matches.
pub fn preferred_affinity(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.placement()
        .preferred_node_affinity
        .iter()
        .filter(|p| p.weight != 0 && term_matches(&p.preference, node))
        .map(|p| p.weight as i64)
        .sum()
}

/// A node selector term: all of its expressions and fields hold (an empty term matches
/// nothing, as in Kubernetes).
pub fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| requirement(r, &node.labels))
        && fields.iter().all(|r| {
            r.key == "metadata.name"
                && requirement(
                    &NodeSelectorRequirement {
                        key: "metadata.name".into(),
                        ..r.clone()
                    },
                    &BTreeMap::from([("metadata.name".to_string(), node.name.clone())]),
                )
        })
}

fn requirement(r: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let got = labels.get(&r.key);
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => got.is_some_and(|v| values.contains(v)),
        "NotIn" => got.is_none_or(|v| !values.contains(v)),
        "Exists" => got.is_some(),
        "DoesNotExist" => got.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(want)) = (
                got.and_then(|v| number(v)),
                values.first().and_then(|v| number(v)),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                have > want
            } else {
                have < want
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(key: Option<&str>, op: &str, value: Option<&str>, effect: Option<&str>) -> Toleration {
        Toleration {
            key: key.map(Into::into),
            operator: Some(op.into()),
            value: value.map(Into::into),
            effect: effect.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn tolerations_match_like_kubernetes() {
        let taint = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        assert!(tolerates(&tol(Some("k"), "Equal", Some("v"), None), &taint));
        assert!(!tolerates(
            &tol(Some("k"), "Equal", Some("w"), None),
            &taint
        ));
        assert!(tolerates(
            &tol(Some("k"), "Exists", None, Some("NoSchedule")),
            &taint
        ));
        assert!(!tolerates(
            &tol(Some("k"), "Exists", None, Some("NoExecute")),
            &taint
        ));
        assert!(tolerates(&tol(None, "Exists", None, None), &taint));
    }

    #[test]
    fn gt_and_lt_compare_integers() {
        let labels = BTreeMap::from([("gen".to_string(), "5".to_string())]);
        let r = |op: &str, v: &str| NodeSelectorRequirement {
            key: "gen".into(),
            operator: op.into(),
            values: Some(vec![v.into()]),
        };
        assert!(requirement(&r("Gt", "4"), &labels));
        assert!(!requirement(&r("Gt", "5"), &labels));
        assert!(requirement(&r("Lt", "10"), &labels));
        assert!(!requirement(&r("Lt", "x"), &labels));
    }
}
