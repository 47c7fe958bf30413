//! Rules for pod specs and pod templates, shared by Pods and every kind that holds a pod
//! template (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob,
//! ReplicationController, PodTemplate): containers, ports, env, volumes, selectors and what
//! may change on a pod update.

use std::collections::HashSet;

use serde_json::Value;

use super::{go_map, labels, names, quote, Errs};

pub const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// A Pod: its spec, and on update only the mutable fields may change.
pub fn pod(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    pod_spec(&obj["spec"], "spec", errs);
    if let Some(old) = old {
        pod_update(&obj["spec"], &old["spec"], errs);
    }
}

/// Only images, activeDeadlineSeconds, added tolerations and the first binding may change.
fn pod_update(new: &Value, old: &Value, errs: &mut Errs) {
    let mut a = new.clone();
    let mut b = old.clone();
    for list in ["containers", "initContainers"] {
        for spec in [&mut a, &mut b] {
            if let Some(Value::Array(cs)) = spec.get_mut(list) {
                cs.iter_mut()
                    .filter_map(Value::as_object_mut)
                    .for_each(|c| {
                        c.remove("image");
                    });
            }
        }
    }
    for spec in [&mut a, &mut b] {
        if let Some(m) = spec.as_object_mut() {
            m.remove("activeDeadlineSeconds");
            m.remove("tolerations");
            m.remove("ephemeralContainers");
        }
    }
    if old
        .get("nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        a.as_object_mut().map(|m| m.remove("nodeName"));
    }
    let tolerations_kept = old["tolerations"].as_array().is_none_or(|olds| {
        olds.iter()
            .all(|t| new["tolerations"].as_array().is_some_and(|n| n.contains(t)))
    });
    if a != b || !tolerations_kept {
        errs.forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)");
    }
}

/// The selector and pod template rules Deployments, ReplicaSets, StatefulSets and
/// DaemonSets share; `kind` (lower case) words the empty-selector error. Replica counts and
/// update strategies are each kind's own.
pub fn workload(kind: &str, obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = &obj["spec"];
    for f in [
        "minReadySeconds",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
    ] {
        errs.min(&format!("spec.{f}"), &spec[f], 0);
    }
    let selector = &spec["selector"];
    let template_labels = &spec["template"]["metadata"]["labels"];
    if selector.is_null() {
        errs.required("spec.selector", "");
    } else if selector_is_empty(selector) {
        errs.invalid(
            "spec.selector",
            go_selector(selector),
            &format!("empty selector is invalid for {kind}"),
        );
    } else if !selector_matches(selector, template_labels) {
        errs.invalid(
            "spec.template.metadata.labels",
            go_map(template_labels),
            "`selector` does not match template `labels`",
        );
    }
    if let Some(old) = old {
        if old["spec"]["selector"] != *selector {
            errs.invalid("spec.selector", go_selector(selector), "field is immutable");
        }
    }
    labels(template_labels, "spec.template.metadata.labels", errs);
    if spec["template"].is_null() {
        errs.required("spec.template", "");
        return;
    }
    let pod_spec_v = &spec["template"]["spec"];
    pod_spec(pod_spec_v, "spec.template.spec", errs);
    restart_policy_in(pod_spec_v, "spec.template.spec", &["Always"], errs);
}

/// A pod template (`PodTemplateSpec`) at `path`: its labels and its pod spec.
pub fn pod_template(template: &Value, path: &str, errs: &mut Errs) {
    labels(
        &template["metadata"]["labels"],
        &format!("{path}.metadata.labels"),
        errs,
    );
    pod_spec(&template["spec"], &format!("{path}.spec"), errs);
}

/// A pod spec's restartPolicy must be one of `allowed` (a valid policy outside them is
/// "Unsupported value", as for workloads and jobs).
pub fn restart_policy_in(spec: &Value, path: &str, allowed: &[&str], errs: &mut Errs) {
    if let Some(policy) = spec["restartPolicy"]
        .as_str()
        .filter(|p| !allowed.contains(p) && RESTART_POLICIES.contains(p))
    {
        errs.not_supported(&format!("{path}.restartPolicy"), policy, allowed);
    }
}

pub fn selector_is_empty(s: &Value) -> bool {
    let empty = |v: &Value| {
        v.as_object()
            .map_or(v.as_array().is_none_or(Vec::is_empty), |m| m.is_empty())
    };
    empty(&s["matchLabels"]) && empty(&s["matchExpressions"])
}

/// Whether a label selector selects a label set (matchLabels and matchExpressions).
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let labels_ok = selector["matchLabels"].as_object().is_none_or(|m| {
        m.iter()
            .all(|(k, v)| label(k).is_some() && label(k) == v.as_str())
    });
    let exprs_ok = selector["matchExpressions"].as_array().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let key = e["key"].as_str().unwrap_or("");
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e["operator"].as_str() {
                Some("In") => label(key).is_some_and(|l| values.contains(&l)),
                Some("NotIn") => label(key).is_none_or(|l| !values.contains(&l)),
                Some("Exists") => label(key).is_some(),
                Some("DoesNotExist") => label(key).is_none(),
                _ => false,
            }
        })
    });
    labels_ok && exprs_ok
}

