//! What every controller shares: the API client, the shared informers, expectations and
//! the event recorder.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Endpoints, Namespace, Node, ReplicationController, ResourceQuota, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::Client;

use crate::cachedpod::CachedPod;
pub use crate::events::Events;
use crate::expectations::Expectations;
use crate::informer::Informer;

/// One informer per kind any controller reads; later controllers add theirs here.
pub struct Informers {
    /// Pods as [`CachedPod`]s: only what the controllers read.
    pub pods: Informer<CachedPod>,
    pub replica_sets: Informer<ReplicaSet>,
    pub replication_controllers: Informer<ReplicationController>,
    pub deployments: Informer<Deployment>,
    pub jobs: Informer<Job>,
    pub services: Informer<Service>,
    pub endpoints: Informer<Endpoints>,
    pub endpoint_slices: Informer<EndpointSlice>,
    pub nodes: Informer<Node>,
    pub daemon_sets: Informer<DaemonSet>,
    pub controller_revisions: Informer<ControllerRevision>,
    pub hpas: Informer<HorizontalPodAutoscaler>,
    pub leases: Informer<Lease>,
    pub stateful_sets: Informer<StatefulSet>,
    pub cron_jobs: Informer<CronJob>,
    pub disruption_budgets: Informer<PodDisruptionBudget>,
    pub namespaces: Informer<Namespace>,
    pub resource_quotas: Informer<ResourceQuota>,
}

impl Informers {
    /// The cached pods of namespace `ns`.
    pub fn pods_in(&self, ns: &str) -> Vec<Arc<CachedPod>> {
        self.pods.index().in_namespace(ns)
    }

    pub fn new(client: &Client) -> Self {
        Informers {
            pods: Informer::<CachedPod>::new(client.clone()).indexed_by_node(crate::pods::node_of),
            replica_sets: Informer::new(client.clone()),
            replication_controllers: Informer::new(client.clone()),
            deployments: Informer::new(client.clone()),
            jobs: Informer::new(client.clone()),
            services: Informer::new(client.clone()),
            endpoints: Informer::new(client.clone()),
            endpoint_slices: Informer::new(client.clone()),
            nodes: Informer::new(client.clone()),
            daemon_sets: Informer::new(client.clone()),
            controller_revisions: Informer::new(client.clone()),
            hpas: Informer::new(client.clone()),
            leases: Informer::new(client.clone()),
            stateful_sets: Informer::new(client.clone()),
            cron_jobs: Informer::new(client.clone()),
            disruption_budgets: Informer::new(client.clone()),
            namespaces: Informer::new(client.clone()),
            resource_quotas: Informer::new(client.clone()),
        }
    }

    /// Watches every kind until dropped.
    pub async fn run(&self) {
        tokio::join!(
            self.pods.run(),
            self.replica_sets.run(),
            self.replication_controllers.run(),
            self.deployments.run(),
            self.jobs.run(),
            self.services.run(),
            self.endpoints.run(),
            self.endpoint_slices.run(),
            self.nodes.run(),
            self.daemon_sets.run(),
            self.controller_revisions.run(),
            self.hpas.run(),
            self.leases.run(),
            self.stateful_sets.run(),
            self.cron_jobs.run(),
            self.disruption_budgets.run(),
            self.namespaces.run(),
            self.resource_quotas.run(),
        );
    }

    /// Waits until every cache holds its first list (kube-controller-manager's
    /// `WaitForCacheSync`).
    pub async fn synced(&self) {
        tokio::join!(
            self.pods.synced(),
            self.replica_sets.synced(),
            self.replication_controllers.synced(),
            self.deployments.synced(),
            self.jobs.synced(),
            self.services.synced(),
            self.endpoints.synced(),
            self.endpoint_slices.synced(),
            self.nodes.synced(),
            self.daemon_sets.synced(),
            self.controller_revisions.synced(),
            self.hpas.synced(),
            self.leases.synced(),
            self.stateful_sets.synced(),
            self.cron_jobs.synced(),
            self.disruption_budgets.synced(),
            self.namespaces.synced(),
            self.resource_quotas.synced(),
        );
    }
}

