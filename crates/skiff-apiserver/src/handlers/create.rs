//! Creation (POST): names, server-set metadata, initial status, the namespace's default
//! ServiceAccount.

use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{check_type, field_validation, reply, require_namespace, Ctx};
use crate::error::{ApiError, Cause};
use crate::object;
use crate::resources::{self, ResourceInfo};
use crate::router::ApiState;

pub async fn create(ctx: Ctx<'_>, body: &Bytes) -> Result<Response, ApiError> {
    let info = ctx.info();
    let mut obj = crate::http::decode_object(ctx.headers, body)?;
    check_type(info, &mut obj)?;
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
    let warnings = field_validation(ctx, &obj)?;
    super::record_write(ctx, None, &mut obj);
    let created = create_object(ctx.state, info, obj, ctx.params.dry_run()?).await?;
    Ok(crate::http::with_warnings(
        reply(ctx, 201, &created)?,
        &warnings,
    ))
}

/// Creates `obj` (its namespace already set for namespaced kinds): generates the name if asked,
/// sets server metadata and initial status, validates and stores it (unless `dry_run`).
pub async fn create_object(
    state: &ApiState,
    info: &ResourceInfo,
    mut obj: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
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
    if object::tracks_generation(info) {
        object::meta_mut(&mut obj).insert("generation".into(), json!(1));
    }
    initial_status(info, &mut obj);
    super::normalize(info, &mut obj);
    crate::validation::validate(info, &obj, None)?;
    let reserved = crate::services::allocate(state, info, &mut obj, dry_run).await?;
    if dry_run {
        return Ok(obj);
    }
    let created = match state.storage.create(info, obj).await {
        Ok(created) => created,
        Err(e) => {
            reserved.release(state).await;
            return Err(e);
        }
    };
    if info.kind == "Namespace" {
        ensure_default_service_account(state, object::name(&created)).await?;
    }
    Ok(created)
}

/// Status a new object starts with: Kubernetes discards client-set status on create.
fn initial_status(info: &ResourceInfo, obj: &mut Value) {
    match info.kind {
        "Namespace" => {
            let name = json!(object::name(obj));
            object::meta_mut(obj)
                .entry("labels")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(|l| l.insert("kubernetes.io/metadata.name".into(), name));
            obj["status"] = json!({"phase": "Active"});
            if obj.pointer("/spec/finalizers").is_none() {
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
            }
        }
        "Pod" => {
            obj["status"] = json!({"phase": "Pending", "qosClass": qos_class(obj)});
        }
        "Node" => {}
        _ if info.has_subresource("status") => {
            obj.as_object_mut().map(|m| m.remove("status"));
        }
        _ => {}
    }
}

/// A pod's QoS class from its containers' requests and limits.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        any |= requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty());
        let full = |l: Option<&serde_json::Map<String, Value>>| {
            l.is_some_and(|l| l.contains_key("cpu") && l.contains_key("memory"))
        };
        let req_eq_lim = requests.is_none_or(|r| {
            r.iter()
                .all(|(k, v)| limits.and_then(|l| l.get(k)) == Some(v))
        });
        guaranteed &= full(limits) && req_eq_lim;
    }
    if guaranteed {
        "Guaranteed"
    } else if any {
        "Burstable"
    } else {
        "BestEffort"
    }
}

/// Every namespace has a `default` ServiceAccount.
async fn ensure_default_service_account(state: &ApiState, ns: &str) -> Result<(), ApiError> {
    let info = resources::find("", "v1", "serviceaccounts").expect("serviceaccounts are served");
    if state
        .storage
        .get(info, Some(ns), "default")
        .await?
        .is_some()
    {
        return Ok(());
    }
    let mut sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}});
    let meta = object::meta_mut(&mut sa);
    meta.insert("uid".into(), json!(object::new_uid()));
    meta.insert("creationTimestamp".into(), json!(object::now()));
    match state.storage.create(info, sa).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "AlreadyExists" => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates the namespaces every cluster has (each with its default ServiceAccount).
pub async fn bootstrap(state: &ApiState) -> Result<(), ApiError> {
    let info = resources::find("", "v1", "namespaces").expect("namespaces are served");
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if state.storage.get(info, None, ns).await?.is_some() {
            ensure_default_service_account(state, ns).await?;
            continue;
        }
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        match create_object(state, info, obj, false).await {
            Ok(_) => {}
            Err(e) if e.reason == "AlreadyExists" => {
                ensure_default_service_account(state, ns).await?
            }
            Err(e) => return Err(e),
        }
    }
    crate::services::kubernetes::ensure(state).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_qos_classes() {
        let best = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(qos_class(&best), "BestEffort");
        let burst = json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(qos_class(&burst), "Burstable");
        let g = json!({"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
    }
}
