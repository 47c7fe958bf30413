//! PATCH: JSON patch, merge patch, strategic merge patch and server-side apply, retried on
//! concurrent writes like Kubernetes' GuaranteedUpdate.

use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{check_type, field_validation, reply, update::UpdateKind, write_update, Ctx};
use crate::error::ApiError;
use crate::http::{content_type, flag};
use crate::object;
use crate::registry::Kind;

/// How often a patch is re-applied when the object changed under it.
const RETRIES: usize = 5;

pub const APPLY: &str = "application/apply-patch+yaml";

pub async fn patch(ctx: Ctx<'_>, body: &Bytes) -> Result<Response, ApiError> {
    let ct = content_type(ctx.headers);
    let dry_run = ctx.params.dry_run()?;
    let update = UpdateKind::of(ctx.target.subresource);
    let mut last_err = None;
    for _ in 0..RETRIES {
        let current = ctx
            .state
            .storage
            .get(ctx.info(), ctx.ns(), ctx.name())
            .await?;
        let result = match current {
            Some(cur) => apply_to(ctx, &ct, &cur, body, update, dry_run).await,
            None if ct == APPLY && update == UpdateKind::Main => {
                return create_by_apply(ctx, body, dry_run).await
            }
            None => {
                return Err(ApiError::not_found(
                    ctx.info().group,
                    ctx.info().plural,
                    ctx.name(),
                ))
            }
        };
        match result {
            Err(e) if e.code == 409 && e.reason == "Conflict" && !patch_sets_rv(body) => {
                last_err = Some(e)
            }
            other => return other,
        }
    }
    Err(last_err.unwrap_or_else(|| ApiError::internal("patch retries exhausted")))
}

/// The applied configuration of an apply PATCH (YAML or JSON), decoded as its kind decodes
/// bodies (a Secret's write-only `stringData` folds into `data`), so ownership is recorded
/// on what is stored.
fn decode_applied(kind: &dyn Kind, body: &[u8]) -> Result<Value, ApiError> {
    let mut applied = crate::yaml::parse(body)?;
    kind.decode_body(&mut applied);
    Ok(applied)
}

/// Whether the patch body itself pins a resourceVersion (then a conflict is the client's).
fn patch_sets_rv(body: &[u8]) -> bool {
    std::str::from_utf8(body)
        .is_ok_and(|s| s.contains("\"resourceVersion\"") || s.contains("resourceVersion:"))
}

/// The field manager of a server-side apply, which Kubernetes requires.
fn apply_manager<'a>(ctx: Ctx<'a>) -> Result<&'a str, ApiError> {
    ctx.params
        .field_manager
        .as_deref()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("PATCH with apply-patch+yaml requires the fieldManager parameter")
        })
}

/// The object after applying the request's patch to `current`.
pub fn patched(ctx: Ctx<'_>, ct: &str, current: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let info = ctx.info();
    if ct == APPLY {
        let applied = decode_applied(ctx.kind(), body)?;
        let manager = apply_manager(ctx)?;
        return crate::ssa::server_side_apply(
            info,
            Some(current),
            &applied,
            manager,
            flag(&ctx.params.force),
        );
    }
    crate::patch::apply_patch(info, ct, current, body)
}

async fn apply_to(
    ctx: Ctx<'_>,
    ct: &str,
    current: &Value,
    body: &[u8],
    update: UpdateKind,
    dry_run: bool,
) -> Result<Response, ApiError> {
    let mut new = patched(ctx, ct, current, body)?;
    if object::name(&new) != ctx.name() {
        return Err(ApiError::bad_request(
            "the name of a patched object cannot change",
        ));
    }
    // A patch that does not mention resourceVersion keeps the current one.
    if !patch_sets_rv(body) {
        object::meta_mut(&mut new).insert(
            "resourceVersion".into(),
            json!(object::meta_str(current, "resourceVersion")),
        );
    }
    let warnings = field_validation(ctx, &new)?;
    if ct != APPLY {
        super::record_write(ctx, Some(current), &mut new);
    }
    let written = write_update(
        ctx.state,
        ctx.kind(),
        current,
        new,
        update,
        dry_run,
        Some(ctx.user),
    )
    .await?;
    Ok(crate::http::with_warnings(
        reply(ctx, 200, &written)?,
        &warnings,
    ))
}

/// Server-side apply of an object that does not exist yet creates it.
async fn create_by_apply(ctx: Ctx<'_>, body: &[u8], dry_run: bool) -> Result<Response, ApiError> {
    let (kind, info) = (ctx.kind(), ctx.info());
    let manager = apply_manager(ctx)?;
    let applied = decode_applied(kind, body)?;
    let mut obj =
        crate::ssa::server_side_apply(info, None, &applied, manager, flag(&ctx.params.force))?;
    check_type(kind, &mut obj)?;
    if object::name(&obj) != ctx.name() {
        return Err(ApiError::bad_request(
            "the name of the applied object does not match the URL",
        ));
    }
    if info.namespaced {
        object::meta_mut(&mut obj).insert("namespace".into(), json!(ctx.ns().unwrap_or_default()));
    }
    let warnings = field_validation(ctx, &obj)?;
    let created = super::create_object(ctx.state, kind, obj, Some(ctx.user), dry_run).await?;
    Ok(crate::http::with_warnings(
        reply(ctx, 201, &created)?,
        &warnings,
    ))
}
