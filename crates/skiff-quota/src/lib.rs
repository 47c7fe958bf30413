//! What an object uses of a ResourceQuota (Kubernetes' quota evaluators,
//! `pkg/quota/v1/evaluator/core`): the usage of pods (`pods`, `requests.cpu`, `limits.memory`,
//! …), services, PersistentVolumeClaims, the counted core kinds and `count/<resource>` of any
//! resource; which quota resources an object's evaluator covers; the scopes a pod matches;
//! and the rule that pods must state the compute resources a quota tracks.
//!
//! Shared by the API server's quota admission (which charges a write) and the quota
//! controller (which recounts `status.used`), so the two count alike. Pure functions over
//! JSON objects: no I/O, no API types beyond quantities.

#![forbid(unsafe_code)]

mod scope;

pub use scope::{scope_allows, scopes_match, Requirement, CONFLICTING_SCOPES, OPERATORS, SCOPES};

use std::collections::{BTreeMap, BTreeSet};

use kube_quantity::ParsedQuantity;
use serde_json::Value;

/// A list of named resource amounts (`v1.ResourceList`).
pub type ResourceList = BTreeMap<String, ParsedQuantity>;

/// Core resources counted under their own name (`pods`, `services`, …).
const LEGACY_COUNTED: &[&str] = &[
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
];

/// The compute resources a pod must state when a quota tracks them.
pub(crate) const POD_COMPUTE: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// Every resource the pod evaluator covers besides the counts.
const POD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
];

/// Whether `name` is one of Kubernetes' standard quota resources (`IsStandardQuotaResourceName`:
/// compute, storage and the counted core kinds; not `count/…` nor extended resources).
pub fn is_standard(name: &str) -> bool {
    POD_RESOURCES.contains(&name)
        || LEGACY_COUNTED.contains(&name)
        || matches!(
            name,
            "requests.storage" | "services.nodeports" | "services.loadbalancers"
        )
}

/// Whether the amounts of quota resource `name` are object counts (whole numbers):
/// `count/…`, the core kinds counted under their own name, NodePorts and load balancers.
pub fn is_count(name: &str) -> bool {
    name.starts_with("count/")
        || LEGACY_COUNTED.contains(&name)
        || matches!(name, "services.nodeports" | "services.loadbalancers")
}

/// The core or `count/<resource>.<group>` objects quota resource `name` counts, as (group,
/// plural); None for resources no evaluator covers (extended resources).
pub fn counted_resource(name: &str) -> Option<(String, String)> {
    if let Some(rest) = name.strip_prefix("count/") {
        return Some(match rest.split_once('.') {
            Some((plural, group)) => (group.to_string(), plural.to_string()),
            None => (String::new(), rest.to_string()),
        });
    }
    let plural = ["pods", "services", "persistentvolumeclaims"]
        .into_iter()
        .find(|p| covers("", p, name))
        .or_else(|| LEGACY_COUNTED.iter().copied().find(|p| *p == name))?;
    Some((String::new(), plural.to_string()))
}

/// Parses one quantity.
pub fn parse(q: &str) -> Option<ParsedQuantity> {
    ParsedQuantity::try_from(q).ok()
}

/// The resource list held by a JSON map of quantities (entries that do not parse are left
/// out; validation refuses them before anything is stored).
pub fn resource_list(v: Option<&Value>) -> ResourceList {
    v.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, q)| Some((k.clone(), parse(q.as_str()?)?)))
        .collect()
}

pub fn zero() -> ParsedQuantity {
    ParsedQuantity::default()
}

pub fn is_zero(q: &ParsedQuantity) -> bool {
    *q == zero()
}

/// `a + b`, keeping `b`'s form when `a` is zero (as Go's `Quantity.Add` does), so `0 + 1Gi`
/// prints `1Gi`.
pub fn add(a: &ParsedQuantity, b: &ParsedQuantity) -> ParsedQuantity {
    if is_zero(a) {
        b.clone()
    } else if is_zero(b) {
        a.clone()
    } else {
        a.clone() + b.clone()
    }
}

/// `a - b`, never below zero.
pub fn sub_non_negative(a: &ParsedQuantity, b: &ParsedQuantity) -> ParsedQuantity {
    if b >= a {
        zero()
    } else if is_zero(b) {
        a.clone()
    } else {
        a.clone() - b.clone()
    }
}

/// Adds `b` into `a`, name by name.
pub fn add_into(a: &mut ResourceList, b: &ResourceList) {
    for (k, q) in b {
        let sum = add(a.get(k).unwrap_or(&zero()), q);
        a.insert(k.clone(), sum);
    }
}

