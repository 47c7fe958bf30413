//! core/v1 ResourceQuotas: the rules of `spec.hard` (valid, non-negative quantities, whole
//! numbers for counted resources), `scopes` and `scopeSelector`, `/status` (written by the quota controller and
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
        scopes(&new.json["spec"], errs);
        scope_selector(&new.json["spec"], errs);
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

/// `spec.scopes` (upstream's `validateResourceQuotaScopes`): known scopes, each allowed for
/// every standard resource the quota tracks, no conflicting pair. The errors name the whole
/// list, as Kubernetes does.
fn scopes(spec: &Value, errs: &mut Errs) {
    let listed: Vec<&str> = spec["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().unwrap_or_default())
        .collect();
    let shown = || {
        let quoted: Vec<String> = listed.iter().map(|s| quote(s)).collect();
        format!("[]core.ResourceQuotaScope{{{}}}", quoted.join(", "))
    };
    let field = "spec.scopes";
    for scope in &listed {
        if !skiff_quota::SCOPES.contains(scope) {
            errs.invalid(field, shown(), "unsupported scope");
        }
        for _ in misapplied(spec, scope) {
            errs.invalid(field, shown(), "unsupported scope applied to resource");
        }
    }
    if conflicting(&listed) {
        errs.invalid(field, shown(), "conflicting scopes");
    }
}

/// `spec.scopeSelector` (upstream's `validateScopedResourceSelectorRequirement`): known
/// scopes allowed for the tracked resources, `Exists` for the scopes that take no values,
/// values exactly for `In`/`NotIn`, no conflicting pair.
fn scope_selector(spec: &Value, errs: &mut Errs) {
    if !spec["scopeSelector"].is_object() {
        return;
    }
    let field = "spec.scopeSelector.matchExpressions";
    let expressions = spec["scopeSelector"]["matchExpressions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let requirements: Vec<skiff_quota::Requirement> =
        skiff_quota::Requirement::of(&json!({"spec": {"scopeSelector": spec["scopeSelector"]}}));
    let shown = || go_selector(&requirements, &expressions);
    for (r, raw) in requirements.iter().zip(&expressions) {
        let scope = r.scope.as_str();
        if !skiff_quota::SCOPES.contains(&scope) {
            errs.invalid(
                &format!("{field}.scopeName"),
                quote(scope),
                "unsupported scope",
            );
        }
        for _ in misapplied(spec, scope) {
            errs.invalid(field, shown(), "unsupported scope applied to resource");
        }
        let valueless = matches!(
            scope,
            "BestEffort"
                | "NotBestEffort"
                | "Terminating"
                | "NotTerminating"
                | "CrossNamespacePodAffinity"
        );
        if valueless && r.operator != "Exists" {
            errs.invalid(
                &format!("{field}.operator"),
                quote(&r.operator),
                "must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity",
            );
        }
        match r.operator.as_str() {
            "In" | "NotIn" if r.values.is_empty() => errs.required(
                &format!("{field}.values"),
                "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
            ),
            "Exists" | "DoesNotExist" if !r.values.is_empty() => errs.invalid(
                &format!("{field}.values"),
                go_strings(&raw["values"]),
                "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
            ),
            op if !skiff_quota::OPERATORS.contains(&op) => errs.invalid(
                &format!("{field}.operator"),
                quote(op),
                "not a valid selector operator",
            ),
            _ => {}
        }
    }
    let scopes: Vec<&str> = requirements.iter().map(|r| r.scope.as_str()).collect();
    if conflicting(&scopes) {
        errs.invalid(field, shown(), "conflicting scopes");
    }
}

/// The standard resources of the quota's `spec.hard` that `scope` may not be applied to.
fn misapplied<'a>(spec: &'a Value, scope: &'a str) -> impl Iterator<Item = &'a String> + 'a {
    spec["hard"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .filter(move |k| skiff_quota::is_standard(k) && !skiff_quota::scope_allows(scope, k))
}

fn conflicting(scopes: &[&str]) -> bool {
    skiff_quota::CONFLICTING_SCOPES
        .iter()
        .any(|(a, b)| scopes.contains(a) && scopes.contains(b))
}

/// A `[]string` as Go's `%#v` shows it.
fn go_strings(v: &Value) -> String {
    match v.as_array() {
        None => "[]string(nil)".into(),
        Some(list) => {
            let quoted: Vec<String> = list
                .iter()
                .map(|s| quote(s.as_str().unwrap_or_default()))
                .collect();
            format!("[]string{{{}}}", quoted.join(", "))
        }
    }
}

/// A scope selector as Go's `%#v` shows the internal type (what Kubernetes prints).
fn go_selector(requirements: &[skiff_quota::Requirement], raw: &[Value]) -> String {
    let items: Vec<String> = requirements
        .iter()
        .zip(raw)
        .map(|(r, raw)| {
            format!(
                "core.ScopedResourceSelectorRequirement{{ScopeName:{}, Operator:{}, Values:{}}}",
                quote(&r.scope),
                quote(&r.operator),
                go_strings(&raw["values"])
            )
        })
        .collect();
    format!(
        "core.ScopeSelector{{MatchExpressions:[]core.ScopedResourceSelectorRequirement{{{}}}}}",
        items.join(", ")
    )
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

    fn causes(quota: Value) -> Vec<String> {
        let err = Kind::validate(&ResourceQuotas, &quota, None).unwrap_err();
        assert_eq!(err.code, 422);
        err.causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn scopes_are_checked_as_kubernetes_checks_them() {
        let ok = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2", "requests.cpu": "1"},
            "scopes": ["NotBestEffort", "Terminating"]}});
        assert!(Kind::validate(&ResourceQuotas, &ok, None).is_ok());
        let quota = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2", "requests.cpu": "1"},
            "scopes": ["BestEffort", "NotBestEffort", "Sometimes"]}});
        let list = r#"[]core.ResourceQuotaScope{"BestEffort", "NotBestEffort", "Sometimes"}"#;
        assert_eq!(
            causes(quota),
            [
                format!(
                    "spec.scopes: Invalid value: {list}: unsupported scope applied to resource"
                ),
                format!("spec.scopes: Invalid value: {list}: unsupported scope"),
                format!("spec.scopes: Invalid value: {list}: conflicting scopes"),
            ]
        );
    }

    #[test]
    fn scope_selectors_are_checked_as_kubernetes_checks_them() {
        let ok = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2"},
            "scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]},
                {"scopeName": "BestEffort", "operator": "Exists"}]}}});
        assert!(Kind::validate(&ResourceQuotas, &ok, None).is_ok());
        let quota = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2"},
            "scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": "In"},
                {"scopeName": "BestEffort", "operator": "In", "values": ["x"]},
                {"scopeName": "Terminating", "operator": "Exists", "values": ["x"]},
                {"scopeName": "PriorityClass", "operator": "Near", "values": ["x"]}]}}});
        let e = "spec.scopeSelector.matchExpressions";
        assert_eq!(
            causes(quota),
            [
                format!("{e}.values: Required value: must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"),
                format!("{e}.operator: Invalid value: \"In\": must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity"),
                format!("{e}.values: Invalid value: []string{{\"x\"}}: must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector"),
                format!("{e}.operator: Invalid value: \"Near\": not a valid selector operator"),
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
