//! Reads: get one object, list with selectors, pagination and resourceVersion semantics.

use axum::response::Response;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{partial_metadata, reply, Ctx};
use crate::error::ApiError;
use crate::http::{self as wire, Want};
use crate::object;
use crate::resources::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};

pub async fn get(ctx: Ctx<'_>) -> Result<Response, ApiError> {
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
            fields: FieldSelector::parse(ctx.info(), &fields)?,
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        (self.labels.is_empty() || self.labels.matches(&object::labels(obj)))
            && (self.fields.is_empty() || self.fields.matches(obj))
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

/// Lists objects matching the request's selectors, `limit` at a time.
pub async fn collect(ctx: Ctx<'_>) -> Result<(Vec<Value>, i64, Option<String>), ApiError> {
    let info = ctx.info();
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
            let current = ctx.state.storage.store.current_revision().await?;
            if min > current {
                return Err(ApiError::new(
                    504,
                    "Timeout",
                    format!("Too large resource version: {min}, current: {current}"),
                ));
            }
        }
    }
    let mut items = Vec::new();
    loop {
        let page_size = limit.map(|l| (l - items.len()).max(1)).unwrap_or(0);
        let page = ctx.state.storage.list(info, ctx.ns(), start.as_deref(), page_size, revision).await.map_err(|e| {
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
        for (i, obj) in page.items.into_iter().enumerate() {
            let key = info.key(Some(object::namespace(&obj)), object::name(&obj));
            if filter.matches(&obj) {
                items.push(obj);
            }
            start = Some(key.clone());
            if limit.is_some_and(|l| items.len() >= l) {
                let more = i + 1 < n || page.more;
                let token = more.then(|| encode_continue(page.revision, &key));
                return Ok((items, page.revision, token));
            }
        }
        if !page.more {
            return Ok((items, page.revision, None));
        }
    }
}

pub async fn list(ctx: Ctx<'_>) -> Result<Response, ApiError> {
    let (items, revision, token) = collect(ctx).await?;
    let info = ctx.info();
    let rv = revision.to_string();
    let body = match wire::negotiate(ctx.headers) {
        Want::Table => {
            let mut t = crate::table::table(info, &items, &rv, ctx.params);
            if let Some(c) = &token {
                t["metadata"]["continue"] = json!(c);
            }
            t
        }
        want => {
            let (kind, api_version, items) = if want == Want::PartialMetadata {
                (
                    "PartialObjectMetadataList".to_string(),
                    "meta.k8s.io/v1".to_string(),
                    items.iter().map(partial_metadata).collect(),
                )
            } else {
                (format!("{}List", info.kind), info.api_version(), items)
            };
            let mut metadata = json!({"resourceVersion": rv});
            if let Some(c) = &token {
                metadata["continue"] = json!(c);
            }
            json!({"kind": kind, "apiVersion": api_version, "metadata": metadata, "items": items})
        }
    };
    Ok(wire::json(200, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_other_resources() {
        let pods = crate::resources::find("", "v1", "pods").unwrap();
        let token = encode_continue(42, "/registry/core/pods/default/a");
        let t = decode_continue(pods, &token).unwrap();
        assert_eq!(
            (t.rv, t.start.as_str()),
            (42, "/registry/core/pods/default/a")
        );
        let cms = crate::resources::find("", "v1", "configmaps").unwrap();
        assert_eq!(decode_continue(cms, &token).unwrap_err().code, 400);
        assert_eq!(decode_continue(pods, "!!!").unwrap_err().code, 400);
    }
}
