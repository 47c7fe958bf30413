//! Events about the objects controllers manage, as kube-controller-manager records them (so
//! `kubectl describe` reads the same): core/v1 Events whose `source.component` names the
//! controller (`deployment-controller`, `replicaset-controller`, …), one Event per distinct
//! message, and a repeat of the same message within ten minutes counted on that Event
//! (client-go's `EventLogger`: its key holds the message, so "Scaled up … from 2 to 3" is a
//! new Event and never folded into "… from 0 to 2"). Best effort: an event that cannot be
//! written is logged, never retried.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Event, ObjectReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

/// Repeats within this window add to the same Event.
const AGGREGATE_FOR: SignedDuration = SignedDuration::from_mins(10);
/// Distinct events remembered for counting repeats (client-go's LRU holds 4,096).
const REMEMBERED: usize = 4096;

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The component kube-controller-manager records events about a `kind` as: the controller
/// that owns objects of that kind.
pub fn component_for(kind: &str) -> &'static str {
    match kind {
        "Deployment" => "deployment-controller",
        "ReplicaSet" => "replicaset-controller",
        "ReplicationController" => "replication-controller",
        "StatefulSet" => "statefulset-controller",
        "DaemonSet" => "daemonset-controller",
        "Job" => "job-controller",
        "CronJob" => "cronjob-controller",
        "HorizontalPodAutoscaler" => "horizontal-pod-autoscaler",
        "Node" => "node-controller",
        "PodDisruptionBudget" => "controllermanager",
        _ => "kube-controller-manager",
    }
}

struct Seen {
    name: String,
    count: i32,
    last: Timestamp,
}

/// The controllers' event recorder.
pub struct Events {
    client: Client,
    seen: Mutex<HashMap<String, Seen>>,
}

impl Events {
    pub fn new(client: Client) -> Self {
        Events {
            client,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// A `Normal` event, from the controller of `regarding`'s kind.
    pub async fn normal(&self, regarding: &ObjectReference, reason: &str, note: String) {
        self.event(regarding, EventType::Normal, reason, note).await
    }

    /// A `Warning` event, from the controller of `regarding`'s kind.
    pub async fn warning(&self, regarding: &ObjectReference, reason: &str, note: String) {
        self.event(regarding, EventType::Warning, reason, note)
            .await
    }

    /// An event of `type_`, from the controller of `regarding`'s kind.
    pub async fn event(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let component = component_for(regarding.kind.as_deref().unwrap_or(""));
        self.record(component, regarding, type_, reason, note).await
    }

    /// An event from `component`, for controllers whose events are about objects of other
    /// kinds (the taint eviction controller's about pods, the garbage collector's).
    pub async fn record(
        &self,
        component: &str,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: String,
    ) {
        // Cluster-scoped objects' events live in `default`, as upstream's recorder puts them.
        let namespace = regarding
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let object = regarding.name.as_deref().unwrap_or(component);
        let key = format!(
            "{component}\0{}\0{}\0{namespace}\0{object}\0{}\0{}\0{reason}\0{message}",
            regarding.kind.as_deref().unwrap_or(""),
            regarding.uid.as_deref().unwrap_or(""),
            regarding.field_path.as_deref().unwrap_or(""),
            type_.as_str(),
        );
        let now = Timestamp::now();
        let (name, count) = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if !seen.contains_key(&key) && seen.len() >= REMEMBERED {
                seen.retain(|_, s| now.duration_since(s.last) < AGGREGATE_FOR);
                if seen.len() >= REMEMBERED {
                    let oldest = seen
                        .iter()
                        .min_by_key(|(_, s)| s.last)
                        .map(|(k, _)| k.clone());
                    if let Some(oldest) = oldest {
                        seen.remove(&oldest);
                    }
                }
            }
            let fresh = Seen {
                name: format!("{object}.{:x}", now.as_nanosecond()),
                count: 0,
                last: now,
            };
            let s = seen.entry(key).or_insert(fresh);
            if now.duration_since(s.last) >= AGGREGATE_FOR {
                s.name = format!("{object}.{:x}", now.as_nanosecond());
                s.count = 0;
            }
            s.count += 1;
            s.last = now;
            (s.name.clone(), s.count)
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let stamp = now.to_string();
        let result = if count == 1 {
            let event = json!({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": regarding,
                "reason": reason, "message": message, "type": type_.as_str(),
                "source": {"component": component},
                "reportingComponent": component, "reportingInstance": "",
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            });
            match serde_json::from_value::<Event>(event) {
                Ok(e) => api.create(&PostParams::default(), &e).await.map(|_| ()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot build an event");
                    Ok(())
                }
            }
        } else {
            let patch = json!({"count": count, "lastTimestamp": stamp});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, reason, "could not record an event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::component_for;

    #[test]
    fn components_are_kube_controller_managers() {
        assert_eq!(component_for("Deployment"), "deployment-controller");
        assert_eq!(component_for("ReplicaSet"), "replicaset-controller");
        assert_eq!(component_for("Secret"), "kube-controller-manager");
    }
}
