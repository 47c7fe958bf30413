//! What the engine runs for a pod: its containers, found by their labels, with the state
//! kubelet reads from its runtime.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use skiff_engine::{Engine, Filters, ListOptions};

use crate::error::Result;
use crate::labels;

/// One engine container of a pod (one attempt of one pod container).
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    /// The container's name in the pod spec.
    pub name: String,
    /// `init` or `app`.
    pub kind: String,
    pub attempt: u32,
    /// Docker's status: created, running, paused, restarting, exited, dead.
    pub status: String,
    pub exit_code: i64,
    pub oom_killed: bool,
    /// The runtime's error when the container could not be started.
    pub error: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub image_id: String,
}

impl Instance {
    pub fn running(&self) -> bool {
        matches!(self.status.as_str(), "running" | "paused" | "restarting")
    }

    /// It ran and ended, or it could not be started.
    pub fn finished(&self) -> bool {
        matches!(self.status.as_str(), "exited" | "dead") || self.start_failed()
    }

    pub fn start_failed(&self) -> bool {
        self.status == "created" && !self.error.is_empty()
    }

    /// How long it ran (zero when it never started).
    pub fn ran_for(&self) -> std::time::Duration {
        match (self.started_at, self.finished_at) {
            (Some(s), Some(f)) => (f - s).to_std().unwrap_or_default(),
            _ => std::time::Duration::ZERO,
        }
    }
}

/// Docker's timestamps; its zero time is "never".
fn time(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    if s.starts_with("0001-") {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Ids of the engine's containers carrying `label` (`key` or `key=value`), with their labels.
pub async fn labelled(
    engine: &Engine,
    label: &str,
) -> Result<Vec<(String, HashMap<String, String>)>> {
    let opts = ListOptions {
        all: true,
        filters: Filters::from_pairs([("label", label)]),
        ..Default::default()
    };
    Ok(engine
        .container_list(&opts)
        .await?
        .into_iter()
        .map(|c| (c.id.unwrap_or_default(), c.labels.unwrap_or_default()))
        .collect())
}

/// Every engine container of pod `uid`, oldest attempt first.
pub async fn pod_instances(engine: &Engine, uid: &str) -> Result<Vec<Instance>> {
    let mut out = Vec::new();
    for (id, labels) in labelled(engine, &format!("{}={uid}", labels::POD_UID)).await? {
        let inspect = match engine.container_inspect(&id, false).await {
            Ok(i) => serde_json::to_value(i).unwrap_or_default(),
            // Removed between the list and now.
            Err(skiff_engine::EngineError::NoSuchContainer(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let state = &inspect["State"];
        out.push(Instance {
            id,
            name: labels
                .get(labels::CONTAINER_NAME)
                .cloned()
                .unwrap_or_default(),
            kind: labels
                .get(labels::CONTAINER_KIND)
                .cloned()
                .unwrap_or_default(),
            attempt: labels
                .get(labels::RESTART_COUNT)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0),
            status: state["Status"].as_str().unwrap_or("").to_string(),
            exit_code: state["ExitCode"].as_i64().unwrap_or(0),
            oom_killed: state["OOMKilled"].as_bool().unwrap_or(false),
            error: state["Error"].as_str().unwrap_or("").to_string(),
            started_at: time(&state["StartedAt"]),
            finished_at: time(&state["FinishedAt"]),
            image_id: inspect["Image"].as_str().unwrap_or("").to_string(),
        });
    }
    out.sort_by_key(|i| i.attempt);
    Ok(out)
}
