//! The pod scheduler of `skiff server`, written the way kube-scheduler works: an API client
//! (kube-rs) whose watches feed a cache of nodes and the pods on them, a scheduling queue
//! (active, backoff, unschedulable — retried when the cluster changes), kube-scheduler's
//! default filter and score plugins, and **assume/bind**: a pod is counted on its node
//! before the API confirms the binding, and bindings go through the `pods/binding`
//! subresource concurrently, so throughput is not one API round trip per pod.
//!
//! It owns scheduling decisions only. It holds no state the API does not have (a restart
//! rebuilds everything from watches: assumed pods that were not bound are scheduled again,
//! bound ones are left alone), writes nothing but bindings, the `PodScheduled` condition and
//! Events, and never runs or evicts pods. Several servers run one active scheduler through
//! leader election on the `kube-system/kube-scheduler` Lease.

#![forbid(unsafe_code)]

mod algorithm;
mod cache;
mod plugins;
mod podinfo;
mod quantity;
mod queue;
mod report;
mod scheduler;

use std::future::Future;

pub use algorithm::FitError;
pub use report::{BURST as DEFAULT_API_BURST, WRITES_PER_SECOND as DEFAULT_API_QPS};
pub use scheduler::{Config, Metrics, Scheduler};
pub use skiff_leader::LeaseConfig;

/// Runs the scheduler through `client` while it holds the scheduler Lease (`config.lease`),
/// until `stop`; on stop the Lease is released so another server takes over at once.
pub async fn run(client: kube::Client, config: Config, stop: impl Future<Output = ()>) {
    let lease = config.lease.clone();
    skiff_leader::Elector::new(client.clone(), lease)
        .run(
            || {
                // Dropped (and so stopped) when leadership is lost or on `stop`.
                Scheduler::new(client.clone(), config.clone()).run(std::future::pending())
            },
            stop,
        )
        .await
}

/// A scheduler running in the background (see [`spawn`]).
pub struct Handle {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// Stops scheduling and gives the Lease up.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Starts the leader-elected scheduler with `config` on `client` (what `skiff server` runs).
pub fn spawn(client: kube::Client, config: Config) -> Handle {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(client, config, async {
        let _ = stopped.await;
    }));
    Handle { stop, task }
}
