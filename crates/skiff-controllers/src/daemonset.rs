//! The DaemonSet controller (kube-controller-manager's `daemon` controller): one pod per node
//! that the template's `nodeSelector` selects and whose NoSchedule/NoExecute taints the pod
//! tolerates. Pods are pinned to their node by required node affinity on `metadata.name`
//! (the scheduler binds them, as in Kubernetes), carry the DaemonSet's default tolerations, and
//! the `controller-revision-hash` of their template. Template history lives in
//! ControllerRevisions (so `kubectl rollout history/undo ds` work); RollingUpdate replaces old
//! pods while at most `maxUnavailable` nodes lack an available pod; OnDelete waits for users.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod, PodTemplateSpec, Taint, Toleration};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::core::Selector;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};
use serde_json::{json, Value};

use crate::claim::Claimer;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::history;
use crate::podcontrol;
use crate::pods::{self, controller_ref};
use crate::runner::{self, Triggers};
use crate::template;

use crate::cachedpod::CachedPod;
use crate::history::revision_hash;
pub use crate::history::REVISION_HASH;

/// The DaemonSet controller, running until dropped.
pub fn controller(ctx: Arc<Context>) -> impl std::future::Future<Output = ()> + Send {
    let store = ctx.informers.daemon_sets.store();
    let own = runner::own(ctx.informers.daemon_sets.changes(), store.clone());
    let pods = pod_triggers(&ctx, store.clone());
    let all = store.clone();
    // Any node change may change where daemons run.
    let nodes = runner::map_changes(ctx.informers.nodes.changes(), move |_| runner::all(&all));
    runner::run(
        "DaemonSet",
        ctx,
        store,
        vec![own, pods, nodes],
        |ds, ctx| Box::pin(reconcile(ds, ctx)),
    )
}

fn pod_triggers(ctx: &Arc<Context>, sets: Store<DaemonSet>) -> Triggers<DaemonSet> {
    runner::controlled_pod_triggers(ctx, sets, "DaemonSet")
}

/// The tolerations every daemon pod gets (kube-controller-manager's `AddOrUpdateDaemonPodTolerations`).
fn default_tolerations(host_network: bool) -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    let mut v = vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        v.push(t("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    v
}

fn tolerates(tols: &[Toleration], taint: &Taint) -> bool {
    tols.iter()
        .any(|t| crate::nodelifecycle::tolerates(t, taint))
}

/// Whether a daemon pod from `template` belongs on `node` (`nodeShouldRunDaemonPod`).
fn should_run(template: &PodTemplateSpec, node: &Node) -> bool {
    let spec = template.spec.clone().unwrap_or_default();
    let labels = node.labels();
    if let Some(sel) = &spec.node_selector {
        if sel.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return false;
        }
    }
    let mut tols = spec.tolerations.clone().unwrap_or_default();
    tols.extend(default_tolerations(spec.host_network.unwrap_or(false)));
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|t| tolerates(&tols, t))
}

/// The node a daemon pod is for: bound, or pinned by its node affinity.
fn target_node(p: &CachedPod) -> Option<String> {
    let spec = p.spec.as_ref()?;
    if let Some(n) = spec.node_name.clone().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let v = serde_json::to_value(spec.affinity.as_ref()?).ok()?;
    let terms = v.pointer(
        "/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms",
    )?;
    terms.as_array()?.iter().find_map(|t| {
        t["matchFields"].as_array()?.iter().find_map(|f| {
            (f["key"] == "metadata.name" && f["operator"] == "In")
                .then(|| f["values"][0].as_str().map(str::to_string))
                .flatten()
        })
    })
}

