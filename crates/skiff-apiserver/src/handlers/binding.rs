//! The `pods/NAME/binding` subresource (kube-apiserver's `BindingREST`): a POSTed
//! `v1 Binding` assigns a pod to a node. One write sets `spec.nodeName`, the
//! `PodScheduled=True` condition and the binding's annotations; a pod that is already bound
//! or being deleted answers 409, so a node is never assigned twice.

use axum::response::Response;
use serde_json::{json, Value};

use super::{check_subresource_body, created_status, Ctx};
use crate::cache::ReadAt;
use crate::error::{ApiError, Cause};
use crate::http::decode_object;
use crate::object;

/// How often a binding is tried again when the pod changed between read and write.
const ATTEMPTS: usize = 8;

/// POST of a Binding: binds the pod named on the path to `target.name`.
pub async fn create(ctx: Ctx<'_>, body: &[u8]) -> Result<Response, ApiError> {
    let binding = decode_object(ctx.headers, body)?;
    check_subresource_body::<k8s_openapi::api::core::v1::Binding>(&binding, &["v1"], "Binding")?;
    let name = ctx.name();
    let body_name = object::name(&binding);
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Binding object",
        ));
    }
    let body_ns = object::namespace(&binding);
    if !body_ns.is_empty() && Some(body_ns) != ctx.ns() {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let node = validate(&binding, name)?;
    let dry_run = ctx.params.dry_run()?;
    let uid = object::meta_str(&binding, "uid").to_string();
    let annotations = binding
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    // As kube-apiserver's `GuaranteedUpdate`: start from the watch cache's copy of the pod
    // (no store read per binding) and read the store only when that copy loses the
    // compare-and-swap or says no. A stale copy costs one more try, never a wrong write: the
    // write names the copy's revision. A dry run reads the store, as it writes nothing to
    // check against.
    let mut cached = match dry_run {
        true => None,
        false => cached(ctx).await?,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (current, from_cache) = match cached.take() {
            Some(pod) => (pod, true),
            None => (ctx.current().await?, false),
        };
        let rv = object::resource_version(&current)?.unwrap_or_default();
        // The pod read is changed in place: no copy of it to make and drop per binding.
        let new = match assign(current, &node, &uid, &annotations) {
            Ok(new) => new,
            // Only the stored pod answers a refusal: the cached one may be older.
            Err(_) if from_cache => continue,
            Err(e) => return Err(e),
        };
        // As kube-apiserver's BindingREST: one compare-and-swap of the stored pod, without
        // the pod update's strategy and admission (the binding is all that changes).
        let written = if dry_run {
            Ok(new)
        } else {
            ctx.state.storage.update(ctx.kind().info(), new, rv).await
        };
        match written {
            // Someone else wrote the pod between our read and write (or the cached copy was
            // old): read it again, it may now be bound (409 from `assign`) or just have a
            // new status.
            Err(e) if e.code == 409 && (from_cache || attempt < ATTEMPTS) => continue,
            Err(e) => return Err(e),
            Ok(_) => break,
        }
    }
    Ok(created_status())
}

/// The pod as the watch cache holds it, whatever revision the cache is at; None when the
/// cache cannot serve pods (disabled, its feed restarting) or does not hold this one.
async fn cached(ctx: Ctx<'_>) -> Result<Option<Value>, ApiError> {
    let Some((cache, fed)) = ctx
        .state
        .cache
        .ready(&ctx.state.storage, ctx.kind(), ReadAt::Any)
        .await?
    else {
        return Ok(None);
    };
    let info = ctx.info();
    match cache.get(&info.key(ctx.ns(), ctx.name()), fed).0 {
        // A copy the cache cannot read is left to the store read.
        Some(entry) => Ok(entry.decode(info).ok()),
        None => Ok(None),
    }
}

/// The node a valid binding names (Kubernetes' `ValidatePodBinding`).
fn validate(binding: &Value, name: &str) -> Result<String, ApiError> {
    let kind = binding
        .pointer("/target/kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut causes = Vec::new();
    if !kind.is_empty() && kind != "Node" {
        causes.push(Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!("Unsupported value: \"{kind}\": supported values: \"Node\""),
            field: "target.kind".into(),
        });
    }
    if node.is_empty() {
        causes.push(Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: "target.name".into(),
        });
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid("", "Binding", name, causes));
    }
    Ok(node.to_string())
}

/// `pod` bound to `node` (kube-apiserver's `setPodHostAndAnnotations`), or 409 when it is
/// bound already, being deleted, or not the pod the binding's uid names.
fn assign(
    mut pod: Value,
    node: &str,
    uid: &str,
    annotations: &serde_json::Map<String, Value>,
) -> Result<Value, ApiError> {
    let name = object::name(&pod);
    let conflict = |why: String| {
        ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on pods/binding \"{name}\": {why}"),
        )
        .about("", "pods/binding", name)
    };
    if object::is_deleting(&pod) {
        return Err(conflict(format!(
            "pod {name} is being deleted, cannot be assigned to a host"
        )));
    }
    let pod_uid = object::meta_str(&pod, "uid");
    if !uid.is_empty() && uid != pod_uid {
        return Err(conflict(format!(
            "Precondition failed: UID in precondition: {uid}, UID in object meta: {pod_uid}"
        )));
    }
    let bound = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !bound.is_empty() {
        return Err(conflict(format!(
            "pod {name} is already assigned to node \"{bound}\""
        )));
    }
    pod["spec"]["nodeName"] = json!(node);
    let mut new = pod;
    if !annotations.is_empty() {
        let meta = object::meta_mut(&mut new);
        let into = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(into) = into.as_object_mut() {
            into.extend(annotations.clone());
        }
    }
    let status = new
        .as_object_mut()
        .map(|m| m.entry("status").or_insert_with(|| json!({})));
    if let Some(status) = status {
        let mut conditions = status
            .get("conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        conditions.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
        conditions.push(json!({
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": null,
            "lastTransitionTime": object::now(),
        }));
        status["conditions"] = json!(conditions);
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_sets_node_and_replaces_the_unschedulable_condition() {
        let pod = json!({"metadata": {"name": "p", "uid": "u1"}, "spec": {"containers": []},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}});
        let mut ann = serde_json::Map::new();
        ann.insert("a".into(), json!("b"));
        let new = assign(pod, "n1", "u1", &ann).unwrap();
        assert_eq!(new["spec"]["nodeName"], "n1");
        assert_eq!(new["metadata"]["annotations"]["a"], "b");
        let conds = new["status"]["conditions"].as_array().unwrap();
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0]["status"], "True");
    }

    #[test]
    fn binding_a_bound_or_other_pod_conflicts() {
        let pod = json!({"metadata": {"name": "p", "uid": "u1"}, "spec": {"nodeName": "n0"}});
        let e = assign(pod, "n1", "", &Default::default()).unwrap_err();
        assert_eq!(e.code, 409);
        assert!(
            e.message
                .contains("pod p is already assigned to node \"n0\""),
            "{}",
            e.message
        );
        let pod = json!({"metadata": {"name": "p", "uid": "u1"}, "spec": {}});
        let e = assign(pod, "n1", "u2", &Default::default()).unwrap_err();
        assert_eq!(e.code, 409);
    }

    #[test]
    fn binding_without_target_is_invalid() {
        let e = validate(&json!({"target": {"kind": "Pod"}}), "p").unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "Binding \"p\" is invalid: target.kind: Unsupported value: \"Pod\": supported values: \"Node\", target.name: Required value"
        );
    }
}
