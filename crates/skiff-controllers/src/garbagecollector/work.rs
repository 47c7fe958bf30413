//! What the collector does for one queued item (kube-controller-manager's
//! `attemptToDeleteItem`, `processDeletingDependentsItem` and `attemptToOrphan`): every
//! decision reads the object afresh and every write is pinned to the uid or resourceVersion
//! it was decided on, so a race with a client costs a retry, never a wrong delete.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::core::PartialObjectMeta;
use kube::Api;
use serde_json::json;

use super::graph::{Identity, Node, Work, FOREGROUND, ORPHAN};
use super::mapper::Served;
use super::{Collector, ABSENT_CACHE};
use crate::error::Result;

/// How an owner reference stands.
#[derive(Debug, PartialEq)]
enum Owner {
    /// The owner exists and is not being deleted in the foreground.
    Solid,
    /// The owner is gone (or the reference cannot be valid).
    Dangling,
    /// The owner is being deleted in the foreground, waiting for its dependents.
    Waiting,
}

/// Processes one item.
pub(super) async fn process(gc: &Collector, w: &Work) -> Result<()> {
    match w {
        Work::Delete(uid) => attempt_to_delete(gc, uid).await,
        Work::Orphan(uid) => attempt_to_orphan(gc, uid).await,
    }
}

/// The API of the object `id` (None when its kind is not served).
fn api_for(gc: &Collector, id: &Identity) -> Option<(Api<DynamicObject>, std::sync::Arc<Served>)> {
    let served = gc.mapper().resolve(&id.api_version, &id.kind)?;
    let client = gc.ctx.client.clone();
    let api = match (&id.namespace, served.namespaced) {
        (Some(ns), true) => Api::namespaced_with(client, ns, &served.resource),
        (None, true) => return None,
        (_, false) => Api::all_with(client, &served.resource),
    };
    Some((api, served))
}

/// The object's metadata as the API has it now, if it is still the same object.
async fn latest(gc: &Collector, id: &Identity) -> Result<Option<PartialObjectMeta<DynamicObject>>> {
    let Some((api, _)) = api_for(gc, id) else {
        return Ok(None);
    };
    let meta = api.get_metadata_opt(&id.name).await?;
    Ok(meta.filter(|m| m.metadata.uid.as_deref() == Some(&*id.uid)))
}

fn has_finalizer(m: &PartialObjectMeta<DynamicObject>, f: &str) -> bool {
    m.metadata
        .finalizers
        .as_ref()
        .is_some_and(|fs| fs.iter().any(|x| x == f))
}

async fn attempt_to_delete(gc: &Collector, uid: &str) -> Result<()> {
    let Some(node) = gc.graph().get(uid).cloned() else {
        return Ok(());
    };
    if !node.observed {
        return Ok(());
    }
    if node.deleting_dependents() {
        return process_deleting_dependents(gc, &node).await;
    }
    if node.deleting || node.delete_sent || node.owners.is_empty() {
        return Ok(());
    }
    let Some(current) = latest(gc, &node.identity).await? else {
        // Gone or replaced: its own watch event will tell the graph.
        return Ok(());
    };
    let owners = current
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default();
    if owners.is_empty() || current.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let mut solid = Vec::new();
    let mut dangling = Vec::new();
    let mut waiting = Vec::new();
    for r in &owners {
        match classify(gc, &node.identity, r).await? {
            Owner::Solid => solid.push(r),
            Owner::Dangling => dangling.push(r),
            Owner::Waiting => waiting.push(r),
        }
    }
    tracing::debug!(object = ?node.identity, solid = solid.len(), dangling = dangling.len(), waiting = waiting.len(), "gc classified owners");
    if !solid.is_empty() {
        if dangling.is_empty() && waiting.is_empty() {
            return Ok(());
        }
        // Keep the live owners; drop references to gone owners and to owners waiting
        // for this object in the foreground.
        let dropped: Vec<&str> = dangling
            .iter()
            .chain(&waiting)
            .map(|r| r.uid.as_str())
            .collect();
        let kept: Vec<&OwnerReference> = owners
            .iter()
            .filter(|r| !dropped.contains(&r.uid.as_str()))
            .collect();
        return patch_meta(
            gc,
            &node.identity,
            &current,
            json!({"ownerReferences": kept}),
        )
        .await;
    }
    let policy = if !waiting.is_empty() && !node.dependents.is_empty() {
        // An owner waits for this object, which has dependents of its own: delete it in
        // the foreground too, so the wait covers the whole subtree.
        PropagationPolicy::Foreground
    } else if has_finalizer(&current, ORPHAN) {
        PropagationPolicy::Orphan
    } else if has_finalizer(&current, FOREGROUND) {
        PropagationPolicy::Foreground
    } else {
        PropagationPolicy::Background
    };
    tracing::debug!(object = ?node.identity, ?policy, "gc deleting an object whose owners are gone");
    delete(gc, &node.identity, policy).await
}

