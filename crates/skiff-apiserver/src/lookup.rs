//! Reads the server makes for itself on hot paths — admission (ResourceQuotas, LimitRanges,
//! the pod's ServiceAccount and PriorityClass), service-account token authentication (the
//! account and the object a token is bound to) and the Node authorizer — served from the
//! watch cache where kube-apiserver serves them from informer listers.
//!
//! Reads wait until the cache holds every write this server has made
//! ([`crate::storage::Storage::written`]), so they see each write it answered before them —
//! a deleted pod's token fails at once, a LimitRange just created applies to the next pod —
//! without asking the store anything. Writes of other servers on the same etcd arrive as
//! fast as the feed brings them, as informers do upstream — except that a [`get`] that
//! finds nothing asks again at the store's current revision, as upstream's live lookups
//! do; [`list_latest`] reads at that revision too (after a lost compare-and-swap). The store answers when
//! the cache cannot (`--watch-cache=false`, feed restarting or behind).
//!
//! Nothing here writes: the quota charge stays a compare-and-swap on the store.

use serde_json::Value;

use crate::cache::ReadAt;
use crate::error::ApiError;
use crate::registry::Kind;
use crate::router::ApiState;

/// The object `ns`/`name` of `kind`, None when it does not exist.
pub async fn get(
    state: &ApiState,
    kind: &'static dyn Kind,
    ns: Option<&str>,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    let info = kind.info();
    let ns = ns.filter(|_| info.namespaced);
    let key = info.key(ns, name);
    let at = ReadAt::NotOlderThan(state.storage.written());
    let Some((cache, fed)) = state.cache.ready(&state.storage, kind, at).await? else {
        return state.storage.get(info, ns, name).await;
    };
    if let (Some(entry), _) = cache.get(&key, fed) {
        return entry.decode(info).map(Some);
    }
    // Not there: before an account is refused or a token rejected, make sure it is not just
    // another server's write the feed has not brought yet (upstream's live lookup on a
    // lister miss).
    match state
        .cache
        .ready(&state.storage, kind, ReadAt::Consistent)
        .await?
    {
        Some((cache, fed)) => cache.get(&key, fed).0.map(|e| e.decode(info)).transpose(),
        None => state.storage.get(info, ns, name).await,
    }
}

/// Every object of `kind` in namespace `ns` (all of them for cluster-scoped kinds), in key
/// order.
pub async fn list(
    state: &ApiState,
    kind: &'static dyn Kind,
    ns: &str,
) -> Result<Vec<Value>, ApiError> {
    let at = ReadAt::NotOlderThan(state.storage.written());
    list_at(state, kind, ns, at).await
}

/// [`list`] at the store's current revision (every server's writes).
pub async fn list_latest(
    state: &ApiState,
    kind: &'static dyn Kind,
    ns: &str,
) -> Result<Vec<Value>, ApiError> {
    list_at(state, kind, ns, ReadAt::Consistent).await
}

async fn list_at(
    state: &ApiState,
    kind: &'static dyn Kind,
    ns: &str,
    at: ReadAt,
) -> Result<Vec<Value>, ApiError> {
    let info = kind.info();
    if let Some((cache, fed)) = state.cache.ready(&state.storage, kind, at).await? {
        if let Some((entries, _)) = cache.range(&info.namespace_prefix(Some(ns)), None, fed, None) {
            return entries.iter().map(|e| e.decode(info)).collect();
        }
    }
    Ok(state
        .storage
        .list(info, Some(ns), None, 0, None)
        .await?
        .items)
}

/// A core/v1 kind by its plural.
pub fn core(plural: &str) -> &'static dyn Kind {
    crate::resources::find("", "v1", plural).expect("core kinds are served")
}
