//! autoscaling HorizontalPodAutoscalers, served as autoscaling/v2 (the storage version) and
//! autoscaling/v1: defaults, replica-bound rules, the conversion between the two versions
//! (v2-only fields travel through v1 in annotations, as in Kubernetes), and the `kubectl get
//! hpa` columns.

use k8s_openapi::api::autoscaling::{v1, v2};
use k8s_pb::api::autoscaling as pb;
use serde_json::{json, Map, Value};

use crate::defaults::{ensure, set};
use crate::registry::{Obj, Strategy};
use crate::resources::{Entry, Sub, ALL};
use crate::table::{age, col, int, int_col, name, str_at, Column, AGE, NAME};
use crate::validation::Errs;

const ENTRY: Entry = Entry {
    short_names: &["hpa"],
    categories: ALL,
    subresources: &[Sub::Status],
    ..Entry::DEFAULT
};

const COLUMNS: &[Column] = &[
    NAME,
    col("Reference"),
    col("Targets"),
    col("MinPods"),
    int_col("MaxPods"),
    int_col("Replicas"),
    AGE,
];

/// autoscaling/v2, the version HPAs are stored in.
pub struct HorizontalPodAutoscalersV2;

/// autoscaling/v1 (`kubectl autoscale` writes it).
pub struct HorizontalPodAutoscalersV1;

impl Strategy for HorizontalPodAutoscalersV2 {
    type Object = v2::HorizontalPodAutoscaler;
    type Protobuf = pb::v2::HorizontalPodAutoscaler;
    const RESOURCE: Entry = ENTRY;
    const GENERATION: bool = true;
    const COLUMNS: &'static [Column] = COLUMNS;

    fn defaults(&self, obj: &mut Value) {
        let spec = ensure(obj, "spec");
        set(spec, "minReplicas", json!(1));
        set(
            spec,
            "metrics",
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
        hpa_behavior(ensure(spec, "behavior"));
    }

    fn validate(
        &self,
        new: Obj<'_, v2::HorizontalPodAutoscaler>,
        _old: Option<Obj<'_, v2::HorizontalPodAutoscaler>>,
        errs: &mut Errs,
    ) {
        validate_hpa("v2", new.json, errs);
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        cells(obj)
    }

    fn convert_from(&self, obj: Value) -> Value {
        hpa_v1_to_v2(&obj)
    }
}

impl Strategy for HorizontalPodAutoscalersV1 {
    type Object = v1::HorizontalPodAutoscaler;
    type Protobuf = pb::v1::HorizontalPodAutoscaler;
    const RESOURCE: Entry = ENTRY;
    const GENERATION: bool = true;
    const COLUMNS: &'static [Column] = COLUMNS;

    fn defaults(&self, obj: &mut Value) {
        set(ensure(obj, "spec"), "minReplicas", json!(1));
    }

    fn validate(
        &self,
        new: Obj<'_, v1::HorizontalPodAutoscaler>,
        _old: Option<Obj<'_, v1::HorizontalPodAutoscaler>>,
        errs: &mut Errs,
    ) {
        validate_hpa("v1", new.json, errs);
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        cells(obj)
    }

    fn convert_from(&self, obj: Value) -> Value {
        hpa_v2_to_v1(&obj)
    }
}

fn cells(o: &Value) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        str_at(o, "/spec/scaleTargetRef/kind"),
        str_at(o, "/spec/scaleTargetRef/name")
    );
    let min = o
        .pointer("/spec/minReplicas")
        .and_then(Value::as_i64)
        .map_or("<unset>".into(), |m| m.to_string());
    vec![
        name(o),
        json!(reference),
        json!(hpa_targets(o)),
        json!(min),
        int(o, "/spec/maxReplicas"),
        int(o, "/status/currentReplicas"),
        age(o),
    ]
}

