//! The scheduling queue (kube-scheduler's `PriorityQueue`): pods waiting for a scheduling
//! attempt are **active** (ordered by priority, then by arrival), pods whose attempt failed
//! wait out an exponential **backoff**, and pods that fit nowhere stay **unschedulable**
//! until the cluster changes (a node added or updated, a pod deleted) or five minutes pass.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::podinfo::{PodInfo, PodKey};

/// First backoff after a failed attempt (kube-scheduler's `podInitialBackoffSeconds`).
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest backoff (`podMaxBackoffSeconds`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a pod stays unschedulable without any cluster change before it is tried again.
pub const UNSCHEDULABLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How often the unschedulable pods are looked over for those past [`UNSCHEDULABLE_TIMEOUT`]
/// (kube-scheduler's `flushUnschedulablePodsLeftover` runs every 30 s): a walk over all of
/// them, so not on every turn of the scheduling loop.
pub const LEFTOVER_FLUSH_EVERY: Duration = Duration::from_secs(30);

/// A pod in the queue.
#[derive(Debug, Clone)]
pub struct QueuedPod {
    pub info: Arc<PodInfo>,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// When the pod first entered the queue.
    pub first_seen: Instant,
    /// When it last entered its current sub-queue.
    pub since: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff(Instant),
    Unschedulable,
    /// Popped: a scheduling attempt (and its binding) is under way.
    InFlight,
}

#[derive(Debug)]
struct Item {
    pod: QueuedPod,
    place: Place,
    /// Bumped on every move; heap entries of older moves are stale.
    seq: u64,
    /// Value of [`Queue::moves`] when the pod was popped.
    popped_at_move: u64,
}

/// Active order: higher priority first, then earlier arrival.
type ActiveKey = (Reverse<i32>, Instant, u64);

/// The three sub-queues, keyed by pod.
#[derive(Debug, Default)]
pub struct Queue {
    items: HashMap<PodKey, Item>,
    active: BinaryHeap<Reverse<(ActiveKey, PodKey)>>,
    backoff: BinaryHeap<Reverse<(Instant, u64, PodKey)>>,
    seq: u64,
    /// Cluster changes seen so far: a pod that failed while one arrived is retried.
    moves: u64,
    /// When the unschedulable pods were last looked over for timed-out ones.
    leftovers_flushed: Option<Instant>,
}

impl Queue {
    /// A pending pod arrived or changed.
    pub fn add_or_update(&mut self, info: Arc<PodInfo>) {
        let now = Instant::now();
        match self.items.get_mut(&info.key) {
            Some(item) => {
                // An update may make an unschedulable pod fit (new tolerations, smaller
                // requests): try it again. Its status alone cannot (the scheduler's own
                // `PodScheduled=False` write comes back as such an update).
                let retry = item.place == Place::Unschedulable
                    && item.pod.info.changed_for_scheduling(&info);
                item.pod.info = info;
                if retry {
                    let key = item.pod.info.key.clone();
                    self.requeue(&key, now);
                }
            }
            None => {
                let key = info.key.clone();
                let pod = QueuedPod {
                    info,
                    attempts: 0,
                    first_seen: now,
                    since: now,
                };
                self.items.insert(
                    key.clone(),
                    Item {
                        pod,
                        place: Place::InFlight,
                        seq: 0,
                        popped_at_move: 0,
                    },
                );
                self.make_active(&key, now);
            }
        }
    }

    /// The pod is gone, bound, or no longer this scheduler's.
    pub fn remove(&mut self, key: &str) {
        self.items.remove(key);
    }

    fn make_active(&mut self, key: &str, now: Instant) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(item) = self.items.get_mut(key) {
            item.place = Place::Active;
            item.seq = seq;
            item.pod.since = now;
            let k = (
                Reverse(item.pod.info.priority),
                item.pod.first_seen.min(now),
                seq,
            );
            self.active.push(Reverse((k, item.pod.info.key.clone())));
        }
    }

    fn send_to_backoff(&mut self, key: &str, until: Instant) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(item) = self.items.get_mut(key) {
            item.place = Place::Backoff(until);
            item.seq = seq;
            self.backoff
                .push(Reverse((until, seq, item.pod.info.key.clone())));
        }
    }

    /// Back to active, or to backoff while its backoff since the last attempt runs.
    fn requeue(&mut self, key: &str, now: Instant) {
        let Some(item) = self.items.get(key) else {
            return;
        };
        let until = item.pod.since + backoff(item.pod.attempts);
        if item.pod.attempts > 0 && until > now {
            self.send_to_backoff(key, until);
        } else {
            self.make_active(key, now);
        }
    }

    /// The next pod to schedule, if one is active.
    pub fn pop(&mut self) -> Option<QueuedPod> {
        while let Some(Reverse(((_, _, seq), key))) = self.active.pop() {
            let moves = self.moves;
            let Some(item) = self.items.get_mut(&key) else {
                continue;
            };
            if item.seq != seq || item.place != Place::Active {
                continue;
            }
            item.place = Place::InFlight;
            item.popped_at_move = moves;
            item.pod.attempts += 1;
            return Some(item.pod.clone());
        }
        None
    }

    /// The attempt of a popped pod failed: it waits for a cluster change (or, when one
    /// happened during the attempt, only for its backoff).
    pub fn unschedulable(&mut self, key: &str) {
        let now = Instant::now();
        let Some(item) = self.items.get_mut(key) else {
            return;
        };
        item.pod.since = now;
        if item.popped_at_move != self.moves {
            let until = now + backoff(item.pod.attempts);
            self.send_to_backoff(key, until);
        } else {
            self.seq += 1;
            item.place = Place::Unschedulable;
            item.seq = self.seq;
        }
    }

    /// The attempt of a popped pod hit an error (its binding failed): retry after backoff.
    pub fn retry(&mut self, key: &str) {
        let now = Instant::now();
        if let Some(item) = self.items.get_mut(key) {
            item.pod.since = now;
            let until = now + backoff(item.pod.attempts);
            self.send_to_backoff(key, until);
        }
    }

    /// The cluster changed in a way that may let unschedulable pods fit.
    pub fn move_all(&mut self) {
        self.moves += 1;
        let now = Instant::now();
        let keys: Vec<PodKey> = self
            .items
            .iter()
            .filter(|(_, i)| i.place == Place::Unschedulable)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.requeue(&k, now);
        }
    }

    /// Moves pods whose backoff ended to active, and (every [`LEFTOVER_FLUSH_EVERY`]) pods
    /// unschedulable for longer than [`UNSCHEDULABLE_TIMEOUT`] back to the queue. Returns
    /// when to call it next.
    pub fn flush(&mut self, now: Instant) -> Option<Instant> {
        while let Some(Reverse((until, seq, key))) = self.backoff.peek().cloned() {
            if until > now {
                break;
            }
            self.backoff.pop();
            if self
                .items
                .get(&key)
                .is_some_and(|i| i.seq == seq && matches!(i.place, Place::Backoff(_)))
            {
                self.make_active(&key, now);
            }
        }
        if self
            .leftovers_flushed
            .is_none_or(|at| now.saturating_duration_since(at) >= LEFTOVER_FLUSH_EVERY)
        {
            self.leftovers_flushed = Some(now);
            self.flush_leftovers(now);
        }
        self.backoff.peek().map(|Reverse((until, _, _))| *until)
    }

    /// Pods unschedulable for longer than [`UNSCHEDULABLE_TIMEOUT`] go back to active.
    fn flush_leftovers(&mut self, now: Instant) {
        let stale: Vec<PodKey> = self
            .items
            .iter()
            .filter(|(_, i)| {
                i.place == Place::Unschedulable
                    && now.saturating_duration_since(i.pod.since) >= UNSCHEDULABLE_TIMEOUT
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.make_active(&k, now);
        }
    }

    /// Whether the pod waits as unschedulable.
    #[cfg(test)]
    pub fn is_unschedulable(&self, key: &str) -> bool {
        self.items
            .get(key)
            .is_some_and(|i| i.place == Place::Unschedulable)
    }
}

