//! `persistentVolumeClaimRetentionPolicy`: what happens to a stateful pod's claims when the
//! set is deleted (`whenDeleted`) or scaled down past the pod (`whenScaled`). `Retain` (the
//! default) keeps them; `Delete` is carried out by the garbage collector, as upstream does:
//! the claims get an ownerReference to the set (`whenDeleted: Delete`) or, for a pod being
//! scaled away, to that pod alone (`whenScaled: Delete`). References this controller no longer
//! wants are removed; other owners are left alone.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::cachedpod::CachedPod;
use crate::context::Context;
use crate::error::Result;

fn policy(set: &StatefulSet) -> (bool, bool) {
    let p = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let delete = |v: Option<&String>| v.map(String::as_str) == Some("Delete");
    (
        delete(p.and_then(|p| p.when_deleted.as_ref())),
        delete(p.and_then(|p| p.when_scaled.as_ref())),
    )
}

fn reference(
    api_version: &str,
    kind: &str,
    name: String,
    uid: Option<String>,
) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name,
        uid: uid?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The references the claims of ordinal `i` should carry from this set and its pod
/// (`condemned`: the pod is being scaled away).
pub fn wanted(set: &StatefulSet, pod: Option<&CachedPod>, condemned: bool) -> Vec<OwnerReference> {
    let (when_deleted, when_scaled) = policy(set);
    if when_scaled && condemned {
        // Owned by the condemned pod alone: with the set as a second (live) owner the
        // collector would keep the claim.
        if let Some(p) = pod {
            return reference("v1", "Pod", p.name_any(), p.uid())
                .into_iter()
                .collect();
        }
    }
    let mut refs = Vec::new();
    if when_deleted {
        refs.extend(reference(
            "apps/v1",
            "StatefulSet",
            set.name_any(),
            set.uid(),
        ));
    }
    refs
}

/// The owner references of `claim` with this set's and `pod`'s (if any) replaced by `want`;
/// None when nothing changes.
fn merged(
    current: &[OwnerReference],
    set: &StatefulSet,
    pod_name: &str,
    want: &[OwnerReference],
) -> Option<Vec<OwnerReference>> {
    let ours = |r: &OwnerReference| {
        (r.kind == "StatefulSet" && r.uid == set.uid().unwrap_or_default())
            || (r.kind == "Pod" && r.api_version == "v1" && r.name == pod_name)
    };
    let mut out: Vec<OwnerReference> = current.iter().filter(|r| !ours(r)).cloned().collect();
    out.extend(want.iter().cloned());
    let same = out.len() == current.len() && out.iter().all(|r| current.contains(r));
    (!same).then_some(out)
}

/// Brings the owner references of `claim` (of ordinal `i`, whose pod is `pod`) in line with
/// the policy.
pub async fn sync_claim(
    ctx: &Context,
    set: &StatefulSet,
    claim: &str,
    pod_name: &str,
    pod: Option<&CachedPod>,
    condemned: bool,
) -> Result<()> {
    let ns = set.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(pvc) = api.get_opt(claim).await? else {
        return Ok(());
    };
    if pvc.meta().deletion_timestamp.is_some() {
        return Ok(());
    }
    let want = wanted(set, pod, condemned);
    let Some(refs) = merged(pvc.owner_references(), set, pod_name, &want) else {
        return Ok(());
    };
    let patch = json!({"metadata": {"ownerReferences": refs,
        "resourceVersion": pvc.resource_version()}});
    api.patch(claim, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(policy: serde_json::Value) -> StatefulSet {
        serde_json::from_value(json!({"metadata": {"name": "db", "uid": "set-uid"},
            "spec": {"selector": {}, "template": {}, "serviceName": "db",
                "persistentVolumeClaimRetentionPolicy": policy}}))
        .unwrap()
    }

    fn pod() -> CachedPod {
        serde_json::from_value(json!({"metadata": {"name": "db-2", "uid": "pod-uid"}})).unwrap()
    }

    #[test]
    fn policies_become_owner_references() {
        let retain = set(json!({"whenDeleted": "Retain", "whenScaled": "Retain"}));
        assert!(wanted(&retain, Some(&pod()), true).is_empty());
        let both = set(json!({"whenDeleted": "Delete", "whenScaled": "Delete"}));
        let uids: Vec<_> = wanted(&both, Some(&pod()), true)
            .into_iter()
            .map(|r| r.uid)
            .collect();
        assert_eq!(
            uids,
            ["pod-uid"],
            "a condemned pod's claims go with it alone"
        );
        let kept: Vec<_> = wanted(&both, Some(&pod()), false)
            .into_iter()
            .map(|r| r.uid)
            .collect();
        assert_eq!(
            kept,
            ["set-uid"],
            "a pod that stays does not own its claims"
        );
    }

    #[test]
    fn only_this_sets_references_change() {
        let s = set(json!({"whenDeleted": "Retain"}));
        let other = OwnerReference {
            api_version: "example.com/v1".into(),
            kind: "Backup".into(),
            name: "b".into(),
            uid: "b-uid".into(),
            ..Default::default()
        };
        let mine = reference(
            "apps/v1",
            "StatefulSet",
            "db".into(),
            Some("set-uid".into()),
        )
        .unwrap();
        assert_eq!(
            merged(&[other.clone(), mine], &s, "db-2", &[]),
            Some(vec![other.clone()])
        );
        assert_eq!(merged(std::slice::from_ref(&other), &s, "db-2", &[]), None);
    }
}