/// The scale-up and scale-down rules autoscaling/v2 fills in.
fn hpa_behavior(behavior: &mut Value) {
    let rules = [
        (
            "scaleUp",
            0,
            json!([{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]),
        ),
        (
            "scaleDown",
            300,
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        ),
    ];
    for (direction, window, policies) in rules {
        let rule = ensure(behavior, direction);
        set(rule, "stabilizationWindowSeconds", json!(window));
        set(rule, "selectPolicy", json!("Max"));
        set(rule, "policies", policies);
    }
}

fn validate_hpa(version: &str, obj: &Value, errs: &mut Errs) {
    let spec = &obj["spec"];
    let target = &spec["scaleTargetRef"];
    if target["kind"].as_str().is_none_or(str::is_empty) {
        errs.required("spec.scaleTargetRef.kind", "");
    }
    if target["name"].as_str().is_none_or(str::is_empty) {
        errs.required("spec.scaleTargetRef.name", "");
    }
    errs.min("spec.minReplicas", &spec["minReplicas"], 1);
    errs.min("spec.maxReplicas", &spec["maxReplicas"], 1);
    if let (Some(min), Some(max)) = (spec["minReplicas"].as_i64(), spec["maxReplicas"].as_i64()) {
        if min > max {
            errs.invalid(
                "spec.maxReplicas",
                max.to_string(),
                "must be greater than or equal to `minReplicas`",
            );
        }
    }
    if version == "v1" {
        errs.min(
            "spec.targetCPUUtilizationPercentage",
            &spec["targetCPUUtilizationPercentage"],
            1,
        );
    }
}

/// `cpu: 10%/80%` style targets of an HPA (v1 or v2 shape).
fn hpa_targets(o: &Value) -> String {
    if let Some(target) = o
        .pointer("/spec/targetCPUUtilizationPercentage")
        .and_then(Value::as_i64)
    {
        let current = o
            .pointer("/status/currentCPUUtilizationPercentage")
            .and_then(Value::as_i64)
            .map_or("<unknown>".to_string(), |c| format!("{c}%"));
        return format!("cpu: {current}/{target}%");
    }
    let metrics: Vec<&Value> = o
        .pointer("/spec/metrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if metrics.is_empty() {
        return "<none>".into();
    }
    let current: Vec<&Value> = o
        .pointer("/status/currentMetrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let parts: Vec<String> = metrics
        .iter()
        .map(|m| {
            let res = m
                .pointer("/resource/name")
                .and_then(Value::as_str)
                .unwrap_or("metric");
            let utilization = m
                .pointer("/resource/target/averageUtilization")
                .and_then(Value::as_i64);
            let target = utilization
                .map(|t| format!("{t}%"))
                .or_else(|| {
                    m.pointer("/resource/target/averageValue")
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .unwrap_or_else(|| "<unknown>".into());
            let status = current
                .iter()
                .find(|c| c.pointer("/resource/name").and_then(Value::as_str) == Some(res));
            // A Utilization target shows the current percentage, an AverageValue one the
            // current average (`memory: 12Mi/100Mi`), as kubectl's printer does.
            let cur = match utilization {
                Some(_) => status
                    .and_then(|c| c.pointer("/resource/current/averageUtilization"))
                    .and_then(Value::as_i64)
                    .map(|c| format!("{c}%")),
                None => status
                    .and_then(|c| c.pointer("/resource/current/averageValue"))
                    .and_then(Value::as_str)
                    .map(String::from),
            }
            .unwrap_or_else(|| "<unknown>".into());
            format!("{res}: {cur}/{target}")
        })
        .collect();
    parts.join(", ")
}

/// Annotations in which autoscaling/v1 carries what only v2 can express, so a v1 round trip
/// (read, edit, write back) loses nothing; Kubernetes uses the same names.
const V2_ANNOTATIONS: &[(&str, &str, &str)] = &[
    ("autoscaling.alpha.kubernetes.io/metrics", "spec", "metrics"),
    (
        "autoscaling.alpha.kubernetes.io/behavior",
        "spec",
        "behavior",
    ),
    (
        "autoscaling.alpha.kubernetes.io/conditions",
        "status",
        "conditions",
    ),
    (
        "autoscaling.alpha.kubernetes.io/current-metrics",
        "status",
        "currentMetrics",
    ),
];

fn is_cpu_utilization(m: &Value, field: &str) -> bool {
    m["type"] == "Resource"
        && m["resource"]["name"] == "cpu"
        && m["resource"][field]["averageUtilization"].is_i64()
}

/// Spec fields autoscaling/v1 and v2 share as they are.
const HPA_SHARED_SPEC: &[&str] = &["scaleTargetRef", "minReplicas", "maxReplicas"];
/// Status fields of autoscaling/v1 that v2 has as they are.
const HPA_V1_STATUS: &[&str] = &[
    "observedGeneration",
    "lastScaleTime",
    "currentReplicas",
    "desiredReplicas",
];

/// The fields `keys` of `from` that are present, copied.
fn pick(from: &Value, keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .filter_map(|k| from.get(*k).map(|v| ((*k).to_string(), v.clone())))
        .collect()
}

/// autoscaling/v1 → autoscaling/v2 (the storage version): the v1 CPU target becomes a
/// Resource metric, and v2-only fields come back out of their annotations.
fn hpa_v1_to_v2(v1: &Value) -> Value {
    let mut out = v1.clone();
    out["apiVersion"] = json!("autoscaling/v2");
    let spec = v1.get("spec").cloned().unwrap_or_else(|| json!({}));
    let new_spec = pick(&spec, HPA_SHARED_SPEC);
    let mut metrics = Vec::new();
    if let Some(cpu) = spec
        .get("targetCPUUtilizationPercentage")
        .filter(|v| !v.is_null())
    {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}}));
    }
    out["spec"] = Value::Object(new_spec);
    if let Some(status) = v1.get("status").and_then(Value::as_object) {
        let mut s = status.clone();
        if let Some(cpu) = s.remove("currentCPUUtilizationPercentage") {
            s.insert(
                "currentMetrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cpu}}}]),
            );
        }
        out["status"] = Value::Object(s);
    }
    let annotations = out
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut);
    let mut restored = Vec::new();
    if let Some(a) = annotations {
        for (name, section, field) in V2_ANNOTATIONS {
            if let Some(v) = a.remove(*name).and_then(|v| {
                v.as_str()
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
            }) {
                restored.push((*section, *field, v));
            }
        }
        if a.is_empty() {
            out["metadata"]
                .as_object_mut()
                .map(|m| m.remove("annotations"));
        }
    }
    for (section, field, v) in restored {
        match (field, v) {
            ("metrics", Value::Array(extra)) => metrics.extend(extra),
            ("currentMetrics", Value::Array(extra)) => {
                let cur = &mut out["status"]["currentMetrics"];
                match cur.as_array_mut() {
                    Some(list) => list.extend(extra),
                    None => *cur = Value::Array(extra),
                }
            }
            (f, v) => out[section][f] = v,
        }
    }
    if !metrics.is_empty() {
        out["spec"]["metrics"] = Value::Array(metrics);
    }
    out
}