/// A quantity in Kubernetes' canonical form (`0`, `500m`, `1`, `2k`, `1536Mi`): binary
/// amounts keep their binary suffix, decimal ones take the largest SI suffix that keeps the
/// number whole.
pub fn format_quantity(q: &ParsedQuantity) -> String {
    if is_zero(q) {
        return "0".into();
    }
    let shown = q.to_string();
    if shown.ends_with('i') {
        return shown;
    }
    let Some(v) = q.to_bytes_f64() else {
        return shown;
    };
    let whole = |x: f64| (x - x.round()).abs() < 1e-9 * x.abs().max(1.0);
    if whole(v) {
        for (exp, suffix) in [
            (18, "E"),
            (15, "P"),
            (12, "T"),
            (9, "G"),
            (6, "M"),
            (3, "k"),
        ] {
            let scaled = v / 10f64.powi(exp);
            if whole(scaled) && scaled.abs() >= 1.0 {
                return format!("{}{suffix}", scaled.round() as i64);
            }
        }
        return format!("{}", v.round() as i64);
    }
    for (exp, suffix) in [(3, "m"), (6, "u"), (9, "n")] {
        let scaled = v * 10f64.powi(exp);
        if whole(scaled) {
            return format!("{}{suffix}", scaled.round() as i64);
        }
    }
    shown
}

/// The JSON form of a resource list.
pub fn to_json(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, q)| (k.clone(), Value::String(format_quantity(q))))
            .collect(),
    )
}

/// `name=value` pairs, sorted and comma-separated (the quota plugin's `prettyPrint`).
pub fn pretty(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, q)| format!("{k}={}", format_quantity(q)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The `count/…` name of a resource: `count/pods`, `count/deployments.apps`.
pub fn count_name(group: &str, plural: &str) -> String {
    if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }
}

/// Whether quota resource `name` is one the evaluator of `group/plural` counts.
pub fn covers(group: &str, plural: &str, name: &str) -> bool {
    if name == count_name(group, plural) {
        return true;
    }
    if !group.is_empty() {
        return false;
    }
    if name == plural && LEGACY_COUNTED.contains(&plural) {
        return true;
    }
    match plural {
        "pods" => POD_RESOURCES.contains(&name),
        "services" => matches!(name, "services.nodeports" | "services.loadbalancers"),
        "persistentvolumeclaims" => name == "requests.storage",
        _ => false,
    }
}

/// Whether a write of `group/plural` that changes an existing object is charged (the
/// evaluators that handle updates: services and claims can grow; pods and counts cannot).
pub fn charges_updates(group: &str, plural: &str) -> bool {
    group.is_empty() && matches!(plural, "services" | "persistentvolumeclaims")
}

/// What `obj` (a `group/plural` object) uses; empty for pods that finished.
pub fn usage(group: &str, plural: &str, obj: &Value) -> ResourceList {
    let one = || parse("1").unwrap_or_default();
    let mut out = ResourceList::new();
    if group.is_empty() && plural == "pods" && !counts_pod(obj) {
        return out;
    }
    out.insert(count_name(group, plural), one());
    if !group.is_empty() {
        return out;
    }
    if LEGACY_COUNTED.contains(&plural) {
        out.insert(plural.to_string(), one());
    }
    match plural {
        "pods" => add_into(&mut out, &pod_compute(obj)),
        "services" => {
            let ty = obj
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            let ports = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let node_ports = match ty {
                "NodePort" | "LoadBalancer" => ports,
                _ => 0,
            };
            out.insert(
                "services.nodeports".into(),
                parse(&node_ports.to_string()).unwrap_or_default(),
            );
            let lbs = if ty == "LoadBalancer" { "1" } else { "0" };
            out.insert(
                "services.loadbalancers".into(),
                parse(lbs).unwrap_or_default(),
            );
        }
        "persistentvolumeclaims" => {
            if let Some(q) = obj
                .pointer("/spec/resources/requests/storage")
                .and_then(Value::as_str)
                .and_then(parse)
            {
                out.insert("requests.storage".into(), q);
            }
        }
        _ => {}
    }
    out
}

/// Pods in a terminal phase use nothing (Kubernetes' `QuotaV1Pod`).
fn counts_pod(pod: &Value) -> bool {
    !matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// A container's requests, with limits standing in for requests it does not state (what
/// pod defaulting does), and its limits.
pub(crate) fn container_resources(c: &Value) -> (ResourceList, ResourceList) {
    let limits = resource_list(c.pointer("/resources/limits"));
    let mut requests = resource_list(c.pointer("/resources/requests"));
    for (k, q) in &limits {
        requests.entry(k.clone()).or_insert_with(|| q.clone());
    }
    (requests, limits)
}

/// The quota names of compute `requests` and `limits` (`podComputeUsageHelper`).
fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    for r in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(r) {
            out.insert(r.to_string(), q.clone());
            out.insert(format!("requests.{r}"), q.clone());
        }
        if let Some(q) = limits.get(r) {
            out.insert(format!("limits.{r}"), q.clone());
        }
    }
    out
}

