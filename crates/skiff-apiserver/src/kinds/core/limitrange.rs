//! core/v1 LimitRanges: the consistency rules of each limit (min ≤ defaultRequest ≤ default ≤
//! max, ratios of at least 1, no defaults for `Pod`), and the `kubectl get limits` columns.
//! What a LimitRange does to pods and claims is LimitRanger admission
//! ([`crate::admission::limitrange`]).

use k8s_openapi::api::core::v1::LimitRange;
use k8s_pb::api::core::v1 as pb;
use serde_json::{json, Value};

use super::resourcequota::quantities;
use crate::registry::{Obj, Strategy};
use crate::resources::Entry;
use crate::table::{col, name, Column, NAME};
use crate::validation::{quote, Errs};

pub struct LimitRanges;

impl Strategy for LimitRanges {
    type Object = LimitRange;
    type Protobuf = pb::LimitRange;
    const RESOURCE: Entry = Entry {
        short_names: &["limits"],
        ..Entry::DEFAULT
    };
    const COLUMNS: &'static [Column] = &[NAME, col("Created At")];

    /// Kubernetes' `SetDefaults_LimitRangeItem`: a `Container` limit's default limit falls
    /// back to its max, its default request to its default limit, then to its min.
    fn defaults(&self, obj: &mut Value) {
        let Some(limits) = obj
            .pointer_mut("/spec/limits")
            .and_then(Value::as_array_mut)
        else {
            return;
        };
        for l in limits.iter_mut().filter(|l| l["type"] == "Container") {
            for (from, to) in [
                ("max", "default"),
                ("default", "defaultRequest"),
                ("min", "defaultRequest"),
            ] {
                let Some(src) = l[from].as_object().cloned() else {
                    continue;
                };
                if !l[to].is_object() {
                    l[to] = json!({});
                }
                for (k, v) in src {
                    if l[to].get(&k).is_none() {
                        l[to][k] = v;
                    }
                }
            }
        }
    }

    fn validate(
        &self,
        new: Obj<'_, LimitRange>,
        _old: Option<Obj<'_, LimitRange>>,
        errs: &mut Errs,
    ) {
        for (i, limit) in new.json["spec"]["limits"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            validate_limit(limit, &format!("spec.limits[{i}]"), errs);
        }
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let created = o
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .unwrap_or_default();
        vec![name(o), json!(created)]
    }
}

const FIELDS: &[&str] = &[
    "min",
    "max",
    "default",
    "defaultRequest",
    "maxLimitRequestRatio",
];

/// Kubernetes' `ValidateLimitRange` for one item of `spec.limits`.
fn validate_limit(limit: &Value, at: &str, errs: &mut Errs) {
    let ty = limit["type"].as_str().unwrap_or_default();
    if ty.is_empty() {
        errs.required(&format!("{at}.type"), "");
    }
    for f in FIELDS {
        quantities(&limit[*f], &format!("{at}.{f}"), errs);
    }
    if ty == "Pod" {
        for f in ["default", "defaultRequest"] {
            if limit[f].as_object().is_some_and(|m| !m.is_empty()) {
                errs.forbidden(
                    &format!("{at}.{f}"),
                    "may not be specified when `type` is 'Pod'",
                );
            }
        }
    }
    let get = |f: &str, r: &str| -> Option<(String, kube_quantity::ParsedQuantity)> {
        let s = limit[f][r].as_str()?;
        Some((s.to_string(), skiff_quota::parse(s)?))
    };
    let mut resources: Vec<&String> = FIELDS
        .iter()
        .filter_map(|f| limit[*f].as_object())
        .flat_map(|m| m.keys())
        .collect();
    resources.sort();
    resources.dedup();
    for r in resources {
        let field = |f: &str| format!("{at}.{f}[{r}]");
        let (min, max) = (get("min", r), get("max", r));
        let (def, def_req) = (get("default", r), get("defaultRequest", r));
        if let (Some((mn, mnq)), Some((mx, mxq))) = (&min, &max) {
            if mnq > mxq {
                errs.invalid(
                    &field("min"),
                    quote(mn),
                    &format!("min value {mn} is greater than max value {mx}"),
                );
            }
        }
        if let Some((dr, drq)) = &def_req {
            if let Some((mn, mnq)) = &min {
                if mnq > drq {
                    errs.invalid(
                        &field("defaultRequest"),
                        quote(dr),
                        &format!("min value {mn} is greater than default request value {dr}"),
                    );
                }
            }
            if let Some((mx, mxq)) = &max {
                if drq > mxq {
                    errs.invalid(
                        &field("defaultRequest"),
                        quote(dr),
                        &format!("default request value {dr} is greater than max value {mx}"),
                    );
                }
            }
            if let Some((d, dq)) = &def {
                if drq > dq {
                    errs.invalid(
                        &field("defaultRequest"),
                        quote(dr),
                        &format!(
                            "default request value {dr} is greater than default limit value {d}"
                        ),
                    );
                }
            }
        }
        if let Some((d, dq)) = &def {
            if let Some((mn, mnq)) = &min {
                if mnq > dq {
                    errs.invalid(
                        &field("default"),
                        quote(d),
                        &format!("min value {mn} is greater than default value {d}"),
                    );
                }
            }
            if let Some((mx, mxq)) = &max {
                if dq > mxq {
                    errs.invalid(
                        &field("default"),
                        quote(d),
                        &format!("default value {d} is greater than max value {mx}"),
                    );
                }
            }
        }
        if let Some((ratio, rq)) = get("maxLimitRequestRatio", r) {
            if rq < skiff_quota::parse("1").unwrap_or_default() {
                errs.invalid(
                    &field("maxLimitRequestRatio"),
                    quote(&ratio),
                    &format!("ratio {ratio} is less than 1"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;

    #[test]
    fn limits_must_be_ordered() {
        let lr = json!({"metadata": {"name": "l"}, "spec": {"limits": [
            {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}, "maxLimitRequestRatio": {"memory": "500m"}},
            {"type": "Pod", "default": {"cpu": "1"}}]}});
        let err = Kind::validate(&LimitRanges, &lr, None).unwrap_err();
        let causes: Vec<String> = err
            .causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            causes,
            [
                "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1",
                "spec.limits[0].maxLimitRequestRatio[memory]: Invalid value: \"500m\": ratio 500m is less than 1",
                "spec.limits[1].default: Forbidden: may not be specified when `type` is 'Pod'",
            ]
        );
    }
}
