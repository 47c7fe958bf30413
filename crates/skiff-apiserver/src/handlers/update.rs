//! Updates (PUT) and the rules every write to an existing object follows: immutable metadata,
//! spec/status separation, generation, finalizers, no-op detection, dry run.

use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{check_type, field_validation, reply, Ctx};
use crate::error::{ApiError, Cause};
use crate::object;
use crate::resources::ResourceInfo;
use crate::router::ApiState;
use crate::storage::conflict;

/// Which part of the object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    /// The main resource: everything but status.
    Main,
    /// The `/status` subresource: status only.
    Status,
    /// A namespace's `/finalize` subresource: `spec.finalizers` only.
    Finalize,
}

impl UpdateKind {
    pub fn of(sub: Option<&str>) -> Self {
        match sub {
            Some("status") => UpdateKind::Status,
            Some("finalize") => UpdateKind::Finalize,
            _ => UpdateKind::Main,
        }
    }
}

/// PUT: replaces the object (or one of its subresources).
pub async fn put(ctx: Ctx<'_>, body: &Bytes) -> Result<Response, ApiError> {
    let info = ctx.info();
    let mut new = crate::http::decode_object(ctx.headers, body)?;
    check_type(info, &mut new)?;
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
    let warnings = field_validation(ctx, &new)?;
    let dry_run = ctx.params.dry_run()?;
    let current = ctx.state.storage.get(info, ctx.ns(), ctx.name()).await?;
    let Some(current) = current else {
        if allows_create_on_update(info) && ctx.target.subresource.is_none() {
            object::meta_mut(&mut new).remove("resourceVersion");
            super::record_write(ctx, None, &mut new);
            let created = super::create_object(ctx.state, info, new, dry_run).await?;
            return Ok(crate::http::with_warnings(
                reply(ctx, 201, &created)?,
                &warnings,
            ));
        }
        return Err(ApiError::not_found(info.group, info.plural, ctx.name()));
    };
    let kind = UpdateKind::of(ctx.target.subresource.as_deref());
    super::record_write(ctx, Some(&current), &mut new);
    let written = write_update(ctx.state, info, &current, new, kind, dry_run).await?;
    Ok(crate::http::with_warnings(
        reply(ctx, 200, &written)?,
        &warnings,
    ))
}

/// Kinds whose PUT creates a missing object, as in Kubernetes.
fn allows_create_on_update(info: &ResourceInfo) -> bool {
    matches!(info.kind, "Endpoints" | "Event" | "Lease")
}

/// Writes `new` over `current` under the rules of `kind`. A `resourceVersion` in `new` must
/// equal the current one (else 409). Unchanged objects are not written. An object being
/// deleted whose last finalizer goes away is deleted.
pub async fn write_update(
    state: &ApiState,
    info: &ResourceInfo,
    current: &Value,
    mut new: Value,
    kind: UpdateKind,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let name = object::name(current).to_string();
    let current_rv = object::resource_version(current)?.unwrap_or_default();
    if let Some(rv) = object::resource_version(&new)? {
        if rv != current_rv {
            return Err(conflict(info, &name));
        }
    }
    let has_status = info.has_subresource("status");
    match kind {
        UpdateKind::Main => {
            if has_status {
                copy_field(current, &mut new, "status");
            }
            if info.kind == "Namespace" {
                let fins = current.pointer("/spec/finalizers").cloned();
                match fins {
                    Some(f) => new["spec"]["finalizers"] = f,
                    None => {
                        if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                            spec.remove("finalizers");
                        }
                    }
                }
            }
        }
        UpdateKind::Status => {
            let status = new.get("status").cloned();
            new = current.clone();
            match status {
                Some(s) => new["status"] = s,
                None => {
                    new.as_object_mut().map(|m| m.remove("status"));
                }
            }
        }
        UpdateKind::Finalize => {
            let fins = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            new = current.clone();
            new["spec"]["finalizers"] = fins;
        }
    }
    keep_immutable_metadata(current, &mut new);
    if kind == UpdateKind::Main {
        super::normalize(info, &mut new);
    }
    let allocations = match kind {
        UpdateKind::Main => {
            crate::services::update(state, info, current, &mut new, dry_run).await?
        }
        _ => Default::default(),
    };
    let written = store_update(state, info, current, new, dry_run).await;
    match &written {
        Ok(_) if !dry_run => allocations.commit(state).await,
        _ => allocations.abort(state).await,
    }
    written
}

/// The part of [`write_update`] after the object is complete: checks, then stores it (or
/// deletes it when its last finalizer went away).
async fn store_update(
    state: &ApiState,
    info: &ResourceInfo,
    current: &Value,
    mut new: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let name = object::name(current).to_string();
    let current_rv = object::resource_version(current)?.unwrap_or_default();
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
    if object::tracks_generation(info) {
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
    crate::validation::validate(info, &new, Some(current))?;

    if object::is_deleting(&new)
        && object::finalizers(&new).is_empty()
        && spec_finalizers_done(&new)
    {
        if dry_run {
            return Ok(new);
        }
        let deleted = state.storage.delete(info, &new, current_rv).await?;
        crate::services::release(state, info, &deleted).await;
        return Ok(deleted);
    }
    object::meta_mut(&mut new).insert("resourceVersion".into(), json!(current_rv.to_string()));
    if new == *current || dry_run {
        return Ok(new);
    }
    state.storage.update(info, new, current_rv).await
}

/// A namespace is only removed once its `spec.finalizers` are gone too.
fn spec_finalizers_done(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) != Some("Namespace")
        || obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty())
}

fn copy_field(from: &Value, to: &mut Value, field: &str) {
    match from.get(field) {
        Some(v) => to[field] = v.clone(),
        None => {
            to.as_object_mut().map(|m| m.remove(field));
        }
    }
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
