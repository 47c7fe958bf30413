//! ResourceQuota admission (kube-apiserver's `ResourceQuota` plugin): a write that would take
//! a quota of its namespace past `status.hard` is refused with Kubernetes' "exceeded quota"
//! message; otherwise its usage is added to each quota's `status.used` before the object is
//! stored. The charge is a compare-and-swap of the quota, re-checked from a fresh read on
//! conflict, so two writes racing for the last unit cannot both pass; the writes of one
//! namespace are checked in batches, each quota written once per batch ([`Queue`]). Quotas
//! are read from the watch cache ([`crate::lookup`]). Quotas the controller
//! has not synced yet (no `status.hard`) do not apply, as upstream; the quota controller
//! recounts `status.used` from the objects, which also returns what deletes and failed writes
//! leave charged.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde_json::Value;
use skiff_quota::{self as q, ResourceList};
use tokio::sync::oneshot;

use super::forbidden;
use crate::error::ApiError;
use crate::kinds::core::resourcequota::ResourceQuotas;
use crate::object;
use crate::registry::Kind;
use crate::resources::ResourceInfo;
use crate::router::ApiState;

/// How often a batch is tried again when another writer changed a quota meanwhile.
const ATTEMPTS: usize = 16;

/// Quota admissions waiting, by namespace (kube-apiserver's quota evaluator queue): the
/// first write of a namespace to arrive checks every write that queued meanwhile together,
/// against one read of the quotas, and writes each quota once for all of them. So
/// concurrent creates in a namespace do not race each other's compare-and-swap (with one
/// read and write per create, eight at once lost every retry now and then).
#[derive(Default)]
pub struct Queue(Mutex<HashMap<String, Vec<Waiting>>>);

/// One write waiting for its namespace's quotas.
pub struct Waiting {
    info: &'static ResourceInfo,
    obj: Value,
    delta: ResourceList,
    dry_run: bool,
    reply: oneshot::Sender<Result<(), ApiError>>,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Waiting>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Checks and charges the quotas of `obj`'s namespace for a create (`old` None) or an update.
pub async fn admit(
    state: &ApiState,
    info: &'static ResourceInfo,
    obj: &Value,
    old: Option<&Value>,
    dry_run: bool,
) -> Result<(), ApiError> {
    if old.is_some() && !q::charges_updates(info.group, info.plural) {
        return Ok(());
    }
    let ns = object::namespace(obj).to_string();
    // Most namespaces have no quota: no queue for them.
    if crate::lookup::list(state, &ResourceQuotas, &ns)
        .await?
        .is_empty()
    {
        return Ok(());
    }
    let mut delta = q::usage(info.group, info.plural, obj);
    if let Some(old) = old {
        let before = q::usage(info.group, info.plural, old);
        for (k, v) in delta.iter_mut() {
            if let Some(b) = before.get(k) {
                *v = q::sub_non_negative(v, b);
            }
        }
    }
    loop {
        let (reply, answer) = oneshot::channel();
        let waiting = Waiting {
            info,
            obj: obj.clone(),
            delta: delta.clone(),
            dry_run,
            reply,
        };
        let lead = {
            let mut queue = state.quota_queue.lock();
            let lead = !queue.contains_key(&ns);
            queue.entry(ns.clone()).or_default().push(waiting);
            lead
        };
        if lead {
            work(state, &ns).await;
        }
        match answer.await {
            Ok(verdict) => return verdict,
            // The request that was checking the batch went away (its client left): queue
            // again; one of the waiters takes the lead.
            Err(_) => continue,
        }
    }
}

/// Checks the batches of `ns` until none waits. If this future is dropped midway, the
/// namespace's queue goes with it, and the writes in it queue again.
async fn work(state: &ApiState, ns: &str) {
    struct Lead<'a>(&'a Queue, &'a str);
    impl Drop for Lead<'_> {
        fn drop(&mut self) {
            self.0.lock().remove(self.1);
        }
    }
    let _lead = Lead(&state.quota_queue, ns);
    loop {
        let batch = match state.quota_queue.lock().get_mut(ns) {
            Some(waiting) if !waiting.is_empty() => std::mem::take(waiting),
            _ => return,
        };
        let verdicts = check_batch(state, ns, &batch).await;
        for (w, v) in batch.into_iter().zip(verdicts) {
            let _ = w.reply.send(v);
        }
    }
}

/// The verdict on each write of `batch`: each is checked against the quotas as charged by
/// the ones before it, then every quota charged is written once.
async fn check_batch(state: &ApiState, ns: &str, batch: &[Waiting]) -> Vec<Result<(), ApiError>> {
    // Quotas already charged by an earlier attempt (one that lost a race on a later quota).
    let mut charged = HashSet::new();
    for attempt in 1..=ATTEMPTS {
        // From the watch cache; a retry after a conflict at the store's current revision,
        // so it sees the write it lost to (also another server's).
        let quotas = match attempt {
            1 => crate::lookup::list(state, &ResourceQuotas, ns).await,
            _ => crate::lookup::list_latest(state, &ResourceQuotas, ns).await,
        };
        let quotas = match quotas {
            Ok(q) => q,
            Err(e) => return batch.iter().map(|_| Err(e.clone())).collect(),
        };
        let quotas: Vec<&Value> = quotas
            .iter()
            .filter(|q| !charged.contains(object::name(q)))
            .collect();
        let mut used: Vec<Option<ResourceList>> = vec![None; quotas.len()];
        let mut verdicts = Vec::with_capacity(batch.len());
        for w in batch {
            let mut charges = Vec::new();
            let verdict = quotas.iter().enumerate().try_for_each(|(i, quota)| {
                let now = used[i]
                    .clone()
                    .unwrap_or_else(|| q::resource_list(quota.pointer("/status/used")));
                if let Some(new_used) = check(w.info, &w.obj, quota, &w.delta, &now)? {
                    charges.push((i, new_used));
                }
                Ok(())
            });
            if verdict.is_ok() && !w.dry_run {
                for (i, new_used) in charges {
                    used[i] = Some(new_used);
                }
            }
            verdicts.push(verdict);
        }
        let writes: Vec<(&Value, ResourceList)> = quotas
            .iter()
            .zip(used)
            .filter_map(|(quota, used)| Some((*quota, used?)))
            .collect();
        match charge(state, &writes, &mut charged).await {
            Ok(()) => return verdicts,
            Err(e) if e.code == 409 && attempt < ATTEMPTS => continue,
            Err(e) => {
                return verdicts
                    .into_iter()
                    .map(|v| v.and(Err(e.clone())))
                    .collect()
            }
        }
    }
    let timeout = ApiError::new(
        504,
        "Timeout",
        "couldn't update the namespace's resource quotas due to conflicts",
    );
    batch.iter().map(|_| Err(timeout.clone())).collect()
}

/// One quota's verdict on a write using `delta` when it has `used`: its new `status.used`
/// when the write is charged to it, None when it does not apply or nothing it tracks
/// changes.
fn check(
    info: &ResourceInfo,
    obj: &Value,
    quota: &Value,
    delta: &ResourceList,
    used: &ResourceList,
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
                q::pretty(&mask(used)),
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
    charged: &mut HashSet<String>,
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