/// A LabelSelector as Go's `%#v` shows it in field errors.
pub fn go_selector(s: &Value) -> String {
    let labels = if s["matchLabels"].is_null() {
        "map[string]string(nil)".to_string()
    } else {
        go_map(&s["matchLabels"])
    };
    let exprs = match s["matchExpressions"].as_array() {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(a) => format!("[]v1.LabelSelectorRequirement{{/* {} items */}}", a.len()),
    };
    format!("&v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")
}

/// A PodSpec at `path` (`spec` or `spec.template.spec`).
pub fn pod_spec(spec: &Value, path: &str, errs: &mut Errs) {
    let volumes = volumes(spec, path, errs);
    let mut seen = HashSet::new();
    match spec["containers"].as_array() {
        Some(cs) if !cs.is_empty() => {
            for (i, c) in cs.iter().enumerate() {
                container(
                    c,
                    &format!("{path}.containers[{i}]"),
                    &volumes,
                    &mut seen,
                    errs,
                );
            }
        }
        _ => errs.required(&format!("{path}.containers"), ""),
    }
    for (i, c) in spec["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        container(
            c,
            &format!("{path}.initContainers[{i}]"),
            &volumes,
            &mut seen,
            errs,
        );
    }
    if let Some(p) = spec["restartPolicy"]
        .as_str()
        .filter(|p| !RESTART_POLICIES.contains(p))
    {
        errs.not_supported(&format!("{path}.restartPolicy"), p, RESTART_POLICIES);
    }
    if let Some(p) = spec["dnsPolicy"]
        .as_str()
        .filter(|p| !DNS_POLICIES.contains(p))
    {
        errs.not_supported(&format!("{path}.dnsPolicy"), p, DNS_POLICIES);
    }
    errs.min(
        &format!("{path}.terminationGracePeriodSeconds"),
        &spec["terminationGracePeriodSeconds"],
        0,
    );
    errs.min(
        &format!("{path}.activeDeadlineSeconds"),
        &spec["activeDeadlineSeconds"],
        1,
    );
}

/// A required name at `field`, valid by `check`; with `seen`, also unique among those seen.
fn required_name(
    errs: &mut Errs,
    field: &str,
    name: Option<&str>,
    check: fn(&str) -> Vec<String>,
    seen: Option<&mut HashSet<String>>,
) {
    let Some(n) = name.filter(|n| !n.is_empty()) else {
        errs.required(field, "");
        return;
    };
    for p in check(n) {
        errs.invalid(field, quote(n), &p);
    }
    if seen.is_some_and(|seen| !seen.insert(n.to_string())) {
        errs.duplicate(field, quote(n));
    }
}

/// Volume names (unique RFC 1123 labels); returns them for volumeMount checks.
fn volumes(spec: &Value, path: &str, errs: &mut Errs) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let field = format!("{path}.volumes[{i}].name");
        let name = v["name"].as_str();
        required_name(errs, &field, name, names::dns1123_label, Some(&mut names));
    }
    names
}

