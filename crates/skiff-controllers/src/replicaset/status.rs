//! The replica controller's `status`: replicas, fullyLabeledReplicas, readyReplicas,
//! availableReplicas, observedGeneration and the `ReplicaFailure` condition, written only
//! when it changed.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{json, Map, Value};

use super::{api_message, Failure, Replicated};
use crate::cachedpod::CachedPod;
use crate::context::Context;
use crate::error::Result;
use crate::pods;

/// The status `obj` should have with `owned` pods.
pub(crate) fn compute<K: Replicated>(
    obj: &K,
    owned: &[Arc<CachedPod>],
    failure: Option<&Failure>,
    now: Timestamp,
) -> Value {
    let count = |f: &dyn Fn(&CachedPod) -> bool| owned.iter().filter(|p| f(p)).count();
    let template = obj.template().cloned().unwrap_or_default();
    let min_ready = obj.min_ready_seconds();
    let current = obj.status_value();
    let mut conditions: Vec<Value> = current["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c["type"] == "ReplicaFailure");
    match failure {
        Some(f) if !has_failure => conditions.push(json!({
            "type": "ReplicaFailure",
            "status": "True",
            "reason": f.reason,
            "message": failure_message(f),
            "lastTransitionTime": crate::pods::rfc3339(now),
        })),
        None if has_failure => conditions.retain(|c| c["type"] != "ReplicaFailure"),
        _ => {}
    }
    let mut status = Map::new();
    status.insert("replicas".into(), json!(owned.len()));
    let mut put = |k: &str, n: usize| {
        if n > 0 {
            status.insert(k.into(), json!(n));
        }
    };
    put(
        "fullyLabeledReplicas",
        count(&|p| pods::fully_labeled(p, &template)),
    );
    put("readyReplicas", count(&pods::is_ready));
    put(
        "availableReplicas",
        count(&|p| pods::is_available(p, min_ready, now)),
    );
    if let Some(g) = obj.meta().generation {
        status.insert("observedGeneration".into(), json!(g));
    }
    if !conditions.is_empty() {
        status.insert("conditions".into(), Value::Array(conditions));
    }
    Value::Object(status)
}

fn failure_message(f: &Failure) -> String {
    match &f.error {
        crate::error::Error::Api(e) => api_message(e),
        other => other.to_string(),
    }
}

/// The stored status, with absent and zero counts alike.
fn normalized(v: &Value) -> Value {
    let mut m = v.as_object().cloned().unwrap_or_default();
    m.retain(|_, v| !v.is_null() && *v != json!(0) && *v != json!([]));
    Value::Object(m)
}

/// Writes the computed status through the `/status` subresource if it differs.
pub(crate) async fn write<K: Replicated>(
    obj: &K,
    owned: &[Arc<CachedPod>],
    failure: Option<&Failure>,
    now: Timestamp,
    ctx: &Context,
) -> Result<()> {
    let want = compute(obj, owned, failure, now);
    let have = obj.status_value();
    if normalized(&want) == normalized(&have) {
        return Ok(());
    }
    // A merge patch removes what the new status no longer has.
    let mut patch = want.as_object().cloned().unwrap_or_default();
    for k in have.as_object().into_iter().flatten().map(|(k, _)| k) {
        patch.entry(k.clone()).or_insert(Value::Null);
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    api.patch_status(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": patch})),
    )
    .await?;
    Ok(())
}
