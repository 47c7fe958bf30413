//! The feed: one store watch over every key, applying each change to the cache of its
//! resource (if one exists) and publishing how far it has got. Caches are created here too,
//! between two events, so a new cache is listed at exactly the revision the feed is at and
//! misses nothing. A failed watch is restarted from the store's current revision after
//! re-listing every cache.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use skiff_store::Event;
use tokio::sync::{mpsc, oneshot};

use super::resource::ResourceCache;
use super::Shared;
use crate::error::ApiError;
use crate::registry::Kind;
use crate::storage::Storage;

/// Objects read from the store per query when a cache is (re-)listed.
const LIST_PAGE: usize = 1000;
/// Pause before retrying a failed store watch.
const RETRY: Duration = Duration::from_millis(200);

/// A request for the cache of a resource.
pub(super) struct AddCache {
    pub kind: &'static dyn Kind,
    pub reply: oneshot::Sender<Result<Arc<ResourceCache>, ApiError>>,
}

/// The resource prefix (`/registry/<group>/<plural>/`) of a store key.
pub(super) fn resource_prefix(key: &str) -> Option<&str> {
    let mut slashes = key.match_indices('/').map(|(i, _)| i);
    let end = slashes.nth(3)?;
    key.starts_with("/registry/").then(|| &key[..=end])
}

/// Lists `cache`'s resource at `revision` (0: the empty store) into fresh entries.
async fn list(
    storage: &Storage,
    cache: &ResourceCache,
    revision: i64,
) -> Result<Vec<super::entry::Entry>, ApiError> {
    let mut items = Vec::new();
    if revision == 0 {
        return Ok(items);
    }
    let prefix = cache.info.prefix();
    let mut start: Option<String> = None;
    loop {
        let page = storage
            .store
            .list(&prefix, start.as_deref(), LIST_PAGE, Some(revision))
            .await?;
        items.extend(page.items.iter().map(|kv| cache.entry(storage, kv)));
        start = page.items.last().map(|kv| kv.key.clone());
        if !page.more || start.is_none() {
            return Ok(items);
        }
    }
}

/// Runs until the cache it feeds is dropped (its request channel closes).
pub(super) async fn run(
    shared: Weak<Shared>,
    storage: Storage,
    mut requests: mpsc::UnboundedReceiver<AddCache>,
) {
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                _ = tokio::time::sleep(RETRY) => {}
                closed = requests.recv() => match closed {
                    // A request while the watch is down: it falls back to the store.
                    Some(req) => { drop(req); continue; }
                    None => return,
                },
            }
        }
        first = false;
        let revision = match storage.store.current_revision().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "watch cache: cannot read the store's revision");
                continue;
            }
        };
        let caches: Vec<Arc<ResourceCache>> = match shared.upgrade() {
            Some(s) => s.caches(),
            None => return,
        };
        let mut relisted = true;
        for cache in &caches {
            match list(&storage, cache, revision).await {
                Ok(items) => cache.replace(items, revision, true),
                Err(e) => {
                    tracing::warn!(error = %e, resource = cache.info.plural, "watch cache: re-list failed");
                    relisted = false;
                    break;
                }
            }
        }
        if !relisted {
            continue;
        }
        let mut events = match storage.store.watch("", revision).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "watch cache: cannot watch the store");
                continue;
            }
        };
        match shared.upgrade() {
            Some(s) => {
                s.publish(revision);
                s.set_live(true);
            }
            None => return,
        }
        let mut fed = revision;
        loop {
            tokio::select! {
                req = requests.recv() => {
                    let Some(req) = req else { return };
                    let Some(s) = shared.upgrade() else { return };
                    let result = add(&s, &storage, req.kind, fed).await;
                    let _ = req.reply.send(result);
                }
                ev = events.next() => {
                    let Some(s) = shared.upgrade() else { return };
                    match ev {
                        Some(Ok(ev)) => {
                            apply(&s, &storage, &ev);
                            fed = fed.max(ev.revision);
                            s.publish(fed);
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "watch cache: store watch failed, re-listing");
                            s.set_live(false);
                            break;
                        }
                        None => {
                            tracing::debug!("watch cache: store watch ended, re-listing");
                            s.set_live(false);
                            break;
                        }
                    }
                }
            }
        }
    }
}

fn apply(shared: &Shared, storage: &Storage, ev: &Event) {
    let Some(prefix) = resource_prefix(&ev.kv.key) else {
        return;
    };
    if let Some(cache) = shared.cache(prefix) {
        cache.apply(storage, ev);
    }
}

/// The cache of `kind`'s resource, created and listed at `fed` when it does not exist yet.
async fn add(
    shared: &Shared,
    storage: &Storage,
    kind: &'static dyn Kind,
    fed: i64,
) -> Result<Arc<ResourceCache>, ApiError> {
    let prefix = kind.info().prefix();
    if let Some(cache) = shared.cache(&prefix) {
        return Ok(cache);
    }
    let cache = Arc::new(ResourceCache::new(kind, shared.capacity));
    let items = list(storage, &cache, fed).await?;
    cache.replace(items, fed, false);
    shared.insert(prefix, cache.clone());
    Ok(cache)
}

#[cfg(test)]
mod tests {
    use super::resource_prefix;

    #[test]
    fn keys_map_to_their_resource() {
        assert_eq!(
            resource_prefix("/registry/core/pods/default/web"),
            Some("/registry/core/pods/")
        );
        assert_eq!(
            resource_prefix("/registry/core/namespaces/default"),
            Some("/registry/core/namespaces/")
        );
        assert_eq!(resource_prefix("/registry/core/pods"), None);
        assert_eq!(resource_prefix("/other/a/b/c"), None);
    }
}
