//! The `/scale` subresource: an `autoscaling/v1 Scale` view of `spec.replicas`.

use axum::response::Response;
use serde_json::{json, Value};

use super::{update::UpdateKind, write_update, Ctx};
use crate::error::ApiError;
use crate::http::{content_type, decode_object, json as reply_json};
use crate::object;
use crate::registry::Kind;

/// The Scale of an object of `kind` with `spec.replicas`.
fn scale_of(kind: &dyn Kind, obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": kind.scale_selector(obj),
        },
    })
}

pub async fn get(ctx: Ctx<'_>) -> Result<Response, ApiError> {
    let obj = ctx.current().await?;
    Ok(reply_json(200, &scale_of(ctx.kind(), &obj)))
}

/// PUT or PATCH of the Scale: sets `spec.replicas` of the object.
pub async fn write(ctx: Ctx<'_>, verb: &str, body: &[u8]) -> Result<Response, ApiError> {
    let info = ctx.info();
    let current = ctx
        .state
        .storage
        .must_get(info, ctx.ns(), ctx.name())
        .await?;
    let scale = scale_of(ctx.kind(), &current);
    let new_scale = if verb == "patch" {
        crate::patch::apply_patch(info, &content_type(ctx.headers), &scale, body)?
    } else {
        decode_object(ctx.headers, body)?
    };
    let replicas = new_scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            ctx.name(),
            vec![crate::Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                field: "spec.replicas".into(),
            }],
        ));
    }
    let mut new = current.clone();
    new["spec"]["replicas"] = json!(replicas);
    let rv = object::meta_str(&new_scale, "resourceVersion");
    if !rv.is_empty() {
        object::meta_mut(&mut new).insert("resourceVersion".into(), json!(rv));
    }
    let written = write_update(
        ctx.state,
        ctx.kind(),
        &current,
        new,
        UpdateKind::Main,
        ctx.params.dry_run()?,
        Some(ctx.user),
    )
    .await?;
    Ok(reply_json(200, &scale_of(ctx.kind(), &written)))
}
