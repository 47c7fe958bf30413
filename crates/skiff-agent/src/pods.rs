//! The pod loop: a kube-runtime controller over the pods bound to this node (a watch with
//! `spec.nodeName=<node>`), reconciling each with [`Ctx::sync_pod`] when it changes, when
//! one of its engine containers starts or dies, and every [`crate::sync::RESYNC`]; plus
//! housekeeping that stops and removes what the engine runs for pods the API no longer has.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::Api;
use skiff_engine::Engine;

use crate::backoff::Backoff;
use crate::error::{AgentError, Result};
use crate::events::Recorder;
use crate::labels;
use crate::observe;
use crate::sandbox::Sandboxes;

/// How often housekeeping looks for containers and sandboxes of pods that are gone.
const HOUSEKEEPING: Duration = Duration::from_secs(2);
/// Seconds between SIGTERM and SIGKILL for containers of pods the API no longer has
/// (kubelet's override for orphaned pods).
const ORPHAN_GRACE: i64 = 1;

/// What every sync shares.
pub struct Ctx {
    pub engine: Arc<Engine>,
    pub client: kube::Client,
    pub sandboxes: Sandboxes,
    pub events: Recorder,
    pub node: String,
    pub node_ip: IpAddr,
    /// The engine's cgroup parent; pods live in `<parent>/kubepods[/<qos>]/pod<uid>`
    /// ([`crate::qos`]).
    pub cgroup_parent: String,
    pub backoff: Backoff,
    /// When an image pull (`<uid>/image/<image>`) or a container start (`start/<id>`) last
    /// failed.
    pub pull_failures: Mutex<HashMap<String, chrono::DateTime<chrono::Utc>>>,
    /// Probe results of running containers.
    pub probes: crate::probes::Results,
    /// Pods whose cgroup got its pod-level limits from this agent.
    pub limited: Mutex<HashSet<String>>,
    /// Service-account tokens of projected volumes.
    pub tokens: crate::tokens::TokenManager,
    /// Places for the CPU-bound part of pod starts ([`crate::starts`]).
    pub(crate) starts: crate::starts::Starts,
}

impl Ctx {
    pub(crate) fn pod_cgroup(&self, pod: &Pod) -> String {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        crate::qos::cgroup(&self.cgroup_parent, crate::qos::class(pod), uid)
    }

