//! core/v1 Pods: the defaults and admission (service account, priority, default
//! tolerations) a Pod gets, its initial `Pending` status and QoS class, the rules of pod
//! updates, graceful deletion of pods a node runs, and the `kubectl get pods` columns.

use k8s_openapi::api::core::v1::Pod;
use k8s_pb::api::core::v1 as pb;
use serde_json::{json, Value};

use futures::future::BoxFuture;

use crate::defaults::{ensure, pod_spec, set};
use crate::error::ApiError;
use crate::kinds::scheduling::priorityclass::PriorityClasses;
use crate::registry::{Admission, Obj, Strategy};
use crate::resources::{Entry, Sub, ALL};
use crate::router::ApiState;
use crate::table::{age, arr, col, name, since, str_or_none, wide, Column, AGE, NAME};
use crate::validation::Errs;

pub struct Pods;

impl Strategy for Pods {
    type Object = Pod;
    type Protobuf = pb::Pod;
    const RESOURCE: Entry = Entry {
        short_names: &["po"],
        categories: ALL,
        subresources: &[Sub::Status, Sub::Binding, Sub::Eviction],
        ..Entry::DEFAULT
    };
    const GRACEFUL_DELETE: bool = true;
    const FIELD_SELECTORS: &'static [&'static str] = &[
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ];
    const COLUMNS: &'static [Column] = &[
        NAME,
        col("Ready"),
        col("Status"),
        col("Restarts"),
        AGE,
        wide("IP"),
        wide("Node"),
        wide("Nominated Node"),
        wide("Readiness Gates"),
    ];

    fn defaults(&self, obj: &mut Value) {
        let spec = ensure(obj, "spec");
        pod_spec(spec);
        // What a Pod (not a template) gains from defaulting and the default admission
        // plugins (ServiceAccount, Priority, DefaultTolerationSeconds).
        set(spec, "enableServiceLinks", json!(true));
        set(spec, "serviceAccountName", json!("default"));
        let account = spec["serviceAccountName"].clone();
        set(spec, "serviceAccount", account);
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({"phase": "Pending", "qosClass": qos_class(obj)});
    }

    fn validate(&self, new: Obj<'_, Pod>, old: Option<Obj<'_, Pod>>, errs: &mut Errs) {
        crate::validation::pod::pod(new.json, old.map(|o| o.json), errs);
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        pod_cells(obj)
    }

    fn grace_period(&self, obj: &Value, requested: Option<i64>) -> Option<i64> {
        graceful_period(obj, requested)
    }

    /// The ServiceAccount admission plugin ([`crate::serviceaccount::admission`]). The Priority admission plugin: a pod's priority and preemption policy come from the
    /// PriorityClass it names (0 and `PreemptLowerPriority` without one). Then
    /// DefaultTolerationSeconds: the not-ready and unreachable NoExecute tolerations.
    fn admit<'a>(
        &'a self,
        state: &'a ApiState,
        op: Admission<'a>,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let Admission::Create { obj, .. } = op else {
                return Ok(());
            };
            crate::serviceaccount::admission::admit_pod(state, obj).await?;
            host_paths_allowed(obj, &state.allowed_host_paths)?;
            let class_name = obj
                .pointer("/spec/priorityClassName")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            let (priority, policy) = match &class_name {
                None => (0, json!("PreemptLowerPriority")),
                Some(class) => {
                    let pc = crate::lookup::get(state, &PriorityClasses, None, class).await?;
                    let pc = pc.ok_or_else(|| {
                        forbidden(
                            obj,
                            &format!("no PriorityClass with name {class} was found"),
                        )
                    })?;
                    (
                        pc.get("value").and_then(Value::as_i64).unwrap_or(0),
                        pc.get("preemptionPolicy")
                            .cloned()
                            .unwrap_or(json!("PreemptLowerPriority")),
                    )
                }
            };
            let given = obj.pointer("/spec/priority").and_then(Value::as_i64);
            if class_name.is_some() && given.is_some_and(|g| g != priority) {
                return Err(forbidden(
                    obj,
                    &format!(
                        "the integer value of priority ({}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name",
                        given.unwrap_or_default()
                    ),
                ));
            }
            let spec = ensure(obj, "spec");
            spec["priority"] = json!(given.unwrap_or(priority));
            set(spec, "preemptionPolicy", policy);
            default_tolerations(spec, state.default_tolerations);
            Ok(())
        })
    }
}

