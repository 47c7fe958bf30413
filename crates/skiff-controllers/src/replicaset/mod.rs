//! The replica controller (kube-controller-manager's ReplicaSet and ReplicationController
//! controllers, one implementation for both kinds): keeps `replicas` active pods from the
//! template, claiming pods by selector and owner reference, creating in slow-start batches
//! under expectations, deleting the least valuable pods first, and reporting `status`.

mod kinds;
mod status;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::Future;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;

pub use kinds::Replicated;

use crate::cachedpod::CachedPod;
use crate::claim::Claimer;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::informer::Change;
use crate::podcontrol;
use crate::pods::{self, controller_of};
use crate::runner::{self, Triggers};

/// kube-controller-manager's `burstReplicas`: at most this many creations or deletions per
/// sync.
pub const BURST_REPLICAS: usize = podcontrol::BURST;

/// The expectations key of an object of kind `K`.
pub fn key<K: Replicated>(namespace: &str, name: &str) -> String {
    crate::expectations::key(K::KIND, namespace, name)
}

/// Whether an owner reference names an object of kind `K`.
fn refers_to<K: Replicated>(
    r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> bool {
    r.kind == K::KIND && r.api_version.split('/').next() == K::API_VERSION.split('/').next()
}

/// The controller of kind `K`, running until dropped; `store` is its kind's cache.
pub fn controller<K: Replicated>(
    ctx: Arc<Context>,
    store: Store<K>,
    own_changes: impl futures::Stream<Item = Change<K>> + Send + 'static,
) -> impl Future<Output = ()> + Send {
    let pods = pod_triggers::<K>(ctx.clone(), store.clone());
    let owners = {
        let ctx = ctx.clone();
        let store = store.clone();
        runner::map_changes(own_changes, move |c| match c {
            Change::Applied { new, .. } => vec![ObjectRef::from_obj(new.as_ref())],
            Change::Deleted(old) => {
                ctx.expectations.forget(&key::<K>(
                    &old.namespace().unwrap_or_default(),
                    &old.name_any(),
                ));
                vec![]
            }
            Change::Relisted => runner::all(&store),
        })
    };
    let name = K::KIND;
    runner::run(name, ctx, store, vec![owners, pods], |obj, ctx| {
        Box::pin(reconcile::<K>(obj, ctx))
    })
}

/// Pod changes: lower expectations, and wake the controlling owner (or, for orphans,
/// every owner whose selector matches).
fn pod_triggers<K: Replicated>(ctx: Arc<Context>, owners: Store<K>) -> Triggers<K> {
    let changes = ctx.informers.pods.changes();
    runner::map_changes(changes, move |c| {
        let mut out = Vec::new();
        let mut wake = |pod: &CachedPod, deleted: bool| {
            let ns = pod.namespace().unwrap_or_default();
            match controller_of(&pod.metadata) {
                Some(r) if refers_to::<K>(r) => {
                    let k = key::<K>(&ns, &r.name);
                    ctx.expectations.observe(&k, &pod.metadata, deleted);
                    out.push(ObjectRef::new(&r.name).within(&ns));
                }
                Some(_) => {}
                None if deleted => {}
                None => {
                    let labels = pod.labels().clone();
                    for owner in owners.state() {
                        if owner.namespace().as_deref() == Some(ns.as_str())
                            && owner
                                .selector()
                                .is_ok_and(|s| kube::core::SelectorExt::matches(&s, &labels))
                        {
                            out.push(ObjectRef::from_obj(owner.as_ref()));
                        }
                    }
                }
            }
        };
        match c {
            Change::Applied { old, new } => {
                wake(&new, false);
                if let Some(old) = old {
                    if controller_of(&old.metadata).map(|r| &r.uid)
                        != controller_of(&new.metadata).map(|r| &r.uid)
                    {
                        wake(&old, false);
                    }
                }
            }
            Change::Deleted(old) => wake(&old, true),
            Change::Relisted => return runner::all(&owners),
        }
        out
    })
}

/// One sync of one object (kube-controller-manager's `syncReplicaSet`).
pub async fn reconcile<K: Replicated>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let key = key::<K>(&ns, &name);
    let selector = obj.selector().map_err(|reason| Error::Invalid {
        kind: K::KIND,
        name: name.clone(),
        reason,
    })?;
    // Only the pods it controls and the namespace's orphans can be claimed: the index
    // finds them without reading every cached pod (upstream's controllerUIDIndex).
    let index = ctx.informers.pods.index();
    let candidates = index.claimable(&ns, obj.meta().uid.as_deref().unwrap_or_default());
    let alive: HashSet<&str> = candidates
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.uid.as_deref())
        .collect();
    let needs_sync = ctx.expectations.satisfied(
        &key,
        |pod| index.get(&ns, pod).is_some(),
        |uid| alive.contains(uid),
    );
    let active: Vec<Arc<CachedPod>> = candidates
        .iter()
        .filter(|p| pods::is_active(p))
        .cloned()
        .collect();
    let claimer = Claimer::new(
        &ctx.client,
        obj.as_ref(),
        K::API_VERSION,
        K::KIND,
        &selector,
    );
    let owned = claimer.claim(active).await?;

    let mut failure = None;
    if needs_sync && obj.meta().deletion_timestamp.is_none() {
        failure = manage(obj.as_ref(), &owned, &key, &ctx).await.err();
    }
    let now = Timestamp::now();
    status::write(obj.as_ref(), &owned, failure.as_ref(), now, &ctx).await?;
    if let Some(f) = failure {
        return Err(f.error);
    }
    // A ready pod becomes available after minReadySeconds: look again then.
    let min_ready = obj.min_ready_seconds();
    let next = owned
        .iter()
        .filter_map(|p| pods::until_available(p, min_ready, now))
        .min();
    Ok(match next {
        Some(d) => Action::requeue(d + Duration::from_millis(100)),
        None => Action::await_change(),
    })
}

