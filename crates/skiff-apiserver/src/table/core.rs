//! Table columns of core/v1 kinds: pods, services, secrets, configmaps, nodes, namespaces,
//! endpoints, events, serviceaccounts.

use serde_json::{json, Value};

use super::{
    age, col, format_labels, int, join_or, name, since, str_at, str_or_none, wide, Printer, AGE,
    NAME,
};

pub fn printer(kind: &str) -> Option<Printer> {
    Some(match kind {
        "Pod" => Printer {
            columns: const {
                &[
                    NAME,
                    col("Ready"),
                    col("Status"),
                    col("Restarts"),
                    AGE,
                    wide("IP"),
                    wide("Node"),
                    wide("Nominated Node"),
                    wide("Readiness Gates"),
                ]
            },
            cells: pod_cells,
        },
        "Service" => Printer {
            columns: const {
                &[
                    NAME,
                    col("Type"),
                    col("Cluster-IP"),
                    col("External-IP"),
                    col("Port(s)"),
                    AGE,
                    wide("Selector"),
                ]
            },
            cells: service_cells,
        },
        "Secret" => Printer {
            columns: const { &[NAME, col("Type"), col("Data"), AGE] },
            cells: |o| {
                vec![
                    name(o),
                    json!(o.get("type").and_then(Value::as_str).unwrap_or("Opaque")),
                    count(o, &["data"]),
                    age(o),
                ]
            },
        },
        "ConfigMap" => Printer {
            columns: const { &[NAME, col("Data"), AGE] },
            cells: |o| vec![name(o), count(o, &["data", "binaryData"]), age(o)],
        },
        "Namespace" => Printer {
            columns: const { &[NAME, col("Status"), AGE] },
            cells: |o| vec![name(o), str_or_none(o, "/status/phase"), age(o)],
        },
        "ServiceAccount" => Printer {
            columns: const { &[NAME, col("Secrets"), AGE] },
            cells: |o| {
                vec![
                    name(o),
                    json!(o
                        .get("secrets")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)),
                    age(o),
                ]
            },
        },
        "Node" => Printer {
            columns: const {
                &[
                    NAME,
                    col("Status"),
                    col("Roles"),
                    AGE,
                    col("Version"),
                    wide("Internal-IP"),
                    wide("External-IP"),
                    wide("OS-Image"),
                    wide("Kernel-Version"),
                    wide("Container-Runtime"),
                ]
            },
            cells: node_cells,
        },
        "Endpoints" => Printer {
            columns: const { &[NAME, col("Endpoints"), AGE] },
            cells: |o| vec![name(o), json!(endpoints_summary(o)), age(o)],
        },
        "Event" => Printer {
            columns: const {
                &[
                    col("Last Seen"),
                    col("Type"),
                    col("Reason"),
                    col("Object"),
                    wide("Subobject"),
                    wide("Source"),
                    col("Message"),
                    wide("First Seen"),
                    wide("Count"),
                    wide("Name"),
                ]
            },
            cells: event_cells,
        },
        _ => return None,
    })
}

/// Number of keys across the given map fields.
fn count(o: &Value, fields: &[&str]) -> Value {
    json!(fields
        .iter()
        .map(|f| o.get(*f).and_then(Value::as_object).map_or(0, |m| m.len()))
        .sum::<usize>())
}

fn arr<'a>(o: &'a Value, ptr: &str) -> Vec<&'a Value> {
    o.pointer(ptr)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect()
}

fn pod_cells(o: &Value) -> Vec<Value> {
    let total = arr(o, "/spec/containers").len();
    let statuses = arr(o, "/status/containerStatuses");
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart: Option<String> = None;
    let mut reason = o
        .pointer("/status/reason")
        .or_else(|| o.pointer("/status/phase"))
        .and_then(Value::as_str)
        .unwrap_or("Pending")
        .to_string();
    for (i, init) in arr(o, "/status/initContainerStatuses").iter().enumerate() {
        restarts += init
            .get("restartCount")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if let Some(t) = init.pointer("/state/terminated") {
            if t.get("exitCode").and_then(Value::as_i64) == Some(0) {
                continue;
            }
            reason = match t.get("reason").and_then(Value::as_str) {
                Some(r) if !r.is_empty() => format!("Init:{r}"),
                _ => format!(
                    "Init:ExitCode:{}",
                    t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                ),
            };
        } else if let Some(r) = init
            .pointer("/state/waiting/reason")
            .and_then(Value::as_str)
            .filter(|r| *r != "PodInitializing")
        {
            reason = format!("Init:{r}");
        } else if init.pointer("/state/running").is_none()
            || init.get("started") != Some(&json!(true))
        {
            reason = format!("Init:{i}/{}", arr(o, "/spec/initContainers").len());
        } else {
            continue;
        }
        break;
    }
    let initializing = reason.starts_with("Init:");
    let mut has_running = false;
    for c in statuses.iter().rev() {
        restarts += c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        if let Some(t) = c
            .pointer("/lastState/terminated/finishedAt")
            .and_then(Value::as_str)
        {
            if last_restart.as_deref().is_none_or(|l| t > l) {
                last_restart = Some(t.to_string());
            }
        }
        if initializing {
            continue;
        }
        if let Some(r) = c
            .pointer("/state/waiting/reason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            reason = r.to_string();
        } else if let Some(t) = c.pointer("/state/terminated") {
            reason = match t
                .get("reason")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
            {
                Some(r) => r.to_string(),
                None => match t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
                    Some(s) => format!("Signal:{s}"),
                    None => format!(
                        "ExitCode:{}",
                        t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                    ),
                },
            };
        } else if c.get("ready") == Some(&json!(true)) && c.pointer("/state/running").is_some() {
            has_running = true;
            ready += 1;
        }
    }
    if !initializing && reason == "Completed" && has_running {
        reason = "Running".into();
    }
    if o.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        reason = if o.pointer("/status/reason").and_then(Value::as_str) == Some("NodeLost") {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    let restarts_cell = match last_restart {
        Some(t) if restarts > 0 => format!("{restarts} ({} ago)", since(Some(&t))),
        _ => restarts.to_string(),
    };
    let gates = arr(o, "/spec/readinessGates");
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conds = arr(o, "/status/conditions");
        let ok = gates
            .iter()
            .filter(|g| {
                conds.iter().any(|c| {
                    c.get("type") == g.get("conditionType")
                        && c.get("status") == Some(&json!("True"))
                })
            })
            .count();
        format!("{ok}/{}", gates.len())
    };
    vec![
        name(o),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        age(o),
        str_or_none(o, "/status/podIP"),
        str_or_none(o, "/spec/nodeName"),
        str_or_none(o, "/status/nominatedNodeName"),
        json!(gates_cell),
    ]
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

