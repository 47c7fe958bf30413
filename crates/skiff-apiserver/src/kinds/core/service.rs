//! core/v1 Services: port, type and name rules, the defaults users see in `kubectl get -o
//! yaml`, and the `kubectl get services` columns. ClusterIP and NodePort allocation is
//! admission-time work ([`Strategy::admit`], with [`crate::services`]), not defaulting.

use std::collections::HashSet;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Service;
use k8s_pb::api::core::v1 as pb;
use serde_json::{json, Value};

use crate::defaults::{ensure, set};
use crate::error::ApiError;
use crate::registry::{Admission, Obj, Strategy};
use crate::resources::{Entry, Sub, ALL};
use crate::router::ApiState;
use crate::services;
use crate::table::{age, arr, col, format_labels, join_or, name, wide, Column, AGE, NAME};
use crate::validation::{names, quote, Errs, NameRule};

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

pub struct Services;

impl Strategy for Services {
    type Object = Service;
    type Protobuf = pb::Service;
    const RESOURCE: Entry = Entry {
        short_names: &["svc"],
        categories: ALL,
        subresources: &[Sub::Status],
        ..Entry::DEFAULT
    };
    const NAME: NameRule = NameRule::Dns1035Label;
    const COLUMNS: &'static [Column] = &[
        NAME,
        col("Type"),
        col("Cluster-IP"),
        col("External-IP"),
        col("Port(s)"),
        AGE,
        wide("Selector"),
    ];

    fn defaults(&self, obj: &mut Value) {
        service_defaults(ensure(obj, "spec"));
    }

    fn validate(&self, new: Obj<'_, Service>, old: Option<Obj<'_, Service>>, errs: &mut Errs) {
        validate_service(new.json, old.map(|o| o.json), errs);
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        service_cells(obj)
    }

    /// ClusterIP and NodePort allocation (docs/adr/0009): reserved at create (after
    /// defaulting, before validation, as Kubernetes' BeginCreate) and at updates of the main
    /// resource that ask for new NodePorts; freed when the write is given up, when an update
    /// drops them and when the Service is deleted. Each hook frees only keys this Service's
    /// uid holds.
    fn admit<'a>(
        &'a self,
        state: &'a ApiState,
        op: Admission<'a>,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            match op {
                Admission::Create { obj, dry_run, .. } => {
                    services::allocate(state, obj, dry_run).await
                }
                Admission::CreateAborted { obj, dry_run } => {
                    if !dry_run {
                        services::release(state, obj, services::create_aborted(obj)).await;
                    }
                    Ok(())
                }
                Admission::Update {
                    new,
                    old,
                    sub: None,
                    dry_run,
                    ..
                } => services::update(state, old, new, dry_run).await,
                Admission::Updated { obj, old } => {
                    services::release(state, old, services::updated(obj, old)).await;
                    Ok(())
                }
                Admission::UpdateAborted { new, old, dry_run } => {
                    if !dry_run {
                        services::release(state, old, services::update_aborted(new, old)).await;
                    }
                    Ok(())
                }
                Admission::Deleted { obj } => {
                    services::release(state, obj, services::held(obj)).await;
                    Ok(())
                }
                _ => Ok(()),
            }
        })
    }
}

fn service_defaults(spec: &mut Value) {
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

fn validate_service(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
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

fn service_cells(o: &Value) -> Vec<Value> {
    let ty = o
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let external_ips: Vec<&str> = arr(o, "/spec/externalIPs")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let external = match ty {
        "ExternalName" => o
            .pointer("/spec/externalName")
            .and_then(Value::as_str)
            .unwrap_or("<none>")
            .to_string(),
        "LoadBalancer" => {
            let mut ips: Vec<String> = arr(o, "/status/loadBalancer/ingress")
                .iter()
                .filter_map(|i| {
                    i.get("ip")
                        .or_else(|| i.get("hostname"))
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .collect();
            ips.extend(external_ips.iter().map(|s| s.to_string()));
            join_or(&ips, "<pending>")
        }
        _ if !external_ips.is_empty() => external_ips.join(","),
        _ => "<none>".into(),
    };
    let ports: Vec<String> = arr(o, "/spec/ports")
        .iter()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p
                .get("nodePort")
                .and_then(Value::as_i64)
                .filter(|n| *n != 0)
            {
                Some(np) => format!("{port}:{np}/{proto}"),
                None => format!("{port}/{proto}"),
            }
        })
        .collect();
    let cluster_ip = o
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>");
    vec![
        name(o),
        json!(ty),
        json!(cluster_ip),
        json!(external),
        json!(join_or(&ports, "<none>")),
        age(o),
        json!(format_labels(o.pointer("/spec/selector"))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;

    fn messages(obj: &Value, old: Option<&Value>) -> Vec<String> {
        match Kind::validate(&Services, obj, old) {
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
        assert!(messages(&ok, None).is_empty());
        let none = json!({"metadata": {"name": "web"}, "spec": {}});
        assert_eq!(messages(&none, None), ["spec.ports: Required value"]);
        let bad = json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 0}, {"name": "b", "port": 80, "targetPort": 99999}]}});
        assert_eq!(messages(&bad, None), [
            "spec.ports[0].name: Required value",
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[1].targetPort: Invalid value: 99999: must be between 1 and 65535, inclusive",
        ]);
        let headless = json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None"}});
        assert!(messages(&headless, None).is_empty());
    }

    #[test]
    fn service_cluster_ip_is_immutable() {
        let old = json!({"metadata": {"name": "web"}, "spec": {"clusterIP": "10.43.0.10", "ports": [{"port": 80}]}});
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.43.0.11");
        assert_eq!(
            messages(&new, Some(&old)),
            ["spec.clusterIP: Invalid value: \"10.43.0.11\": field is immutable"]
        );
    }

    #[test]
    fn service_defaults() {
        let mut s = json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}});
        Kind::defaults(&Services, &mut s);
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
    }

    #[test]
    fn service_row_formats_ports_and_selector() {
        let svc = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "clusterIP": "10.43.0.10",
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}], "selector": {"app": "web"}}});
        let c = service_cells(&svc);
        assert_eq!(c[1], "NodePort");
        assert_eq!(c[3], "<none>");
        assert_eq!(c[4], "80:30080/TCP");
        assert_eq!(c[6], "app=web");
    }
}