/// The admin's hostPath restriction (`skiff server --allowed-host-path`, what PodSecurityPolicy's
/// `allowedHostPaths` was): every hostPath volume must be at or under one of `allowed`,
/// compared by whole path components after removing `.` (a `..` is refused outright).
fn host_paths_allowed(obj: &Value, allowed: &[std::path::PathBuf]) -> Result<(), ApiError> {
    use std::path::{Component, Path};
    if allowed.is_empty() {
        return Ok(());
    }
    let volumes = obj
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for v in volumes {
        let Some(path) = v.pointer("/hostPath/path").and_then(Value::as_str) else {
            continue;
        };
        let p = Path::new(path);
        let clean = p.is_absolute() && !p.components().any(|c| c == Component::ParentDir);
        let normal: std::path::PathBuf = p.components().collect();
        if !clean || !allowed.iter().any(|a| normal.starts_with(a)) {
            let list: Vec<String> = allowed.iter().map(|a| a.display().to_string()).collect();
            return Err(forbidden(
                obj,
                &format!(
                    "hostPath volume {:?} uses path {path:?}, which is not allowed on this cluster (allowed: {})",
                    v["name"].as_str().unwrap_or_default(),
                    list.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// 403 about the pod `obj`.
fn forbidden(obj: &Value, reason: &str) -> ApiError {
    ApiError::forbidden("", "pods", crate::object::name(obj), reason)
}

/// How long pods tolerate an unready or unreachable node before they are evicted, unless
/// they say otherwise (kube-apiserver's `--default-not-ready-toleration-seconds` and
/// `--default-unreachable-toleration-seconds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultTolerations {
    pub not_ready_seconds: i64,
    pub unreachable_seconds: i64,
}

impl Default for DefaultTolerations {
    fn default() -> Self {
        DefaultTolerations {
            not_ready_seconds: 300,
            unreachable_seconds: 300,
        }
    }
}

/// The DefaultTolerationSeconds admission plugin: a pod gets the not-ready and unreachable
/// NoExecute tolerations for the configured time unless it tolerates those taints already.
fn default_tolerations(spec: &mut Value, seconds: DefaultTolerations) {
    if !spec
        .get("tolerations")
        .is_none_or(|t| t.is_array() || t.is_null())
    {
        return;
    }
    let mut list = spec["tolerations"].as_array().cloned().unwrap_or_default();
    for (key, secs) in [
        ("node.kubernetes.io/not-ready", seconds.not_ready_seconds),
        (
            "node.kubernetes.io/unreachable",
            seconds.unreachable_seconds,
        ),
    ] {
        let covered = list.iter().any(|t| {
            (t["key"] == key || (t["key"].is_null() && t["operator"] == "Exists"))
                && (t["effect"].is_null() || t["effect"] == "NoExecute")
        });
        if !covered {
            list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": secs}));
        }
    }
    spec["tolerations"] = Value::Array(list);
}

/// A pod's QoS class from its containers' requests and limits.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        any |= requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty());
        let full = |l: Option<&serde_json::Map<String, Value>>| {
            l.is_some_and(|l| l.contains_key("cpu") && l.contains_key("memory"))
        };
        let req_eq_lim = requests.is_none_or(|r| {
            r.iter()
                .all(|(k, v)| limits.and_then(|l| l.get(k)) == Some(v))
        });
        guaranteed &= full(limits) && req_eq_lim;
    }
    if guaranteed {
        "Guaranteed"
    } else if any {
        "Burstable"
    } else {
        "BestEffort"
    }
}

/// The grace period of a pod that a node must stop first (None: delete at once).
fn graceful_period(obj: &Value, requested: Option<i64>) -> Option<i64> {
    if requested == Some(0) {
        return None;
    }
    let bound = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        obj.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if !bound || finished {
        return None;
    }
    Some(
        requested
            .or_else(|| {
                obj.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tolerations_use_the_configured_seconds_and_keep_the_pods_own() {
        let seconds = DefaultTolerations {
            not_ready_seconds: 7,
            unreachable_seconds: 5,
        };
        let mut spec = json!({"containers": []});
        default_tolerations(&mut spec, seconds);
        assert_eq!(
            spec["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 7},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
            ])
        );
        let own = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1});
        let mut spec = json!({"tolerations": [own.clone()]});
        default_tolerations(&mut spec, seconds);
        let list = spec["tolerations"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0], own);
        assert_eq!(list[1]["key"], "node.kubernetes.io/not-ready");
    }

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
    fn host_paths_outside_the_allowed_prefixes_are_forbidden() {
        let pod = |path: &str| {
            json!({"metadata": {"name": "p"}, "spec": {"volumes": [
                {"name": "ok", "emptyDir": {}},
                {"name": "h", "hostPath": {"path": path}}]}})
        };
        let allowed = vec![std::path::PathBuf::from("/srv/data")];
        assert!(host_paths_allowed(&pod("/etc"), &[]).is_ok());
        assert!(host_paths_allowed(&pod("/srv/data"), &allowed).is_ok());
        assert!(host_paths_allowed(&pod("/srv/data/./x/"), &allowed).is_ok());
        for bad in [
            "/etc",
            "/srv/database",
            "/srv/data/../../etc",
            "srv/data",
            "/srv",
        ] {
            let e = host_paths_allowed(&pod(bad), &allowed).unwrap_err();
            assert!(e.to_string().contains("not allowed"), "{bad}: {e}");
        }
    }

    #[test]
    fn pod_qos_classes() {
        let best = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(qos_class(&best), "BestEffort");
        let burst = json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(qos_class(&burst), "Burstable");
        let g = json!({"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
    }
}
