//! A small PersistentVolume binder (kube-controller-manager's `persistentvolume-binder`
//! for statically provisioned volumes): a Pending claim binds to the smallest Available
//! PersistentVolume that fits it — same `storageClassName` (unset counts as ""), every access
//! mode it asks for, the same volume mode, at least the storage it requests, the labels of
//! its `selector.matchLabels`, and no claim of another — or to the volume it names in
//! `volumeName`. A new volume without a claim becomes Available. The volume gets the claim in `spec.claimRef` (written with the version it
//! was read at, so two claims cannot take one volume) and phase Bound; the claim gets
//! `spec.volumeName`, phase Bound, the volume's capacity and access modes. A volume whose
//! claim is gone becomes Released (its reclaim policy is not acted on: no recycler, no
//! deleter). No dynamic provisioning. A claim of a StorageClass with `volumeBindingMode:
//! WaitForFirstConsumer` waits until a pod uses it (the scheduler's node choice is not
//! taken into account: static volumes here carry no node affinity the binder checks).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::error::{Error, Result};

/// Look again at a claim nothing fits this often (a volume may be created meanwhile: that
/// wakes every pending claim anyway).
const PENDING_RETRY: Duration = Duration::from_secs(15);

/// Bytes of a storage quantity (`kube_quantity`, as the scheduler parses them).
fn storage(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> Option<i64> {
    let parsed = kube_quantity::ParsedQuantity::try_from(q?).ok()?;
    parsed.to_bytes_f64().map(|b| b.ceil() as i64)
}

/// Whether volume `pv` can hold claim `pvc`.
pub fn fits(pvc: &PersistentVolumeClaim, pv: &PersistentVolume) -> bool {
    let (Some(c), Some(v)) = (pvc.spec.as_ref(), pv.spec.as_ref()) else {
        return false;
    };
    let phase = pv.status.as_ref().and_then(|s| s.phase.as_deref());
    let claimed_by_other = v.claim_ref.as_ref().is_some_and(|r| {
        r.name.as_deref() != pvc.metadata.name.as_deref()
            || r.namespace.as_deref() != pvc.metadata.namespace.as_deref()
            || r.uid
                .as_deref()
                .is_some_and(|u| Some(u) != pvc.metadata.uid.as_deref())
    });
    if claimed_by_other || !matches!(phase, None | Some("Available" | "Pending")) {
        return false;
    }
    if v.storage_class_name.as_deref().unwrap_or("")
        != c.storage_class_name.as_deref().unwrap_or("")
    {
        return false;
    }
    if v.volume_mode.as_deref().unwrap_or("Filesystem")
        != c.volume_mode.as_deref().unwrap_or("Filesystem")
    {
        return false;
    }
    let modes = v.access_modes.clone().unwrap_or_default();
    if !c.access_modes.iter().flatten().all(|m| modes.contains(m)) {
        return false;
    }
    let wanted = storage(
        c.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage")),
    )
    .unwrap_or(0);
    let has = storage(v.capacity.as_ref().and_then(|c| c.get("storage"))).unwrap_or(0);
    if has < wanted {
        return false;
    }
    let labels = pv.metadata.labels.clone().unwrap_or_default();
    c.selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref())
        .is_none_or(|want| want.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

async fn reconcile(pvc: Arc<PersistentVolumeClaim>, client: Arc<Client>) -> Result<Action> {
    let ns = pvc.namespace().unwrap_or_default();
    let name = pvc.name_any();
    if pvc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let pvs: Api<PersistentVolume> = Api::all((*client).clone());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced((*client).clone(), &ns);
    let named = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty());
    let volume = match &named {
        Some(v) => match pvs.get_opt(v).await? {
            Some(pv) => pv,
            None => return Ok(Action::requeue(PENDING_RETRY)),
        },
        None => {
            if waits_for_consumer(&client, &pvc).await? {
                return Ok(Action::requeue(PENDING_RETRY));
            }
            let mut candidates: Vec<PersistentVolume> = pvs
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|pv| fits(&pvc, pv))
                .collect();
            candidates.sort_by_key(|pv| {
                storage(
                    pv.spec
                        .as_ref()
                        .and_then(|s| s.capacity.as_ref())
                        .and_then(|c| c.get("storage")),
                )
                .unwrap_or(0)
            });
            match candidates.into_iter().next() {
                Some(pv) => pv,
                None => return Ok(Action::requeue(PENDING_RETRY)),
            }
        }
    };
    let pv_name = volume.name_any();
    let spec = volume.spec.clone().unwrap_or_default();
    let bound_here = spec
        .claim_ref
        .as_ref()
        .is_some_and(|r| r.uid.as_deref() == pvc.metadata.uid.as_deref());
    if !bound_here {
        if named.is_some() && !fits(&pvc, &volume) {
            return Ok(Action::requeue(PENDING_RETRY));
        }
        // The version read: if another claim took the volume since, this write fails (409).
        let claim_ref = json!({
            "metadata": {"resourceVersion": volume.resource_version()},
            "spec": {"claimRef": {
                "kind": "PersistentVolumeClaim", "apiVersion": "v1",
                "namespace": ns, "name": name, "uid": pvc.metadata.uid,
                "resourceVersion": pvc.resource_version(),
            }},
        });
        pvs.patch(&pv_name, &PatchParams::default(), &Patch::Merge(&claim_ref))
            .await?;
    }
    if volume.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") {
        pvs.patch_status(
            &pv_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Bound"}})),
        )
        .await?;
    }
    if named.is_none() {
        claims
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({
                    "metadata": {"annotations": {
                        "pv.kubernetes.io/bind-completed": "yes",
                        "pv.kubernetes.io/bound-by-controller": "yes"}},
                    "spec": {"volumeName": pv_name},
                })),
            )
            .await?;
    }
    if pvc.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") {
        claims
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {
                    "phase": "Bound",
                    "accessModes": spec.access_modes,
                    "capacity": spec.capacity,
                }})),
            )
            .await?;
        tracing::info!(claim = %name, namespace = %ns, volume = %pv_name, "claim bound");
    }
    Ok(Action::await_change())
}

