//! kube-controller-manager's PodControl: how every controller creates and deletes the pods
//! it manages, with the events `kubectl describe` shows on the owner. Deletions are pinned
//! to the pod's UID, so a pod re-created under the same name is never deleted by mistake.
//! [`create_expected`] and [`delete_expected`] are what the ReplicaSet and Job controllers
//! share: slow-start batches and [`Expectations`](crate::expectations::Expectations) under
//! the owner's key.

use futures::future::join_all;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};

use crate::cachedpod::CachedPod;
use crate::context::Context;

/// The API's own message for a refused request (what Kubernetes puts in events).
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => crate::error::chain(other),
    }
}

/// Creates `pod` in its namespace for the owner `regarding`, recording `SuccessfulCreate`
/// or `FailedCreate` on the owner.
pub async fn create(
    ctx: &Context,
    regarding: &ObjectReference,
    pod: &Pod,
) -> Result<Pod, kube::Error> {
    let api: Api<Pod> = Api::namespaced(
        ctx.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or(""),
    );
    match api.create(&PostParams::default(), pod).await {
        Ok(created) => {
            ctx.events
                .normal(
                    regarding,
                    "SuccessfulCreate",
                    format!("Created pod: {}", created.name_any()),
                )
                .await;
            Ok(created)
        }
        Err(e) => {
            ctx.events
                .warning(
                    regarding,
                    "FailedCreate",
                    format!("Error creating: {}", api_message(&e)),
                )
                .await;
            Err(e)
        }
    }
}

/// At most this many creations or deletions per sync (kube-controller-manager's
/// `burstReplicas` and the Job controller's `MaxPodCreateDeletePerSync`).
pub const BURST: usize = 500;

/// Creates `pods` for the owner `regarding` in slow-start batches of 1, 2, 4, … (upstream's
/// `slowStartBatch`), so a create the API refuses is sent once, not once per pod; every pod
/// created is expected under `key` until the cache shows it. Stops at the first batch with a
/// refusal and returns that refusal; Ok(n) when all `n` were created.
pub async fn create_expected(
    ctx: &Context,
    regarding: &ObjectReference,
    key: &str,
    pods: &[Pod],
) -> Result<usize, kube::Error> {
    let mut batch = 1;
    let mut done = 0;
    while done < pods.len() {
        let n = batch.min(pods.len() - done);
        let results = join_all(
            pods[done..done + n]
                .iter()
                .map(|p| create(ctx, regarding, p)),
        )
        .await;
        let mut first_error = None;
        for r in results {
            match r {
                Ok(created) => ctx.expectations.expect_creation(key, &created.name_any()),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        done += n;
        batch *= 2;
    }
    Ok(done)
}

/// Deletes `victims` as [`delete`] does, each expected gone under `key` until the cache
/// shows it so (a deletion the API refused, or that found the pod gone, is not waited for).
/// Returns the first refusal.
pub async fn delete_expected(
    ctx: &Context,
    regarding: &ObjectReference,
    key: &str,
    victims: &[&CachedPod],
) -> Result<(), kube::Error> {
    for v in victims {
        ctx.expectations
            .expect_deletion(key, v.metadata.uid.as_deref().unwrap_or(""));
    }
    let mut first_error = None;
    for (v, outcome) in delete(ctx, Some(regarding), victims, None).await {
        let uid = v.metadata.uid.as_deref().unwrap_or("");
        match outcome {
            Deletion::Deleted => {}
            Deletion::Gone => ctx.expectations.deletion_failed(key, uid),
            Deletion::Failed(e) => {
                ctx.expectations.deletion_failed(key, uid);
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// What became of one deletion.
#[derive(Debug)]
pub enum Deletion {
    /// The API accepted it (the pod is gone or terminating).
    Deleted,
    /// The pod was gone already (404), or its name now belongs to another pod (409 on the
    /// UID precondition).
    Gone,
    /// The API refused it.
    Failed(kube::Error),
}

/// Deletes every pod in `victims` at once, each pinned to its UID, with `grace` seconds
/// (None: the pod's own), recording `SuccessfulDelete` or `FailedDelete` on the owner
/// `regarding` (none without an owner).
/// Returns each victim with its outcome, in order.
pub async fn delete<'a>(
    ctx: &Context,
    regarding: Option<&ObjectReference>,
    victims: &[&'a CachedPod],
    grace: Option<u32>,
) -> Vec<(&'a CachedPod, Deletion)> {
    let results = join_all(victims.iter().map(|v| {
        let api: Api<Pod> = Api::namespaced(
            ctx.client.clone(),
            v.metadata.namespace.as_deref().unwrap_or(""),
        );
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: v.metadata.uid.clone(),
                resource_version: None,
            }),
            grace_period_seconds: grace,
            ..Default::default()
        };
        async move { api.delete(&v.name_any(), &params).await }
    }))
    .await;
    let mut out = Vec::with_capacity(victims.len());
    for (v, r) in victims.iter().zip(results) {
        let outcome = match r {
            Ok(_) => {
                if let Some(owner) = regarding {
                    ctx.events
                        .normal(
                            owner,
                            "SuccessfulDelete",
                            format!("Deleted pod: {}", v.name_any()),
                        )
                        .await;
                }
                Deletion::Deleted
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Deletion::Gone,
            Err(e) => {
                if let Some(owner) = regarding {
                    ctx.events
                        .warning(
                            owner,
                            "FailedDelete",
                            format!("Error deleting: {}", api_message(&e)),
                        )
                        .await;
                }
                Deletion::Failed(e)
            }
        };
        out.push((*v, outcome));
    }
    out
}

/// The first refusal among `outcomes`, if any.
pub fn first_failure<T>(outcomes: Vec<(T, Deletion)>) -> Result<(), kube::Error> {
    for (_, o) in outcomes {
        if let Deletion::Failed(e) = o {
            return Err(e);
        }
    }
    Ok(())
}