    /// Gives the pod's cgroup its pod-level limits once its first container made it (they
    /// never change: a pod's resources are immutable).
    pub(crate) async fn limit_pod_cgroup(&self, pod: &Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if !self
            .limited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid)
        {
            return;
        }
        let path = self.pod_cgroup(pod);
        let limits = crate::qos::pod_limits(pod);
        let done = tokio::task::spawn_blocking(move || crate::qos::apply(&path, &limits)).await;
        if let Ok(Err(e)) = done {
            let e = crate::error::chain(&e);
            tracing::warn!(error = %e, pod = ?pod.metadata.name, "pod cgroup limits not set");
            // Tried again at the next start.
            self.limited
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(pod.metadata.uid.as_deref().unwrap_or_default());
        }
    }

    /// Removes everything of pod `uid` on the node: its containers, sandbox and cgroup.
    pub(crate) async fn remove_pod_resources(&self, uid: &str) -> Result<()> {
        for (id, _) in
            observe::labelled(&self.engine, &format!("{}={uid}", labels::POD_UID)).await?
        {
            match self.engine.container_remove(&id, true, false).await {
                Ok(()) | Err(skiff_engine::EngineError::NoSuchContainer(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.sandboxes.remove(uid).await?;
        for path in crate::qos::all_cgroups(&self.cgroup_parent, uid) {
            if let Err(e) = skiff_runtime::cgroups::remove(&path) {
                tracing::debug!(error = %e, uid, "pod cgroup not removed");
            }
        }
        self.backoff.forget(&format!("{uid}/"));
        self.limited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
        Ok(())
    }

    /// Stops and removes what runs for pods that `store` does not have (force-deleted, or
    /// deleted while the agent was down): as kubelet kills such orphans, SIGTERM and
    /// [`ORPHAN_GRACE`] before SIGKILL — a pod that is gone from the API no longer has a
    /// grace period to honour (a graceful delete waits for its node).
    pub(crate) async fn housekeeping(&self, store: &Store<Pod>) -> Result<()> {
        let known: HashSet<String> = store
            .state()
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        let mut orphans: HashMap<String, Vec<String>> = HashMap::new();
        for (id, l) in observe::labelled(&self.engine, labels::POD_UID).await? {
            let uid = l.get(labels::POD_UID).cloned().unwrap_or_default();
            if !known.contains(&uid) {
                orphans.entry(uid).or_default().push(id);
            }
        }
        for uid in self.sandboxes.uids() {
            if !known.contains(&uid) {
                orphans.entry(uid).or_default();
            }
        }
        for (uid, containers) in orphans {
            tracing::info!(
                uid,
                "removing the containers and sandbox of a pod that is gone"
            );
            let stops = containers.iter().map(|id| {
                self.engine
                    .container_stop(id, Some("SIGTERM"), Some(ORPHAN_GRACE))
            });
            futures::future::join_all(stops).await;
            self.remove_pod_resources(&uid).await?;
        }
        Ok(())
    }
}

fn error_policy(_pod: Arc<Pod>, e: &AgentError, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %crate::error::chain(e), "pod sync failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Ctx>) -> Result<Action> {
    let span = tracing::info_span!(
        "sync_pod",
        pod = pod.metadata.name.as_deref().unwrap_or(""),
        namespace = pod.metadata.namespace.as_deref().unwrap_or("")
    );
    let _ = span.enter();
    let again = ctx.sync_pod(&pod).await?;
    Ok(Action::requeue(again))
}

/// Engine container events of pod containers, as the pods they belong to.
fn engine_triggers(
    engine: &Engine,
) -> impl futures::Stream<Item = ObjectRef<Pod>> + Send + 'static {
    engine
        .events(skiff_engine::EventsOptions::default())
        .filter_map(|ev| async move {
            let action = ev.action.clone().unwrap_or_default();
            if !matches!(action.as_str(), "start" | "die" | "oom" | "destroy") {
                return None;
            }
            let attrs = ev.actor.and_then(|a| a.attributes).unwrap_or_default();
            let name = attrs.get(labels::POD_NAME)?;
            let ns = attrs.get(labels::POD_NAMESPACE)?;
            Some(ObjectRef::new(name).within(ns))
        })
}

/// Runs the pod loop until `stop` turns true.
pub async fn run(ctx: Arc<Ctx>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let selector = format!("spec.nodeName={}", ctx.node);
    let controller = Controller::new(api, watcher::Config::default().fields(&selector));
    let store = controller.store();
    let mut stop_controller = stop.clone();
    let loop_ctx = ctx.clone();
    let (probe_tx, probe_rx) = futures::channel::mpsc::unbounded();
    let prober = crate::probes::run(ctx.clone(), store.clone(), probe_tx, stop.clone());
    let pods = controller
        .reconcile_on(futures::stream::select(
            engine_triggers(&ctx.engine),
            probe_rx,
        ))
        .graceful_shutdown_on(async move {
            crate::until_stopped(&mut stop_controller).await;
        })
        .run(reconcile, error_policy, loop_ctx)
        .for_each(|_| futures::future::ready(()));
    let housekeeping = async {
        if store.wait_until_ready().await.is_err() {
            return;
        }
        let mut tick = tokio::time::interval(HOUSEKEEPING);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = crate::until_stopped(&mut stop) => return,
            }
            if let Err(e) = ctx.housekeeping(&store).await {
                tracing::warn!(error = %crate::error::chain(&e), "housekeeping failed");
            }
        }
    };
    futures::join!(pods, housekeeping, prober);
}
