//! What the scheduler tells users, off the scheduling path: `Scheduled` and
//! `FailedScheduling` Events (repeats of one message bump its count, as client-go's event
//! recorder aggregates them) and the `PodScheduled=False` condition of pods that fit
//! nowhere.
//!
//! These writes are paced the way kube-scheduler's are by its client's rate limit
//! (`--kube-api-qps` 50, `--kube-api-burst` 100): by default at most [`WRITES_PER_SECOND`]
//! after a burst of [`BURST`] (`Config::api_qps`, `Config::api_burst`), so a flood of pods that fit nowhere (10,000 created at once with no node) does
//! not double the API server's write load while users read it. Bindings are not paced.
//! - Conditions are never dropped, and **coalesced**: one write per pod waits, carrying the
//!   latest message; a pod bound or deleted meanwhile is not written, and one that already
//!   has the condition with this message is not written again. They go before events.
//! - Events queue in a bounded channel and are dropped when it is full, as client-go's
//!   broadcaster drops them (its queue holds 1,000): scheduling never waits for them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};

use crate::podinfo::{PodInfo, PodKey};

/// Events waiting to be written, at most.
const QUEUE: usize = 1000;
/// Writes in flight at once.
const CONCURRENCY: usize = 8;
/// Report writes per second once the burst is spent, by default.
pub const WRITES_PER_SECOND: f64 = 100.0;
/// Report writes that go at once after a quiet spell, by default.
pub const BURST: u32 = 100;
/// Field manager and event source of the scheduler's writes.
pub const COMPONENT: &str = "default-scheduler";

/// One thing to tell.
#[derive(Debug)]
pub enum Report {
    Scheduled {
        pod: Arc<PodInfo>,
        node: String,
    },
    /// The message is shared: pods that fit nowhere for one reason hold one copy.
    Unschedulable {
        pod: Arc<PodInfo>,
        message: Arc<str>,
    },
}

/// Conditions waiting to be written: per pod, its latest version and message.
type Pending = Arc<Mutex<HashMap<PodKey, (Arc<PodInfo>, Arc<str>)>>>;

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Reporter {
    events: mpsc::Sender<Report>,
    /// Pods whose condition waits in `pending`, in the order they began to wait.
    conditions: mpsc::UnboundedSender<PodKey>,
    pending: Pending,
}

impl Reporter {
    /// A reporter writing through `client` as `instance` until every sender is gone, at
    /// most `qps` writes a second after a burst of `burst`.
    pub fn spawn(client: Client, instance: String, qps: f64, burst: u32) -> Reporter {
        let (events, events_rx) = mpsc::channel(QUEUE);
        let (conditions, conditions_rx) = mpsc::unbounded_channel();
        let pending = Pending::default();
        let writer = Writer {
            client,
            instance,
            seen: Arc::default(),
            pending: pending.clone(),
            bucket: Bucket::new(qps, f64::from(burst)),
            slots: Arc::new(Semaphore::new(CONCURRENCY)),
        };
        tokio::spawn(writer.run(conditions_rx, events_rx));
        Reporter {
            events,
            conditions,
            pending,
        }
    }

    pub fn send(&self, report: Report) {
        if let Report::Unschedulable { pod, message } = &report {
            if has_condition(pod, message) {
                self.cancel(&pod.key);
            } else {
                let waiting =
                    lock(&self.pending).insert(pod.key.clone(), (pod.clone(), message.clone()));
                if waiting.is_none() {
                    let _ = self.conditions.send(pod.key.clone());
                }
            }
        }
        if self.events.try_send(report).is_err() {
            tracing::debug!("report queue full: event dropped");
        }
    }

