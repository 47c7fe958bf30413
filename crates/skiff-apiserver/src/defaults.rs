//! Kubernetes defaulting: the fields the API fills in when a client leaves them out, as users
//! see them in `kubectl get -o yaml`, plus the conversion between autoscaling/v1 and
//! autoscaling/v2 HorizontalPodAutoscalers (stored as v2, served as either). Allocation of
//! cluster IPs, node ports and names is not defaulting and does not happen here.

use serde_json::{json, Map, Value};

use crate::resources::ResourceInfo;

/// Fills the defaults of `info`'s kind into `obj` (fields already set are kept).
pub fn apply(info: &ResourceInfo, obj: &mut Value) {
    match (info.group, info.kind) {
        ("", "Pod") => {
            let spec = ensure(obj, "spec");
            pod_spec(spec);
            // What a Pod (not a template) gains from defaulting and the default admission
            // plugins (ServiceAccount, Priority, DefaultTolerationSeconds).
            set(spec, "enableServiceLinks", json!(true));
            set(spec, "serviceAccountName", json!("default"));
            let account = spec["serviceAccountName"].clone();
            set(spec, "serviceAccount", account);
            set(spec, "priority", json!(0));
            set(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
            default_tolerations(spec);
        }
        ("apps", "Deployment") => {
            let spec = ensure(obj, "spec");
            set(spec, "replicas", json!(1));
            set(spec, "revisionHistoryLimit", json!(10));
            set(spec, "progressDeadlineSeconds", json!(600));
            let strategy = ensure(spec, "strategy");
            set(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let ru = ensure(strategy, "rollingUpdate");
                set(ru, "maxUnavailable", json!("25%"));
                set(ru, "maxSurge", json!("25%"));
            }
            template(spec);
        }
        ("apps", "ReplicaSet") => {
            let spec = ensure(obj, "spec");
            set(spec, "replicas", json!(1));
            template(spec);
        }
        ("apps", "StatefulSet") => {
            let spec = ensure(obj, "spec");
            set(spec, "replicas", json!(1));
            set(spec, "podManagementPolicy", json!("OrderedReady"));
            set(spec, "revisionHistoryLimit", json!(10));
            set(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            let strategy = ensure(spec, "updateStrategy");
            set(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                set(ensure(strategy, "rollingUpdate"), "partition", json!(0));
            }
            template(spec);
        }
        ("apps", "DaemonSet") => {
            let spec = ensure(obj, "spec");
            set(spec, "revisionHistoryLimit", json!(10));
            let strategy = ensure(spec, "updateStrategy");
            set(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let ru = ensure(strategy, "rollingUpdate");
                set(ru, "maxUnavailable", json!(1));
                set(ru, "maxSurge", json!(0));
            }
            template(spec);
        }
        ("", "Service") => service(ensure(obj, "spec")),
        ("", "Secret") => set(obj, "type", json!("Opaque")),
        ("", "Namespace") => {
            set(ensure(obj, "spec"), "finalizers", json!(["kubernetes"]));
            set(ensure(obj, "status"), "phase", json!("Active"));
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            let spec = ensure(obj, "spec");
            set(spec, "minReplicas", json!(1));
            if info.version == "v1" {
                return;
            }
            set(
                spec,
                "metrics",
                json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
            );
            hpa_behavior(ensure(spec, "behavior"));
        }
        _ => {}
    }
}

/// Pods tolerate an unready or unreachable node for 300 s before eviction.
fn default_tolerations(spec: &mut Value) {
    if !spec
        .get("tolerations")
        .is_none_or(|t| t.is_array() || t.is_null())
    {
        return;
    }
    let mut list = spec["tolerations"].as_array().cloned().unwrap_or_default();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let covered = list.iter().any(|t| {
            (t["key"] == key || (t["key"].is_null() && t["operator"] == "Exists"))
                && (t["effect"].is_null() || t["effect"] == "NoExecute")
        });
        if !covered {
            list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    spec["tolerations"] = Value::Array(list);
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

fn template(spec: &mut Value) {
    if let Some(pod) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        pod_spec(pod);
    }
}

fn pod_spec(spec: &mut Value) {
    set(spec, "restartPolicy", json!("Always"));
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "dnsPolicy", json!("ClusterFirst"));
    set(spec, "schedulerName", json!("default-scheduler"));
    set(spec, "securityContext", json!({}));
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            cs.iter_mut().for_each(container);
        }
    }
    if let Some(Value::Array(tolerations)) = spec.get_mut("tolerations") {
        for t in tolerations.iter_mut().filter(|t| t.is_object()) {
            set(t, "operator", json!("Equal"));
        }
    }
}

