//! The resource quota controller (kube-controller-manager's `resourcequota`): keeps each
//! ResourceQuota's `status.hard` equal to its spec and `status.used` equal to what the objects
//! of its namespace use, counted by the same evaluators the API server's quota admission
//! charges with ([`skiff_quota`]). Admission adds to `used` as it admits writes; this
//! controller recounts, which returns what deletes, finished pods and refused writes left
//! charged. Pod and Service changes (from the shared informers) and deletions of ConfigMaps,
//! Secrets and PersistentVolumeClaims (from metadata-only watches: no cache of their
//! contents) trigger a recount of their namespace's quotas; every quota is also recounted
//! each `resource_quota_sync_period`.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, ResourceQuota, ResourceQuotaStatus, Secret,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{ListParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::WatchStreamExt;
use kube::{Api, ResourceExt};
use skiff_quota::{self as q, ResourceList};

use crate::context::Context;
use crate::error::Result;
use crate::informer::Change;
use crate::runner::{self, Triggers};

/// The resource quota controller, running until dropped.
pub fn controller(ctx: Arc<Context>) -> impl std::future::Future<Output = ()> + Send {
    let store = ctx.informers.resource_quotas.store();
    let own = runner::own(ctx.informers.resource_quotas.changes(), store.clone());
    let pods = replenishments(ctx.informers.pods.changes(), store.clone(), "pods");
    let services = replenishments(ctx.informers.services.changes(), store.clone(), "services");
    let config_maps = deletions::<ConfigMap>(&ctx, store.clone());
    let secrets = deletions::<Secret>(&ctx, store.clone());
    let claims = deletions::<PersistentVolumeClaim>(&ctx, store.clone());
    let triggers = vec![own, pods, services, config_maps, secrets, claims];
    runner::run("ResourceQuota", ctx, store, triggers, |quota, ctx| {
        Box::pin(reconcile(quota, ctx))
    })
}

/// A deletion of a `K` (seen by a metadata-only watch) wakes every quota of its namespace,
/// so what it used is returned at once.
fn deletions<K>(ctx: &Context, quotas: Store<ResourceQuota>) -> Triggers<ResourceQuota>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let api: Api<kube::core::PartialObjectMeta<K>> = Api::all(ctx.client.clone());
    // With backoff: an error that comes back at once (a closed client at shutdown) would
    // otherwise be retried in a loop that never yields, and the runtime could not stop.
    kube::runtime::watcher(api, kube::runtime::watcher::Config::default())
        .default_backoff()
        .filter_map(|e| async move {
            match e {
                Ok(kube::runtime::watcher::Event::Delete(m)) => m.metadata.namespace,
                _ => None,
            }
        })
        .flat_map(move |ns| {
            let refs: Vec<ObjectRef<ResourceQuota>> = quotas
                .state()
                .iter()
                .filter(|q| q.namespace().as_deref() == Some(ns.as_str()))
                .map(|q| ObjectRef::from_obj(q.as_ref()))
                .collect();
            futures::stream::iter(refs)
        })
        .boxed()
}

/// A change of a core `plural` object that can return quota wakes every quota of its
/// namespace (kube-controller-manager's replenishment): a deletion, or an update that
/// changes what the object uses (a pod that finished, a Service of another type). Creates
/// wake nothing: admission charged them. So a burst of pod creates or status updates costs
/// no recount, which lists every counted object of the namespace.
fn replenishments<K>(
    changes: impl futures::Stream<Item = Change<K>> + Send + 'static,
    quotas: Store<ResourceQuota>,
    plural: &'static str,
) -> Triggers<ResourceQuota>
where
    K: kube::Resource + serde::Serialize + Send + Sync + 'static,
{
    let usage = move |o: &K| q::usage("", plural, &serde_json::to_value(o).unwrap_or_default());
    runner::map_changes(changes, move |c| {
        let ns = match c {
            Change::Applied { old: None, .. } => return Vec::new(),
            Change::Applied {
                old: Some(old),
                new,
            } => {
                if usage(&old) == usage(&new) {
                    return Vec::new();
                }
                new.namespace()
            }
            Change::Deleted(old) => old.namespace(),
            Change::Relisted => return runner::all(&quotas),
        };
        quotas
            .state()
            .iter()
            .filter(|q| q.namespace() == ns)
            .map(|q| ObjectRef::from_obj(q.as_ref()))
            .collect()
    })
}

/// The served version of each group whose objects a `count/<resource>.<group>` may name.
fn group_version(group: &str) -> Option<&'static str> {
    Some(match group {
        ""
        | "apps"
        | "batch"
        | "policy"
        | "storage.k8s.io"
        | "coordination.k8s.io"
        | "discovery.k8s.io"
        | "events.k8s.io"
        | "scheduling.k8s.io"
        | "certificates.k8s.io" => "v1",
        "autoscaling" => "v2",
        _ => return None,
    })
}

/// One recount of a quota (`syncResourceQuota`).
pub async fn reconcile(obj: Arc<ResourceQuota>, ctx: Arc<Context>) -> Result<Action> {
    let quota = obj.as_ref();
    if quota.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = quota.namespace().unwrap_or_default();
    let hard = quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    let quota_json = serde_json::to_value(quota).unwrap_or_default();
    let resources: BTreeSet<(String, String)> =
        hard.keys().filter_map(|k| q::counted_resource(k)).collect();
    let mut used = ResourceList::new();
    for (group, plural) in resources {
        let Some(version) = group_version(&group) else {
            continue;
        };
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        let ar = ApiResource {
            group: group.clone(),
            version: version.into(),
            api_version,
            kind: String::new(),
            plural: plural.clone(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &ar);
        let objects = match api.list(&ListParams::default()).await {
            Ok(l) => l.items,
            // A resource this server does not serve counts nothing.
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => return Err(e.into()),
        };
        for o in objects {
            let json = serde_json::to_value(&o).unwrap_or_default();
            if !q::scopes_match(&quota_json, &group, &plural, &json) {
                continue;
            }
            let usage: ResourceList = q::usage(&group, &plural, &json)
                .into_iter()
                .filter(|(k, _)| hard.contains_key(k))
                .collect();
            q::add_into(&mut used, &usage);
        }
    }
    let used = hard
        .keys()
        .map(|k| {
            let v = used.get(k).map_or("0".to_string(), q::format_quantity);
            (k.clone(), Quantity(v))
        })
        .collect();
    let status = ResourceQuotaStatus {
        hard: Some(hard),
        used: Some(used),
    };
    if quota.status.as_ref() != Some(&status) {
        // A replace at the cached resourceVersion: a charge admission made since the cache
        // was filled makes this a conflict, retried with a fresh count.
        let mut new = quota.clone();
        new.status = Some(status);
        let api: Api<ResourceQuota> = Api::namespaced(ctx.client.clone(), &ns);
        api.replace_status(&quota.name_any(), &PostParams::default(), &new)
            .await?;
    }
    Ok(Action::requeue(ctx.config.resource_quota_sync_period))
}