/// Why creating or deleting failed, for the `ReplicaFailure` condition.
pub(crate) struct Failure {
    pub reason: &'static str,
    pub error: Error,
}

/// Creates or deletes pods so that `owned` matches `replicas` (`manageReplicas`).
async fn manage<K: Replicated>(
    obj: &K,
    owned: &[Arc<CachedPod>],
    key: &str,
    ctx: &Context,
) -> Result<(), Failure> {
    let want = usize::try_from(obj.replicas()).unwrap_or(0);
    let ns = obj.namespace().unwrap_or_default();
    let regarding = obj.object_ref(&());
    if owned.len() < want {
        let Some(template) = obj.template() else {
            return Ok(());
        };
        let diff = (want - owned.len()).min(BURST_REPLICAS);
        let pod = pods::from_template(
            template,
            &ns,
            &obj.name_any(),
            pods::controller_ref(K::API_VERSION, K::KIND, obj.meta()),
        );
        tracing::debug!(need = diff, "too few replicas, creating");
        let batch = vec![pod; diff];
        if let Err(e) = podcontrol::create_expected(ctx, &regarding, key, &batch).await {
            return Err(Failure {
                reason: "FailedCreate",
                error: e.into(),
            });
        }
    } else if owned.len() > want {
        let diff = (owned.len() - want).min(BURST_REPLICAS);
        let candidates: Vec<&CachedPod> = owned.iter().map(|p| p.as_ref()).collect();
        let victims = pods::pick_victims(&candidates, diff);
        tracing::debug!(excess = diff, "too many replicas, deleting");
        let refs: Vec<&CachedPod> = victims.iter().collect();
        if let Err(e) = podcontrol::delete_expected(ctx, &regarding, key, &refs).await {
            return Err(Failure {
                reason: "FailedDelete",
                error: e.into(),
            });
        }
    }
    Ok(())
}

pub(crate) use crate::podcontrol::api_message;