/// Whether `pvc`'s StorageClass binds on first use and no pod uses the claim yet.
async fn waits_for_consumer(client: &Client, pvc: &PersistentVolumeClaim) -> Result<bool> {
    let Some(class) = pvc
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .filter(|c| !c.is_empty())
    else {
        return Ok(false);
    };
    let classes: Api<StorageClass> = Api::all(client.clone());
    let delayed = classes
        .get_opt(&class)
        .await?
        .and_then(|sc| sc.volume_binding_mode)
        .is_some_and(|m| m == "WaitForFirstConsumer");
    if !delayed {
        return Ok(false);
    }
    let name = pvc.name_any();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pvc.namespace().unwrap_or_default());
    let used = pods
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .any(|p| {
            p.spec
                .iter()
                .flat_map(|s| s.volumes.iter().flatten())
                .any(|v| {
                    v.persistent_volume_claim
                        .as_ref()
                        .is_some_and(|c| c.claim_name == name)
                })
        });
    Ok(!used)
}

/// A new volume without a claim becomes Available; a Bound one whose claim is gone becomes
/// Released.
async fn sync_volume(pv: &PersistentVolume, client: &Client) -> Result<()> {
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let phase = pv.status.as_ref().and_then(|s| s.phase.as_deref());
    let set = |phase: &'static str| {
        let pvs = pvs.clone();
        let name = pv.name_any();
        async move {
            pvs.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": phase}})),
            )
            .await
            .map(|_| ())
        }
    };
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        if matches!(phase, None | Some("Pending")) {
            set("Available").await?;
        }
        return Ok(());
    };
    if phase != Some("Bound") {
        return Ok(());
    }
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(client.clone(), r.namespace.as_deref().unwrap_or("default"));
    let gone = match claims.get_opt(r.name.as_deref().unwrap_or("")).await? {
        None => true,
        Some(c) => r.uid.is_some() && c.metadata.uid != r.uid,
    };
    if gone {
        set("Released").await?;
    }
    Ok(())
}

fn error_policy(_pvc: Arc<PersistentVolumeClaim>, e: &Error, _c: Arc<Client>) -> Action {
    if e.status() != Some(409) {
        tracing::warn!(error = %e, "volume binding failed; retrying");
    }
    Action::requeue(Duration::from_secs(2))
}

/// The binder, running until dropped: claims are reconciled when they change and whenever a
/// volume changes (a new volume may fit a pending claim; a freed one is released).
pub async fn controller(client: Client) {
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let ctl = Controller::new(claims, watcher::Config::default());
    let store = ctl.store();
    let release_client = client.clone();
    ctl.watches(pvs, watcher::Config::default(), move |pv| {
        let claims: Vec<ObjectRef<PersistentVolumeClaim>> = store
            .state()
            .iter()
            .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound"))
            .map(|c| ObjectRef::from_obj(c.as_ref()))
            .collect();
        let client = release_client.clone();
        tokio::spawn(async move {
            if let Err(e) = sync_volume(&pv, &client).await {
                tracing::debug!(error = %e, "volume not released");
            }
        });
        claims
    })
    .run(reconcile, error_policy, Arc::new(client))
    .for_each(|_| futures::future::ready(()))
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pvc(v: serde_json::Value) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "c", "namespace": "ns", "uid": "u1"}, "spec": v}))
        .unwrap()
    }
    fn pv(v: serde_json::Value, phase: &str) -> PersistentVolume {
        serde_json::from_value(json!({
            "metadata": {"name": "v", "labels": {"disk": "ssd"}}, "spec": v,
            "status": {"phase": phase}}))
        .unwrap()
    }

    #[test]
    fn claims_fit_volumes_by_class_modes_size_and_labels() {
        let claim = pvc(
            json!({"accessModes": ["ReadWriteOnce"], "storageClassName": "local",
            "resources": {"requests": {"storage": "1Gi"}},
            "selector": {"matchLabels": {"disk": "ssd"}}}),
        );
        let vol = |cap: &str, class: &str, modes: serde_json::Value| {
            json!({"capacity": {"storage": cap}, "storageClassName": class,
                   "accessModes": modes, "hostPath": {"path": "/x"}})
        };
        let rwo = json!(["ReadWriteOnce", "ReadOnlyMany"]);
        assert!(fits(
            &claim,
            &pv(vol("2Gi", "local", rwo.clone()), "Available")
        ));
        assert!(!fits(
            &claim,
            &pv(vol("512Mi", "local", rwo.clone()), "Available")
        ));
        assert!(!fits(
            &claim,
            &pv(vol("2Gi", "other", rwo.clone()), "Available")
        ));
        assert!(!fits(
            &claim,
            &pv(vol("2Gi", "local", json!(["ReadOnlyMany"])), "Available")
        ));
        assert!(!fits(
            &claim,
            &pv(vol("2Gi", "local", rwo.clone()), "Released")
        ));
        let mut taken = vol("2Gi", "local", rwo.clone());
        taken["claimRef"] = json!({"namespace": "ns", "name": "other"});
        assert!(!fits(&claim, &pv(taken, "Available")));
        // Reserved for this very claim (pre-bound by its user): it fits.
        let mut mine = vol("2Gi", "local", rwo);
        mine["claimRef"] = json!({"namespace": "ns", "name": "c", "uid": "u1"});
        assert!(fits(&claim, &pv(mine, "Available")));
    }
}
