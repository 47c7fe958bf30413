//! DELETE and deletecollection: preconditions, propagation policies (recorded as the
//! `orphan` / `foregroundDeletion` finalizers the garbage collector acts on), finalizers,
//! graceful deletion (kinds whose objects a node stops first) and the kind's admission.

use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{reply, Ctx};
use crate::error::ApiError;
use crate::http::flag;
use crate::object;
use crate::registry::{Admission, Kind};
use crate::router::ApiState;
use crate::storage::conflict;

#[cfg(test)]
mod tests {
    #[test]
    fn deletion_finalizers_follow_propagation_policy() {
        use super::deletion_finalizers;
        assert_eq!(deletion_finalizers("Foreground"), ["foregroundDeletion"]);
        assert_eq!(deletion_finalizers("Orphan"), ["orphan"]);
        assert!(deletion_finalizers("Background").is_empty());
        assert!(deletion_finalizers("").is_empty());
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Preconditions {
    pub(super) uid: Option<String>,
    pub(super) resource_version: Option<String>,
}

/// `meta.k8s.io/v1 DeleteOptions` (body), merged with the query parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct DeleteOptions {
    propagation_policy: Option<String>,
    grace_period_seconds: Option<i64>,
    orphan_dependents: Option<bool>,
    preconditions: Option<Preconditions>,
    dry_run: Option<Vec<String>>,
}

#[derive(Default, Clone)]
pub(super) struct Options {
    /// `Background`, `Foreground` or `Orphan`: how dependents are treated.
    propagation: &'static str,
    grace: Option<i64>,
    pub(super) preconditions: Preconditions,
    pub(super) dry_run: bool,
}

fn options(ctx: Ctx<'_>, body: &[u8]) -> Result<Options, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        options_from(ctx, None)
    } else {
        // JSON, YAML or protobuf, as any other body.
        options_from(ctx, Some(crate::http::decode_object(ctx.headers, body)?))
    }
}

/// The options of a delete from a decoded `DeleteOptions` body (if any) and the query.
pub(super) fn options_from(ctx: Ctx<'_>, body: Option<Value>) -> Result<Options, ApiError> {
    let body_opts: DeleteOptions = match body {
        None | Some(Value::Null) => DeleteOptions::default(),
        Some(decoded) => serde_json::from_value(decoded)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?,
    };
    let policy = ctx
        .params
        .propagation_policy
        .clone()
        .or(body_opts.propagation_policy);
    let orphan = flag(&ctx.params.orphan_dependents) || body_opts.orphan_dependents == Some(true);
    let propagation = match policy.as_deref() {
        Some("Foreground") => "Foreground",
        Some("Orphan") => "Orphan",
        Some("Background") => "Background",
        None | Some("") if orphan => "Orphan",
        None | Some("") => "Background",
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy must be one of Orphan, Background or Foreground, got \"{other}\""
            )))
        }
    };
    let dry_run = ctx.params.dry_run()?
        || body_opts
            .dry_run
            .is_some_and(|d| d.iter().any(|x| x == "All"));
    Ok(Options {
        propagation,
        grace: ctx
            .params
            .grace_period_seconds()?
            .or(body_opts.grace_period_seconds),
        preconditions: body_opts.preconditions.unwrap_or_default(),
        dry_run,
    })
}

/// How often a DELETE is retried when a concurrent write changed the object between its
/// read and its write (kube-apiserver's `GuaranteedUpdate` retries the same way), unless the
/// client pinned a resourceVersion.
const CONFLICT_RETRIES: usize = 8;

