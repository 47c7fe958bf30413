//! The garbage collector: what Kubernetes' garbage-collector and namespace controllers do for
//! the API. Dependents whose owners (by `ownerReferences[].uid`) are all gone are deleted;
//! owners marked for deletion with the `foregroundDeletion` finalizer wait for their blocking
//! dependents, with `orphan` they first release them; a Terminating namespace is emptied and
//! then removed. Level-triggered: every pass plans from one consistent snapshot of the store
//! ([`plan`], pure) and then writes with compare-on-revision, so a pass that races a client
//! simply loses and the next pass sees the new state. It must not validate or default
//! objects, nor touch anything but `metadata` (and a namespace's phase and spec.finalizers).

mod plan;
mod trim;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use skiff_store::{Event, EventType, KeyValue, Store, StoreError};

use crate::encryption::{Encryptor, PREFIX as ENCRYPTED};
use crate::error::ApiError;
use crate::registry::{Backend, Kind};
use crate::resources;
pub use plan::{plan, Action, Stored};

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";
/// The namespace finalizer in `spec.finalizers`.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

/// Quiet period after a change before the next pass, so bursts of writes cost one pass.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Where namespaces are stored (every change to one may start or advance a termination).
const NAMESPACES: &str = "/registry/core/namespaces/";
/// Objects read from the store per query while taking a snapshot.
const SNAPSHOT_PAGE: usize = 500;
/// The quiet period after a pass is at least this many times the pass's duration.
const QUIET_PER_PASS: u32 = 4;
/// Passes also run this often without changes (owners of kinds not watched, lost events).
const RESYNC: Duration = Duration::from_secs(60);

/// The finalizers a DELETE with `propagationPolicy` adds to the object (`Background`, the
/// default, adds none: dependents are collected after the owner is gone).
pub fn deletion_finalizers(propagation: &str) -> Vec<String> {
    match propagation {
        "Foreground" => vec![FOREGROUND.to_string()],
        "Orphan" => vec![ORPHAN.to_string()],
        _ => Vec::new(),
    }
}

/// The collector over one store.
pub struct Collector {
    store: Arc<dyn Store>,
    encryptor: Option<Arc<Encryptor>>,
}

impl Collector {
    pub fn new(store: Arc<dyn Store>, encryptor: Option<Arc<Encryptor>>) -> Self {
        Collector { store, encryptor }
    }

    /// Reads every served resource at one revision, [`SNAPSHOT_PAGE`] objects at a time, each
    /// object [`trim::trimmed`] (on a blocking thread: a pass over many objects must not hold
    /// up a runtime worker).
    async fn snapshot(&self) -> Result<(Vec<Stored>, i64), ApiError> {
        let revision = self.store.current_revision().await?;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let stored = resources::all().filter(|k| k.backend() == Backend::Store);
        for kind in stored.filter(|k| seen.insert(k.info().prefix())) {
            let info = kind.info();
            let mut start: Option<String> = None;
            loop {
                let page = self
                    .store
                    .list(
                        &info.prefix(),
                        start.as_deref(),
                        SNAPSHOT_PAGE,
                        Some(revision),
                    )
                    .await?;
                start = page.items.last().map(|kv| kv.key.clone());
                if !page.items.is_empty() {
                    out.extend(self.trim_page(kind, page.items).await?);
                }
                if !page.more {
                    break;
                }
            }
        }
        Ok((out, revision))
    }

    /// The collector's view of listed key-values (see [`trim`]).
    async fn trim_page(
        &self,
        kind: &'static dyn Kind,
        items: Vec<KeyValue>,
    ) -> Result<Vec<Stored>, ApiError> {
        let encryptor = self.encryptor.clone();
        tokio::task::spawn_blocking(move || {
            items
                .into_iter()
                .map(|kv| {
                    let encrypted = kv.value.starts_with(ENCRYPTED);
                    let object = match (&encryptor, encrypted) {
                        (Some(e), true) => e.decrypt(&kv.value).ok(),
                        (None, true) => None,
                        (_, false) => Some(kv.value),
                    }
                    .and_then(|b| trim::trimmed(&b));
                    Stored {
                        kind,
                        key: kv.key,
                        revision: kv.mod_revision,
                        object,
                        encrypted,
                    }
                })
                .collect()
        })
        .await
        .map_err(|e| ApiError::internal(format!("gc snapshot task failed: {e}")))
    }

