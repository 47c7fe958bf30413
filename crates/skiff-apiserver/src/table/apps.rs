//! Table columns of workload and other group kinds: deployments, replicasets, daemonsets,
//! statefulsets, horizontalpodautoscalers, leases, endpointslices.

use serde_json::{json, Value};

use super::{age, containers_and_images, format_labels, int, name, Column, Printer, AGE, NAME};
use crate::selector::label_selector_string;

const CONTAINERS: Column = Column("Containers", "string", "", 1);
const IMAGES: Column = Column("Images", "string", "", 1);
const SELECTOR: Column = Column("Selector", "string", "", 1);

pub fn printer(kind: &str) -> Option<Printer> {
    Some(match kind {
        "Deployment" => Printer {
            columns: &[
                NAME,
                Column("Ready", "string", "", 0),
                Column("Up-to-date", "integer", "", 0),
                Column("Available", "integer", "", 0),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            cells: |o| {
                let (c, i) = containers_and_images(o.pointer("/spec/template/spec"));
                vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        int(o, "/status/readyReplicas"),
                        desired(o)
                    )),
                    int(o, "/status/updatedReplicas"),
                    int(o, "/status/availableReplicas"),
                    age(o),
                    c,
                    i,
                    selector(o),
                ]
            },
        },
        "ReplicaSet" => Printer {
            columns: &[
                NAME,
                Column("Desired", "integer", "", 0),
                Column("Current", "integer", "", 0),
                Column("Ready", "integer", "", 0),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            cells: |o| {
                let (c, i) = containers_and_images(o.pointer("/spec/template/spec"));
                vec![
                    name(o),
                    json!(desired(o)),
                    int(o, "/status/replicas"),
                    int(o, "/status/readyReplicas"),
                    age(o),
                    c,
                    i,
                    selector(o),
                ]
            },
        },
        "DaemonSet" => Printer {
            columns: &[
                NAME,
                Column("Desired", "integer", "", 0),
                Column("Current", "integer", "", 0),
                Column("Ready", "integer", "", 0),
                Column("Up-to-date", "integer", "", 0),
                Column("Available", "integer", "", 0),
                Column("Node Selector", "string", "", 0),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            cells: |o| {
                let (c, i) = containers_and_images(o.pointer("/spec/template/spec"));
                vec![
                    name(o),
                    int(o, "/status/desiredNumberScheduled"),
                    int(o, "/status/currentNumberScheduled"),
                    int(o, "/status/numberReady"),
                    int(o, "/status/updatedNumberScheduled"),
                    int(o, "/status/numberAvailable"),
                    json!(format_labels(o.pointer("/spec/template/spec/nodeSelector"))),
                    age(o),
                    c,
                    i,
                    selector(o),
                ]
            },
        },
        "StatefulSet" => Printer {
            columns: &[
                NAME,
                Column("Ready", "string", "", 0),
                AGE,
                CONTAINERS,
                IMAGES,
            ],
            cells: |o| {
                let (c, i) = containers_and_images(o.pointer("/spec/template/spec"));
                vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        int(o, "/status/readyReplicas"),
                        desired(o)
                    )),
                    age(o),
                    c,
                    i,
                ]
            },
        },
        "HorizontalPodAutoscaler" => Printer {
            columns: &[
                NAME,
                Column("Reference", "string", "", 0),
                Column("Targets", "string", "", 0),
                Column("MinPods", "string", "", 0),
                Column("MaxPods", "integer", "", 0),
                Column("Replicas", "integer", "", 0),
                AGE,
            ],
            cells: |o| {
                let reference = format!(
                    "{}/{}",
                    o.pointer("/spec/scaleTargetRef/kind")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    o.pointer("/spec/scaleTargetRef/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
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
            },
        },
        "Lease" => Printer {
            columns: &[NAME, Column("Holder", "string", "", 0), AGE],
            cells: |o| {
                vec![
                    name(o),
                    json!(o
                        .pointer("/spec/holderIdentity")
                        .and_then(Value::as_str)
                        .unwrap_or_default()),
                    age(o),
                ]
            },
        },
        "EndpointSlice" => Printer {
            columns: &[
                NAME,
                Column("AddressType", "string", "", 0),
                Column("Ports", "string", "", 0),
                Column("Endpoints", "string", "", 0),
                AGE,
            ],
            cells: endpointslice_cells,
        },
        _ => return None,
    })
}

fn desired(o: &Value) -> i64 {
    o.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn selector(o: &Value) -> Value {
    let s = label_selector_string(o.pointer("/spec/selector").unwrap_or(&Value::Null));
    json!(if s.is_empty() {
        "<none>".to_string()
    } else {
        s
    })
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
            let target = m
                .pointer("/resource/target/averageUtilization")
                .and_then(Value::as_i64)
                .map(|t| format!("{t}%"))
                .or_else(|| {
                    m.pointer("/resource/target/averageValue")
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .unwrap_or_else(|| "<unknown>".into());
            let cur = current
                .iter()
                .find(|c| c.pointer("/resource/name").and_then(Value::as_str) == Some(res))
                .and_then(|c| {
                    c.pointer("/resource/current/averageUtilization")
                        .and_then(Value::as_i64)
                })
                .map_or("<unknown>".to_string(), |c| format!("{c}%"));
            format!("{res}: {cur}/{target}")
        })
        .collect();
    parts.join(", ")
}

fn endpointslice_cells(o: &Value) -> Vec<Value> {
    let ports: Vec<String> = o
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("port").and_then(Value::as_i64).map(|p| p.to_string()))
        .collect();
    let addrs: Vec<String> = o
        .get("endpoints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|e| {
            e.get("addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    let endpoints = match addrs.len() {
        0 => "<unset>".to_string(),
        n if n > 3 => format!("{} + {} more...", addrs[..3].join(","), n - 3),
        _ => addrs.join(","),
    };
    vec![
        name(o),
        json!(o
            .get("addressType")
            .and_then(Value::as_str)
            .unwrap_or_default()),
        json!(if ports.is_empty() {
            "<unset>".into()
        } else {
            ports.join(",")
        }),
        json!(endpoints),
        age(o),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_row_shows_ready_of_desired() {
        let d = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let c = (printer("Deployment").unwrap().cells)(&d);
        assert_eq!(c[1], "2/3");
        assert_eq!(c[2], 3);
        assert_eq!(c[5], "c");
        assert_eq!(c[6], "busybox");
        assert_eq!(c[7], "app=web");
    }

    #[test]
    fn hpa_targets_for_both_versions() {
        let v1 = json!({"spec": {"targetCPUUtilizationPercentage": 80}});
        assert_eq!(hpa_targets(&v1), "cpu: <unknown>/80%");
        let v2 = json!({"spec": {"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}});
        assert_eq!(hpa_targets(&v2), "cpu: <unknown>/50%");
    }
}
