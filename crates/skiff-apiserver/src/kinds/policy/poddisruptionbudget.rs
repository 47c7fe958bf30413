//! policy/v1 PodDisruptionBudgets: the minAvailable/maxUnavailable rules, the zeroed status a
//! new budget starts with, `/status`, and the `kubectl get pdb` columns.

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_pb::api::policy::v1 as pb;
use serde_json::{json, Value};

use crate::registry::{Obj, Strategy};
use crate::resources::{Entry, Sub};
use crate::table::{age, col, int, int_col, name, Column, AGE, NAME};
use crate::validation::{quote, Errs};

const EVICTION_POLICIES: &[&str] = &["AlwaysAllow", "IfHealthyBudget"];
const PERCENT_MSG: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

pub struct PodDisruptionBudgets;

impl Strategy for PodDisruptionBudgets {
    type Object = PodDisruptionBudget;
    type Protobuf = pb::PodDisruptionBudget;
    const RESOURCE: Entry = Entry {
        short_names: &["pdb"],
        subresources: &[Sub::Status],
        ..Entry::DEFAULT
    };
    const GENERATION: bool = true;
    const COLUMNS: &'static [Column] = &[
        NAME,
        col("Min Available"),
        col("Max Unavailable"),
        int_col("Allowed Disruptions"),
        AGE,
    ];

    /// A new budget's status is Kubernetes' zero status (its counters are not optional).
    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0});
    }

    fn validate(
        &self,
        new: Obj<'_, PodDisruptionBudget>,
        _old: Option<Obj<'_, PodDisruptionBudget>>,
        errs: &mut Errs,
    ) {
        let spec = &new.json["spec"];
        if !spec["minAvailable"].is_null() && !spec["maxUnavailable"].is_null() {
            errs.invalid(
                "spec",
                "policy.PodDisruptionBudgetSpec{...}".into(),
                "minAvailable and maxUnavailable cannot be both set",
            );
        }
        for f in ["minAvailable", "maxUnavailable"] {
            int_or_percent(&spec[f], &format!("spec.{f}"), errs);
        }
        if let Some(p) = spec["unhealthyPodEvictionPolicy"]
            .as_str()
            .filter(|p| !EVICTION_POLICIES.contains(p))
        {
            errs.not_supported("spec.unhealthyPodEvictionPolicy", p, EVICTION_POLICIES);
        }
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let shown = |f: &str| match o.pointer(&format!("/spec/{f}")) {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => "N/A".into(),
        };
        vec![
            name(o),
            json!(shown("minAvailable")),
            json!(shown("maxUnavailable")),
            int(o, "/status/disruptionsAllowed"),
            age(o),
        ]
    }
}

/// A non-negative count or a percentage of at most 100%.
fn int_or_percent(v: &Value, field: &str, errs: &mut Errs) {
    match v {
        Value::Number(n) => errs.min(field, &Value::Number(n.clone()), 0),
        Value::String(s) => {
            let digits = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
            match digits {
                None => errs.invalid(field, quote(s), PERCENT_MSG),
                Some(d) if d.parse::<u64>().is_ok_and(|p| p > 100) => {
                    errs.invalid(field, quote(s), "must not be greater than 100%")
                }
                Some(_) => {}
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;

    #[test]
    fn budgets_are_counts_or_percentages() {
        let pdb = json!({"metadata": {"name": "web"}, "spec": {"minAvailable": "120%", "selector": {"matchLabels": {"app": "web"}}}});
        let err = Kind::validate(&PodDisruptionBudgets, &pdb, None).unwrap_err();
        assert_eq!(
            err.message,
            "PodDisruptionBudget.policy \"web\" is invalid: spec.minAvailable: Invalid value: \"120%\": must not be greater than 100%"
        );
        let neg = json!({"metadata": {"name": "web"}, "spec": {"maxUnavailable": -1}});
        let err = Kind::validate(&PodDisruptionBudgets, &neg, None).unwrap_err();
        assert_eq!(
            err.causes[0].message,
            "Invalid value: -1: must be greater than or equal to 0"
        );
        let both =
            json!({"metadata": {"name": "web"}, "spec": {"minAvailable": 1, "maxUnavailable": 1}});
        let err = Kind::validate(&PodDisruptionBudgets, &both, None).unwrap_err();
        assert!(err.causes[0]
            .message
            .ends_with("minAvailable and maxUnavailable cannot be both set"));
    }

    #[test]
    fn row_matches_kubectl_get_pdb() {
        let mut pdb = json!({"metadata": {"name": "web"}, "spec": {"minAvailable": 2}});
        Kind::prepare_for_create(&PodDisruptionBudgets, &mut pdb);
        let c = Kind::cells(&PodDisruptionBudgets, &pdb);
        assert_eq!(&c[1..4], [json!("2"), json!("N/A"), json!(0)]);
    }
}