/// An owner deleted in the foreground: delete its blocking dependents; once none is left,
/// remove its `foregroundDeletion` finalizer (and the API server deletes it).
async fn process_deleting_dependents(gc: &Collector, node: &Node) -> Result<()> {
    let blocking: Vec<Node> = gc
        .graph()
        .blocking_dependents(&node.identity.uid)
        .into_iter()
        .cloned()
        .collect();
    if blocking.is_empty() {
        return remove_finalizer(gc, &node.identity, FOREGROUND).await;
    }
    // Each dependent is queued until the collector's DELETE of it is accepted; after that
    // its own watch events bring it back if need be (without this, every dependent that goes
    // re-queued all the others still in the graph: quadratic in an owner's dependents).
    for d in blocking {
        if (!d.deleting && !d.delete_sent) || d.deleting_dependents() {
            gc.queue.add(Work::Delete(d.identity.uid.to_string()));
        }
    }
    Ok(())
}

/// An owner deleted with `orphan`: strip its reference from every dependent, then remove
/// the finalizer.
async fn attempt_to_orphan(gc: &Collector, uid: &str) -> Result<()> {
    let Some(node) = gc.graph().get(uid).cloned() else {
        return Ok(());
    };
    if !node.orphaning() {
        return Ok(());
    }
    let dependents: Vec<Identity> = {
        let g = gc.graph();
        node.dependents
            .iter()
            .filter_map(|d| g.get(d))
            .filter(|d| d.observed)
            .map(|d| d.identity.clone())
            .collect()
    };
    for d in dependents {
        let Some(current) = latest(gc, &d).await? else {
            continue;
        };
        let owners = current
            .metadata
            .owner_references
            .clone()
            .unwrap_or_default();
        if !owners.iter().any(|r| r.uid == uid) {
            continue;
        }
        let kept: Vec<&OwnerReference> = owners.iter().filter(|r| r.uid != uid).collect();
        patch_meta(gc, &d, &current, json!({"ownerReferences": kept})).await?;
    }
    remove_finalizer(gc, &node.identity, ORPHAN).await
}

