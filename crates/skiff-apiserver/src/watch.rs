//! Watch: a chunked stream of `{"type": …, "object": …}` lines from the store's revision-ordered
//! events, with selectors applied per event, bookmarks, timeouts and 410 Gone on compaction.
//!
//! Translation of store events only; it writes nothing.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};
use skiff_store::{Event, EventType};
use tokio::sync::mpsc;
use tracing::Instrument;

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

    let (initial, from) = if send_initial {
        let page = storage.list(info, ctx.ns(), None, 0, None).await?;
        (page.items, page.revision)
    } else {
        (Vec::new(), rv.unwrap_or_default())
    };
    let mut events = storage.store.watch(&prefix, from).await?;
    let mut w = Watcher {
        storage,
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
    let initial_end_bookmark = flag(&params.send_initial_events) && bookmarks;

    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(
        async move {
            let mut last_rv = from;
            for obj in &initial {
                if !w.filter.matches(obj) {
                    continue;
                }
                if tx.send(Ok(w.line("ADDED", obj))).await.is_err() {
                    return;
                }
            }
            if initial_end_bookmark && tx.send(Ok(w.bookmark(last_rv, true))).await.is_err() {
                return;
            }
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
            ticker.tick().await;
            loop {
                let line = tokio::select! {
                    _ = &mut deadline => return,
                    _ = ticker.tick(), if bookmarks => Some(w.bookmark(last_rv, false)),
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
        .instrument(tracing::Span::current()),
    );
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut r = Response::new(body);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}
