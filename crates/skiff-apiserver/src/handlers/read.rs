//! Reads: get one object, list with selectors, pagination and resourceVersion semantics.

use axum::response::Response;
use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use skiff_store::KeyValue;

use super::{partial_metadata, reply, Ctx};
use crate::cache::{Entry, ReadAt, ResourceCache};
use crate::error::ApiError;
use crate::http::{self as wire, Want};
use crate::object;
use crate::resources::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};

pub async fn get(ctx: Ctx<'_>) -> Result<Response, ApiError> {
    if wire::negotiate(ctx.headers) == Want::Object {
        // Passed on as stored: no Value tree to build and encode again.
        let (info, storage) = (ctx.info(), &ctx.state.storage);
        let rv = object::parse_rv(ctx.params.resource_version.as_deref().unwrap_or(""))?;
        if let Some((cache, fed)) = ctx
            .state
            .cache
            .ready(storage, ctx.kind(), ReadAt::from_rv(rv))
            .await?
        {
            let (entry, _) = cache.get(&info.key(ctx.ns(), ctx.name()), fed);
            let entry =
                entry.ok_or_else(|| ApiError::not_found(info.group, info.plural, ctx.name()))?;
            let mut out = Vec::with_capacity(entry.len() + 64);
            entry.write_json(info, &mut out)?;
            return Ok(wire::json_bytes(200, out));
        }
        let kv = storage
            .get_stored(info, ctx.ns(), ctx.name())
            .await?
            .ok_or_else(|| ApiError::not_found(info.group, info.plural, ctx.name()))?;
        let mut out = Vec::with_capacity(kv.value.len() + 64);
        storage.write_json(info, &kv, &mut out)?;
        return Ok(wire::json_bytes(200, out));
    }
    let obj = ctx.current().await?;
    reply(ctx, 200, &obj)
}

/// The opaque `continue` token: the list's revision and the last key returned.
#[derive(Debug, Serialize, Deserialize)]
struct ContinueToken {
    rv: i64,
    start: String,
}

fn encode_continue(rv: i64, start: &str) -> String {
    let raw = serde_json::to_vec(&ContinueToken {
        rv,
        start: start.to_string(),
    })
    .unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(info: &ResourceInfo, token: &str) -> Result<ContinueToken, ApiError> {
    let bad = || ApiError::bad_request("continue key is not valid: malformed token");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let t: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if !t.start.starts_with(&info.prefix()) {
        return Err(bad());
    }
    Ok(t)
}

/// Matches objects against the request's label and field selectors.
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    pub fn from_ctx(ctx: Ctx<'_>) -> Result<Self, ApiError> {
        // A watch on one object's path watches that name only.
        let mut fields = ctx.params.field_selector.clone().unwrap_or_default();
        if let Some(name) = &ctx.target.name {
            fields = format!("{fields},metadata.name={name}");
        }
        Ok(Filter {
            labels: LabelSelector::parse(ctx.params.label_selector.as_deref().unwrap_or(""))?,
            fields: FieldSelector::parse(ctx.kind(), &fields)?,
        })
    }

    /// Whether every object matches (no selector given).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        (self.labels.is_empty() || self.labels.matches(&object::labels(obj)))
            && (self.fields.is_empty() || self.fields.matches(obj))
    }

    /// Whether a cached object matches, from the labels and field values the cache keeps;
    /// decoded only for a field the cache does not keep.
    pub(crate) fn matches_entry(
        &self,
        info: &ResourceInfo,
        cache: &ResourceCache,
        e: &Entry,
    ) -> Result<bool, ApiError> {
        if !self.labels.is_empty() && !self.labels.matches_with(|k| e.label(k)) {
            return Ok(false);
        }
        if self.fields.is_empty() {
            return Ok(true);
        }
        let kept = |f: &str| {
            let i = cache.fields.iter().position(|c| *c == f)?;
            e.field(i)
        };
        match self.fields.matches_with(kept) {
            Some(m) => Ok(m),
            None => Ok(self.fields.matches(&e.decode(info)?)),
        }
    }
}

/// The revision a list without a continue token is served at (None = the newest).
pub fn list_revision(ctx: Ctx<'_>) -> Result<Option<i64>, ApiError> {
    let rv = object::parse_rv(ctx.params.resource_version.as_deref().unwrap_or(""))?;
    match (
        ctx.params.resource_version_match.as_deref().unwrap_or(""),
        rv,
    ) {
        ("", None) | ("", Some(0)) | ("NotOlderThan", _) | ("", Some(_)) => Ok(None),
        ("Exact", Some(r)) if r > 0 => Ok(Some(r)),
        ("Exact", _) => Err(ApiError::bad_request(
            "resourceVersionMatch=Exact requires a non-zero resourceVersion",
        )),
        (other, _) => Err(ApiError::bad_request(format!(
            "unsupported resourceVersionMatch \"{other}\""
        ))),
    }
}