/// A pod's compute usage: its containers' sum, at least its largest init container, plus
/// its overhead.
fn pod_compute(pod: &Value) -> ResourceList {
    let containers = |f: &str| -> Vec<(ResourceList, ResourceList)> {
        pod.pointer(&format!("/spec/{f}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(container_resources)
            .collect()
    };
    let (mut requests, mut limits) = (ResourceList::new(), ResourceList::new());
    for (r, l) in containers("containers") {
        add_into(&mut requests, &r);
        add_into(&mut limits, &l);
    }
    for (r, l) in containers("initContainers") {
        for (total, one) in [(&mut requests, r), (&mut limits, l)] {
            for (k, q) in one {
                if total.get(&k).is_none_or(|t| *t < q) {
                    total.insert(k, q);
                }
            }
        }
    }
    let overhead = resource_list(pod.pointer("/spec/overhead"));
    add_into(&mut requests, &overhead);
    compute_usage(&requests, &limits)
}

/// Kubernetes' pod `Constraints`: every container must state each compute resource of
/// `restricted` the quota tracks. The error reads `must specify requests.cpu for: a,b; …`.
pub fn pod_constraints(pod: &Value, restricted: &[String]) -> Result<(), String> {
    let required: BTreeSet<&str> = restricted
        .iter()
        .map(String::as_str)
        .filter(|r| POD_COMPUTE.contains(r))
        .collect();
    if required.is_empty() {
        return Ok(());
    }
    let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for field in ["containers", "initContainers"] {
        for c in pod
            .pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (r, l) = container_resources(c);
            let has = compute_usage(&r, &l);
            for need in &required {
                if !has.contains_key(*need) {
                    let name = c["name"].as_str().unwrap_or_default().to_string();
                    missing.entry(need).or_default().insert(name);
                }
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| {
            format!(
                "{r} for: {}",
                names.iter().cloned().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    Err(format!("must specify {}", parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(s: &str) -> ParsedQuantity {
        parse(s).unwrap()
    }

    #[test]
    fn sums_keep_the_unit_of_the_first_nonzero_amount() {
        assert_eq!(format_quantity(&add(&zero(), &q("1Gi"))), "1Gi");
        assert_eq!(format_quantity(&add(&q("500m"), &q("500m"))), "1");
        assert!(add(&q("1Gi"), &q("512Mi")) > q("1.4Gi"));
        assert_eq!(format_quantity(&sub_non_negative(&q("1"), &q("2"))), "0");
        assert_eq!(pretty(&[("pods".to_string(), q("2"))].into()), "pods=2");
        assert_eq!(format_quantity(&add(&q("1"), &q("500m"))), "1500m");
        assert_eq!(format_quantity(&add(&q("1Gi"), &q("512Mi"))), "1536Mi");
        assert_eq!(format_quantity(&add(&q("1k"), &q("1000"))), "2k");
    }

    #[test]
    fn pods_use_their_containers_requests_and_limits() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "200m", "memory": "64Mi"}}},
            {"name": "b", "resources": {"requests": {"cpu": "300m", "memory": "64Mi"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1"}}}]}});
        let u = usage("", "pods", &pod);
        assert_eq!(u["pods"], q("1"));
        assert_eq!(u["count/pods"], q("1"));
        // The init container's 1 CPU is more than the containers' 400m.
        assert_eq!(u["requests.cpu"], q("1"));
        // a's memory limit stands in for its request.
        assert_eq!(u["requests.memory"], q("128Mi"));
        assert_eq!(u["limits.cpu"], q("200m"));
        let done = json!({"spec": pod["spec"], "status": {"phase": "Succeeded"}});
        assert!(usage("", "pods", &done).is_empty());
    }

    #[test]
    fn quotas_of_compute_resources_need_them_stated() {
        let pod = json!({"spec": {"containers": [{"name": "a"},
            {"name": "b", "resources": {"requests": {"cpu": "1"}}}]}});
        let restricted = vec![
            "pods".to_string(),
            "requests.cpu".into(),
            "limits.memory".into(),
        ];
        assert_eq!(
            pod_constraints(&pod, &restricted).unwrap_err(),
            "must specify limits.memory for: a,b; requests.cpu for: a"
        );
        assert!(pod_constraints(&pod, &["pods".to_string()]).is_ok());
    }

    #[test]
    fn quota_resources_name_what_they_count() {
        let r = |g: &str, p: &str| Some((g.to_string(), p.to_string()));
        assert_eq!(counted_resource("requests.cpu"), r("", "pods"));
        assert_eq!(counted_resource("pods"), r("", "pods"));
        assert_eq!(
            counted_resource("count/deployments.apps"),
            r("apps", "deployments")
        );
        assert_eq!(counted_resource("count/configmaps"), r("", "configmaps"));
        assert_eq!(counted_resource("secrets"), r("", "secrets"));
        assert_eq!(
            counted_resource("requests.storage"),
            r("", "persistentvolumeclaims")
        );
        assert_eq!(counted_resource("services.nodeports"), r("", "services"));
        assert_eq!(counted_resource("nvidia.com/gpu"), None);
        assert!(is_count("services.loadbalancers") && is_count("count/jobs.batch"));
        assert!(!is_count("requests.cpu") && !is_count("requests.storage"));
    }

    #[test]
    fn evaluators_cover_their_resources() {
        assert!(covers("", "pods", "requests.cpu"));
        assert!(covers("apps", "deployments", "count/deployments.apps"));
        assert!(!covers("apps", "deployments", "pods"));
        assert!(covers("", "persistentvolumeclaims", "requests.storage"));
        let svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(usage("", "services", &svc)["services.nodeports"], q("2"));
    }
}
