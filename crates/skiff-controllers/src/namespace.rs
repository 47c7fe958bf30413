//! The namespace controller (kube-controller-manager's `namespace` controller): a namespace
//! being deleted is emptied — every namespaced resource the API serves is deleted with
//! `deletecollection` (background propagation, pods gracefully) — and once nothing is left
//! its `kubernetes` finalizer is removed through the `/finalize` subresource, after which the
//! API server removes it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, DynamicObject, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use crate::context::Context;
use crate::error::Result;
use crate::runner;

/// The finalizer in a namespace's `spec.finalizers` this controller owns.
pub const FINALIZER: &str = "kubernetes";
/// How soon a namespace with content left (pods terminating, finalizers pending) is
/// looked at again.
const RECHECK: Duration = Duration::from_secs(2);

/// The controller, until dropped.
pub async fn controller(ctx: Arc<Context>) {
    let informer = &ctx.informers.namespaces;
    let store = informer.store();
    let triggers = vec![runner::own(informer.changes(), store.clone())];
    runner::run("namespace", ctx.clone(), store, triggers, reconcile).await
}

fn pending(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        && ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action> {
    if !pending(&ns) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let left = empty(&ctx, &name).await?;
    if left > 0 {
        tracing::debug!(namespace = %name, left, "namespace still has content");
        return Ok(Action::requeue(RECHECK));
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let Some(mut current) = api.get_opt(&name).await? else {
        return Ok(Action::await_change());
    };
    if !pending(&current) {
        return Ok(Action::await_change());
    }
    if let Some(spec) = current.spec.as_mut() {
        spec.finalizers = spec
            .finalizers
            .take()
            .map(|f| f.into_iter().filter(|x| x != FINALIZER).collect());
    }
    tracing::info!(namespace = %name, "namespace emptied, finalizing");
    api.replace_subresource("finalize", &name, &PostParams::default(), &current)
        .await?;
    Ok(Action::await_change())
}

/// Deletes everything in namespace `ns`; returns how many objects are still there.
async fn empty(ctx: &Context, ns: &str) -> Result<usize> {
    // The garbage collector's discovery (refreshed every 30 s), not one per recheck.
    let mapper = ctx.discover().await?;
    let mut left = 0;
    for served in mapper.all().filter(|s| s.namespaced) {
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), ns, &served.resource);
        match api
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if matches!(e.code, 404 | 405) => continue,
            Err(e) => return Err(e.into()),
        }
        left += api
            .list_metadata(&ListParams::default().limit(1))
            .await?
            .items
            .len();
    }
    Ok(left)
}
