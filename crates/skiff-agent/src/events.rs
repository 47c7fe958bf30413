//! Events about pods, as kubelet records them (`source.component: kubelet`, reasons and
//! messages in kubelet's words), with kubelet's aggregation of repeats into one Event whose
//! `count` grows. Best effort: an event that cannot be written is logged, never retried.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::node::now;

/// Repeats within this window add to the same Event.
const AGGREGATE_FOR: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Normal,
    Warning,
}

struct Seen {
    name: String,
    count: i32,
    last: chrono::DateTime<chrono::Utc>,
}

/// Writes the node's events.
pub struct Recorder {
    client: kube::Client,
    node: String,
    seen: Mutex<HashMap<String, Seen>>,
}

impl Recorder {
    pub fn new(client: kube::Client, node: String) -> Self {
        Recorder {
            client,
            node,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records an event about `pod` (about one of its containers when `field_path` is
    /// `spec.containers{name}` or `spec.initContainers{name}`), in the background.
    pub fn pod(
        &self,
        pod: &Pod,
        field_path: Option<&str>,
        ty: Type,
        reason: &str,
        message: String,
    ) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = format!("{uid}\0{}\0{reason}\0{message}", field_path.unwrap_or(""));
        let now_t = chrono::Utc::now();
        let stamp = now();
        // (event name, count): count 1 is a new Event.
        let (event_name, count) = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.retain(|_, s| now_t - s.last < AGGREGATE_FOR);
            let s = seen.entry(key).or_insert_with(|| Seen {
                name: format!("{name}.{:016x}", rand::random::<u64>()),
                count: 0,
                last: now_t,
            });
            s.count += 1;
            s.last = now_t;
            (s.name.clone(), s.count)
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let ty = match ty {
            Type::Normal => "Normal",
            Type::Warning => "Warning",
        };
        let mut involved = json!({
            "apiVersion": "v1", "kind": "Pod", "namespace": ns, "name": name, "uid": uid,
            "resourceVersion": pod.metadata.resource_version.clone().unwrap_or_default(),
        });
        if let Some(f) = field_path {
            involved["fieldPath"] = json!(f);
        }
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": &event_name, "namespace": ns},
            "involvedObject": involved,
            "reason": reason, "message": message, "type": ty,
            "source": {"component": "kubelet", "host": self.node},
            "reportingComponent": "kubelet", "reportingInstance": self.node,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        });
        tracing::debug!(pod = %name, namespace = %ns, reason, %message, "event");
        tokio::spawn(async move {
            let result = match count {
                1 => match serde_json::from_value::<Event>(event) {
                    Ok(e) => api.create(&PostParams::default(), &e).await.map(|_| ()),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot build an event");
                        Ok(())
                    }
                },
                _ => {
                    let patch = json!({"count": count, "lastTimestamp": stamp});
                    api.patch(&event_name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map(|_| ())
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "cannot record an event");
            }
        });
    }
}