fn node_cells(o: &Value) -> Vec<Value> {
    let ready = arr(o, "/status/conditions")
        .into_iter()
        .find(|c| c.get("type") == Some(&json!("Ready")))
        .map(|c| match c.get("status").and_then(Value::as_str) {
            Some("True") => "Ready",
            Some("False") => "NotReady",
            _ => "Unknown",
        })
        .unwrap_or("Unknown");
    let mut status = ready.to_string();
    if o.pointer("/spec/unschedulable") == Some(&json!(true)) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
                Some(r.to_string())
            } else if k == "kubernetes.io/role" {
                v.as_str().map(String::from)
            } else {
                None
            }
        })
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort();
    let address = |ty: &str| {
        arr(o, "/status/addresses")
            .into_iter()
            .find(|a| a.get("type").and_then(Value::as_str) == Some(ty))
            .and_then(|a| a.get("address").and_then(Value::as_str))
            .unwrap_or("<none>")
            .to_string()
    };
    vec![
        name(o),
        json!(status),
        json!(join_or(&roles, "<none>")),
        age(o),
        json!(str_at(o, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        str_or_none(o, "/status/nodeInfo/osImage"),
        str_or_none(o, "/status/nodeInfo/kernelVersion"),
        str_or_none(o, "/status/nodeInfo/containerRuntimeVersion"),
    ]
}

/// `ip:port,…` of Endpoints, at most three then `+ N more...`.
fn endpoints_summary(o: &Value) -> String {
    let mut all = Vec::new();
    for s in arr(o, "/subsets") {
        let ports: Vec<i64> = arr(s, "/ports")
            .iter()
            .filter_map(|p| p.get("port").and_then(Value::as_i64))
            .collect();
        for a in arr(s, "/addresses") {
            let ip = a.get("ip").and_then(Value::as_str).unwrap_or_default();
            if ports.is_empty() {
                all.push(ip.to_string());
            }
            for p in &ports {
                all.push(format!("{ip}:{p}"));
            }
        }
    }
    match all.len() {
        0 => "<none>".into(),
        n if n > 3 => format!("{} + {} more...", all[..3].join(","), n - 3),
        _ => all.join(","),
    }
}

fn event_cells(o: &Value) -> Vec<Value> {
    let ts = |f: &str| o.get(f).and_then(Value::as_str).filter(|s| !s.is_empty());
    let last = ts("lastTimestamp").or_else(|| ts("eventTime")).or_else(|| {
        o.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
    });
    let first = ts("firstTimestamp").or_else(|| ts("eventTime")).or(last);
    let kind = str_at(o, "/involvedObject/kind").to_lowercase();
    let obj_name = str_at(o, "/involvedObject/name");
    let source = o
        .pointer("/source/component")
        .or_else(|| o.get("reportingComponent"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let host = str_at(o, "/source/host");
    vec![
        json!(since(last)),
        json!(o.get("type").and_then(Value::as_str).unwrap_or_default()),
        json!(o.get("reason").and_then(Value::as_str).unwrap_or_default()),
        json!(format!("{kind}/{obj_name}")),
        json!(str_at(o, "/involvedObject/fieldPath")),
        json!(if host.is_empty() {
            source.to_string()
        } else {
            format!("{source}, {host}")
        }),
        json!(o
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()),
        json!(since(first)),
        int(o, "/count"),
        name(o),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_row_shows_ready_status_restarts() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.0.0.2", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let c = pod_cells(&pod);
        assert_eq!(c[1], "1/2");
        assert_eq!(c[2], "CrashLoopBackOff");
        assert_eq!(c[3], "3");
        assert_eq!(c[5], "10.0.0.2");
        assert_eq!(c[6], "n1");
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
