//! Which namespaces exist and which are being deleted, kept from a watch on the store — as
//! Kubernetes' NamespaceLifecycle admission keeps it from an informer — so that a create
//! need not read its namespace from the store. Only a hit is trusted: a namespace the cache
//! has not seen yet (created a moment ago, or the watch is restarting) is read from the store.
//!
//! The two NamespaceLifecycle refusals live here too: the namespaces a cluster cannot do
//! without may not be deleted, and a namespace being deleted takes no new objects.
//!
//! Knows nothing of HTTP; feeds only on the store.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use skiff_store::{EventType, KeyValue, Store};

use crate::error::{ApiError, Cause};
use crate::object;
use crate::resources::ResourceInfo;

/// Namespaces Kubernetes' NamespaceLifecycle admission never lets go (`kube-node-lease` is
/// not one of them: the server creates it again, see [`crate::router::ApiState::bootstrap`]).
pub const IMMORTAL: [&str; 3] = ["default", "kube-system", "kube-public"];

/// 403 for deleting one of the [`IMMORTAL`] namespaces, worded as Kubernetes words it.
pub fn may_delete(name: &str) -> Result<(), ApiError> {
    if IMMORTAL.contains(&name) {
        return Err(ApiError::forbidden(
            "",
            "namespaces",
            name,
            "this namespace may not be deleted",
        ));
    }
    Ok(())
}

/// 403 for creating `name` of `info` in namespace `ns` while it is being deleted, with the
/// `NamespaceTerminating` cause Kubernetes adds.
pub fn terminating(info: &ResourceInfo, ns: &str, name: &str) -> ApiError {
    let mut e = ApiError::forbidden(
        info.group,
        info.plural,
        name,
        &format!("unable to create new content in namespace {ns} because it is being terminated"),
    );
    e.causes.push(Cause {
        reason: "NamespaceTerminating".into(),
        message: format!("namespace {ns} is being terminated"),
        field: "metadata.namespace".into(),
    });
    e
}

/// Namespace name → whether it is being deleted. `None` while not in sync with the store.
#[derive(Default)]
pub struct NamespaceCache {
    known: RwLock<Option<HashMap<String, bool>>>,
}

/// The store keys of namespaces (cluster-scoped core/v1).
fn prefix() -> String {
    crate::kinds::core::namespace::info().namespace_prefix(None)
}

/// (name, being deleted) of a stored namespace; None if it cannot be read.
fn entry(kv: &KeyValue) -> Option<(String, bool)> {
    let obj: serde_json::Value = serde_json::from_slice(&kv.value).ok()?;
    Some((object::name(&obj).to_string(), object::is_deleting(&obj)))
}

impl NamespaceCache {
    /// `Some(being deleted)` for a namespace the cache knows; None otherwise (ask the store).
    pub fn lookup(&self, name: &str) -> Option<bool> {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        known.as_ref()?.get(name).copied()
    }

    fn set(&self, state: Option<HashMap<String, bool>>) {
        *self.known.write().unwrap_or_else(|e| e.into_inner()) = state;
    }

    fn apply(&self, f: impl FnOnce(&mut HashMap<String, bool>)) {
        if let Some(known) = self
            .known
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            f(known);
        }
    }

    /// Keeps the cache in sync with `store` until `stop` completes: lists the namespaces,
    /// then follows their changes; after an error it forgets everything and starts over.
    pub async fn follow(self: Arc<Self>, store: Arc<dyn Store>, stop: impl Future<Output = ()>) {
        let keep = async {
            loop {
                if let Err(e) = self.sync(store.as_ref()).await {
                    tracing::debug!(error = %e, "namespace cache restarts");
                }
                self.set(None);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        tokio::select! {
            _ = keep => {}
            _ = stop => {}
        }
        self.set(None);
    }

    async fn sync(&self, store: &dyn Store) -> skiff_store::Result<()> {
        let prefix = prefix();
        let listed = store.list(&prefix, None, 0, None).await?;
        self.set(Some(listed.items.iter().filter_map(entry).collect()));
        let mut events = store.watch(&prefix, listed.revision).await?;
        while let Some(event) = events.next().await {
            let event = event?;
            let Some((name, deleting)) = entry(&event.kv) else {
                continue;
            };
            self.apply(|known| match event.event_type {
                EventType::Put => {
                    known.insert(name, deleting);
                }
                EventType::Delete => {
                    known.remove(&name);
                }
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn follows_creation_deletion_marks_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let store = skiff_store::open("sqlite", dir.path()).await.unwrap();
        let ns = |deleting: bool| {
            let mut obj = serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "team"}});
            if deleting {
                obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
            }
            serde_json::to_vec(&obj).unwrap()
        };
        let key = format!("{}team", prefix());
        let before = store.create(&key, ns(false)).await.unwrap();
        let cache = Arc::new(NamespaceCache::default());
        assert_eq!(cache.lookup("team"), None, "not in sync before it follows");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(cache.clone().follow(store.clone(), async {
            let _ = stopped.await;
        }));
        until("the listed namespace", || {
            cache.lookup("team") == Some(false)
        })
        .await;
        store.update(&key, ns(true), before).await.unwrap();
        until("the deletion mark", || cache.lookup("team") == Some(true)).await;
        store.delete(&key, None).await.unwrap();
        until("the removal", || cache.lookup("team").is_none()).await;
        let _ = stop.send(());
        task.await.unwrap();
        assert_eq!(cache.lookup("other"), None);
    }
}
