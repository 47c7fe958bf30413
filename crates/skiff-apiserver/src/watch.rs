//! Watch: a chunked stream of `{"type": …, "object": …}` lines from the store's revision-ordered
//! events, with selectors applied per event, bookmarks, timeouts and 410 Gone on compaction.
//! Served from the watch cache's ring of recent changes when the requested resourceVersion
//! is in it (410 Gone when the ring has moved past it), from the store's watch otherwise.
//!
//! Translation of store events only; it writes nothing.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};
use skiff_store::{Event, EventType};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::cache::{CacheEvent, Entry, ReadAt, ResourceCache, Since, WatchCache};
use crate::error::ApiError;
use crate::handlers::{partial_metadata, Ctx};
use crate::http::{flag, negotiate, Want};
use crate::object;
use crate::registry::Kind;
use crate::resources::ResourceInfo;
use crate::storage::Storage;

/// Interval between BOOKMARK events when the client allows them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);
/// How long a watch lasts when the client sets no timeoutSeconds.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Everything the streaming task needs, owned.
struct Watcher {
    storage: Storage,
    kind: &'static dyn Kind,
    info: &'static ResourceInfo,
    filter: crate::handlers::Filter,
    want: Want,
    params_include: crate::http::Params,
    tables_sent: bool,
}

impl Watcher {
    /// Encodes one event line; `obj` is the full object.
    fn line(&mut self, kind: &str, obj: &Value) -> Bytes {
        let object = match self.want {
            Want::Table if kind != "BOOKMARK" => {
                let mut t = crate::table::table(
                    self.kind,
                    std::slice::from_ref(obj),
                    object::meta_str(obj, "resourceVersion"),
                    &self.params_include,
                );
                if self.tables_sent {
                    t["columnDefinitions"] = json!([]);
                }
                self.tables_sent = true;
                t
            }
            Want::PartialMetadata if kind != "BOOKMARK" => partial_metadata(obj),
            _ => obj.clone(),
        };
        let mut bytes =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        bytes.push(b'\n');
        Bytes::from(bytes)
    }

    fn bookmark(&mut self, rv: i64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": meta});
        self.line("BOOKMARK", &obj)
    }

    /// The watch event a store event becomes under the selectors, if any.
    fn translate(&self, ev: &Event) -> Result<Option<(&'static str, Value)>, ApiError> {
        match ev.event_type {
            EventType::Put => {
                let new = self.storage.decode(self.info, &ev.kv)?;
                let old_matched = match &ev.prev_kv {
                    Some(p) => Some(self.filter.matches(&self.storage.decode(self.info, p)?)),
                    None => None,
                };
                Ok(match (self.filter.matches(&new), old_matched) {
                    (true, None | Some(false)) => Some(("ADDED", new)),
                    (true, Some(true)) => Some(("MODIFIED", new)),
                    (false, Some(true)) => Some(("DELETED", new)),
                    (false, _) => None,
                })
            }
            EventType::Delete => {
                let mut obj = self.storage.decode(self.info, &ev.kv)?;
                object::meta_mut(&mut obj)
                    .insert("resourceVersion".into(), json!(ev.revision.to_string()));
                Ok(self.filter.matches(&obj).then_some(("DELETED", obj)))
            }
        }
    }

    /// The watch event a cached change becomes under the selectors, if any.
    fn translate_cached(
        &self,
        cache: &ResourceCache,
        ev: &CacheEvent,
    ) -> Result<Option<(&'static str, Value)>, ApiError> {
        let matches = |e: &Entry| self.filter.matches_entry(self.info, cache, e);
        if ev.deleted {
            return Ok(match matches(&ev.object)? {
                true => Some(("DELETED", ev.object.decode_at(self.info, ev.revision)?)),
                false => None,
            });
        }
        let old_matched = match &ev.prev {
            Some(p) => Some(matches(p)?),
            None => None,
        };
        let kind = match (matches(&ev.object)?, old_matched) {
            (true, None | Some(false)) => "ADDED",
            (true, Some(true)) => "MODIFIED",
            (false, Some(true)) => "DELETED",
            (false, _) => return Ok(None),
        };
        Ok(Some((kind, ev.object.decode(self.info)?)))
    }
}

/// 410 Gone for a watch from a revision the cache's ring has moved past.
fn too_old(rv: i64) -> ApiError {
    ApiError::new(410, "Expired", format!("too old resource version: {rv}"))
}

/// How a watch runs: its end, bookmarks and the first objects it sends.
struct Plan {
    timeout: Duration,
    bookmarks: bool,
    initial_end_bookmark: bool,
}

/// The cached source of a watch: the initial objects (when the client asked for them) and
/// the revision to stream changes after; None when the store must serve it.
async fn from_cache(
    ctx: Ctx<'_>,
    send_initial: bool,
    rv: Option<i64>,
) -> Result<Option<(Arc<ResourceCache>, Vec<Arc<Entry>>, i64)>, ApiError> {
    let storage = &ctx.state.storage;
    let at = match (send_initial, rv) {
        (true, Some(rv)) if rv > 0 => ReadAt::NotOlderThan(rv),
        (false, Some(rv)) if rv > ctx.state.cache.fed() => {
            // A revision the store has not reached fails there, as before.
            if rv > storage.store.current_revision().await? {
                return Ok(None);
            }
            ReadAt::NotOlderThan(rv)
        }
        _ => ReadAt::Any,
    };
    let Some((cache, fed)) = ctx.state.cache.ready(storage, ctx.kind(), at).await? else {
        return Ok(None);
    };
    if send_initial {
        let prefix = ctx.info().namespace_prefix(ctx.ns());
        return Ok(cache
            .range(&prefix, None, fed, None)
            .map(|(items, at)| (cache, items, at)));
    }
    let rv = rv.unwrap_or_default();
    match cache.since(rv, fed) {
        Since::Events(..) => Ok(Some((cache, Vec::new(), rv))),
        Since::TooOld => Err(too_old(rv)),
        Since::NotCached => Ok(None),
    }
}

