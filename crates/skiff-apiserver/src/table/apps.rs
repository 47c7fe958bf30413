//! Table columns of workload and other group kinds: deployments, replicasets, daemonsets,
//! statefulsets, horizontalpodautoscalers, leases, endpointslices.

use serde_json::{json, Value};

use super::{
    age, col, containers_and_images, format_labels, int, int_col, join_or, name, str_at, wide,
    Column, Printer, AGE, NAME,
};
use crate::selector::label_selector_string;

const CONTAINERS: Column = wide("Containers");
const IMAGES: Column = wide("Images");
const SELECTOR: Column = wide("Selector");

pub fn printer(kind: &str) -> Option<Printer> {
    Some(match kind {
        "Deployment" => Printer {
            columns: const {
                &[
                    NAME,
                    col("Ready"),
                    int_col("Up-to-date"),
                    int_col("Available"),
                    AGE,
                    CONTAINERS,
                    IMAGES,
                    SELECTOR,
                ]
            },
            cells: |o| {
                let own = vec![
                    ready_of_desired(o),
                    int(o, "/status/updatedReplicas"),
                    int(o, "/status/availableReplicas"),
                ];
                workload_row(o, own, true)
            },
        },
        "ReplicaSet" => Printer {
            columns: const {
                &[
                    NAME,
                    int_col("Desired"),
                    int_col("Current"),
                    int_col("Ready"),
                    AGE,
                    CONTAINERS,
                    IMAGES,
                    SELECTOR,
                ]
            },
            cells: |o| {
                let own = vec![
                    json!(desired(o)),
                    int(o, "/status/replicas"),
                    int(o, "/status/readyReplicas"),
                ];
                workload_row(o, own, true)
            },
        },
        "DaemonSet" => Printer {
            columns: const {
                &[
                    NAME,
                    int_col("Desired"),
                    int_col("Current"),
                    int_col("Ready"),
                    int_col("Up-to-date"),
                    int_col("Available"),
                    col("Node Selector"),
                    AGE,
                    CONTAINERS,
                    IMAGES,
                    SELECTOR,
                ]
            },
            cells: |o| {
                let own = vec![
                    int(o, "/status/desiredNumberScheduled"),
                    int(o, "/status/currentNumberScheduled"),
                    int(o, "/status/numberReady"),
                    int(o, "/status/updatedNumberScheduled"),
                    int(o, "/status/numberAvailable"),
                    json!(format_labels(o.pointer("/spec/template/spec/nodeSelector"))),
                ];
                workload_row(o, own, true)
            },
        },
        "StatefulSet" => Printer {
            columns: const { &[NAME, col("Ready"), AGE, CONTAINERS, IMAGES] },
            cells: |o| workload_row(o, vec![ready_of_desired(o)], false),
        },
        "HorizontalPodAutoscaler" => Printer {
            columns: const {
                &[
                    NAME,
                    col("Reference"),
                    col("Targets"),
                    col("MinPods"),
                    int_col("MaxPods"),
                    int_col("Replicas"),
                    AGE,
                ]
            },
            cells: |o| {
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
            },
        },
        "Lease" => Printer {
            columns: const { &[NAME, col("Holder"), AGE] },
            cells: |o| vec![name(o), json!(str_at(o, "/spec/holderIdentity")), age(o)],
        },
        "EndpointSlice" => Printer {
            columns: const {
                &[
                    NAME,
                    col("AddressType"),
                    col("Ports"),
                    col("Endpoints"),
                    AGE,
                ]
            },
            cells: endpointslice_cells,
        },
        _ => return None,
    })
}

/// A workload row: name, the kind's `own` cells, age, then the pod template's containers and
/// images (wide), and the selector when the kind shows one.
fn workload_row(o: &Value, own: Vec<Value>, with_selector: bool) -> Vec<Value> {
    let (containers, images) = containers_and_images(o.pointer("/spec/template/spec"));
    let mut row = vec![name(o)];
    row.extend(own);
    row.extend([age(o), containers, images]);
    if with_selector {
        row.push(selector(o));
    }
    row
}

/// `ready/desired` replicas, as the Ready column of deployments and statefulsets.
fn ready_of_desired(o: &Value) -> Value {
    json!(format!(
        "{}/{}",
        int(o, "/status/readyReplicas"),
        desired(o)
    ))
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
        json!(join_or(&ports, "<unset>")),
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
    fn every_row_has_one_cell_per_column() {
        let o = json!({"metadata": {"name": "x"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        for kind in [
            "Deployment",
            "ReplicaSet",
            "DaemonSet",
            "StatefulSet",
            "HorizontalPodAutoscaler",
            "Lease",
            "EndpointSlice",
        ] {
            let p = printer(kind).unwrap();
            let cells = (p.cells)(&o);
            assert_eq!(cells.len(), p.columns.len(), "{kind}");
            for (col, cell) in p.columns.iter().zip(&cells) {
                match col.0 {
                    "Containers" => assert_eq!(cell, "c", "{kind}"),
                    "Images" => assert_eq!(cell, "i", "{kind}"),
                    "Name" => assert_eq!(cell, "x", "{kind}"),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn hpa_targets_for_both_versions() {
        let v1 = json!({"spec": {"targetCPUUtilizationPercentage": 80}});
        assert_eq!(hpa_targets(&v1), "cpu: <unknown>/80%");
        let v2 = json!({"spec": {"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}});
        assert_eq!(hpa_targets(&v2), "cpu: <unknown>/50%");
    }
}
