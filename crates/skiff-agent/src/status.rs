//! A pod's status as kubelet writes it (`generateAPIPodStatus`): phase, conditions, the
//! statuses of init and app containers, addresses, start time. Written through `pods/status`
//! only when it changed.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{json, Value};

use crate::error::Result;
use crate::node::now;
use crate::observe::Instance;
use crate::pods::Ctx;
use crate::sandbox::PodSandbox;
use crate::sync::{latest, Outcome};

/// How much of a termination message is kept (kubelet: 4096 bytes).
const MESSAGE_MAX: usize = 4096;
/// `FallbackToLogsOnError` takes the last lines of the log (kubelet: 80 lines, 2048 bytes).
const FALLBACK_LINES: usize = 80;
const FALLBACK_BYTES: usize = 2048;

fn rfc3339(t: Option<chrono::DateTime<chrono::Utc>>) -> Value {
    t.map(|t| json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .unwrap_or(Value::Null)
}

/// Per-container summary the phase is computed from.
#[derive(Default)]
struct Counts {
    running: usize,
    ready: usize,
    waiting: usize,
    stopped: usize,
    succeeded: usize,
}

impl Ctx {
    /// The termination message of an attempt: the file it wrote, else (with
    /// `FallbackToLogsOnError` and a failure) the end of its log.
    async fn termination_message(
        &self,
        c: &Container,
        i: &Instance,
        sb: Option<&PodSandbox>,
    ) -> String {
        let written = sb
            .and_then(|sb| std::fs::read(sb.termination_log(&c.name, i.attempt)).ok())
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(MESSAGE_MAX)]).into_owned())
            .unwrap_or_default();
        if !written.is_empty() {
            return written;
        }
        let fallback = c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
        if !fallback || (i.exit_code == 0 && !i.start_failed()) {
            return String::new();
        }
        let opts = skiff_engine::LogOptions {
            stdout: true,
            stderr: true,
            tail: Some(FALLBACK_LINES.to_string()),
            ..Default::default()
        };
        let Ok(logs) = self.engine.container_logs(&i.id, opts).await else {
            return String::new();
        };
        use futures::StreamExt;
        let chunks: Vec<_> = logs.stream.collect().await;
        let text: Vec<u8> = chunks.iter().flat_map(|c| c.data.iter().copied()).collect();
        let start = text.len().saturating_sub(FALLBACK_BYTES);
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    async fn terminated(&self, c: &Container, i: &Instance, sb: Option<&PodSandbox>) -> Value {
        let (code, reason) = if i.start_failed() {
            (128, "StartError")
        } else if i.oom_killed {
            (i.exit_code, "OOMKilled")
        } else if i.exit_code == 0 {
            (0, "Completed")
        } else {
            (i.exit_code, "Error")
        };
        let mut message = self.termination_message(c, i, sb).await;
        if message.is_empty() && i.start_failed() {
            message = i.error.clone();
        }
        let mut t = json!({
            "exitCode": code,
            "reason": reason,
            "startedAt": rfc3339(i.started_at),
            "finishedAt": rfc3339(i.finished_at.or(i.started_at)),
            "containerID": format!("skiff://{}", i.id),
        });
        if !message.is_empty() {
            t["message"] = json!(message);
        }
        json!({"terminated": t})
    }

    /// One entry of `containerStatuses`/`initContainerStatuses`; counts it for the phase.
    async fn container_status(
        &self,
        c: &Container,
        instances: &[Instance],
        out: &Outcome,
        default_waiting: &str,
        sb: Option<&PodSandbox>,
        counts: &mut Counts,
    ) -> Value {
        let (last, prev) = latest(instances, &c.name);
        let waiting = out.waiting.get(&c.name);
        let mut status = json!({
            "name": c.name,
            "image": c.image.clone().unwrap_or_default(),
            "imageID": last.map(|i| i.image_id.clone()).unwrap_or_default(),
            "restartCount": last.map_or(0, |i| i.attempt),
            "ready": false,
            "started": false,
            "lastState": {},
        });
        if let Some(i) = last {
            status["containerID"] = json!(format!("skiff://{}", i.id));
        }
        let (state, last_state) = match (last, waiting) {
            (Some(i), _) if i.running() => {
                let ready = i.kind != "app" || self.probes.ready(c, &i.id);
                status["ready"] = json!(ready);
                status["started"] = json!(self.probes.started(c, &i.id));
                counts.running += 1;
                if ready {
                    counts.ready += 1;
                }
                let prev_state = match prev {
                    Some(p) => self.terminated(c, p, sb).await,
                    None => json!({}),
                };
                (
                    json!({"running": {"startedAt": rfc3339(i.started_at)}}),
                    prev_state,
                )
            }
            (Some(i), Some(w)) if i.finished() => {
                counts.stopped += 1;
                let state = json!({"waiting": {"reason": w.reason, "message": w.message}});
                (state, self.terminated(c, i, sb).await)
            }
            (Some(i), None) if i.finished() => {
                counts.stopped += 1;
                if i.exit_code == 0 && !i.start_failed() {
                    counts.succeeded += 1;
                }
                let prev_state = match prev {
                    Some(p) => self.terminated(c, p, sb).await,
                    None => json!({}),
                };
                (self.terminated(c, i, sb).await, prev_state)
            }
            (_, Some(w)) => {
                counts.waiting += 1;
                let mut waiting = json!({"reason": w.reason});
                if !w.message.is_empty() {
                    waiting["message"] = json!(w.message);
                }
                (json!({"waiting": waiting}), json!({}))
            }
            _ => {
                counts.waiting += 1;
                (json!({"waiting": {"reason": default_waiting}}), json!({}))
            }
        };
        status["state"] = state;
        status["lastState"] = last_state;
        status
    }

    /// Computes the pod's status from what the engine runs and writes it when it changed.
    pub(crate) async fn write_status(
        &self,
        pod: &Pod,
        instances: &[Instance],
        out: &Outcome,
        sandbox: Option<&PodSandbox>,
    ) -> Result<()> {
        let spec = pod.spec.clone().unwrap_or_default();
        let old = serde_json::to_value(pod.status.clone().unwrap_or_default()).unwrap_or_default();
        let policy = spec.restart_policy.as_deref().unwrap_or("Always");

        // Init containers: done in order; one that failed for good fails the pod.
        let mut init_statuses = Vec::new();
        let mut pending_init: Vec<String> = Vec::new();
        let mut init_failed = false;
        for c in spec.init_containers.iter().flatten() {
            let mut counts = Counts::default();
            let st = self
                .container_status(c, instances, out, "PodInitializing", sandbox, &mut counts)
                .await;
            if counts.succeeded == 0 {
                pending_init.push(c.name.clone());
                let (last, _) = latest(instances, &c.name);
                if policy == "Never" && last.is_some_and(|i| i.finished()) {
                    init_failed = true;
                }
            }
            init_statuses.push(st);
        }
        let initialized = pending_init.is_empty();
        let mut counts = Counts::default();
        let mut statuses = Vec::new();
        let mut unready = Vec::new();
        let default_waiting = if initialized {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        for c in &spec.containers {
            let before = counts.ready;
            statuses.push(
                self.container_status(c, instances, out, default_waiting, sandbox, &mut counts)
                    .await,
            );
            if counts.ready == before {
                unready.push(c.name.clone());
            }
        }
        let phase = if init_failed {
            "Failed"
        } else if !initialized || counts.waiting > 0 {
            "Pending"
        } else if counts.running > 0 {
            "Running"
        } else if counts.stopped > 0 {
            match policy {
                "Always" => "Running",
                _ if counts.stopped == counts.succeeded => "Succeeded",
                "Never" => "Failed",
                _ => "Running",
            }
        } else {
            "Pending"
        };
        let terminal = matches!(phase, "Succeeded" | "Failed");
        let ready = unready.is_empty() && !terminal;
        let (ready_reason, ready_message) = if terminal {
            ("PodCompleted", String::new())
        } else {
            (
                "ContainersNotReady",
                format!("containers with unready status: [{}]", unready.join(" ")),
            )
        };
        let old_conditions = old["conditions"].as_array().cloned().unwrap_or_default();
        let condition = |ty: &str, ok: bool, reason: &str, message: &str| {
            let status = if ok { "True" } else { "False" };
            let transition = old_conditions
                .iter()
                .find(|c| c["type"] == ty && c["status"] == status)
                .map(|c| c["lastTransitionTime"].clone())
                .unwrap_or_else(|| json!(now()));
            let mut c = json!({
                "type": ty, "status": status, "lastProbeTime": null,
                "lastTransitionTime": transition,
            });
            if !ok && !reason.is_empty() {
                c["reason"] = json!(reason);
                if !message.is_empty() {
                    c["message"] = json!(message);
                }
            }
            c
        };
        let init_message = format!(
            "containers with incomplete status: [{}]",
            pending_init.join(" ")
        );
        let sandbox_ready = sandbox.is_some() && !terminal;
        let conditions = json!([
            condition("PodReadyToStartContainers", sandbox_ready, "", ""),
            condition(
                "Initialized",
                initialized,
                "ContainersNotInitialized",
                &init_message
            ),
            condition("Ready", ready, ready_reason, &ready_message),
            condition("ContainersReady", ready, ready_reason, &ready_message),
            condition("PodScheduled", true, "", ""),
        ]);
        let host_ip = self.node_ip.to_string();
        let pod_ip = match sandbox {
            Some(sb) if sb.host_network => Some(host_ip.clone()),
            Some(sb) => sb.ip.map(|ip| ip.to_string()),
            None => old["podIP"].as_str().map(str::to_string),
        };
        let mut status = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "startTime": old.get("startTime").cloned().filter(|v| !v.is_null()).unwrap_or_else(|| json!(now())),
            "containerStatuses": statuses,
        });
        if let Some(ip) = pod_ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        // kubectl describe shows it; the API server set it when the pod was created.
        status["qosClass"] = json!(crate::qos::class(pod));
        if !init_statuses.is_empty() {
            status["initContainerStatuses"] = json!(init_statuses);
        }
        if unchanged(&old, &status) {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = pod.metadata.name.as_deref().unwrap_or("");
        match api
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether every field of `new` is already in `old` as it is.
fn unchanged(old: &Value, new: &Value) -> bool {
    let keys: HashSet<&String> = new
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    keys.into_iter()
        .all(|k| normalize(&old[k]) == normalize(&new[k]))
}

/// Drops nulls and empty objects (the API leaves them out), so a stored status compares equal
/// to the one it was written from.
fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), normalize(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}
