//! Controller history (kube-controller-manager's `history` package): the templates a
//! DaemonSet or StatefulSet has had, as ControllerRevisions numbered in order, the newest
//! last, pruned to `revisionHistoryLimit` (revisions pods still run are kept).

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{json, Value};

use crate::cachedpod::CachedPod;
use crate::context::Context;
use crate::error::Result;
use crate::pods::{controller_of, controller_ref};
use crate::template;

/// The label naming the revision a pod (and its ControllerRevision) was made from.
pub const REVISION_HASH: &str = "controller-revision-hash";

/// The revision label of a pod.
pub fn revision_hash(p: &CachedPod) -> Option<&str> {
    p.metadata
        .labels
        .as_ref()?
        .get(REVISION_HASH)
        .map(String::as_str)
}

/// The template with its history data as Kubernetes stores it in a ControllerRevision.
pub fn revision_data(t: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(t).unwrap_or(Value::Null);
    t["$patch"] = json!("replace");
    json!({"spec": {"template": t}})
}

pub fn template_of(cr: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = cr.data.as_ref()?.0.pointer("/spec/template")?.clone();
    t.as_object_mut()?.remove("$patch");
    serde_json::from_value(t).ok()
}

/// Makes the current template a ControllerRevision with the highest revision and prunes the
/// history beyond `revisionHistoryLimit`.
#[allow(clippy::too_many_arguments)]
pub async fn sync(
    owner: &ObjectMeta,
    kind: &str,
    template: &PodTemplateSpec,
    name: &str,
    hash: &str,
    limit: i32,
    ctx: &Context,
) -> Result<i64> {
    let ns = owner.namespace.clone().unwrap_or_default();
    let uid = owner.uid.clone().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let mut history: Vec<Arc<ControllerRevision>> = ctx
        .informers
        .controller_revisions
        .store()
        .state()
        .into_iter()
        .filter(|cr| cr.namespace().as_deref() == Some(ns.as_str()))
        .filter(|cr| controller_of(&cr.metadata).is_some_and(|r| r.uid == uid))
        .collect();
    history.sort_by_key(|cr| cr.revision);
    let max = history.last().map_or(0, |cr| cr.revision);
    let current = history
        .iter()
        .find(|cr| template_of(cr).is_some_and(|t| template::equal_ignore_hash(&t, template)))
        .cloned();
    let revision = match current {
        Some(cr) if cr.revision == max => max,
        Some(cr) => {
            // A rollback to an old template: it becomes the newest revision again.
            let patch = json!({"revision": max + 1, "metadata": {"resourceVersion": cr.metadata.resource_version}});
            api.patch(
                &cr.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
            max + 1
        }
        None => {
            let mut labels = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            labels.insert(REVISION_HASH.into(), hash.into());
            let cr = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    namespace: Some(ns.clone()),
                    labels: Some(labels),
                    owner_references: Some(vec![controller_ref("apps/v1", kind, owner)]),
                    ..Default::default()
                },
                data: Some(RawExtension(revision_data(template))),
                revision: max + 1,
            };
            match api.create(&PostParams::default(), &cr).await {
                Ok(_) => {}
                // The cache lags behind our own create: the next sync finds it.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
            max + 1
        }
    };
    let limit = limit.max(0) as usize;
    let live: HashSet<String> = ctx
        .informers
        .pods
        .store()
        .state()
        .iter()
        .filter(|p| controller_of(&p.metadata).is_some_and(|r| r.uid == uid))
        .filter_map(|p| revision_hash(p).map(str::to_string))
        .collect();
    let old: Vec<&Arc<ControllerRevision>> = history
        .iter()
        .filter(|cr| cr.revision < revision)
        .filter(|cr| {
            !cr.labels()
                .get(REVISION_HASH)
                .is_some_and(|h| live.contains(h))
        })
        .collect();
    if old.len() > limit {
        for cr in &old[..old.len() - limit] {
            match api.delete(&cr.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(revision)
}