/// Backoff after `attempts` attempts: 1 s doubling up to 10 s.
fn backoff(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(8);
    (INITIAL_BACKOFF * (1u32 << shift)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(name: &str, priority: i32) -> Arc<PodInfo> {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "d"},
            "spec": {"containers": [], "priority": priority}}))
        .unwrap();
        PodInfo::new(p, &mut Default::default())
    }

    #[test]
    fn higher_priority_pops_first_then_arrival_order() {
        let mut q = Queue::default();
        q.add_or_update(pod("low", 0));
        q.add_or_update(pod("high", 10));
        q.add_or_update(pod("low2", 0));
        let order: Vec<String> =
            std::iter::from_fn(|| q.pop().map(|p| p.info.name().to_string())).collect();
        assert_eq!(order, ["high", "low", "low2"]);
    }

    #[test]
    fn unschedulable_pods_wait_for_a_cluster_change() {
        let mut q = Queue::default();
        q.add_or_update(pod("a", 0));
        let p = q.pop().unwrap();
        q.unschedulable(&p.info.key);
        assert!(q.pop().is_none());
        assert!(q.is_unschedulable("d/a"));
        q.move_all();
        // First attempt failed less than its backoff ago: it waits in backoff.
        assert!(q.pop().is_none());
        let later = Instant::now() + MAX_BACKOFF;
        q.flush(later);
        assert_eq!(q.pop().unwrap().info.name(), "a");
    }

    #[test]
    fn a_change_during_the_attempt_sends_the_pod_to_backoff_not_unschedulable() {
        let mut q = Queue::default();
        q.add_or_update(pod("a", 0));
        let p = q.pop().unwrap();
        q.move_all();
        q.unschedulable(&p.info.key);
        assert!(!q.is_unschedulable("d/a"));
        q.flush(Instant::now() + MAX_BACKOFF);
        assert!(q.pop().is_some());
    }

    fn with_condition(info: &PodInfo, message: &str, rv: &str) -> Arc<PodInfo> {
        let mut newer = info.clone();
        newer.scheduled_condition = Some(("False".into(), Some(message.into())));
        newer.resource_version = Some(rv.into());
        Arc::new(newer)
    }

    #[test]
    fn its_own_condition_written_does_not_retry_an_unschedulable_pod() {
        let mut q = Queue::default();
        q.add_or_update(pod("a", 0));
        let p = q.pop().unwrap();
        q.unschedulable(&p.info.key);
        // The watch brings the pod back with the PodScheduled=False condition just written.
        q.add_or_update(with_condition(&p.info, "0/0 nodes are available", "7"));
        assert!(
            q.is_unschedulable("d/a"),
            "still waiting for a cluster change"
        );
        q.flush(Instant::now() + MAX_BACKOFF);
        assert!(q.pop().is_none());
        // The kept version is the newest (reports compare against its condition).
        assert_eq!(
            q.items["d/a"].pod.info.resource_version.as_deref(),
            Some("7")
        );

        // A change scheduling looks at (a new toleration) is retried after its backoff.
        let mut tolerant = (*q.items["d/a"].pod.info).clone();
        let mut tolerations = tolerant.tolerations.to_vec();
        tolerations.push(Default::default());
        tolerant.tolerations = tolerations.into();
        q.add_or_update(Arc::new(tolerant));
        assert!(!q.is_unschedulable("d/a"));
        q.flush(Instant::now() + MAX_BACKOFF);
        assert_eq!(q.pop().unwrap().info.name(), "a");
    }

    #[test]
    fn unschedulable_pods_come_back_after_the_timeout_without_a_change() {
        let mut q = Queue::default();
        q.add_or_update(pod("a", 0));
        let p = q.pop().unwrap();
        q.unschedulable(&p.info.key);
        let start = Instant::now();
        q.flush(start);
        assert!(q.pop().is_none());
        q.flush(start + UNSCHEDULABLE_TIMEOUT);
        assert_eq!(q.pop().unwrap().info.name(), "a");
    }

    #[test]
    fn backoff_doubles_to_its_maximum() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(9), MAX_BACKOFF);
    }
}