    /// Writes `planned` (a trimmed object with the plan's change) over the whole object at
    /// `key`, if it is still at `revision`.
    async fn rewrite(&self, key: &str, revision: i64, planned: &Value) -> Result<(), StoreError> {
        let kv = self
            .store
            .get(key)
            .await?
            .ok_or_else(|| StoreError::NotFound(key.to_owned()))?;
        if kv.mod_revision != revision {
            return Err(StoreError::Conflict {
                key: key.to_owned(),
                current: Some(Box::new(kv)),
            });
        }
        let unreadable =
            |why: String| StoreError::Corrupt(format!("gc cannot rewrite {key}: {why}"));
        let encrypted = kv.value.starts_with(ENCRYPTED);
        let plain = match (&self.encryptor, encrypted) {
            (Some(e), true) => e.decrypt(&kv.value).map_err(|e| unreadable(e.message))?,
            (None, true) => return Err(unreadable("encrypted without a key".into())),
            (_, false) => kv.value,
        };
        let mut full: Value =
            serde_json::from_slice(&plain).map_err(|e| unreadable(e.to_string()))?;
        trim::overlay(&mut full, planned);
        let bytes = serde_json::to_vec(&full).map_err(|e| unreadable(e.to_string()))?;
        let bytes = match (&self.encryptor, encrypted) {
            (Some(e), true) => e.encrypt(&bytes),
            _ => bytes,
        };
        self.store.update(key, bytes, revision).await.map(drop)
    }

    /// One pass: snapshot, plan, write. Returns the snapshot revision and the writes made.
    pub async fn pass(&self) -> Result<(i64, usize), ApiError> {
        let (objects, revision) = self.snapshot().await?;
        let now = crate::object::now();
        let mut done = 0;
        for action in plan(&objects, &now) {
            let result = match &action {
                Action::Delete { key, revision } => {
                    self.store.delete(key, Some(*revision)).await.map(drop)
                }
                Action::Update {
                    key,
                    revision,
                    object,
                } => self.rewrite(key, *revision, object).await,
            };
            match result {
                Ok(()) => done += 1,
                Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {
                    tracing::debug!(
                        key = action.key(),
                        "gc lost a race; next pass will see the change"
                    )
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok((revision, done))
    }

    /// Runs passes until `shutdown` completes: after a change that can give the collector
    /// work ([`Collector::wakes`]), debounced, and every [`RESYNC`]. Other writes (most of
    /// them: objects without owners or finalizers) cost no pass, so a stream of them does
    /// not make the collector re-read the whole store again and again.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        let mut after = 0;
        loop {
            let span = tracing::debug_span!("gc_pass");
            let started = tokio::time::Instant::now();
            match tokio::select! { r = self.pass() => r, _ = &mut shutdown => return } {
                Ok((rev, writes)) => {
                    tracing::debug!(parent: &span, rev, writes, "gc pass");
                    after = rev;
                }
                Err(e) => tracing::warn!(parent: &span, error = %e.message, "gc pass failed"),
            }
            // A pass costs what the store holds: under a stream of writes, passes are spaced
            // by a few times their own duration so that they take a bounded share of the CPU.
            let quiet = DEBOUNCE.max(started.elapsed() * QUIET_PER_PASS);
            let resync = tokio::time::sleep(RESYNC);
            tokio::pin!(resync);
            let mut watch = match self.store.watch("/registry/", after).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "gc watch failed");
                    tokio::select! { _ = &mut resync => continue, _ = &mut shutdown => return }
                }
            };
            loop {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = &mut resync => break,
                    ev = watch.next() => match ev {
                        Some(Ok(ev)) if !self.wakes(&ev) => continue,
                        // A change to act on, or the watch ended (compacted, store closing).
                        _ => {
                            tokio::select! { _ = tokio::time::sleep(quiet) => break, _ = &mut shutdown => return }
                        }
                    },
                }
            }
        }
    }

    /// Whether a change can give the collector work: a deletion (dependents may have lost
    /// their owner), any change to a namespace, or a write to an object that has or had
    /// owners, finalizers or a deletion timestamp (see [`trim::involved`]).
    fn wakes(&self, ev: &Event) -> bool {
        if ev.event_type == EventType::Delete || ev.kv.key.starts_with(NAMESPACES) {
            return true;
        }
        std::iter::once(&ev.kv)
            .chain(ev.prev_kv.as_ref())
            .any(|kv| {
                self.plain(&kv.value)
                    .is_none_or(|json| trim::involved(&json))
            })
    }

    /// The JSON of a stored value (decrypted), or None when this collector cannot read it.
    fn plain<'a>(&self, value: &'a [u8]) -> Option<std::borrow::Cow<'a, [u8]>> {
        match (&self.encryptor, value.starts_with(ENCRYPTED)) {
            (Some(e), true) => e.decrypt(value).ok().map(std::borrow::Cow::Owned),
            (None, true) => None,
            (_, false) => Some(std::borrow::Cow::Borrowed(value)),
        }
    }
}

