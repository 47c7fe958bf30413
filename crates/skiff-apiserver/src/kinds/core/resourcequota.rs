//! core/v1 ResourceQuotas: the rules of `spec.hard` (valid, non-negative quantities, whole
//! numbers for counted resources), scopes, `/status` (written by the quota controller and
//! charged by quota admission), and the `kubectl get quota` columns.

use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_pb::api::core::v1 as pb;
use serde_json::{json, Value};

use crate::registry::{Obj, Strategy};
use crate::resources::{Entry, Sub};
use crate::table::{age, col, name, Column, AGE, NAME};
use crate::validation::{quote, Errs};

/// What Kubernetes answers for a quantity it cannot parse.
pub const QUANTITY_SYNTAX: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

pub struct ResourceQuotas;

impl Strategy for ResourceQuotas {
    type Object = ResourceQuota;
    type Protobuf = pb::ResourceQuota;
    const RESOURCE: Entry = Entry {
        short_names: &["quota"],
        subresources: &[Sub::Status],
        ..Entry::DEFAULT
    };
    const COLUMNS: &'static [Column] = &[NAME, AGE, col("Request"), col("Limit")];

    fn validate(
        &self,
        new: Obj<'_, ResourceQuota>,
        _old: Option<Obj<'_, ResourceQuota>>,
        errs: &mut Errs,
    ) {
        for field in ["spec.hard", "status.hard", "status.used"] {
            let (top, sub) = field.split_once('.').unwrap_or_default();
            quantities(&new.json[top][sub], field, errs);
        }
        for (i, s) in new.json["spec"]["scopes"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let s = s.as_str().unwrap_or_default();
            if !skiff_quota::SCOPES.contains(&s) && s != "PriorityClass" {
                errs.not_supported(&format!("spec.scopes[{i}]"), s, skiff_quota::SCOPES);
            }
        }
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let hard = o.pointer("/status/hard").and_then(Value::as_object);
        let used = o.pointer("/status/used");
        let (mut requests, mut limits) = (Vec::new(), Vec::new());
        for (res, h) in hard.into_iter().flatten() {
            let u = used
                .and_then(|u| u.get(res))
                .and_then(Value::as_str)
                .unwrap_or("0");
            let cell = format!("{res}: {u}/{}", h.as_str().unwrap_or_default());
            if res.starts_with("limits.") {
                limits.push(cell);
            } else {
                requests.push(cell);
            }
        }
        vec![
            name(o),
            age(o),
            json!(requests.join(", ")),
            json!(limits.join(", ")),
        ]
    }
}

/// Each amount of a resource list parses, is not negative, and is whole where the resource
/// is counted (`pods`, `count/…`, …).
pub fn quantities(list: &Value, field: &str, errs: &mut Errs) {
    for (res, q) in list.as_object().into_iter().flatten() {
        let f = format!("{field}[{res}]");
        let text = q.as_str().unwrap_or_default();
        let Some(parsed) = skiff_quota::parse(text) else {
            errs.invalid(&f, quote(text), QUANTITY_SYNTAX);
            continue;
        };
        if parsed < skiff_quota::zero() {
            errs.invalid(&f, quote(text), "must be greater than or equal to 0");
        } else if skiff_quota::is_count(res) && !whole(&parsed) {
            errs.invalid(&f, quote(text), "must be an integer");
        }
    }
}

fn whole(q: &kube_quantity::ParsedQuantity) -> bool {
    q.to_bytes_f64().is_some_and(|v| v.fract() == 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;

    #[test]
    fn hard_amounts_must_be_quantities_and_counts_whole() {
        let quota = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1.5", "requests.cpu": "lots", "limits.memory": "-1Gi"}}});
        let err = Kind::validate(&ResourceQuotas, &quota, None).unwrap_err();
        assert_eq!(err.code, 422);
        let causes: Vec<String> = err
            .causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            causes,
            [
                "spec.hard[limits.memory]: Invalid value: \"-1Gi\": must be greater than or equal to 0".to_string(),
                "spec.hard[pods]: Invalid value: \"1.5\": must be an integer".into(),
                format!("spec.hard[requests.cpu]: Invalid value: \"lots\": {QUANTITY_SYNTAX}"),
            ]
        );
    }

    #[test]
    fn row_splits_requests_and_limits() {
        let quota = json!({"metadata": {"name": "q"}, "status": {
            "hard": {"pods": "2", "limits.cpu": "1", "requests.cpu": "500m"},
            "used": {"pods": "1", "limits.cpu": "0", "requests.cpu": "100m"}}});
        let c = Kind::cells(&ResourceQuotas, &quota);
        assert_eq!(c[2], "pods: 1/2, requests.cpu: 100m/500m");
        assert_eq!(c[3], "limits.cpu: 0/1");
    }
}
