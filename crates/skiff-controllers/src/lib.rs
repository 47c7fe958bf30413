//! The controller set of `skiff server`: it owns the reconcile loops that make the
//! cluster's objects so and keep them so — ReplicaSets, ReplicationControllers,
//! Deployments, DaemonSets, StatefulSets, Jobs, CronJobs, HorizontalPodAutoscalers, the
//! Endpoints/EndpointSlices of Services, node lifecycle with taint-based eviction, pod garbage
//! collection, the status of PodDisruptionBudgets, the usage of ResourceQuotas, the
//! ownerReference garbage collector, the namespace controller (emptying namespaces being
//! deleted), the root-CA ConfigMap of every namespace and legacy service-account token
//! Secrets. It must not
//! reach into the API server's storage: everything goes through the Kubernetes API.
//!
//! Every controller is a `reconcile(object, context) -> Result<Action>` plus an error policy
//! on kube-runtime's `applier`, level-triggered and idempotent: it compares what the API
//! asks for with what the API has and writes the difference back. Controllers hold no state
//! the API does not have — shared informer caches fed by one watch per kind
//! ([`informer`]), and expectations that only gate *when* a controller acts again
//! ([`expectations`]) — and they write only through the API, as any remote client does. In
//! `skiff server` the set runs in-process against the API router, leader-elected on a
//! `coordination.k8s.io` Lease ([`leader`]) so that several servers run one active copy.

#![forbid(unsafe_code)]

pub mod cachedpod;
pub mod claim;
pub mod context;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod expectations;
pub mod garbagecollector;
pub mod history;
pub mod hpa;
pub mod index;
pub mod informer;
pub mod job;
pub mod namespace;
pub mod nodelifecycle;
pub mod podcontrol;
pub mod podgc;
pub mod pods;
pub mod replicaset;
pub mod resourcequota;
pub mod runner;
pub mod serviceaccounts;
pub mod statefulset;
pub mod template;
pub mod volumebinding;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;
use kube::Client;

pub use context::{Clock, Config, Context, Informers};
pub use error::{Error, Result};
/// The Lease elector (shared with the scheduler).
pub use skiff_leader as leader;
pub use skiff_leader::{default_identity, LeaseConfig};

/// One controller set: every controller over one set of shared informers.
pub struct Controllers {
    ctx: Arc<Context>,
}

impl Controllers {
    /// A controller set acting as `identity` (its events' reporting instance).
    pub fn new(client: Client, identity: &str) -> Self {
        Self::with_config(client, identity, Config::default())
    }

    /// A controller set with `config` instead of kube-controller-manager's defaults.
    pub fn with_config(client: Client, identity: &str, config: Config) -> Self {
        Controllers {
            ctx: Context::with_config(client, identity, config),
        }
    }

    /// The shared state (informers, expectations), for tests and later controllers.
    pub fn context(&self) -> Arc<Context> {
        self.ctx.clone()
    }

    /// Watches and reconciles until dropped. Controllers subscribe to the informers before
    /// the watches start and act only once every cache is filled.
    pub async fn run(self) {
        let ctx = self.ctx;
        let hpa = hpa::controller(ctx.clone(), ctx.config.hpa);
        let informers = &ctx.informers;
        let rs = replicaset::controller::<ReplicaSet>(
            ctx.clone(),
            informers.replica_sets.store(),
            informers.replica_sets.changes(),
        );
        let rc = replicaset::controller::<ReplicationController>(
            ctx.clone(),
            informers.replication_controllers.store(),
            informers.replication_controllers.changes(),
        );
        let deploy = deployment::controller(ctx.clone());
        let job = job::controller(ctx.clone());
        let endpoints = endpoints::controller(ctx.clone());
        let daemons = daemonset::controller(ctx.clone());
        let nodes = nodelifecycle::controller(ctx.clone());
        let evictions = nodelifecycle::eviction::controller(ctx.clone());
        let gc = podgc::run(ctx.clone());
        let collector = garbagecollector::run(ctx.clone());
        let namespaces = namespace::controller(ctx.clone());
        let stateful = statefulset::controller(ctx.clone());
        let cron = cronjob::controller(ctx.clone());
        let budgets = disruption::controller(ctx.clone());
        let quotas = resourcequota::controller(ctx.clone());
        let binder = volumebinding::controller(ctx.client.clone());
        let sa = ctx.config.service_accounts.clone();
        let root_ca = sa.root_ca.clone();
        let publisher = async {
            if let Some(ca) = root_ca {
                serviceaccounts::root_ca_publisher(ctx.clone(), ca).await
            }
        };
        let tokens = serviceaccounts::token_controller(ctx.clone());
        let controllers = async {
            informers.synced().await;
            tracing::info!(identity = %ctx.identity, "caches synced, controllers running");
            tokio::join!(
                rs, rc, deploy, job, endpoints, daemons, nodes, evictions, gc, stateful, cron,
                budgets, hpa, binder, collector, namespaces, publisher, tokens, quotas
            );
        };
        tokio::join!(informers.run(), controllers);
    }
}

/// The Lease the controller set is elected on (kube-controller-manager's).
pub const LEASE_NAME: &str = "kube-controller-manager";

/// How long a stopping controller set may take to give its Lease back.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the controller set whenever this candidate holds the `lease`, until `shutdown`
/// completes; then gives the Lease back, so another server takes over at once. Several
/// candidates on one API run one active set between them.
pub async fn run_elected(
    client: Client,
    lease: LeaseConfig,
    config: Config,
    shutdown: impl Future<Output = ()>,
) {
    let identity = lease.identity.clone();
    leader::Elector::new(client.clone(), lease)
        .run(
            || Controllers::with_config(client.clone(), &identity, config.clone()).run(),
            shutdown,
        )
        .await
}

/// Starts [`run_elected`] in the background with kube-controller-manager's Lease and
/// timings. The returned future completes once `signal` has and the set has stopped (its
/// Lease released, or [`RELEASE_TIMEOUT`] passed): hand it to the API server as its own
/// shutdown signal so the API outlives the controllers' last writes.
pub fn start(
    client: Client,
    config: Config,
    signal: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let lease = LeaseConfig::new(LEASE_NAME, &default_identity());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_elected(client, lease, config, async {
        let _ = stopped.await;
    }));
    async move {
        signal.await;
        let _ = stop.send(());
        if tokio::time::timeout(RELEASE_TIMEOUT, task).await.is_err() {
            tracing::warn!("the controllers did not stop in time");
        }
    }
}

/// A duration as Kubernetes' flags take it (`40s`, `1m30s`, `500ms`).
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let d: k8s_openapi::jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("invalid duration {s:?}: {e}"))?;
    Duration::try_from(d).map_err(|_| format!("invalid duration {s:?}: negative"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_parse_as_go_writes_them() {
        use std::time::Duration;
        assert_eq!(super::parse_duration("40s"), Ok(Duration::from_secs(40)));
        assert_eq!(super::parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            super::parse_duration("500ms"),
            Ok(Duration::from_millis(500))
        );
        assert!(super::parse_duration("-5s").is_err());
        assert!(super::parse_duration("soon").is_err());
    }
}
