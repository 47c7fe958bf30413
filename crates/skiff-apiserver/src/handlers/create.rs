//! Creation (POST): names, server-set metadata, the kind's initial state and admission, and
//! the objects every cluster starts with.

use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{body_field_validation, check_type, reply, require_namespace, Ctx};
use crate::auth::UserInfo;
use crate::error::{ApiError, Cause};
use crate::object;
use crate::registry::{Admission, Kind};
use crate::resources;
use crate::router::ApiState;

pub async fn create(ctx: Ctx<'_>, body: &Bytes) -> Result<Response, ApiError> {
    let (kind, info) = (ctx.kind(), ctx.info());
    let mut obj = crate::http::decode_object(ctx.headers, body)?;
    check_type(kind, &mut obj)?;
    if info.namespaced {
        let ns = ctx
            .ns()
            .ok_or_else(|| ApiError::not_found("", "namespaces", ""))?;
        let body_ns = object::namespace(&obj);
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        object::meta_mut(&mut obj).insert("namespace".into(), json!(ns));
    }
    let warnings = body_field_validation(ctx, &obj)?;
    super::record_write(ctx, None, &mut obj);
    let created =
        create_object(ctx.state, kind, obj, Some(ctx.user), ctx.params.dry_run()?).await?;
    Ok(crate::http::with_warnings(
        reply(ctx, 201, &created)?,
        &warnings,
    ))
}

/// Creates `obj` (its namespace already set for namespaced kinds) as `user` asked: generates
/// the name if asked, sets server metadata and initial state, runs the kind's admission,
/// validates and stores it (unless `dry_run`).
pub async fn create_object(
    state: &ApiState,
    kind: &dyn Kind,
    mut obj: Value,
    user: Option<&UserInfo>,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let info = kind.info();
    if object::name(&obj).is_empty() {
        let prefix = object::meta_str(&obj, "generateName").to_string();
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                info.group,
                info.kind,
                "",
                vec![Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: name or generateName is required".into(),
                    field: "metadata.name".into(),
                }],
            ));
        }
        object::meta_mut(&mut obj).insert("name".into(), json!(object::generate_name(&prefix)));
    }
    if info.namespaced {
        require_namespace(state, info, object::namespace(&obj), object::name(&obj)).await?;
    } else {
        object::meta_mut(&mut obj).remove("namespace");
    }
    if !object::meta_str(&obj, "resourceVersion").is_empty() {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    let meta = object::meta_mut(&mut obj);
    meta.insert("uid".into(), json!(object::new_uid()));
    meta.insert("creationTimestamp".into(), json!(object::now()));
    meta.remove("generation");
    for k in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(k);
    }
    if kind.generation() {
        object::meta_mut(&mut obj).insert("generation".into(), json!(1));
    }
    kind.prepare_for_create(&mut obj);
    super::normalize(kind, &mut obj);
    kind.admit(
        state,
        Admission::Create {
            obj: &mut obj,
            user,
            dry_run,
        },
    )
    .await?;
    // The shared chain after the kind's own admission: LimitRanger before validation,
    // ResourceQuota after it (an invalid object is not charged); a refusal in either aborts
    // what the kind's admission did.
    if let Err(e) = crate::admission::create(state, info, &mut obj).await {
        kind.admit(state, Admission::CreateAborted { obj: &obj, dry_run })
            .await?;
        return Err(e);
    }
    let stored = match kind.validate(&obj, None) {
        Ok(()) => match crate::admission::charge_create(state, info, &obj, dry_run).await {
            Ok(()) if dry_run => Ok(obj.clone()),
            Ok(()) => state.storage.create(info, obj.clone()).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match stored {
        Ok(created) if !dry_run => {
            kind.admit(state, Admission::Created { obj: &created })
                .await?;
            Ok(created)
        }
        other => {
            kind.admit(state, Admission::CreateAborted { obj: &obj, dry_run })
                .await?;
            other
        }
    }
}

/// Creates the objects every cluster has ([`crate::registry::Strategy::bootstrap`]); for
/// those already stored, runs their kind's [`Admission::Created`] again. Idempotent.
pub async fn bootstrap(state: &ApiState) -> Result<(), ApiError> {
    for kind in resources::all() {
        let info = kind.info();
        for obj in kind.bootstrap() {
            let (ns, name) = (object::namespace(&obj), object::name(&obj));
            let ns = info.namespaced.then_some(ns);
            if let Some(existing) = state.storage.get(info, ns, name).await? {
                kind.admit(state, Admission::Created { obj: &existing })
                    .await?;
                continue;
            }
            let (ns, name) = (ns.map(str::to_string), name.to_string());
            match create_object(state, kind, obj, None, false).await {
                Ok(_) => {}
                Err(e) if e.reason == "AlreadyExists" => {
                    if let Some(existing) = state.storage.get(info, ns.as_deref(), &name).await? {
                        kind.admit(state, Admission::Created { obj: &existing })
                            .await?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
    crate::services::kubernetes::ensure(state).await?;
    crate::rbac::bootstrap::ensure(state).await?;
    crate::clusterconfig::ensure(state).await
}
