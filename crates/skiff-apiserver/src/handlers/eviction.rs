//! The `pods/NAME/eviction` subresource (kube-apiserver's `EvictionREST`): a POSTed
//! `policy/v1` (or `v1beta1`) Eviction deletes the pod unless the PodDisruptionBudget that
//! selects it allows no disruption now (429, which `kubectl drain` retries).
//!
//! The budget's `status.disruptionsAllowed`, written by the disruption controller, is
//! decremented with a compare-and-swap of the budget and the pod is recorded in
//! `status.disruptedPods`, so two evictions racing for the last allowed disruption cannot
//! both pass and the controller does not count the pod as healthy while it goes. Pods that
//! are not running (Pending, Succeeded, Failed) or already terminating are deleted without
//! looking at budgets. Before the delete the pod gets the `DisruptionTarget` condition.

use axum::response::Response;
use serde_json::{json, Value};

use super::delete::{check_preconditions, delete_object, options_from, Options};
use super::{check_subresource_body, created_status, Ctx};
use crate::error::ApiError;
use crate::http::decode_object;
use crate::kinds::policy::poddisruptionbudget::PodDisruptionBudgets;
use crate::object;
use crate::registry::Kind;
use crate::selector::LabelSelector;

/// How often a step is tried again when a concurrent write changed the pod or the budget
/// (kube-apiserver's `EvictionsRetry` has 20 steps).
const ATTEMPTS: usize = 20;

/// Past this many evictions the disruption controller has not confirmed yet, budgets refuse
/// more (Kubernetes' `MaxDisruptedPodSize`).
const MAX_DISRUPTED_PODS: usize = 2000;

/// The message of every refusal by a budget.
pub const VIOLATES_BUDGET: &str =
    "Cannot evict pod as it would violate the pod's disruption budget.";

