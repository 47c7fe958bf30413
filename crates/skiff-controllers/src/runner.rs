//! Runs one controller: its trigger streams feed kube-runtime's `applier` (which keeps one
//! reconcile per object at a time and schedules requeues), with an exponential back-off per
//! object on errors, as kube-controller-manager's rate-limited work queues do.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{applier, Config};
use kube::Resource;

use crate::cachedpod::CachedPod;
use crate::context::Context;
use crate::error::Error;
use crate::informer::Change;

/// The first retry delay after a failed reconcile (kube-controller-manager: 5 ms).
const BACKOFF_BASE: Duration = Duration::from_millis(5);
/// The longest retry delay (kube-controller-manager: 1000 s; ours is shorter so a
/// controller recovers quickly once the API does).
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Reconciles at once on this many objects of one kind.
const CONCURRENCY: u16 = 16;

/// A stream of objects to reconcile.
pub type Triggers<K> = BoxStream<'static, ObjectRef<K>>;

/// Maps each change of a watched kind to the objects it concerns.
pub fn map_changes<C, K>(
    changes: impl Stream<Item = Change<C>> + Send + 'static,
    map: impl Fn(Change<C>) -> Vec<ObjectRef<K>> + Send + 'static,
) -> Triggers<K>
where
    C: Send + Sync + 'static,
    K: Resource + 'static,
    K::DynamicType: Send,
{
    changes.flat_map(move |c| stream::iter(map(c))).boxed()
}

/// Every object in `store`.
pub fn all<K>(store: &Store<K>) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .iter()
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// Each change of the controller's own kind triggers that object; a re-list, all of them.
pub fn own<K>(
    changes: impl Stream<Item = Change<K>> + Send + 'static,
    store: Store<K>,
) -> Triggers<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    map_changes(changes, move |c| match c {
        Change::Applied { new, .. } => vec![ObjectRef::from_obj(new.as_ref())],
        Change::Deleted(old) => vec![ObjectRef::from_obj(old.as_ref())],
        Change::Relisted => all(&store),
    })
}

/// Runs `reconcile` for every object the triggers name, after enqueuing every object of
/// `store` once (the first sync), until dropped.
pub async fn run<K, F, Fut>(
    name: &'static str,
    ctx: Arc<Context>,
    store: Store<K>,
    triggers: Vec<Triggers<K>>,
    reconcile: F,
) where
    K: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<Context>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    let failures: Arc<Mutex<HashMap<ObjectRef<K>, u32>>> = Arc::default();
    let first = stream::iter(all(&store)).boxed();
    let queue = stream::select_all(std::iter::once(first).chain(triggers)).map(Ok::<_, Infallible>);
    let on_success = failures.clone();
    let reconciler = move |obj: Arc<K>, ctx: Arc<Context>| {
        let span = tracing::debug_span!("reconcile", controller = name, object = %ObjectRef::from_obj(obj.as_ref()));
        let fut = tracing::Instrument::instrument(reconcile(obj.clone(), ctx), span);
        let failures = on_success.clone();
        Box::pin(async move {
            let result = fut.await;
            if result.is_ok() {
                failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&ObjectRef::from_obj(obj.as_ref()));
            }
            result
        })
    };
    let error_policy = move |obj: Arc<K>, error: &Error, _ctx: Arc<Context>| {
        let key = ObjectRef::from_obj(obj.as_ref());
        let mut map = failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key.clone()).or_default();
        *n = n.saturating_add(1);
        let delay = BACKOFF_BASE
            .saturating_mul(2u32.saturating_pow(*n))
            .min(BACKOFF_MAX);
        if error.is_conflict() {
            tracing::debug!(controller = name, object = %key, "conflict, retrying");
        } else {
            tracing::warn!(controller = name, object = %key, error = %crate::error::chain(error), "reconcile failed");
        }
        Action::requeue(delay)
    };
    let results = applier(
        reconciler,
        error_policy,
        ctx,
        store,
        queue,
        Config::default().concurrency(CONCURRENCY),
    );
    futures::pin_mut!(results);
    while let Some(r) = results.next().await {
        match r {
            Ok(_) | Err(controller::Error::ReconcilerFailed(..)) => {}
            // Deleted since it was queued: nothing to do.
            Err(controller::Error::ObjectNotFound(_)) => {}
            Err(e) => tracing::warn!(controller = name, error = %e, "controller queue"),
        }
    }
}

/// Every change of a pod whose controller is a `kind` wakes that owner (and lowers what the
/// owner's [expectations](crate::expectations) wait for); a re-list of pods wakes every owner
/// in `owners`.
pub fn controlled_pod_triggers<K>(
    ctx: &Arc<Context>,
    owners: Store<K>,
    kind: &'static str,
) -> Triggers<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    use kube::ResourceExt;
    let ctx = ctx.clone();
    map_changes(ctx.informers.pods.changes(), move |c| {
        let owner_of = |p: &CachedPod, deleted: bool| {
            let ns = p.namespace().unwrap_or_default();
            let r = crate::pods::controller_of(&p.metadata).filter(|r| r.kind == kind)?;
            let key = crate::expectations::key(kind, &ns, &r.name);
            ctx.expectations.observe(&key, &p.metadata, deleted);
            Some(ObjectRef::new(&r.name).within(&ns))
        };
        match c {
            Change::Applied { old, new } => owner_of(&new, false)
                .into_iter()
                .chain(old.as_deref().and_then(|o| owner_of(o, false)))
                .collect(),
            Change::Deleted(old) => owner_of(&old, true).into_iter().collect(),
            Change::Relisted => all(&owners),
        }
    })
}