fn container(c: &mut Value) {
    if !c.is_object() {
        return;
    }
    let image = c.get("image").and_then(Value::as_str).unwrap_or("");
    let policy = default_pull_policy(image);
    set(c, "imagePullPolicy", json!(policy));
    set(c, "terminationMessagePath", json!("/dev/termination-log"));
    set(c, "terminationMessagePolicy", json!("File"));
    set(c, "resources", json!({}));
    if let Some(Value::Array(ports)) = c.get_mut("ports") {
        for p in ports.iter_mut().filter(|p| p.is_object()) {
            set(p, "protocol", json!("TCP"));
        }
    }
    if let Some(Value::Array(env)) = c.get_mut("env") {
        for e in env.iter_mut() {
            if let Some(f) = e
                .get_mut("valueFrom")
                .and_then(|v| v.get_mut("fieldRef"))
                .filter(|f| f.is_object())
            {
                set(f, "apiVersion", json!("v1"));
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            set(p, "timeoutSeconds", json!(1));
            set(p, "periodSeconds", json!(10));
            set(p, "successThreshold", json!(1));
            set(p, "failureThreshold", json!(3));
            if let Some(h) = p.get_mut("httpGet").filter(|h| h.is_object()) {
                set(h, "path", json!("/"));
                set(h, "scheme", json!("HTTP"));
            }
        }
    }
}

/// Kubernetes' default `imagePullPolicy`: `Always` when the tag is `latest`, or when the
/// reference has neither a tag nor a digest (which means `latest`); `IfNotPresent` otherwise.
/// A digest does not hide the tag: `nginx:latest@sha256:…` is still `Always`. A registry port
/// (`host:5000/x`) is not a tag.
fn default_pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((name, _)) => (name, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let always = match last.split_once(':') {
        Some((_, tag)) => tag == "latest",
        None => !digest,
    };
    if always {
        "Always"
    } else {
        "IfNotPresent"
    }
}

fn service(spec: &mut Value) {
    set(spec, "type", json!("ClusterIP"));
    set(spec, "sessionAffinity", json!("None"));
    let external_name = spec["type"] == "ExternalName";
    if !external_name {
        set(spec, "internalTrafficPolicy", json!("Cluster"));
        set(spec, "ipFamilies", json!(["IPv4"]));
        set(spec, "ipFamilyPolicy", json!("SingleStack"));
    }
    if matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer")) {
        set(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports.iter_mut().filter(|p| p.is_object()) {
            set(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                set(p, "targetPort", port);
            }
        }
    }
}

/// `obj[key]` as an object, created empty when absent.
fn ensure<'a>(obj: &'a mut Value, key: &str) -> &'a mut Value {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let map = obj.as_object_mut().expect("made an object above");
    let v = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if v.is_null() {
        *v = Value::Object(Map::new());
    }
    v
}