/// Runs the collector over `store` (values it cannot decode are only ever deleted with
/// their namespace) until `shutdown` completes.
pub async fn run(store: Arc<dyn Store>, shutdown: impl Future<Output = ()> + Send) {
    Collector::new(store, None).run(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::plan::tests::{info, obj, owner_ref, stored, DEPLOY, POD, RS};
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn deletion_finalizers_follow_propagation_policy() {
        assert_eq!(deletion_finalizers("Foreground"), ["foregroundDeletion"]);
        assert_eq!(deletion_finalizers("Orphan"), ["orphan"]);
        assert!(deletion_finalizers("Background").is_empty());
        assert!(deletion_finalizers("").is_empty());
    }

    async fn put(store: &Arc<dyn Store>, o: &Value) {
        let s = stored(o.clone());
        store
            .create(&s.key, serde_json::to_vec(o).unwrap())
            .await
            .unwrap();
    }

    async fn wait_gone(store: &Arc<dyn Store>, key: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while store.get(key).await.unwrap().is_some() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{key} was not collected"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn collector_cascades_through_a_real_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = skiff_store::open("sqlite", dir.path()).await.unwrap();
        put(&store, &obj(DEPLOY, Some("default"), "web", "d", json!({}))).await;
        put(
            &store,
            &obj(
                RS,
                Some("default"),
                "web-1",
                "r",
                json!({"ownerReferences": [owner_ref(DEPLOY, "web", "d", true)]}),
            ),
        )
        .await;
        let pod = obj(
            POD,
            Some("default"),
            "web-1-x",
            "p",
            json!({"ownerReferences": [owner_ref(RS, "web-1", "r", true)]}),
        );
        put(&store, &pod).await;

        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(store.clone(), async move {
            let _ = stopped.await;
        }));
        let deploy_key = info("apps/v1", "Deployment").key(Some("default"), "web");
        store.delete(&deploy_key, None).await.unwrap();
        wait_gone(
            &store,
            &info("apps/v1", "ReplicaSet").key(Some("default"), "web-1"),
        )
        .await;
        wait_gone(&store, &info("v1", "Pod").key(Some("default"), "web-1-x")).await;
        // An idle collector still wakes for a new object whose owner is already gone, and not
        // only for deletions.
        let orphan = obj(
            POD,
            Some("default"),
            "late",
            "l",
            json!({"ownerReferences": [owner_ref(RS, "web-1", "r", true)]}),
        );
        put(&store, &orphan).await;
        wait_gone(&store, &info("v1", "Pod").key(Some("default"), "late")).await;
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn encrypted_values_are_decoded_and_written_back_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let store = skiff_store::open("sqlite", dir.path()).await.unwrap();
        let enc = Arc::new(Encryptor::load_or_create(dir.path()).unwrap());
        let mut secret = obj(
            ("v1", "Secret"),
            Some("default"),
            "s",
            "s",
            json!({"ownerReferences": [owner_ref(RS, "a", "a", true), owner_ref(RS, "b", "b", true)],
                "labels": {"app": "web"}}),
        );
        secret["data"] = json!({"password": "c2VjcmV0"});
        let key = stored(secret.clone()).key;
        store
            .create(&key, enc.encrypt(&serde_json::to_vec(&secret).unwrap()))
            .await
            .unwrap();
        put(&store, &obj(RS, Some("default"), "a", "a", json!({}))).await;

        let blind = Collector::new(store.clone(), None);
        assert_eq!(
            blind.pass().await.unwrap().1,
            0,
            "undecodable values are left alone"
        );
        let gc = Collector::new(store.clone(), Some(enc.clone()));
        assert_eq!(gc.pass().await.unwrap().1, 1);
        let raw = store.get(&key).await.unwrap().unwrap().value;
        assert!(raw.starts_with(ENCRYPTED));
        let back: Value = serde_json::from_slice(&enc.decrypt(&raw).unwrap()).unwrap();
        assert_eq!(
            back["metadata"]["ownerReferences"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        // The pass reads only the fields it acts on; the rest of the object is kept.
        assert_eq!(back["data"], secret["data"]);
        assert_eq!(back["metadata"]["labels"], secret["metadata"]["labels"]);
        assert_eq!(gc.pass().await.unwrap().1, 0, "idempotent");
    }
}
