//! What the scheduler tells users, off the scheduling path: `Scheduled` and
//! `FailedScheduling` Events (repeats of one message bump its count, as client-go's event
//! recorder aggregates them) and the `PodScheduled=False` condition of pods that fit
//! nowhere. Reports queue in a bounded channel and are dropped when it is full, as
//! client-go's broadcaster drops events under load: scheduling never waits for them.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::mpsc;

use crate::podinfo::PodInfo;

/// Reports waiting to be written, at most.
const QUEUE: usize = 1000;
/// Writes in flight at once.
const CONCURRENCY: usize = 8;
/// Field manager and event source of the scheduler's writes.
pub const COMPONENT: &str = "default-scheduler";

/// One thing to tell.
#[derive(Debug)]
pub enum Report {
    Scheduled { pod: Arc<PodInfo>, node: String },
    Unschedulable { pod: Arc<PodInfo>, message: String },
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::Sender<Report>,
    failures: mpsc::UnboundedSender<Report>,
}

impl Reporter {
    /// A reporter writing through `client` as `instance` until every sender is gone.
    pub fn spawn(client: Client, instance: String) -> Reporter {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (failures, mut failed) = mpsc::unbounded_channel();
        let reports = futures::stream::select(
            futures::stream::poll_fn(move |cx| failed.poll_recv(cx)),
            tokio_stream_of(rx),
        );
        tokio::spawn(write_all(client, instance, reports));
        Reporter { tx, failures }
    }

    pub fn send(&self, report: Report) {
        match report {
            Report::Unschedulable { .. } => {
                let _ = self.failures.send(report);
            }
            Report::Scheduled { .. } => {
                if self.tx.try_send(report).is_err() {
                    tracing::debug!("report queue full: Scheduled event dropped");
                }
            }
        }
    }
}

/// The event already written for (pod uid, reason, message), to count repeats in.
type Seen = HashMap<(String, &'static str, String), (String, i32)>;

async fn write_all(client: Client, instance: String, reports: impl futures::Stream<Item = Report>) {
    let seen = Arc::new(tokio::sync::Mutex::new(Seen::new()));
    reports
        .for_each_concurrent(CONCURRENCY, |report| {
            let (client, instance, seen) = (client.clone(), instance.clone(), seen.clone());
            async move {
                if let Err(e) = write(&client, &instance, &seen, report).await {
                    tracing::debug!(error = %e, "cannot write a scheduling report");
                }
            }
        })
        .await;
}

fn tokio_stream_of(mut rx: mpsc::Receiver<Report>) -> impl futures::Stream<Item = Report> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn write(
    client: &Client,
    instance: &str,
    seen: &tokio::sync::Mutex<Seen>,
    report: Report,
) -> Result<(), kube::Error> {
    match report {
        Report::Scheduled { pod, node } => {
            let message = format!("Successfully assigned {} to {node}", pod.key);
            event(client, instance, seen, &pod, "Normal", "Scheduled", message).await
        }
        Report::Unschedulable { pod, message } => {
            condition(client, &pod, &message).await?;
            event(
                client,
                instance,
                seen,
                &pod,
                "Warning",
                "FailedScheduling",
                message,
            )
            .await
        }
    }
}

/// Sets `PodScheduled=False, reason Unschedulable` unless the pod has it with this message.
async fn condition(client: &Client, pod: &PodInfo, message: &str) -> Result<(), kube::Error> {
    let current = pod.scheduled_condition.as_ref();
    if current.is_some_and(|(status, msg)| status == "False" && msg.as_deref() == Some(message)) {
        return Ok(());
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let patch = json!({"status": {"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message, "lastProbeTime": null, "lastTransitionTime": now(),
    }]}});
    let params = PatchParams::default();
    match api
        .patch_status(&pod.name, &params, &Patch::Strategic(patch))
        .await
    {
        // Gone or bound meanwhile: nothing to say any more.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other.map(drop),
    }
}

async fn event(
    client: &Client,
    instance: &str,
    seen: &tokio::sync::Mutex<Seen>,
    pod: &PodInfo,
    kind: &str,
    reason: &'static str,
    message: String,
) -> Result<(), kube::Error> {
    let api: Api<Event> = Api::namespaced(client.clone(), &pod.namespace);
    let key = (pod.uid.clone(), reason, message.clone());
    let now = now();
    let repeat = seen.lock().await.get(&key).cloned();
    if let Some((name, count)) = repeat {
        let patch = json!({"count": count + 1, "lastTimestamp": now});
        if api
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .is_ok()
        {
            seen.lock().await.insert(key, (name, count + 1));
            return Ok(());
        }
    }
    let name = format!(
        "{}.{:x}",
        pod.name,
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let event: Event = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": pod.namespace},
        "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": pod.namespace,
            "name": pod.name, "uid": pod.uid,
            "resourceVersion": pod.resource_version},
        "reason": reason, "message": message, "type": kind,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT, "reportingInstance": instance,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }))
    .map_err(kube::Error::SerdeError)?;
    api.create(&PostParams::default(), &event).await?;
    let mut seen = seen.lock().await;
    // Forget old repeats now and then: a bound on memory, not a correctness matter.
    if seen.len() > 10_000 {
        seen.clear();
    }
    seen.insert(key, (name, 1));
    Ok(())
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
