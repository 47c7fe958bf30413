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

/// One event line around an object's JSON, written by `object`.
fn event_line(
    kind: &str,
    size: usize,
    object: impl FnOnce(&mut Vec<u8>) -> Result<(), ApiError>,
) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(size + 40);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    object(&mut out)?;
    out.extend_from_slice(b"}\n");
    Ok(Bytes::from(out))
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
            _ => return self.object_line(kind, obj),
        };
        self.object_line(kind, &object)
    }

    fn object_line(&self, kind: &str, obj: &Value) -> Bytes {
        event_line(kind, 1024, |out| {
            serde_json::to_writer(out, obj)
                .map_err(|e| ApiError::internal(format!("encode watch event: {e}")))
        })
        .unwrap_or_default()
    }

    /// The line of a cached object (at resourceVersion `revision` when given): its kept JSON
    /// copied as it is when the client wants plain objects, its metadata split out of that
    /// JSON for metadata-only watches, decoded only for Tables.
    fn entry_line(
        &mut self,
        kind: &str,
        e: &Entry,
        revision: Option<i64>,
    ) -> Result<Bytes, ApiError> {
        match self.want {
            Want::Object => {
                let info = self.info;
                return event_line(kind, e.len(), |out| match revision {
                    Some(r) => e.write_json_at(info, r, out),
                    None => e.write_json(info, out),
                });
            }
            Want::PartialMetadata => {
                let rv = revision.unwrap_or(e.mod_revision);
                return event_line(kind, e.len() / 2, |out| e.write_partial_metadata(rv, out));
            }
            Want::Table => {}
        }
        let obj = match revision {
            Some(r) => e.decode_at(self.info, r)?,
            None => e.decode(self.info)?,
        };
        Ok(self.line(kind, &obj))
    }

    /// A line, or the ERROR line of its failure.
    fn or_error(&mut self, line: Result<Bytes, ApiError>) -> Bytes {
        line.unwrap_or_else(|e| self.line("ERROR", &e.to_status()))
    }

    fn bookmark(&mut self, rv: i64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": meta});
        self.line("BOOKMARK", &obj)
    }

    /// The line a store event becomes under the selectors, if any.
    fn translate(&mut self, ev: &Event) -> Result<Option<Bytes>, ApiError> {
        let event = match ev.event_type {
            EventType::Put => {
                let new = self.storage.decode(self.info, &ev.kv)?;
                let old_matched = match &ev.prev_kv {
                    Some(p) => Some(self.filter.matches(&self.storage.decode(self.info, p)?)),
                    None => None,
                };
                match (self.filter.matches(&new), old_matched) {
                    (true, None | Some(false)) => Some(("ADDED", new)),
                    (true, Some(true)) => Some(("MODIFIED", new)),
                    (false, Some(true)) => Some(("DELETED", new)),
                    (false, _) => None,
                }
            }
            EventType::Delete => {
                let mut obj = self.storage.decode(self.info, &ev.kv)?;
                object::meta_mut(&mut obj)
                    .insert("resourceVersion".into(), json!(ev.revision.to_string()));
                self.filter.matches(&obj).then_some(("DELETED", obj))
            }
        };
        Ok(event.map(|(kind, obj)| self.line(kind, &obj)))
    }

    /// The line a cached change becomes under the selectors, if any.
    fn translate_cached(
        &mut self,
        cache: &ResourceCache,
        ev: &CacheEvent,
    ) -> Result<Option<Bytes>, ApiError> {
        let info = self.info;
        let filter = &self.filter;
        let matches = |e: &Entry| filter.matches_entry(info, cache, e);
        let kind = if ev.deleted {
            if !matches(&ev.object)? {
                return Ok(None);
            }
            "DELETED"
        } else {
            let old_matched = match &ev.prev {
                Some(p) => Some(matches(p)?),
                None => None,
            };
            match (matches(&ev.object)?, old_matched) {
                (true, None | Some(false)) => "ADDED",
                (true, Some(true)) => "MODIFIED",
                (false, Some(true)) => "DELETED",
                (false, _) => return Ok(None),
            }
        };
        if self.want == Want::PartialMetadata {
            // Made once per change, whatever the number of metadata-only watches.
            let metadata = ev.partial_metadata()?;
            return event_line(kind, metadata.len(), |out| {
                out.extend_from_slice(&metadata);
                Ok(())
            })
            .map(Some);
        }
        let revision = ev.deleted.then_some(ev.revision);
        self.entry_line(kind, &ev.object, revision).map(Some)
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

/// The objects a watch starts with.
enum Initial {
    Cached(Arc<ResourceCache>, Vec<Arc<Entry>>),
    Stored(Vec<Value>),
}

/// Where a watch's changes come from.
enum Source {
    /// The ring of the resource's recent changes in the watch cache, woken by each change of
    /// that resource (not of every resource).
    Cache {
        caches: WatchCache,
        cache: Arc<ResourceCache>,
        changed: tokio::sync::watch::Receiver<i64>,
    },
    /// The store's own watch (revisions the cache cannot serve, or no cache).
    Store(skiff_store::WatchStream),
}

/// What woke a watch's source.
enum Woken {
    /// The cached resource changed.
    Cache,
    /// The store's next event (None: its watch ended).
    Store(Option<skiff_store::Result<Event>>),
}

impl Source {
    /// Waits for the next change (cancel-safe).
    async fn wait(&mut self) -> Woken {
        match self {
            Source::Cache { changed, .. } => {
                // The cache holds the sender: this never fails while the watch runs.
                let _ = changed.changed().await;
                Woken::Cache
            }
            Source::Store(events) => Woken::Store(events.next().await),
        }
    }

    /// Appends the lines of the changes after `*last` that are known now (the cache's ring;
    /// the store's watch delivers them through [`Source::wait`]) and moves `*last` past
    /// them. False when the watch ends after these lines.
    fn catch_up(&self, w: &mut Watcher, last: &mut i64, out: &mut Vec<Bytes>) -> bool {
        let Source::Cache { caches, cache, .. } = self else {
            return true;
        };
        match cache.since(*last, caches.fed()) {
            Since::Events(events, at) => {
                for ev in &events {
                    match w.translate_cached(cache, ev) {
                        Ok(Some(line)) => out.push(line),
                        Ok(None) => {}
                        Err(e) => out.push(w.line("ERROR", &e.to_status())),
                    }
                }
                *last = at;
                true
            }
            Since::TooOld | Since::NotCached => {
                out.push(w.line("ERROR", &too_old(*last).to_status()));
                false
            }
        }
    }

    /// The lines of what [`Source::wait`] returned; false when the watch ends after them.
    fn take(&self, woken: Woken, w: &mut Watcher, last: &mut i64, out: &mut Vec<Bytes>) -> bool {
        match woken {
            Woken::Cache => self.catch_up(w, last, out),
            Woken::Store(None) => false,
            Woken::Store(Some(Ok(ev))) => {
                *last = ev.revision;
                match w.translate(&ev) {
                    Ok(Some(line)) => out.push(line),
                    Ok(None) => {}
                    Err(e) => out.push(w.line("ERROR", &e.to_status())),
                }
                true
            }
            Woken::Store(Some(Err(e))) => {
                out.push(w.line("ERROR", &ApiError::from(e).to_status()));
                false
            }
        }
    }
}

/// Streams a watch: the `initial` objects that match, then every change after `from` from
/// `source`, with bookmarks, until the timeout or the client leaves.
async fn stream(
    mut w: Watcher,
    plan: Plan,
    initial: Initial,
    from: i64,
    mut source: Source,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    match initial {
        Initial::Cached(cache, items) => {
            for e in items {
                let line = match w.filter.matches_entry(w.info, &cache, &e) {
                    Ok(false) => continue,
                    Ok(true) => {
                        let line = w.entry_line("ADDED", &e, None);
                        w.or_error(line)
                    }
                    Err(e) => w.line("ERROR", &e.to_status()),
                };
                if tx.send(Ok(line)).await.is_err() {
                    return;
                }
            }
        }
        Initial::Stored(objects) => {
            for obj in objects {
                if !w.filter.matches(&obj) {
                    continue;
                }
                if tx.send(Ok(w.line("ADDED", &obj))).await.is_err() {
                    return;
                }
            }
        }
    }
    let mut last = from;
    if plan.initial_end_bookmark && tx.send(Ok(w.bookmark(last, true))).await.is_err() {
        return;
    }
    let deadline = tokio::time::sleep(plan.timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
    ticker.tick().await;
    let mut lines = Vec::new();
    let mut open = source.catch_up(&mut w, &mut last, &mut lines);
    loop {
        for line in lines.drain(..) {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        if !open {
            return;
        }
        let woken = tokio::select! {
            _ = &mut deadline => return,
            _ = ticker.tick(), if plan.bookmarks => None,
            woken = source.wait() => Some(woken),
            _ = tx.closed() => return,
        };
        open = match woken {
            Some(woken) => source.take(woken, &mut w, &mut last, &mut lines),
            None => {
                // Everything up to the bookmark's revision is sent before it.
                let open = source.catch_up(&mut w, &mut last, &mut lines);
                if open {
                    lines.push(w.bookmark(last, false));
                }
                open
            }
        };
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
    let (initial, from, source) = match from_cache(ctx, send_initial, rv).await? {
        Some((cache, initial, from)) => {
            let source = Source::Cache {
                caches: ctx.state.cache.clone(),
                changed: cache.subscribe(),
                cache: cache.clone(),
            };
            (Initial::Cached(cache, initial), from, source)
        }
        None => {
            let (initial, from) = if send_initial {
                let page = storage.list(info, ctx.ns(), None, 0, None).await?;
                (page.items, page.revision)
            } else {
                (Vec::new(), rv.unwrap_or_default())
            };
            let events = storage.store.watch(&prefix, from).await?;
            (Initial::Stored(initial), from, Source::Store(events))
        }
    };
    tokio::spawn(stream(w, plan, initial, from, source, tx).instrument(tracing::Span::current()));
    Ok(response(rx))
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