fn container(
    c: &Value,
    path: &str,
    volumes: &HashSet<String>,
    seen: &mut HashSet<String>,
    errs: &mut Errs,
) {
    let field = format!("{path}.name");
    required_name(
        errs,
        &field,
        c["name"].as_str(),
        names::dns1123_label,
        Some(seen),
    );
    if c["image"].as_str().is_none_or(|i| i.trim().is_empty()) {
        errs.required(&format!("{path}.image"), "");
    }
    if let Some(p) = c["imagePullPolicy"]
        .as_str()
        .filter(|p| !PULL_POLICIES.contains(p))
    {
        errs.not_supported(&format!("{path}.imagePullPolicy"), p, PULL_POLICIES);
    }
    let mut port_names = HashSet::new();
    for (i, port) in c["ports"].as_array().into_iter().flatten().enumerate() {
        let field = format!("{path}.ports[{i}]");
        match port["containerPort"].as_i64() {
            None => errs.required(&format!("{field}.containerPort"), ""),
            Some(n) => {
                for p in names::port_number(n) {
                    errs.invalid(&format!("{field}.containerPort"), n.to_string(), &p);
                }
            }
        }
        if let Some(n) = port["hostPort"].as_i64().filter(|n| *n != 0) {
            for p in names::port_number(n) {
                errs.invalid(&format!("{field}.hostPort"), n.to_string(), &p);
            }
        }
        if let Some(p) = port["protocol"].as_str().filter(|p| !PROTOCOLS.contains(p)) {
            errs.not_supported(&format!("{field}.protocol"), p, PROTOCOLS);
        }
        if let Some(name) = port["name"].as_str() {
            for p in names::port_name(name) {
                errs.invalid(&format!("{field}.name"), quote(name), &p);
            }
            if !port_names.insert(name) {
                errs.duplicate(&format!("{field}.name"), quote(name));
            }
        }
    }
    for (i, e) in c["env"].as_array().into_iter().flatten().enumerate() {
        let field = format!("{path}.env[{i}].name");
        required_name(errs, &field, e["name"].as_str(), names::env_var_name, None);
    }
    for (i, m) in c["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("{path}.volumeMounts[{i}]");
        match m["name"].as_str() {
            None | Some("") => errs.required(&format!("{field}.name"), ""),
            Some(n) if !volumes.contains(n) => errs.not_found(&format!("{field}.name"), quote(n)),
            Some(_) => {}
        }
        if m["mountPath"].as_str().is_none_or(str::is_empty) {
            errs.required(&format!("{field}.mountPath"), "");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::resources::find_kind;
    use serde_json::{json, Value};

    fn deployment(labels: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {
            "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
    }

    fn messages(av: &str, kind: &str, obj: &Value, old: Option<&Value>) -> Vec<String> {
        match find_kind(av, kind).unwrap().validate(obj, old) {
            Ok(()) => vec![],
            Err(e) => {
                assert_eq!(e.code, 422, "{}", e.message);
                e.causes
                    .iter()
                    .map(|c| format!("{}: {}", c.field, c.message))
                    .collect()
            }
        }
    }

    #[test]
    fn valid_deployment_passes() {
        assert_eq!(
            messages(
                "apps/v1",
                "Deployment",
                &deployment(json!({"app": "web", "tier": "x"})),
                None
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn selector_must_match_template_labels() {
        let m = messages(
            "apps/v1",
            "Deployment",
            &deployment(json!({"app": "other"})),
            None,
        );
        assert_eq!(
            m,
            [
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"other"}: `selector` does not match template `labels`"#
            ]
        );
    }

    #[test]
    fn deployment_selector_is_immutable_and_replicas_non_negative() {
        let old = deployment(json!({"app": "web"}));
        let mut new = old.clone();
        new["spec"]["selector"]["matchLabels"]["tier"] = json!("fe");
        new["spec"]["template"]["metadata"]["labels"]["tier"] = json!("fe");
        new["spec"]["replicas"] = json!(-1);
        let m = messages("apps/v1", "Deployment", &new, Some(&old));
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(
            m[0],
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        assert!(m[1].starts_with("spec.selector: Invalid value: &v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"fe\"}"), "{}", m[1]);
        assert!(m[1].ends_with(": field is immutable"));
    }

    #[test]
    fn containers_need_names_and_images() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "a", "image": "x", "ports": [{"containerPort": 70000, "protocol": "HTTP"}]}],
            "restartPolicy": "Sometimes"}});
        let m = messages("v1", "Pod", &pod, None);
        assert_eq!(m, [
            "spec.containers[0].image: Required value",
            "spec.containers[1].name: Duplicate value: \"a\"",
            "spec.containers[1].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[1].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        ]);
        let empty = json!({"metadata": {"name": "p"}, "spec": {}});
        assert_eq!(
            messages("v1", "Pod", &empty, None),
            ["spec.containers: Required value"]
        );
    }

    #[test]
    fn volume_mounts_must_name_a_volume() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"volumes": [{"name": "data", "emptyDir": {}}],
            "containers": [{"name": "a", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/d"}, {"name": "nope", "mountPath": "/n"}]}]}});
        assert_eq!(
            messages("v1", "Pod", &pod, None),
            ["spec.containers[0].volumeMounts[1].name: Not found: \"nope\""]
        );
    }

    #[test]
    fn volume_and_env_names_are_checked() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"volumes": [{"name": "d", "emptyDir": {}}, {"name": "d", "emptyDir": {}}, {"emptyDir": {}}],
            "containers": [{"name": "a", "image": "x", "env": [{"name": "1X"}, {"value": "v"}, {"name": "OK"}]}]}});
        let m = messages("v1", "Pod", &pod, None);
        assert_eq!(m.len(), 4, "{m:?}");
        assert_eq!(m[0], "spec.volumes[1].name: Duplicate value: \"d\"");
        assert_eq!(m[1], "spec.volumes[2].name: Required value");
        assert!(
            m[2].starts_with("spec.containers[0].env[0].name: Invalid value: \"1X\": "),
            "{}",
            m[2]
        );
        assert_eq!(m[3], "spec.containers[0].env[1].name: Required value");
    }

    #[test]
    fn pod_updates_only_change_images_or_bind() {
        let old = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x:1"}]}});
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("x:2");
        new["spec"]["nodeName"] = json!("node-1");
        assert!(messages("v1", "Pod", &new, Some(&old)).is_empty());
        new["spec"]["containers"][0]["command"] = json!(["sh"]);
        let m = messages("v1", "Pod", &new, Some(&old));
        assert!(
            m[0].starts_with("spec: Forbidden: pod updates may not change fields other than"),
            "{m:?}"
        );
    }

    #[test]
    fn workload_templates_must_restart_always() {
        let mut d = deployment(json!({"app": "web"}));
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(
            messages("apps/v1", "Deployment", &d, None),
            ["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]
        );
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        d["spec"]["selector"] = json!({});
        let m = messages("apps/v1", "Deployment", &d, None);
        assert!(
            m[0].ends_with("empty selector is invalid for deployment"),
            "{m:?}"
        );
    }
}
