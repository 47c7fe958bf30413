//! ResourceQuota admission (kube-apiserver's `ResourceQuota` plugin): a write that would take
//! a quota of its namespace past `status.hard` is refused with Kubernetes' "exceeded quota"
//! message; otherwise its usage is added to each quota's `status.used` before the object is
//! stored. The charge is a compare-and-swap of the quota, re-checked from a fresh read on
//! conflict, so two writes racing for the last unit cannot both pass. Quotas the controller
//! has not synced yet (no `status.hard`) do not apply, as upstream; the quota controller
//! recounts `status.used` from the objects, which also returns what deletes and failed writes
//! leave charged.

use serde_json::Value;
use skiff_quota::{self as q, ResourceList};

use super::forbidden;
use crate::error::ApiError;
use crate::kinds::core::resourcequota::ResourceQuotas;
use crate::object;
use crate::registry::Kind;
use crate::resources::ResourceInfo;
use crate::router::ApiState;

/// How often a charge is tried again when another write changed a quota meanwhile.
const ATTEMPTS: usize = 16;

/// Checks and charges the quotas of `obj`'s namespace for a create (`old` None) or an update.
pub async fn admit(
    state: &ApiState,
    info: &ResourceInfo,
    obj: &Value,
    old: Option<&Value>,
    dry_run: bool,
) -> Result<(), ApiError> {
    if old.is_some() && !q::charges_updates(info.group, info.plural) {
        return Ok(());
    }
    let ns = object::namespace(obj).to_string();
    let mut delta = q::usage(info.group, info.plural, obj);
    if let Some(old) = old {
        let before = q::usage(info.group, info.plural, old);
        for (k, v) in delta.iter_mut() {
            if let Some(b) = before.get(k) {
                *v = q::sub_non_negative(v, b);
            }
        }
    }
    // Quotas already charged by an earlier attempt (one that lost a race on a later quota).
    let mut charged = std::collections::HashSet::new();
    for attempt in 1..=ATTEMPTS {
        // From the watch cache at the store's current revision: a retry after a conflict
        // sees the write it lost to.
        let quotas = crate::lookup::list(state, &ResourceQuotas, &ns).await?;
        let mut charges = Vec::new();
        for quota in quotas.iter().filter(|q| !charged.contains(object::name(q))) {
            if let Some(new_used) = check(info, obj, quota, &delta)? {
                charges.push((quota, new_used));
            }
        }
        if dry_run || charges.is_empty() {
            return Ok(());
        }
        match charge(state, &charges, &mut charged).await {
            Err(e) if e.code == 409 && attempt < ATTEMPTS => continue,
            other => return other,
        }
    }
    Err(ApiError::new(
        504,
        "Timeout",
        "couldn't update the namespace's resource quotas due to conflicts",
    ))
}

/// One quota's verdict on a write using `delta`: its new `status.used` when the write is
/// charged to it, None when it does not apply or nothing it tracks changes.
fn check(
    info: &ResourceInfo,
    obj: &Value,
    quota: &Value,
    delta: &ResourceList,
) -> Result<Option<ResourceList>, ApiError> {
    let name = object::name(quota);
    if !q::scopes_match(quota, info.group, info.plural, obj) {
        return Ok(None);
    }
    let hard = q::resource_list(quota.pointer("/status/hard"));
    let restricted: Vec<String> = hard
        .keys()
        .filter(|r| q::covers(info.group, info.plural, r))
        .cloned()
        .collect();
    if restricted.is_empty() {
        return Ok(None);
    }
    if info.group.is_empty() && info.plural == "pods" {
        q::pod_constraints(obj, &restricted)
            .map_err(|m| forbidden(info, obj, &format!("failed quota: {name}: {m}")))?;
    }
    let used = q::resource_list(quota.pointer("/status/used"));
    let unknown: Vec<&str> = restricted
        .iter()
        .filter(|r| !used.contains_key(*r))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(forbidden(
            info,
            obj,
            &format!(
                "status unknown for quota: {name}, resources: {}",
                unknown.join(",")
            ),
        ));
    }
    let requested: ResourceList = delta
        .iter()
        .filter(|(k, v)| hard.contains_key(*k) && !q::is_zero(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if requested.is_empty() {
        return Ok(None);
    }
    let mut new_used = used.clone();
    q::add_into(&mut new_used, &requested);
    let exceeded: Vec<&String> = requested
        .keys()
        .filter(|k| new_used.get(*k) > hard.get(*k))
        .collect();
    if !exceeded.is_empty() {
        let mask = |l: &ResourceList| -> ResourceList {
            l.iter()
                .filter(|(k, _)| exceeded.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        return Err(forbidden(
            info,
            obj,
            &format!(
                "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
                q::pretty(&mask(&requested)),
                q::pretty(&mask(&used)),
                q::pretty(&mask(&hard))
            ),
        ));
    }
    Ok(Some(new_used))
}

/// Writes each quota's new `status.used` at the revision it was read at (409 when one
/// changed since), adding the name of each one written to `charged`.
async fn charge(
    state: &ApiState,
    charges: &[(&Value, ResourceList)],
    charged: &mut std::collections::HashSet<String>,
) -> Result<(), ApiError> {
    let info = ResourceQuotas.info();
    for (quota, used) in charges {
        let mut new = (*quota).clone();
        new["status"]["used"] = q::to_json(used);
        let rv = object::resource_version(quota)?.unwrap_or_default();
        state.storage.update(info, new, rv).await?;
        charged.insert(object::name(quota).to_string());
    }
    Ok(())
}