/// Sets `obj[key]` unless it is already set (non-null).
fn set(obj: &mut Value, key: &str, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        let slot = map.entry(key).or_insert(Value::Null);
        if slot.is_null() {
            *slot = value;
        }
    }
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
pub fn hpa_v1_to_v2(v1: &Value) -> Value {
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
pub fn hpa_v2_to_v1(v2: &Value) -> Value {
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
    use crate::resources::find_kind;

    fn defaulted(api_version: &str, kind: &str, mut obj: Value) -> Value {
        apply(find_kind(api_version, kind).unwrap(), &mut obj);
        obj
    }

    #[test]
    fn latest_tag_with_digest_got_if_not_present() {
        let cases = [
            ("nginx:latest@sha256:0123", "Always"),
            ("nginx@sha256:0123", "IfNotPresent"),
            ("nginx:1.25@sha256:0123", "IfNotPresent"),
            ("registry:5000/app@sha256:0123", "IfNotPresent"),
            ("registry:5000/app:latest", "Always"),
        ];
        for (image, want) in cases {
            assert_eq!(default_pull_policy(image), want, "{image}");
        }
    }

    #[test]
    fn deployment_defaults_match_kubectl_get_yaml() {
        let d = defaulted(
            "apps/v1",
            "Deployment",
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "nginx"}, {"name": "b", "image": "nginx:1.25", "ports": [{"containerPort": 80}]},
                {"name": "c", "image": "registry:5000/app"}, {"name": "d", "image": "nginx:latest"}
            ]}}}}),
        );
        let s = &d["spec"];
        assert_eq!(
            (
                s["replicas"].clone(),
                s["revisionHistoryLimit"].clone(),
                s["progressDeadlineSeconds"].clone()
            ),
            (json!(1), json!(10), json!(600))
        );
        assert_eq!(
            s["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        let pod = &s["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["schedulerName"], "default-scheduler");
        assert_eq!(pod["securityContext"], json!({}));
        let policies: Vec<&str> = pod["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["imagePullPolicy"].as_str().unwrap())
            .collect();
        assert_eq!(policies, ["Always", "IfNotPresent", "Always", "Always"]);
        assert_eq!(pod["containers"][1]["ports"][0]["protocol"], "TCP");
        assert_eq!(
            pod["containers"][0]["terminationMessagePath"],
            "/dev/termination-log"
        );
        assert_eq!(pod["containers"][0]["terminationMessagePolicy"], "File");
    }

    #[test]
    fn user_values_win_and_recreate_gets_no_rolling_update() {
        let d = defaulted(
            "apps/v1",
            "Deployment",
            json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"}}}),
        );
        assert_eq!(d["spec"]["replicas"], 0);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        let p = defaulted(
            "v1",
            "Pod",
            json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": "x:1", "imagePullPolicy": "Never"}]}}),
        );
        assert_eq!(p["spec"]["restartPolicy"], "Never");
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Never");
    }

    #[test]
    fn service_and_secret_defaults() {
        let s = defaulted(
            "v1",
            "Service",
            json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}}),
        );
        let spec = &s["spec"];
        assert_eq!(spec["type"], "ClusterIP");
        assert_eq!(spec["sessionAffinity"], "None");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(
            spec["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert_eq!(
            spec["ports"][1],
            json!({"port": 53, "protocol": "UDP", "targetPort": "dns"})
        );
        assert!(
            spec.get("clusterIP").is_none(),
            "allocation is not defaulting"
        );
        assert_eq!(defaulted("v1", "Secret", json!({}))["type"], "Opaque");
        assert_eq!(
            defaulted("v1", "Secret", json!({"type": "kubernetes.io/tls"}))["type"],
            "kubernetes.io/tls"
        );
    }

    #[test]
    fn workload_equivalents() {
        let rs = defaulted(
            "apps/v1",
            "ReplicaSet",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:1"}]}}}}),
        );
        assert_eq!(rs["spec"]["replicas"], 1);
        assert_eq!(rs["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let sts = defaulted("apps/v1", "StatefulSet", json!({"spec": {}}));
        assert_eq!(
            sts["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
        let ds = defaulted("apps/v1", "DaemonSet", json!({"spec": {}}));
        assert_eq!(
            ds["spec"]["updateStrategy"]["rollingUpdate"],
            json!({"maxUnavailable": 1, "maxSurge": 0})
        );
    }

    #[test]
    fn hpa_defaults_and_version_round_trip() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50}});
        let mut v2 = hpa_v1_to_v2(&v1);
        apply(
            find_kind("autoscaling/v2", "HorizontalPodAutoscaler").unwrap(),
            &mut v2,
        );
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
        apply(
            find_kind("autoscaling/v2", "HorizontalPodAutoscaler").unwrap(),
            &mut through_v1,
        );
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