/// Streams a watch from the cache: `initial` objects, then every change after `from`.
async fn stream_cached(
    mut w: Watcher,
    plan: Plan,
    caches: WatchCache,
    cache: Arc<ResourceCache>,
    initial: Vec<Arc<Entry>>,
    from: i64,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    let mut last = from;
    for e in &initial {
        let line = match w.filter.matches_entry(w.info, &cache, e) {
            Ok(false) => continue,
            Ok(true) => match e.decode(w.info) {
                Ok(obj) => w.line("ADDED", &obj),
                Err(e) => w.line("ERROR", &e.to_status()),
            },
            Err(e) => w.line("ERROR", &e.to_status()),
        };
        if tx.send(Ok(line)).await.is_err() {
            return;
        }
    }
    drop(initial);
    if plan.initial_end_bookmark && tx.send(Ok(w.bookmark(last, true))).await.is_err() {
        return;
    }
    let mut fed = caches.subscribe();
    let deadline = tokio::time::sleep(plan.timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
    ticker.tick().await;
    loop {
        fed.borrow_and_update();
        match cache.since(last, caches.fed()) {
            Since::Events(events, at) => {
                for ev in &events {
                    let line = match w.translate_cached(&cache, ev) {
                        Ok(Some((kind, obj))) => w.line(kind, &obj),
                        Ok(None) => continue,
                        Err(e) => w.line("ERROR", &e.to_status()),
                    };
                    if tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
                last = at;
            }
            Since::TooOld | Since::NotCached => {
                let _ = tx
                    .send(Ok(w.line("ERROR", &too_old(last).to_status())))
                    .await;
                return;
            }
        }
        tokio::select! {
            _ = &mut deadline => return,
            _ = ticker.tick(), if plan.bookmarks => {
                if tx.send(Ok(w.bookmark(last, false))).await.is_err() {
                    return;
                }
            }
            changed = fed.changed() => if changed.is_err() { return },
            _ = tx.closed() => return,
        }
    }
}

pub async fn serve(ctx: Ctx<'_>) -> Result<Response, ApiError> {
    let info = ctx.info();
    let params = ctx.params;
    let filter = crate::handlers::Filter::from_ctx(ctx)?;
    let bookmarks = flag(&params.allow_watch_bookmarks);
    let timeout = params
        .timeout_seconds()?
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    let rv = object::parse_rv(params.resource_version.as_deref().unwrap_or(""))?;
    let send_initial = flag(&params.send_initial_events) || rv.is_none_or(|r| r == 0);
    let storage = ctx.state.storage.clone();
    let prefix = info.namespace_prefix(ctx.ns());
    let plan = Plan {
        timeout,
        bookmarks,
        initial_end_bookmark: flag(&params.send_initial_events) && bookmarks,
    };
    let w = Watcher {
        storage: storage.clone(),
        kind: ctx.kind(),
        info,
        filter,
        want: negotiate(ctx.headers),
        params_include: crate::http::Params {
            include_object: params.include_object.clone(),
            ..Default::default()
        },
        tables_sent: false,
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    if let Some((cache, initial, from)) = from_cache(ctx, send_initial, rv).await? {
        let caches = ctx.state.cache.clone();
        tokio::spawn(
            stream_cached(w, plan, caches, cache, initial, from, tx)
                .instrument(tracing::Span::current()),
        );
        return Ok(response(rx));
    }

    let (initial, from) = if send_initial {
        let page = storage.list(info, ctx.ns(), None, 0, None).await?;
        (page.items, page.revision)
    } else {
        (Vec::new(), rv.unwrap_or_default())
    };
    let events = storage.store.watch(&prefix, from).await?;
    tokio::spawn(
        stream_store(w, plan, initial, from, events, tx).instrument(tracing::Span::current()),
    );
    Ok(response(rx))
}

/// Streams a watch from the store: `initial` objects, then `events`.
async fn stream_store(
    mut w: Watcher,
    plan: Plan,
    initial: Vec<Value>,
    from: i64,
    mut events: skiff_store::WatchStream,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    let mut last_rv = from;
    for obj in &initial {
        if !w.filter.matches(obj) {
            continue;
        }
        if tx.send(Ok(w.line("ADDED", obj))).await.is_err() {
            return;
        }
    }
    if plan.initial_end_bookmark && tx.send(Ok(w.bookmark(last_rv, true))).await.is_err() {
        return;
    }
    let deadline = tokio::time::sleep(plan.timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
    ticker.tick().await;
    loop {
        let line = tokio::select! {
            _ = &mut deadline => return,
            _ = ticker.tick(), if plan.bookmarks => Some(w.bookmark(last_rv, false)),
            ev = events.next() => match ev {
                None => return,
                Some(Ok(ev)) => {
                    last_rv = ev.revision;
                    match w.translate(&ev) {
                        Ok(Some((kind, obj))) => Some(w.line(kind, &obj)),
                        Ok(None) => None,
                        Err(e) => Some(w.line("ERROR", &e.to_status())),
                    }
                }
                Some(Err(e)) => {
                    let status = ApiError::from(e).to_status();
                    let _ = tx.send(Ok(w.line("ERROR", &status))).await;
                    return;
                }
            },
            _ = tx.closed() => return,
        };
        if let Some(line) = line {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
    }
}

/// The chunked response carrying the lines sent on `rx`.
fn response(rx: mpsc::Receiver<Result<Bytes, Infallible>>) -> Response {
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut r = Response::new(body);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}