pub async fn delete(ctx: Ctx<'_>, body: &Bytes) -> Result<Response, ApiError> {
    let opts = options(ctx, body)?;
    let mut attempt = 0;
    loop {
        match delete_once(ctx, &opts).await {
            Err(e)
                if e.code == 409
                    && opts.preconditions.resource_version.is_none()
                    && attempt < CONFLICT_RETRIES =>
            {
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// One read-check-write round of [`delete`].
async fn delete_once(ctx: Ctx<'_>, opts: &Options) -> Result<Response, ApiError> {
    let current = ctx.current().await?;
    check_preconditions(ctx.info(), &current, &opts.preconditions)?;
    let obj = delete_object(ctx.state, ctx.kind(), current, opts).await?;
    reply(ctx, 200, &obj)
}

/// 409 unless `current` has the uid and resourceVersion the preconditions name.
pub(super) fn check_preconditions(
    info: &crate::resources::ResourceInfo,
    current: &Value,
    p: &Preconditions,
) -> Result<(), ApiError> {
    if let Some(uid) = p
        .uid
        .as_deref()
        .filter(|u| *u != object::meta_str(current, "uid"))
    {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                object::meta_str(current, "uid")
            ),
        ));
    }
    if p.resource_version
        .as_deref()
        .is_some_and(|rv| rv != object::meta_str(current, "resourceVersion"))
    {
        return Err(conflict(info, object::name(current)));
    }
    Ok(())
}

pub async fn delete_collection(ctx: Ctx<'_>, body: &Bytes) -> Result<Response, ApiError> {
    let opts = options(ctx, body)?;
    let (items, revision, _) = super::read::collect(ctx).await?;
    let mut deleted = Vec::new();
    for obj in items {
        match delete_object(ctx.state, ctx.kind(), obj, &opts).await {
            Ok(o) => deleted.push(o),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let info = ctx.info();
    Ok(crate::http::json(
        200,
        &json!({"kind": format!("{}List", info.kind), "apiVersion": info.api_version(),
            "metadata": {"resourceVersion": revision.to_string()}, "items": deleted}),
    ))
}

/// The finalizers a DELETE with `propagationPolicy` adds to the object, for the garbage
/// collector (in the controller set) to act on. `Background`, the default, adds none:
/// dependents are collected after the owner is gone.
pub fn deletion_finalizers(propagation: &str) -> Vec<String> {
    match propagation {
        "Foreground" => vec!["foregroundDeletion".to_string()],
        "Orphan" => vec!["orphan".to_string()],
        _ => Vec::new(),
    }
}

/// Deletes `current`, or marks it for deletion when finalizers, propagation or a grace
/// period keep it alive; returns what the client sees.
pub(super) async fn delete_object(
    state: &ApiState,
    kind: &dyn Kind,
    current: Value,
    opts: &Options,
) -> Result<Value, ApiError> {
    let info = kind.info();
    kind.admit(
        state,
        Admission::Delete {
            obj: &current,
            dry_run: opts.dry_run,
        },
    )
    .await?;
    let rv = object::resource_version(&current)?.unwrap_or_default();
    let mut finalizers = object::finalizers(&current);
    if !object::is_deleting(&current) {
        for f in deletion_finalizers(opts.propagation) {
            if !finalizers.contains(&f) {
                finalizers.push(f);
            }
        }
    }
    let graceful = if kind.graceful_delete() {
        kind.grace_period(&current, opts.grace)
    } else {
        None
    };
    if finalizers.is_empty() && graceful.is_none() && !kind.deletion_pending(&current) {
        if opts.dry_run {
            return Ok(current);
        }
        let deleted = state.storage.delete(info, &current, rv).await?;
        kind.admit(state, Admission::Deleted { obj: &deleted })
            .await?;
        return Ok(deleted);
    }
    if object::is_deleting(&current) {
        return Ok(current);
    }
    let mut marked = current.clone();
    let meta = object::meta_mut(&mut marked);
    meta.insert("deletionTimestamp".into(), json!(object::now()));
    meta.insert(
        "deletionGracePeriodSeconds".into(),
        json!(graceful.unwrap_or(0)),
    );
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), json!(finalizers));
    }
    kind.prepare_for_delete(&mut marked);
    if opts.dry_run {
        return Ok(marked);
    }
    state.storage.update(info, marked, rv).await
}