/// One listed object: as stored, decoded when a selector had to look at it, or cached.
enum Listed {
    Stored(KeyValue),
    Decoded(Value),
    Cached(Arc<Entry>),
}

/// Objects read from the store per query when the client set no (or a larger) limit: what
/// one list holds in memory at once besides what it has already encoded.
const STORE_PAGE: usize = 500;

/// Where [`collect_into`] puts the objects it lists.
trait Sink {
    fn push(&mut self, item: Listed) -> Result<(), ApiError>;
    /// Objects taken so far.
    fn len(&self) -> usize;
    /// About `bytes` of JSON will follow (cached objects, whose size is known): room for
    /// them at once instead of growing by doubling, which held twice the list at its peak.
    fn reserve_json(&mut self, _bytes: usize) {}
}

impl Sink for Vec<Listed> {
    fn push(&mut self, item: Listed) -> Result<(), ApiError> {
        Vec::push(self, item);
        Ok(())
    }

    fn len(&self) -> usize {
        Vec::len(self)
    }
}

/// Lists objects matching the request's selectors, `limit` at a time, decoded.
pub async fn collect(ctx: Ctx<'_>) -> Result<(Vec<Value>, i64, Option<String>), ApiError> {
    let mut listed = Vec::new();
    let (revision, token) = collect_into(ctx, &mut listed).await?;
    let (info, storage) = (ctx.info(), &ctx.state.storage);
    let items = listed
        .into_iter()
        .map(|l| match l {
            Listed::Stored(kv) => storage.decode(info, &kv),
            Listed::Decoded(obj) => Ok(obj),
            Listed::Cached(e) => e.decode(info),
        })
        .collect::<Result<_, _>>()?;
    Ok((items, revision, token))
}

/// Lists objects matching the request's selectors into `sink`, `limit` at a time, reading
/// the store [`STORE_PAGE`] objects at a time at one revision; objects are decoded only when
/// a selector needs to look at them. Returns the revision and the continue token.
async fn collect_into(
    ctx: Ctx<'_>,
    sink: &mut impl Sink,
) -> Result<(i64, Option<String>), ApiError> {
    let info = ctx.info();
    let storage = &ctx.state.storage;
    let filter = Filter::from_ctx(ctx)?;
    let limit = ctx.params.limit()?.filter(|l| *l > 0).map(|l| l as usize);
    let (mut revision, mut start) = match ctx
        .params
        .continue_token
        .as_deref()
        .filter(|t| !t.is_empty())
    {
        Some(token) => {
            if ctx
                .params
                .resource_version
                .as_deref()
                .is_some_and(|rv| !rv.is_empty() && rv != "0")
            {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let t = decode_continue(info, token)?;
            (Some(t.rv), Some(t.start))
        }
        None => (list_revision(ctx)?, None),
    };
    if ctx.params.continue_token.is_none() {
        if let Some(min) = object::parse_rv(ctx.params.resource_version.as_deref().unwrap_or(""))? {
            let current = storage.store.current_revision().await?;
            if min > current {
                return Err(ApiError::new(
                    504,
                    "Timeout",
                    format!("Too large resource version: {min}, current: {current}"),
                ));
            }
        }
    }
    // From the watch cache when it can serve the revision asked for: a continue token or an
    // Exact revision only while nothing of the resource changed since.
    let at = match revision {
        Some(_) => ReadAt::Any,
        None => ReadAt::from_rv(object::parse_rv(
            ctx.params.resource_version.as_deref().unwrap_or(""),
        )?),
    };
    if let Some((cache, fed)) = ctx.state.cache.ready(storage, ctx.kind(), at).await? {
        let prefix = info.namespace_prefix(ctx.ns());
        let keep = |e: &Entry| filter.matches_entry(info, &cache, e);
        if let Some(selected) =
            cache.select(&prefix, start.as_deref(), fed, revision, limit, keep)?
        {
            let token = match (selected.more, selected.items.last()) {
                (true, Some(last)) => Some(encode_continue(selected.revision, &last.key)),
                _ => None,
            };
            sink.reserve_json(selected.items.iter().map(|e| e.len() + 1).sum());
            for e in selected.items {
                sink.push(Listed::Cached(e))?;
            }
            return Ok((selected.revision, token));
        }
    }
    loop {
        let page_size = limit.map_or(STORE_PAGE, |l| (l - sink.len()).clamp(1, STORE_PAGE));
        let page = storage.list_stored(info, ctx.ns(), start.as_deref(), page_size, revision).await.map_err(|e| {
            if e.code == 410 && ctx.params.continue_token.is_some() {
                ApiError::new(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can start \
                     a new list without the continue parameter.",
                )
            } else {
                e
            }
        })?;
        revision = Some(page.revision);
        let n = page.items.len();
        for (i, kv) in page.items.into_iter().enumerate() {
            let key = kv.key.clone();
            if filter.is_empty() {
                sink.push(Listed::Stored(kv))?;
            } else {
                let obj = storage.decode(info, &kv)?;
                if filter.matches(&obj) {
                    sink.push(Listed::Decoded(obj))?;
                }
            }
            if limit.is_some_and(|l| sink.len() >= l) {
                let more = i + 1 < n || page.more;
                let token = more.then(|| encode_continue(page.revision, &key));
                return Ok((page.revision, token));
            }
            start = Some(key);
        }
        if !page.more {
            return Ok((page.revision, None));
        }
    }
}

pub async fn list(ctx: Ctx<'_>) -> Result<Response, ApiError> {
    let want = wire::negotiate(ctx.headers);
    if want == Want::Object {
        return list_json(ctx).await;
    }
    let (items, revision, token) = collect(ctx).await?;
    let rv = revision.to_string();
    let body = if want == Want::Table {
        let mut t = crate::table::table(ctx.kind(), &items, &rv, ctx.params);
        if let Some(c) = &token {
            t["metadata"]["continue"] = json!(c);
        }
        t
    } else {
        let items: Vec<Value> = items.iter().map(partial_metadata).collect();
        let mut metadata = json!({"resourceVersion": rv});
        if let Some(c) = &token {
            metadata["continue"] = json!(c);
        }
        json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "items": items})
    };
    Ok(wire::json(200, &body))
}

