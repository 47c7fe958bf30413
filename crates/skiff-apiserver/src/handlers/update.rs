//! Updates (PUT) and the rules every write to an existing object follows: immutable metadata,
//! what the kind lets the main resource and each subresource change, generation,
//! finalizers, no-op detection, dry run.

use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{body_field_validation, check_type, reply, Ctx};
use crate::auth::UserInfo;
use crate::error::{ApiError, Cause};
use crate::object;
use crate::registry::{Admission, Kind};
use crate::resources::Sub;
use crate::router::ApiState;
use crate::storage::conflict;

/// Which part of the object a write may change: the main resource (what its kind's
/// `prepare_for_update` allows) or a subresource (what `prepare_for_subresource` takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    Main,
    Sub(Sub),
}

impl UpdateKind {
    /// The update a request on `sub` makes (`/scale` writes the main resource).
    pub fn of(sub: Option<Sub>) -> Self {
        match sub {
            None | Some(Sub::Scale) => UpdateKind::Main,
            Some(s) => UpdateKind::Sub(s),
        }
    }
}

/// PUT: replaces the object (or one of its subresources).
pub async fn put(ctx: Ctx<'_>, body: &Bytes) -> Result<Response, ApiError> {
    let (kind, info) = (ctx.kind(), ctx.info());
    let mut new = crate::http::decode_object(ctx.headers, body)?;
    check_type(kind, &mut new)?;
    let body_name = object::name(&new).to_string();
    if body_name.is_empty() {
        object::meta_mut(&mut new).insert("name".into(), json!(ctx.name()));
    } else if body_name != ctx.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            ctx.name()
        )));
    }
    let body_ns = object::namespace(&new).to_string();
    if info.namespaced {
        let ns = ctx.ns().unwrap_or_default();
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        object::meta_mut(&mut new).insert("namespace".into(), json!(ns));
    }
    let warnings = body_field_validation(ctx, &new)?;
    let dry_run = ctx.params.dry_run()?;
    let current = ctx.state.storage.get(info, ctx.ns(), ctx.name()).await?;
    let Some(current) = current else {
        if kind.create_on_update() && ctx.target.subresource.is_none() {
            object::meta_mut(&mut new).remove("resourceVersion");
            super::record_write(ctx, None, &mut new);
            let created =
                super::create_object(ctx.state, kind, new, Some(ctx.user), dry_run).await?;
            return Ok(crate::http::with_warnings(
                reply(ctx, 201, &created)?,
                &warnings,
            ));
        }
        return Err(ApiError::not_found(info.group, info.plural, ctx.name()));
    };
    let update = UpdateKind::of(ctx.target.subresource);
    super::record_write(ctx, Some(&current), &mut new);
    let written = write_update(
        ctx.state,
        kind,
        &current,
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

/// Writes `new` over `current` under the rules of `update` for `kind`. A `resourceVersion`
/// in `new` must equal the current one (else 409). Unchanged objects are not written. An
/// object being deleted whose last finalizer goes away is deleted. `user` is who asks (None:
/// the server itself), for admission.
pub async fn write_update(
    state: &ApiState,
    kind: &dyn Kind,
    current: &Value,
    mut new: Value,
    update: UpdateKind,
    dry_run: bool,
    user: Option<&UserInfo>,
) -> Result<Value, ApiError> {
    let info = kind.info();
    let name = object::name(current).to_string();
    let current_rv = object::resource_version(current)?.unwrap_or_default();
    if let Some(rv) = object::resource_version(&new)? {
        if rv != current_rv {
            return Err(conflict(info, &name));
        }
    }
    let sub = match update {
        UpdateKind::Main => {
            kind.prepare_for_update(&mut new, current);
            None
        }
        UpdateKind::Sub(sub) => {
            new = kind.prepare_for_subresource(sub, new, current);
            Some(sub)
        }
    };
    keep_immutable_metadata(current, &mut new);
    if update == UpdateKind::Main {
        super::normalize(kind, &mut new);
    }
    if object::is_deleting(current) {
        let old: Vec<String> = object::finalizers(current);
        if let Some(added) = object::finalizers(&new)
            .into_iter()
            .find(|f| !old.contains(f))
        {
            return Err(ApiError::invalid(
                info.group,
                info.kind,
                &name,
                vec![Cause {
                    reason: "FieldValueForbidden".into(),
                    message: format!("Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [\"{added}\"]"),
                    field: "metadata.finalizers".into(),
                }],
            ));
        }
    }
    if kind.generation() {
        let old_gen = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let changed_spec = object::desired_state(current) != object::desired_state(&new);
        let generation = if changed_spec { old_gen + 1 } else { old_gen };
        object::meta_mut(&mut new).insert("generation".into(), json!(generation));
    } else {
        copy_meta(current, &mut new, "generation");
    }
    kind.admit(
        state,
        Admission::Update {
            new: &mut new,
            old: current,
            sub,
            user,
            dry_run,
        },
    )
    .await?;
    let attempted = new.clone();
    // Writes of the main resource are charged to quotas once valid (in `store_update`); a
    // refusal aborts what the kind's admission did, as any failed write below does.
    let charge = sub.is_none();
    let written = store_update(state, kind, current, new, current_rv, dry_run, charge).await;
    match &written {
        Ok(obj) if !dry_run => {
            kind.admit(state, Admission::Updated { obj, old: current })
                .await?
        }
        _ => {
            kind.admit(
                state,
                Admission::UpdateAborted {
                    new: &attempted,
                    old: current,
                    dry_run,
                },
            )
            .await?
        }
    }
    written
}

/// The end of [`write_update`] once the object is complete: validates it, charges it to the
/// namespace's quotas when `charge`, then stores it, or deletes it when its last finalizer
/// went away (returning the deleted object).
async fn store_update(
    state: &ApiState,
    kind: &dyn Kind,
    current: &Value,
    mut new: Value,
    current_rv: i64,
    dry_run: bool,
    charge: bool,
) -> Result<Value, ApiError> {
    let info = kind.info();
    kind.validate(&new, Some(current))?;
    if charge {
        crate::admission::charge_update(state, info, &new, current, dry_run).await?;
    }
    if object::is_deleting(&new)
        && object::finalizers(&new).is_empty()
        && !kind.deletion_pending(&new)
    {
        if dry_run {
            return Ok(new);
        }
        let deleted = state.storage.delete(info, &new, current_rv).await?;
        kind.admit(state, Admission::Deleted { obj: &deleted })
            .await?;
        return Ok(deleted);
    }
    object::meta_mut(&mut new).insert("resourceVersion".into(), json!(current_rv.to_string()));
    if new == *current || dry_run {
        return Ok(new);
    }
    state.storage.update(info, new, current_rv).await
}

fn copy_meta(from: &Value, to: &mut Value, field: &str) {
    match from.pointer(&format!("/metadata/{field}")) {
        Some(v) => {
            object::meta_mut(to).insert(field.into(), v.clone());
        }
        None => {
            object::meta_mut(to).remove(field);
        }
    }
}

/// Metadata a client cannot change: identity, creation, deletion state.
fn keep_immutable_metadata(current: &Value, new: &mut Value) {
    let old = current.get("metadata").cloned().unwrap_or(json!({}));
    let meta = object::meta_mut(new);
    for k in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match old.get(k) {
            Some(v) => {
                meta.insert(k.into(), v.clone());
            }
            None => {
                meta.remove(k);
            }
        }
    }
    meta.remove("selfLink");
}