/// The wall clock controllers read (tests put a clock of their own in).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The settings of a controller set (kube-controller-manager's flags).
#[derive(Clone)]
pub struct Config {
    /// How long a node may go without renewing its Lease before it is marked
    /// `Ready=Unknown` and tainted unreachable (`--node-monitor-grace-period`).
    pub node_monitor_grace_period: Duration,
    /// Terminated pods kept before pod GC deletes the oldest (`--terminated-pod-gc-threshold`;
    /// 0 turns this off).
    pub terminated_pod_gc_threshold: usize,
    /// How often pod GC looks (kube-controller-manager: 20 s).
    pub pod_gc_period: Duration,
    /// How long a pod bound to a Node that does not exist is left before pod GC deletes it
    /// (kube-controller-manager's quarantine: 40 s).
    pub orphan_quarantine: Duration,
    /// The wall clock (CronJob schedules, taint times).
    pub clock: Clock,
    /// The HorizontalPodAutoscaler controller's settings.
    pub hpa: crate::hpa::Config,
    /// The cluster CA and legacy token signer of the service-account controllers.
    pub service_accounts: crate::serviceaccounts::Config,
    /// How long an eviction's entry in a budget's `status.disruptedPods` waits for the pod to
    /// be deleted before the disruption controller drops it (Kubernetes: 2 min).
    pub pdb_deletion_timeout: Duration,
    /// How often each ResourceQuota's usage is recounted besides the pod and service changes
    /// that trigger it (`--resource-quota-sync-period`, Kubernetes: 5 min).
    pub resource_quota_sync_period: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_monitor_grace_period: Duration::from_secs(40),
            terminated_pod_gc_threshold: 12_500,
            pod_gc_period: Duration::from_secs(20),
            orphan_quarantine: Duration::from_secs(40),
            clock: Arc::new(Timestamp::now),
            hpa: crate::hpa::Config::default(),
            service_accounts: Default::default(),
            pdb_deletion_timeout: Duration::from_secs(120),
            resource_quota_sync_period: Duration::from_secs(300),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("node_monitor_grace_period", &self.node_monitor_grace_period)
            .field(
                "terminated_pod_gc_threshold",
                &self.terminated_pod_gc_threshold,
            )
            .field("pod_gc_period", &self.pod_gc_period)
            .finish_non_exhaustive()
    }
}

/// The shared state of one running controller set.
pub struct Context {
    pub client: Client,
    pub informers: Informers,
    pub expectations: Expectations,
    pub events: Events,
    /// This controller set's identity (its leader-election holder identity).
    pub identity: String,
    pub config: Config,
    /// What the node lifecycle controller has observed of each node's heartbeats.
    pub node_health: crate::nodelifecycle::Health,
    /// The newest discovery of the served resources: the garbage collector refreshes it,
    /// other controllers (the namespace controller) read it instead of discovering again.
    served: std::sync::RwLock<Option<Arc<crate::garbagecollector::mapper::Mapper>>>,
}

impl Context {
    /// Everything a controller set needs, watching nothing yet.
    pub fn new(client: Client, identity: &str) -> Arc<Self> {
        Self::with_config(client, identity, Config::default())
    }

    /// The same with `config`.
    pub fn with_config(client: Client, identity: &str, config: Config) -> Arc<Self> {
        Arc::new(Context {
            informers: Informers::new(&client),
            expectations: Expectations::default(),
            events: Events::new(client.clone()),
            client,
            identity: identity.to_string(),
            config,
            node_health: Default::default(),
            served: Default::default(),
        })
    }

    /// The served resources as last discovered, if anyone has yet.
    pub fn served(&self) -> Option<Arc<crate::garbagecollector::mapper::Mapper>> {
        self.served
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records a fresh discovery of the served resources.
    pub fn set_served(&self, mapper: Arc<crate::garbagecollector::mapper::Mapper>) {
        *self.served.write().unwrap_or_else(|e| e.into_inner()) = Some(mapper);
    }

    /// The served resources: the last discovery, else a new one (recorded).
    pub async fn discover(
        &self,
    ) -> Result<Arc<crate::garbagecollector::mapper::Mapper>, kube::Error> {
        if let Some(m) = self.served() {
            return Ok(m);
        }
        let m = Arc::new(crate::garbagecollector::mapper::Mapper::discover(&self.client).await?);
        self.set_served(m.clone());
        Ok(m)
    }
}
