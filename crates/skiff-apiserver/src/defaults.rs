//! Defaulting shared by kinds: the pod spec and pod template defaults every kind holding a
//! pod fills in (Kubernetes' `SetDefaults_PodSpec`, `SetDefaults_Container`, …), as users see
//! them in `kubectl get -o yaml`, and the `set`/`ensure` helpers each kind's own defaults
//! use. Allocation of cluster IPs, node ports and names is not defaulting and does not
//! happen here.

use serde_json::{json, Map, Value};

/// The defaults of the pod template at `spec.template`.
pub fn template(spec: &mut Value) {
    if let Some(pod) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        pod_spec(pod);
    }
}

/// The defaults of a pod spec.
pub fn pod_spec(spec: &mut Value) {
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

/// `obj[key]` as an object, created empty when absent.
pub fn ensure<'a>(obj: &'a mut Value, key: &str) -> &'a mut Value {
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
pub fn set(obj: &mut Value, key: &str, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        let slot = map.entry(key).or_insert(Value::Null);
        if slot.is_null() {
            *slot = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find_kind;

    fn defaulted(api_version: &str, kind: &str, mut obj: Value) -> Value {
        find_kind(api_version, kind).unwrap().defaults(&mut obj);
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
}