/// autoscaling/v2 → autoscaling/v1: the CPU utilization target and current value; the
/// rest of v2 travels in annotations (see [`hpa_v1_to_v2`]).
fn hpa_v2_to_v1(v2: &Value) -> Value {
    let mut out = v2.clone();
    out["apiVersion"] = json!("autoscaling/v1");
    let spec = v2.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut new_spec = pick(&spec, HPA_SHARED_SPEC);
    let split = |list: Option<&Value>, field: &str| -> (Option<i64>, Vec<Value>) {
        let mut cpu = None;
        let mut rest = Vec::new();
        for m in list.and_then(Value::as_array).into_iter().flatten() {
            if cpu.is_none() && is_cpu_utilization(m, field) {
                cpu = m["resource"][field]["averageUtilization"].as_i64();
            } else {
                rest.push(m.clone());
            }
        }
        (cpu, rest)
    };
    let (target, other_metrics) = split(spec.get("metrics"), "target");
    if let Some(t) = target {
        new_spec.insert("targetCPUUtilizationPercentage".into(), json!(t));
    }
    let mut carried: Vec<(&str, Value)> = Vec::new();
    if !other_metrics.is_empty() {
        carried.push((V2_ANNOTATIONS[0].0, Value::Array(other_metrics)));
    }
    if let Some(b) = spec.get("behavior").filter(|b| !b.is_null()) {
        carried.push((V2_ANNOTATIONS[1].0, b.clone()));
    }
    out["spec"] = Value::Object(new_spec);
    if let Some(status) = v2.get("status").and_then(Value::as_object) {
        let mut s = pick(&v2["status"], HPA_V1_STATUS);
        let (current, other_current) = split(status.get("currentMetrics"), "current");
        if let Some(c) = current {
            s.insert("currentCPUUtilizationPercentage".into(), json!(c));
        }
        if let Some(c) = status
            .get("conditions")
            .filter(|c| c.as_array().is_some_and(|a| !a.is_empty()))
        {
            carried.push((V2_ANNOTATIONS[2].0, c.clone()));
        }
        if !other_current.is_empty() {
            carried.push((V2_ANNOTATIONS[3].0, Value::Array(other_current)));
        }
        out["status"] = Value::Object(s);
    }
    for (name, v) in carried {
        let meta = ensure(&mut out, "metadata");
        ensure(meta, "annotations")[name] = json!(v.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;

    fn messages(kind: &dyn Kind, obj: &Value, old: Option<&Value>) -> Vec<String> {
        match kind.validate(obj, old) {
            Ok(()) => vec![],
            Err(e) => e
                .causes
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect(),
        }
    }

    #[test]
    fn hpa_targets_for_both_versions() {
        let v1 = json!({"spec": {"targetCPUUtilizationPercentage": 80}});
        assert_eq!(hpa_targets(&v1), "cpu: <unknown>/80%");
        let v2 = json!({"spec": {"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}});
        assert_eq!(hpa_targets(&v2), "cpu: <unknown>/50%");
        let both = json!({"spec": {"metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}]},
            "status": {"currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 12, "averageValue": "12m"}}},
            {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "12Mi"}}}]}});
        assert_eq!(hpa_targets(&both), "cpu: 12%/50%, memory: 12Mi/100Mi");
    }

    #[test]
    fn hpa_replica_bounds() {
        let h = json!({"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 3, "maxReplicas": 2}});
        assert_eq!(messages(&HorizontalPodAutoscalersV2, &h, None), ["spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"]);
        let h =
            json!({"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {}, "maxReplicas": 0}});
        assert_eq!(messages(&HorizontalPodAutoscalersV1, &h, None).len(), 3);
    }

    #[test]
    fn hpa_defaults_and_version_round_trip() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50}});
        let mut v2 = hpa_v1_to_v2(&v1);
        Kind::defaults(&HorizontalPodAutoscalersV2, &mut v2);
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
        assert_eq!(v2["spec"]["minReplicas"], 1);
        assert_eq!(
            v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            50
        );
        assert_eq!(v2["spec"]["behavior"]["scaleUp"]["selectPolicy"], "Max");
        let window = |dir: &str| v2["spec"]["behavior"][dir]["stabilizationWindowSeconds"].clone();
        assert_eq!(
            (window("scaleUp"), window("scaleDown")),
            (json!(0), json!(300))
        );
        assert_eq!(
            v2["spec"]["behavior"]["scaleUp"]["policies"][0]["type"],
            "Pods"
        );
        assert_eq!(
            v2["spec"]["behavior"]["scaleDown"]["policies"][0]["type"],
            "Percent"
        );
        assert!(v2["spec"].get("targetCPUUtilizationPercentage").is_none());
        let back = hpa_v2_to_v1(&v2);
        assert_eq!(back["apiVersion"], "autoscaling/v1");
        assert_eq!(back["spec"]["targetCPUUtilizationPercentage"], 50);
        assert_eq!(back["spec"]["maxReplicas"], 5);
        assert!(back["spec"].get("behavior").is_none());

        // v2-only fields survive a trip through v1.
        let mut through_v1 = hpa_v1_to_v2(&back);
        Kind::defaults(&HorizontalPodAutoscalersV2, &mut through_v1);
        assert_eq!(through_v1["spec"], v2["spec"]);
        assert!(through_v1["metadata"].get("annotations").is_none());
        let mut custom = v2.clone();
        custom["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] = json!(60);
        custom["spec"]["metrics"].as_array_mut().unwrap().push(json!({"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}}));
        let round = hpa_v1_to_v2(&hpa_v2_to_v1(&custom));
        assert_eq!(round["spec"], custom["spec"]);

        let status = json!({"apiVersion": "autoscaling/v2", "spec": {}, "status": {"currentReplicas": 2, "desiredReplicas": 3,
            "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 70, "averageValue": "100m"}}}]}});
        assert_eq!(
            hpa_v2_to_v1(&status)["status"],
            json!({"currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 70})
        );
    }
}