/// POST of an Eviction: evicts the pod named on the path.
pub async fn create(ctx: Ctx<'_>, body: &[u8]) -> Result<Response, ApiError> {
    let eviction = decode_object(ctx.headers, body)?;
    // policy/v1beta1 bodies have v1's fields.
    check_subresource_body::<k8s_openapi::api::policy::v1::Eviction>(
        &eviction,
        &["policy/v1", "policy/v1beta1"],
        "Eviction",
    )?;
    if object::name(&eviction) != ctx.name() {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let body_ns = object::namespace(&eviction);
    if !body_ns.is_empty() && Some(body_ns) != ctx.ns() {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let opts = delete_options(ctx, &eviction)?;
    let pinned = opts.preconditions.resource_version.is_some();

    // Pods whose disruption is already done or cannot matter are deleted without budgets.
    let mut attempt = 0;
    let pod = loop {
        attempt += 1;
        let pod = ctx.current().await?;
        if !can_ignore_budget(&pod) {
            break pod;
        }
        let mut o = opts.clone();
        if enforce_resource_version(&pod) && !pinned {
            o.preconditions.resource_version = Some(rv_of(&pod));
        }
        match delete_pod(ctx, pod, o).await {
            Err(e) if e.code == 409 && !pinned && attempt < ATTEMPTS => continue,
            Err(e) => return Err(e),
            Ok(()) => return Ok(created_status()),
        }
    };

    // A request that cannot delete this pod must not use up a disruption either.
    check_preconditions(ctx.info(), &pod, &opts.preconditions)?;
    let budgets = budgets_of(ctx, &pod).await?;
    if budgets.len() > 1 {
        return Err(ApiError::new(
            500,
            "",
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
        ));
    }
    let mut unready_ok = false;
    let mut budget_name = String::new();
    if let Some(pdb) = budgets.into_iter().next() {
        budget_name = object::name(&pdb).to_string();
        let status = &pdb["status"];
        let current = status["currentHealthy"].as_i64().unwrap_or(0);
        let desired = status["desiredHealthy"].as_i64().unwrap_or(0);
        let always = pdb.pointer("/spec/unhealthyPodEvictionPolicy") == Some(&json!("AlwaysAllow"));
        if !is_ready(&pod) && (always || (current >= desired && desired > 0)) {
            // An unready pod does not count as healthy: no disruption is used up, but the
            // pod must not have turned ready since it was read.
            unready_ok = true;
        } else {
            take_disruption(ctx, pdb, object::name(&pod), opts.dry_run).await?;
        }
    }
    let mut o = opts.clone();
    if unready_ok && !pinned {
        o.preconditions.resource_version = Some(rv_of(&pod));
    }
    match delete_pod(ctx, pod, o).await {
        // The pod changed (it may be ready now): the client should try again.
        Err(e) if e.code == 409 && unready_ok && !pinned => Err(still_processing(&budget_name)),
        Err(e) => Err(e),
        Ok(()) => Ok(created_status()),
    }
}

/// The eviction's `deleteOptions` with the request's `?dryRun` (which must agree).
fn delete_options(ctx: Ctx<'_>, eviction: &Value) -> Result<Options, ApiError> {
    let body = eviction.get("deleteOptions").cloned();
    let body_dry = body
        .as_ref()
        .and_then(|b| b.get("dryRun"))
        .and_then(Value::as_array)
        .is_some_and(|d| !d.is_empty());
    let query_dry = ctx.params.dry_run()?;
    let opts = options_from(ctx, body)?;
    if body_dry && query_dry != opts.dry_run {
        return Err(ApiError::bad_request(
            "Non-matching dry-run options in request and content",
        ));
    }
    Ok(opts)
}

/// Kubernetes' `canIgnorePDB`: the pod is not running, or already going.
fn can_ignore_budget(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed" | "Pending") || object::is_deleting(pod)
}

/// Whether the delete must not race a pod becoming ready (not for finished or
/// terminating pods).
fn enforce_resource_version(pod: &Value) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && !object::is_deleting(pod)
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending")
}

fn rv_of(obj: &Value) -> String {
    object::meta_str(obj, "resourceVersion").to_string()
}

/// The pod's `Ready` condition is True.
pub fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The budgets of the pod's namespace whose (non-empty, valid) selector matches it.
async fn budgets_of(ctx: Ctx<'_>, pod: &Value) -> Result<Vec<Value>, ApiError> {
    let info = PodDisruptionBudgets.info();
    let page = ctx
        .state
        .storage
        .list(info, Some(object::namespace(pod)), None, 0, None)
        .await?;
    let labels = object::labels(pod);
    Ok(page
        .items
        .into_iter()
        .filter(|pdb| {
            let sel = pdb.pointer("/spec/selector").unwrap_or(&Value::Null);
            // A budget without a selector, or with an empty one, matches nothing here.
            if sel.is_null() {
                return false;
            }
            let text = crate::selector::label_selector_string(sel);
            match LabelSelector::parse(&text) {
                Ok(s) => !s.is_empty() && s.matches(&labels),
                Err(_) => false,
            }
        })
        .collect())
}

/// 429 for a budget the controller has not caught up with (or a lost race).
fn still_processing(name: &str) -> ApiError {
    ApiError::too_many_requests(
        VIOLATES_BUDGET,
        "DisruptionBudget",
        format!("The disruption budget {name} is still being processed by the server."),
    )
    .retry_after(10)
}

/// Kubernetes' `checkAndDecrement`, retried on conflicts: uses up one allowed disruption of
/// `pdb` for `pod` (recorded in `status.disruptedPods`), or refuses the eviction.
async fn take_disruption(
    ctx: Ctx<'_>,
    mut pdb: Value,
    pod: &str,
    dry_run: bool,
) -> Result<(), ApiError> {
    let info = PodDisruptionBudgets.info();
    let name = object::name(&pdb).to_string();
    let ns = object::namespace(&pdb).to_string();
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            pdb = ctx.state.storage.must_get(info, Some(&ns), &name).await?;
        }
        let generation = pdb
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let status = pdb["status"].clone();
        let observed = status["observedGeneration"].as_i64().unwrap_or(0);
        if observed < generation {
            return Err(still_processing(&name));
        }
        let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
        if allowed < 0 {
            return Err(ApiError::forbidden(
                "policy",
                "poddisruptionbudget",
                &name,
                "pdb disruptions allowed is negative",
            ));
        }
        let disrupted = status["disruptedPods"]
            .as_object()
            .map_or(0, serde_json::Map::len);
        if disrupted > MAX_DISRUPTED_PODS {
            return Err(ApiError::forbidden(
                "policy",
                "poddisruptionbudget",
                &name,
                "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
            ));
        }
        if allowed == 0 {
            return Err(ApiError::too_many_requests(
                VIOLATES_BUDGET,
                "DisruptionBudget",
                format!(
                    "The disruption budget {name} needs {} healthy pods and has {} currently",
                    status["desiredHealthy"].as_i64().unwrap_or(0),
                    status["currentHealthy"].as_i64().unwrap_or(0)
                ),
            ));
        }
        if dry_run {
            return Ok(());
        }
        let mut new = pdb.clone();
        new["status"]["disruptionsAllowed"] = json!(allowed - 1);
        if allowed - 1 == 0 {
            set_allowed_condition(&mut new["status"]);
        }
        if !new["status"]["disruptedPods"].is_object() {
            new["status"]["disruptedPods"] = json!({});
        }
        new["status"]["disruptedPods"][pod] = json!(object::now());
        let rv = object::resource_version(&pdb)?.unwrap_or_default();
        match ctx.state.storage.update(info, new, rv).await {
            Err(e) if e.code == 409 && attempt < ATTEMPTS => continue,
            Err(e) if e.code == 409 => {
                return Err(ApiError::new(
                    504,
                    "Timeout",
                    format!("couldn't update PodDisruptionBudget \"{name}\" due to conflicts"),
                ))
            }
            Err(e) => return Err(e),
            Ok(_) => return Ok(()),
        }
    }
    unreachable!("the last attempt returns")
}

