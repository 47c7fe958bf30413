//! A stateful pod's stable identity: its name `SET-i`, hostname and subdomain, its labels,
//! and its PersistentVolumeClaims `TEMPLATE-SET-i`.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use kube::api::PostParams;
use kube::{Api, Resource, ResourceExt};

use crate::cachedpod::CachedPod;
use crate::context::Context;
use crate::error::Result;
use crate::history::REVISION_HASH;
use crate::pods;

/// The label naming a stateful pod (so a Service can select exactly one).
pub const POD_NAME: &str = "statefulset.kubernetes.io/pod-name";
/// The label carrying a stateful pod's ordinal.
pub const POD_INDEX: &str = "apps.kubernetes.io/pod-index";

/// The ordinal of the pod `pod` of set `set` (`web-3` → 3), if it is one of its names.
pub fn ordinal(set: &str, pod: &str) -> Option<usize> {
    let rest = pod.strip_prefix(set)?.strip_prefix('-')?;
    if rest.is_empty() || (rest.len() > 1 && rest.starts_with('0')) {
        return None;
    }
    if !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

fn claim_name(template: &str, set: &str, i: usize) -> String {
    format!("{template}-{set}-{i}")
}

/// The pod of ordinal `i` from `template` at `revision`.
pub fn pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, i: usize) -> Pod {
    let name = set.name_any();
    let ns = set.namespace().unwrap_or_default();
    let mut pod = pods::from_template(
        template,
        &ns,
        &name,
        pods::controller_ref("apps/v1", "StatefulSet", set.meta()),
    );
    let pod_name = format!("{name}-{i}");
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(pod_name.clone());
    let labels = pod.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(POD_NAME.into(), pod_name.clone());
    labels.insert(POD_INDEX.into(), i.to_string());
    labels.insert(REVISION_HASH.into(), revision.into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(pod_name);
    let service = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .unwrap_or_default();
    if !service.is_empty() {
        spec.subdomain = Some(service);
    }
    // Each claim template becomes a volume of the same name on the pod's own claim.
    let claims = set
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.clone())
        .unwrap_or_default();
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    for c in &claims {
        let t = c.name_any();
        volumes.retain(|v| v.name != t);
        volumes.push(Volume {
            name: t.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&t, &name, i),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    if volumes.is_empty() {
        spec.volumes = None;
    }
    pod
}

/// Creates the claims of ordinal `i` that do not exist yet (existing ones are reused: a
/// pod that comes back finds its data).
pub async fn create_claims(ctx: &Context, set: &StatefulSet, i: usize) -> Result<()> {
    let claims = set
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.clone())
        .unwrap_or_default();
    if claims.is_empty() {
        return Ok(());
    }
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let selector_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    for template in claims {
        let mut pvc = template.clone();
        let claim = claim_name(&template.name_any(), &name, i);
        pvc.metadata = kube::api::ObjectMeta {
            name: Some(claim.clone()),
            namespace: Some(ns.clone()),
            labels: Some({
                let mut l = template.metadata.labels.clone().unwrap_or_default();
                l.extend(selector_labels.clone());
                l
            }),
            annotations: template.metadata.annotations.clone(),
            ..Default::default()
        };
        pvc.status = None;
        let owners = super::retention::wanted(set, None, false);
        pvc.metadata.owner_references = (!owners.is_empty()).then_some(owners);
        if api.get_opt(&claim).await?.is_some() {
            // Reused: its references follow the policy as it is now.
            super::retention::sync_claim(ctx, set, &claim, &format!("{name}-{i}"), None, false)
                .await?;
            continue;
        }
        match api.create(&PostParams::default(), &pvc).await {
            Ok(_) => {
                ctx.events
                    .normal(
                        &set.object_ref(&()),
                        "SuccessfulCreate",
                        format!(
                            "create Claim {claim} Pod {name}-{i} in StatefulSet {name} success"
                        ),
                    )
                    .await
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Brings the owner references of ordinal `i`'s claims in line with the retention policy
/// (`condemned`: its pod `pod` is being scaled away).
pub async fn sync_claims(
    ctx: &Context,
    set: &StatefulSet,
    i: usize,
    pod: Option<&CachedPod>,
    condemned: bool,
) -> Result<()> {
    let name = set.name_any();
    let templates = set
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.clone())
        .unwrap_or_default();
    for template in templates {
        let claim = claim_name(&template.name_any(), &name, i);
        super::retention::sync_claim(ctx, set, &claim, &format!("{name}-{i}"), pod, condemned)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_are_read_only_from_the_sets_own_names() {
        assert_eq!(ordinal("web", "web-0"), Some(0));
        assert_eq!(ordinal("web", "web-12"), Some(12));
        assert_eq!(ordinal("web", "web-x"), None);
        assert_eq!(ordinal("web", "web-01"), None);
        assert_eq!(ordinal("web", "webby-1"), None);
        assert_eq!(ordinal("web", "web-"), None);
        assert_eq!(ordinal("web", "web-db-1"), None);
    }
}