/// How the reference `r` of `dependent` stands. An owner the graph holds is trusted; any
/// other is looked up with a live GET (the graph may not have seen it yet).
async fn classify(gc: &Collector, dependent: &Identity, r: &OwnerReference) -> Result<Owner> {
    let known = gc.graph().get(&r.uid).filter(|o| o.observed).cloned();
    // Owners are looked for in the dependent's namespace (or cluster-wide): an object of
    // that uid elsewhere is not this reference's owner.
    let elsewhere = known.as_ref().is_some_and(|o| {
        o.identity.namespace.is_some() && o.identity.namespace != dependent.namespace
    });
    if let Some(o) = known.filter(|_| !elsewhere) {
        return Ok(if o.deleting_dependents() {
            Owner::Waiting
        } else {
            Owner::Solid
        });
    }
    if gc
        .absent
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&r.uid)
    {
        return Ok(Owner::Dangling);
    }
    let Some(served) = gc.mapper().resolve(&r.api_version, &r.kind) else {
        // A kind the API does not serve: it cannot be verified, so it is never gone.
        tracing::debug!(owner = %r.kind, "gc cannot resolve an owner's kind");
        return Ok(Owner::Solid);
    };
    let client = gc.ctx.client.clone();
    let api: Api<DynamicObject> = match (&dependent.namespace, served.namespaced) {
        (Some(ns), true) => Api::namespaced_with(client, ns, &served.resource),
        (None, true) => {
            // A cluster-scoped object cannot be owned by a namespaced one.
            invalid_namespace(gc, dependent, r).await;
            return Ok(Owner::Dangling);
        }
        (_, false) => Api::all_with(client, &served.resource),
    };
    let owner = api.get_metadata_opt(&r.name).await?;
    Ok(match owner {
        Some(o) if o.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
            if o.metadata.deletion_timestamp.is_some() && has_finalizer(&o, FOREGROUND) {
                Owner::Waiting
            } else {
                Owner::Solid
            }
        }
        _ => {
            if elsewhere {
                invalid_namespace(gc, dependent, r).await;
            }
            let mut absent = gc.absent.lock().unwrap_or_else(|e| e.into_inner());
            if absent.len() >= ABSENT_CACHE {
                absent.clear();
            }
            absent.insert(r.uid.clone());
            Owner::Dangling
        }
    })
}

/// The `OwnerRefInvalidNamespace` warning upstream records on such a dependent.
async fn invalid_namespace(gc: &Collector, dependent: &Identity, r: &OwnerReference) {
    let regarding = ObjectReference {
        api_version: Some(dependent.api_version.to_string()),
        kind: Some(dependent.kind.to_string()),
        namespace: dependent.namespace.as_deref().map(String::from),
        name: Some(dependent.name.to_string()),
        uid: Some(dependent.uid.to_string()),
        ..Default::default()
    };
    let ns = dependent.namespace.as_deref().unwrap_or("");
    let note = format!(
        "ownerRef [{}/{}, namespace: {ns}, name: {}, uid: {}] does not exist in namespace \"{ns}\"",
        r.api_version, r.kind, r.name, r.uid
    );
    gc.ctx
        .events
        .record(
            "garbage-collector-controller",
            &regarding,
            crate::events::EventType::Warning,
            "OwnerRefInvalidNamespace",
            note,
        )
        .await;
}

/// Deletes `id` with `policy`, only if it is still the same object.
async fn delete(gc: &Collector, id: &Identity, policy: PropagationPolicy) -> Result<()> {
    let Some((api, _)) = api_for(gc, id) else {
        return Ok(());
    };
    let params = DeleteParams {
        propagation_policy: Some(policy),
        preconditions: Some(Preconditions {
            uid: Some(id.uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&id.name, &params).await {
        Ok(_) => {
            gc.graph().delete_sent(&id.uid);
            Ok(())
        }
        // Already gone, or another object under the same name.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A merge patch of `metadata` fields, pinned to the resourceVersion `current` was read at.
async fn patch_meta(
    gc: &Collector,
    id: &Identity,
    current: &PartialObjectMeta<DynamicObject>,
    mut fields: serde_json::Value,
) -> Result<()> {
    let Some((api, _)) = api_for(gc, id) else {
        return Ok(());
    };
    fields["resourceVersion"] = json!(current.metadata.resource_version);
    fields["uid"] = json!(&*id.uid);
    let patch = json!({ "metadata": fields });
    match api
        .patch(&id.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes finalizer `f` from `id` (the API server deletes an object being deleted once its
/// last finalizer is gone).
async fn remove_finalizer(gc: &Collector, id: &Identity, f: &str) -> Result<()> {
    let Some(current) = latest(gc, id).await? else {
        return Ok(());
    };
    if !has_finalizer(&current, f) {
        return Ok(());
    }
    let rest: Vec<&String> = current
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|x| *x != f)
        .collect();
    tracing::debug!(object = ?id, finalizer = f, "gc removing a finalizer");
    patch_meta(gc, id, &current, json!({ "finalizers": rest })).await
}