/// The `DisruptionAllowed` condition once no disruption is left (Kubernetes'
/// `UpdateDisruptionAllowedCondition`).
fn set_allowed_condition(status: &mut Value) {
    let observed = status["observedGeneration"].clone();
    let mut conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let was_false = conditions
        .iter()
        .any(|c| c["type"] == "DisruptionAllowed" && c["status"] == "False");
    conditions.retain(|c| c["type"] != "DisruptionAllowed");
    let mut c = json!({"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods",
        "message": "", "observedGeneration": observed, "lastTransitionTime": object::now()});
    if was_false {
        c["lastTransitionTime"] = status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "DisruptionAllowed"))
            .map(|c| c["lastTransitionTime"].clone())
            .unwrap_or(c["lastTransitionTime"].clone());
    }
    conditions.push(c);
    status["conditions"] = json!(conditions);
}

/// Kubernetes' `addConditionAndDeletePod`: the pod gets the `DisruptionTarget` condition
/// (unless this is a dry run), then it is deleted with `opts`.
async fn delete_pod(ctx: Ctx<'_>, pod: Value, mut opts: Options) -> Result<(), ApiError> {
    let info = ctx.info();
    let mut pod = pod;
    if !opts.dry_run && !has_disruption_target(&pod) {
        // The latest pod, checked against the caller's preconditions.
        let latest = ctx.current().await?;
        check_preconditions(info, &latest, &opts.preconditions)?;
        let mut new = latest.clone();
        add_disruption_target(&mut new);
        let rv = object::resource_version(&latest)?.unwrap_or_default();
        pod = ctx.state.storage.update(info, new, rv).await?;
        if opts.preconditions.resource_version.is_some() {
            // The condition is this request's own write.
            opts.preconditions.resource_version = Some(rv_of(&pod));
        }
    }
    check_preconditions(info, &pod, &opts.preconditions)?;
    delete_object(ctx.state, ctx.kind(), pod, &opts).await?;
    Ok(())
}

fn has_disruption_target(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "DisruptionTarget" && c["status"] == "True")
}

fn add_disruption_target(pod: &mut Value) {
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    let mut conditions = pod["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    conditions.retain(|c| c["type"] != "DisruptionTarget");
    conditions.push(json!({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting", "lastTransitionTime": object::now(), "lastProbeTime": null}));
    pod["status"]["conditions"] = json!(conditions);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_running_pods_are_checked_against_budgets() {
        let pod = |phase: &str| json!({"metadata": {"name": "p"}, "status": {"phase": phase}});
        assert!(can_ignore_budget(&pod("Pending")));
        assert!(can_ignore_budget(&pod("Succeeded")));
        assert!(!can_ignore_budget(&pod("Running")));
        let mut going = pod("Running");
        going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(can_ignore_budget(&going));
        assert!(!enforce_resource_version(&going));
    }

    #[test]
    fn the_last_disruption_turns_the_condition_false() {
        let mut status = json!({"observedGeneration": 2, "conditions": [
            {"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods"}]});
        set_allowed_condition(&mut status);
        let c = &status["conditions"][0];
        assert_eq!(
            (&c["status"], &c["reason"], &c["observedGeneration"]),
            (&json!("False"), &json!("InsufficientPods"), &json!(2))
        );
    }
}