/// The items of a plain `<Kind>List`, written as they are listed from the stored JSON (see
/// [`crate::storage::Storage::write_json`]), so each stored value is freed once written.
struct JsonItems<'a> {
    storage: &'a crate::storage::Storage,
    info: &'static ResourceInfo,
    out: Vec<u8>,
    count: usize,
}

impl Sink for JsonItems<'_> {
    fn push(&mut self, item: Listed) -> Result<(), ApiError> {
        if self.count > 0 {
            self.out.push(b',');
        }
        self.count += 1;
        match item {
            Listed::Stored(kv) => self.storage.write_json(self.info, &kv, &mut self.out),
            Listed::Decoded(obj) => serde_json::to_writer(&mut self.out, &obj)
                .map_err(|e| ApiError::internal(format!("encode list: {e}"))),
            Listed::Cached(e) => e.write_json(self.info, &mut self.out),
        }
    }

    fn len(&self) -> usize {
        self.count
    }

    fn reserve_json(&mut self, bytes: usize) {
        // The list's tail (metadata with a continue token) fits in the spare 256 bytes.
        self.out.reserve(bytes + 256);
    }
}

/// A plain `<Kind>List`: `items` first, as they are listed, and `metadata` (which needs the
/// revision and continue token) after them.
async fn list_json(ctx: Ctx<'_>) -> Result<Response, ApiError> {
    let info = ctx.info();
    let mut items = JsonItems {
        storage: &ctx.state.storage,
        info,
        out: Vec::new(),
        count: 0,
    };
    let head = format!(
        "{{\"kind\":{},\"apiVersion\":{},\"items\":[",
        json!(format!("{}List", info.kind)),
        json!(info.api_version()),
    );
    items.out.extend_from_slice(head.as_bytes());
    let (revision, token) = collect_into(ctx, &mut items).await?;
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if let Some(c) = &token {
        metadata["continue"] = json!(c);
    }
    let mut out = items.out;
    out.extend_from_slice(format!("],\"metadata\":{metadata}}}").as_bytes());
    Ok(wire::json_bytes(200, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_other_resources() {
        let pods = crate::resources::find("", "v1", "pods").unwrap();
        let token = encode_continue(42, "/registry/core/pods/default/a");
        let t = decode_continue(pods.info(), &token).unwrap();
        assert_eq!(
            (t.rv, t.start.as_str()),
            (42, "/registry/core/pods/default/a")
        );
        let cms = crate::resources::find("", "v1", "configmaps").unwrap();
        assert_eq!(decode_continue(cms.info(), &token).unwrap_err().code, 400);
        assert_eq!(decode_continue(pods.info(), "!!!").unwrap_err().code, 400);
    }
}