/// One sync of a DaemonSet (`syncDaemonSet`).
pub async fn reconcile(obj: Arc<DaemonSet>, ctx: Arc<Context>) -> Result<Action> {
    let ds = obj.as_ref();
    if ds.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let spec = ds.spec.clone().unwrap_or_default();
    let selector = Selector::try_from(spec.selector.clone()).map_err(|e| Error::Invalid {
        kind: "DaemonSet",
        name: name.clone(),
        reason: e.to_string(),
    })?;
    let collision = ds.status.as_ref().and_then(|s| s.collision_count);
    let hash = template::template_hash(&spec.template, collision);
    let limit = ds
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10);
    history::sync(
        &ds.metadata,
        "DaemonSet",
        &spec.template,
        &format!("{}-{hash}", ds.name_any()),
        &hash,
        limit,
        &ctx,
    )
    .await?;

    let candidates = ctx.informers.pods_in(&ns);
    let owned = Claimer::new(&ctx.client, ds, "apps/v1", "DaemonSet", &selector)
        .claim(candidates)
        .await?;
    let mut by_node: BTreeMap<String, Vec<&CachedPod>> = BTreeMap::new();
    for p in owned
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        if let Some(n) = target_node(p) {
            by_node.entry(n).or_default().push(p);
        }
    }
    let nodes = ctx.informers.nodes.store().state();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = Timestamp::now();
    let mut create_on = Vec::new();
    let mut delete: Vec<&CachedPod> = Vec::new();
    let mut wanted = HashSet::new();
    for node in &nodes {
        let node_name = node.name_any();
        let pods_here = by_node.get(&node_name).cloned().unwrap_or_default();
        if should_run(&spec.template, node) {
            wanted.insert(node_name.clone());
            // Failed daemons are replaced; extra ones removed (the oldest stays).
            let (failed, mut alive): (Vec<&CachedPod>, Vec<&CachedPod>) =
                pods_here.into_iter().partition(|p| {
                    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
                });
            delete.extend(failed);
            alive.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
            if alive.is_empty() {
                create_on.push(node_name);
            } else {
                delete.extend(alive.into_iter().skip(1));
            }
        } else {
            delete.extend(pods_here);
        }
    }
    // Pods for nodes that no longer exist.
    for (node, pods_there) in &by_node {
        if !nodes.iter().any(|n| &n.name_any() == node) {
            delete.extend(pods_there.iter().copied());
        }
    }

    // RollingUpdate: old pods go while few enough nodes lack an available daemon.
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    if strategy.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate" {
        let desired = wanted.len() as i32;
        let max_unavailable = strategy
            .rolling_update
            .as_ref()
            .and_then(|r| r.max_unavailable.clone())
            .map(|v| crate::deployment::util::scaled_value(&v, desired, true).unwrap_or(1))
            .unwrap_or(1)
            .max(1);
        let doomed: HashSet<&str> = delete
            .iter()
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        let mut unavailable = 0;
        let mut old_available = Vec::new();
        for node in &wanted {
            let pod = by_node.get(node).and_then(|ps| {
                ps.iter()
                    .find(|p| !doomed.contains(p.metadata.uid.as_deref().unwrap_or("")))
            });
            match pod {
                None => unavailable += 1,
                Some(p) => {
                    let available = pods::is_available(p, min_ready, now);
                    let old = revision_hash(p) != Some(hash.as_str());
                    if !available {
                        unavailable += 1;
                        if old {
                            // An old pod that is not available anyway: replace it at once.
                            delete.push(p);
                        }
                    } else if old {
                        old_available.push(*p);
                    }
                }
            }
        }
        let budget = (max_unavailable - unavailable).max(0) as usize;
        delete.extend(old_available.into_iter().take(budget));
    }

    let regarding = ds.object_ref(&());
    let mut seen = HashSet::new();
    delete.retain(|p| seen.insert(p.metadata.uid.clone()));
    podcontrol::first_failure(podcontrol::delete(&ctx, Some(&regarding), &delete, None).await)?;
    for node in &create_on {
        let pod = daemon_pod(ds, &spec.template, &hash, node);
        podcontrol::create(&ctx, &regarding, &pod).await?;
    }

    // Status over what exists now (pods just created or deleted show up with their events).
    let mut status = DaemonSetStatus {
        desired_number_scheduled: wanted.len() as i32,
        observed_generation: ds.metadata.generation,
        collision_count: collision,
        ..Default::default()
    };
    let doomed: HashSet<&str> = delete
        .iter()
        .filter_map(|p| p.metadata.uid.as_deref())
        .collect();
    let mut next = None;
    for (node, pods_there) in &by_node {
        let Some(p) = pods_there
            .iter()
            .find(|p| !doomed.contains(p.metadata.uid.as_deref().unwrap_or("")))
        else {
            continue;
        };
        if !wanted.contains(node) {
            status.number_misscheduled += 1;
            continue;
        }
        status.current_number_scheduled += 1;
        if pods::is_ready(p) {
            status.number_ready += 1;
        }
        let available = pods::is_available(p, min_ready, now);
        if available {
            status.number_available = Some(status.number_available.unwrap_or(0) + 1);
        }
        if let Some(d) = pods::until_available(p, min_ready, now) {
            next = Some(next.map_or(d, |n: Duration| n.min(d)));
        }
        if revision_hash(p) == Some(hash.as_str()) {
            status.updated_number_scheduled =
                Some(status.updated_number_scheduled.unwrap_or(0) + 1);
        }
    }
    let unavailable = status.desired_number_scheduled - status.number_available.unwrap_or(0);
    status.number_unavailable = (unavailable > 0).then_some(unavailable);
    status.conditions = ds.status.as_ref().and_then(|s| s.conditions.clone());
    if Some(&status) != ds.status.as_ref() {
        let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
        let mut patch = serde_json::to_value(&status)?;
        for k in [
            "numberAvailable",
            "numberUnavailable",
            "updatedNumberScheduled",
        ] {
            if patch.get(k).is_none() {
                patch[k] = Value::Null;
            }
        }
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": patch})),
        )
        .await?;
    }
    Ok(match next {
        Some(d) => Action::requeue(d + Duration::from_millis(100)),
        None => Action::await_change(),
    })
}

/// A daemon pod for `node`: the template's, pinned to the node, with the default tolerations.
fn daemon_pod(ds: &DaemonSet, template: &PodTemplateSpec, hash: &str, node: &str) -> Pod {
    let mut t = template.clone();
    let meta = t.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(Default::default)
        .insert(REVISION_HASH.into(), hash.into());
    let spec = t.spec.get_or_insert_with(Default::default);
    let mut tols = spec.tolerations.clone().unwrap_or_default();
    for d in default_tolerations(spec.host_network.unwrap_or(false)) {
        if !tols.iter().any(|t| t.key == d.key && t.effect == d.effect) {
            tols.push(d);
        }
    }
    spec.tolerations = Some(tols);
    let mut affinity =
        serde_json::to_value(spec.affinity.clone().unwrap_or_default()).unwrap_or(json!({}));
    affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = json!({"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]});
    spec.affinity = serde_json::from_value(affinity).ok();
    pods::from_template(
        &t,
        &ds.namespace().unwrap_or_default(),
        &ds.name_any(),
        controller_ref("apps/v1", "DaemonSet", ds.meta()),
    )
}
