//! Rules for Services, Secrets, ConfigMaps and HorizontalPodAutoscalers.

use std::collections::HashSet;

use base64::Engine;
use serde_json::Value;

use super::{names, quote, Errs};

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
/// Kubernetes' `MaxSecretSize`, also the ConfigMap limit.
const MAX_DATA_BYTES: usize = 1024 * 1024;

pub fn service(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = &obj["spec"];
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    if !SERVICE_TYPES.contains(&ty) {
        errs.not_supported("spec.type", ty, SERVICE_TYPES);
    }
    let ports = spec["ports"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let headless = spec["clusterIP"] == "None";
    if ports.is_empty() && ty != "ExternalName" && !headless {
        errs.required("spec.ports", "");
    }
    if ty == "ExternalName" && spec["externalName"].as_str().is_none_or(str::is_empty) {
        errs.required("spec.externalName", "");
    }
    let mut seen_names = HashSet::new();
    let mut seen_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        match p["name"].as_str().filter(|n| !n.is_empty()) {
            None if ports.len() > 1 => errs.required(&format!("{field}.name"), ""),
            None => {}
            Some(n) => {
                for m in names::dns1123_label(n) {
                    errs.invalid(&format!("{field}.name"), quote(n), &m);
                }
                if !seen_names.insert(n) {
                    errs.duplicate(&format!("{field}.name"), quote(n));
                }
            }
        }
        match p["port"].as_i64() {
            None => errs.required(&format!("{field}.port"), ""),
            Some(n) => {
                for m in names::port_number(n) {
                    errs.invalid(&format!("{field}.port"), n.to_string(), &m);
                }
            }
        }
        let protocol = p["protocol"].as_str().unwrap_or("TCP");
        if !PROTOCOLS.contains(&protocol) {
            errs.not_supported(&format!("{field}.protocol"), protocol, PROTOCOLS);
        }
        if !seen_ports.insert((p["port"].as_i64(), protocol)) {
            errs.duplicate(
                &field,
                format!(
                    "core.ServicePort{{Port:{}, Protocol:{:?}}}",
                    p["port"], protocol
                ),
            );
        }
        match &p["targetPort"] {
            Value::Number(n) => {
                for m in names::port_number(n.as_i64().unwrap_or(0)) {
                    errs.invalid(&format!("{field}.targetPort"), n.to_string(), &m);
                }
            }
            Value::String(s) => {
                for m in names::port_name(s) {
                    errs.invalid(&format!("{field}.targetPort"), quote(s), &m);
                }
            }
            _ => {}
        }
        if let Some(n) = p["nodePort"].as_i64().filter(|n| *n != 0) {
            if ty == "ClusterIP" {
                errs.forbidden(
                    &format!("{field}.nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                );
            }
            for m in names::port_number(n) {
                errs.invalid(&format!("{field}.nodePort"), n.to_string(), &m);
            }
        }
    }
    if let Some(old) = old {
        let (was, now) = (&old["spec"]["clusterIP"], &spec["clusterIP"]);
        let set = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
        if set(was) && set(now) && was != now && ty != "ExternalName" {
            errs.invalid(
                "spec.clusterIP",
                quote(now.as_str().unwrap_or("")),
                "field is immutable",
            );
        }
    }
}

/// Data key syntax and the total size limit shared by Secrets and ConfigMaps.
fn data_keys(maps: &[(&str, &Value)], decode_base64: bool, errs: &mut Errs) -> usize {
    let mut total = 0;
    let mut seen = HashSet::new();
    for (field, map) in maps {
        for (k, v) in map.as_object().into_iter().flatten() {
            let f = format!("{field}[{k}]");
            for m in names::config_key(k) {
                errs.invalid(&f, quote(k), &m);
            }
            if !seen.insert(k.as_str()) {
                errs.invalid(&f, quote(k), "duplicate of key present in binaryData");
            }
            let s = v.as_str().unwrap_or("");
            total += if decode_base64 || *field == "binaryData" {
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_or(s.len(), |b| b.len())
            } else {
                s.len()
            };
        }
    }
    total
}

/// `immutable: true` freezes data (and the flag itself) once stored.
fn immutable(obj: &Value, old: Option<&Value>, fields: &[&str], errs: &mut Errs) {
    let Some(old) = old.filter(|o| o["immutable"] == true) else {
        return;
    };
    const MSG: &str = "field is immutable when `immutable` is set";
    for f in fields {
        if obj[*f] != old[*f] {
            errs.forbidden(f, MSG);
        }
    }
    if obj["immutable"] != true {
        errs.forbidden("immutable", MSG);
    }
}

pub fn secret(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let total = data_keys(&[("data", &obj["data"])], true, errs)
        + obj["stringData"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, v)| v.as_str().map_or(0, str::len))
            .sum::<usize>();
    if total > MAX_DATA_BYTES {
        errs.too_long(
            "data",
            &format!("may not be more than {MAX_DATA_BYTES} bytes"),
        );
    }
    let ty = obj["type"].as_str().unwrap_or("Opaque");
    let has = |k: &str| obj["data"].get(k).is_some() || obj["stringData"].get(k).is_some();
    let required: &[&str] = match ty {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/basic-auth" | "kubernetes.io/ssh-auth" => &[],
        _ => &[],
    };
    for k in required.iter().filter(|k| !has(k)) {
        errs.required(&format!("data[{k}]"), "");
    }
    if ty == "kubernetes.io/ssh-auth" && !has("ssh-privatekey") {
        errs.required("data[ssh-privatekey]", "");
    }
    if let Some(old) = old {
        let was = old["type"].as_str().unwrap_or("Opaque");
        if was != ty {
            errs.invalid("type", quote(ty), "field is immutable");
        }
    }
    immutable(obj, old, &["data"], errs);
}

pub fn config_map(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let total = data_keys(
        &[("data", &obj["data"]), ("binaryData", &obj["binaryData"])],
        false,
        errs,
    );
    if total > MAX_DATA_BYTES {
        errs.too_long("", &format!("must have at most {MAX_DATA_BYTES} bytes"));
    }
    immutable(obj, old, &["data", "binaryData"], errs);
}

pub fn hpa(version: &str, obj: &Value, errs: &mut Errs) {
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

#[cfg(test)]
mod tests {
    use crate::resources::find_kind;
    use crate::validation::validate;
    use serde_json::{json, Value};

    fn messages(av: &str, kind: &str, obj: &Value, old: Option<&Value>) -> Vec<String> {
        match validate(find_kind(av, kind).unwrap(), obj, old) {
            Ok(()) => vec![],
            Err(e) => e
                .causes
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect(),
        }
    }

    #[test]
    fn service_ports() {
        let ok = json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80, "targetPort": "http"}]}});
        assert!(messages("v1", "Service", &ok, None).is_empty());
        let none = json!({"metadata": {"name": "web"}, "spec": {}});
        assert_eq!(
            messages("v1", "Service", &none, None),
            ["spec.ports: Required value"]
        );
        let bad = json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 0}, {"name": "b", "port": 80, "targetPort": 99999}]}});
        assert_eq!(messages("v1", "Service", &bad, None), [
            "spec.ports[0].name: Required value",
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[1].targetPort: Invalid value: 99999: must be between 1 and 65535, inclusive",
        ]);
        let headless = json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None"}});
        assert!(messages("v1", "Service", &headless, None).is_empty());
    }

    #[test]
    fn service_cluster_ip_is_immutable() {
        let old = json!({"metadata": {"name": "web"}, "spec": {"clusterIP": "10.43.0.10", "ports": [{"port": 80}]}});
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.43.0.11");
        assert_eq!(
            messages("v1", "Service", &new, Some(&old)),
            ["spec.clusterIP: Invalid value: \"10.43.0.11\": field is immutable"]
        );
    }

    #[test]
    fn secret_keys_and_size() {
        let bad = json!({"metadata": {"name": "s"}, "data": {"bad key": "aGk="}});
        let m = messages("v1", "Secret", &bad, None);
        assert!(
            m[0].starts_with(
                "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of"
            ),
            "{m:?}"
        );
        use base64::Engine;
        let big = base64::engine::general_purpose::STANDARD.encode(vec![0u8; 1024 * 1024 + 1]);
        let huge = json!({"metadata": {"name": "s"}, "data": {"blob": big}});
        assert_eq!(
            messages("v1", "Secret", &huge, None),
            ["data: Too long: may not be more than 1048576 bytes"]
        );
        let tls = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "aGk="}});
        assert_eq!(
            messages("v1", "Secret", &tls, None),
            ["data[tls.key]: Required value"]
        );
    }

    #[test]
    fn immutable_secret_and_config_map() {
        let old = json!({"metadata": {"name": "s"}, "immutable": true, "data": {"a": "aGk="}});
        let mut new = old.clone();
        new["data"]["a"] = json!("aG8=");
        assert_eq!(
            messages("v1", "Secret", &new, Some(&old)),
            ["data: Forbidden: field is immutable when `immutable` is set"]
        );
        let mut relabel = old.clone();
        relabel["metadata"]["labels"] = json!({"x": "y"});
        assert!(messages("v1", "Secret", &relabel, Some(&old)).is_empty());
        let old_cm = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
        let mut cm = old_cm.clone();
        cm["immutable"] = json!(false);
        assert_eq!(
            messages("v1", "ConfigMap", &cm, Some(&old_cm)),
            ["immutable: Forbidden: field is immutable when `immutable` is set"]
        );
    }

    #[test]
    fn config_map_keys_may_not_repeat_across_data_and_binary_data() {
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "ok.key": "2"}, "binaryData": {"a": "aGk="}});
        assert_eq!(
            messages("v1", "ConfigMap", &cm, None),
            ["binaryData[a]: Invalid value: \"a\": duplicate of key present in binaryData"]
        );
    }

    #[test]
    fn hpa_replica_bounds() {
        let h = json!({"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 3, "maxReplicas": 2}});
        assert_eq!(messages("autoscaling/v2", "HorizontalPodAutoscaler", &h, None), ["spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"]);
        let h =
            json!({"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {}, "maxReplicas": 0}});
        assert_eq!(
            messages("autoscaling/v1", "HorizontalPodAutoscaler", &h, None).len(),
            3
        );
    }
}