    /// The pod is bound (or assumed), deleted or no longer this scheduler's: a condition
    /// still waiting for it is not written.
    pub fn cancel(&self, key: &str) {
        lock(&self.pending).remove(key);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the pod carries `PodScheduled=False` with `message` already.
fn has_condition(pod: &PodInfo, message: &str) -> bool {
    pod.scheduled_condition
        .as_ref()
        .is_some_and(|(status, msg)| &**status == "False" && msg.as_deref() == Some(message))
}

/// A token bucket: `rate` tokens a second, holding at most `burst`.
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A bucket that always refills (a rate of at least one write an hour) and holds at
    /// least one token, whatever it is given.
    fn new(rate: f64, burst: f64) -> Bucket {
        let rate = if rate.is_finite() {
            rate.max(1.0 / 3600.0)
        } else {
            WRITES_PER_SECOND
        };
        let burst = burst.max(1.0);
        Bucket {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    /// How long until a token is there (zero: one was taken).
    fn try_take(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }

    async fn take(&mut self) {
        loop {
            match self.try_take(Instant::now()) {
                Duration::ZERO => return,
                wait => tokio::time::sleep(wait).await,
            }
        }
    }
}

/// The event already written for (pod uid, reason, message), to count repeats in.
type Seen = HashMap<(Arc<str>, &'static str, Arc<str>), (Box<str>, i32)>;

/// The receiving side: paces and performs the writes.
struct Writer {
    client: Client,
    instance: String,
    seen: Arc<tokio::sync::Mutex<Seen>>,
    pending: Pending,
    bucket: Bucket,
    slots: Arc<Semaphore>,
}

/// One write to make.
enum Write {
    Condition(Arc<PodInfo>, Arc<str>),
    Event(Report),
}

impl Writer {
    async fn run(
        mut self,
        mut conditions: mpsc::UnboundedReceiver<PodKey>,
        mut events: mpsc::Receiver<Report>,
    ) {
        loop {
            // Conditions first: they are what `kubectl get pod` shows and are never dropped.
            let next = tokio::select! {
                biased;
                Some(key) = conditions.recv() => Some(key).filter(|k| lock(&self.pending).contains_key(k)).map(Ok),
                Some(report) = events.recv() => Some(Err(report)),
                else => return,
            };
            let Some(next) = next else { continue };
            self.bucket.take().await;
            let w = match next {
                // Taken only now: the latest message, unless the pod was bound meanwhile.
                Ok(key) => match lock(&self.pending).remove(&key) {
                    Some((pod, message)) => Write::Condition(pod, message),
                    None => continue,
                },
                Err(report) => Write::Event(report),
            };
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                return;
            };
            let (client, instance, seen) = (
                self.client.clone(),
                self.instance.clone(),
                self.seen.clone(),
            );
            tokio::spawn(async move {
                if let Err(e) = write(&client, &instance, &seen, w).await {
                    tracing::debug!(error = %e, "cannot write a scheduling report");
                }
                drop(slot);
            });
        }
    }
}

async fn write(
    client: &Client,
    instance: &str,
    seen: &tokio::sync::Mutex<Seen>,
    w: Write,
) -> Result<(), kube::Error> {
    match w {
        Write::Condition(pod, message) => condition(client, &pod, &message).await,
        Write::Event(Report::Scheduled { pod, node }) => {
            let message = format!("Successfully assigned {} to {node}", pod.key).into();
            event(client, instance, seen, &pod, "Normal", "Scheduled", message).await
        }
        Write::Event(Report::Unschedulable { pod, message }) => {
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

/// Sets `PodScheduled=False, reason Unschedulable` with `message`.
async fn condition(client: &Client, pod: &PodInfo, message: &str) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let patch = json!({"status": {"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message, "lastProbeTime": null, "lastTransitionTime": now(),
    }]}});
    let params = PatchParams::default();
    match api
        .patch_status(pod.name(), &params, &Patch::Strategic(patch))
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
    message: Arc<str>,
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
        pod.name(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let event: Event = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": &*pod.namespace},
        "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": &*pod.namespace,
            "name": pod.name(), "uid": &*pod.uid,
            "resourceVersion": pod.resource_version},
        "reason": reason, "message": &*message, "type": kind,
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
    seen.insert(key, (name.into(), 1));
    Ok(())
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_gives_its_burst_then_paces() {
        let mut b = Bucket::new(100.0, 3.0);
        let t = b.at;
        for _ in 0..3 {
            assert_eq!(b.try_take(t), Duration::ZERO);
        }
        let wait = b.try_take(t);
        assert!(
            wait > Duration::from_millis(9) && wait <= Duration::from_millis(10),
            "{wait:?}"
        );
        assert_eq!(b.try_take(t + Duration::from_millis(11)), Duration::ZERO);
        // A long quiet spell refills no more than the burst.
        let later = t + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.try_take(later), Duration::ZERO);
        }
        assert!(b.try_take(later) > Duration::ZERO);
    }
}
