//! kube-controller-manager's PodControl: how every controller creates and deletes the pods
//! it manages, with the events `kubectl describe` shows on the owner. Deletions are pinned
//! to the pod's UID, so a pod re-created under the same name is never deleted by mistake.

use futures::future::join_all;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};

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
    victims: &[&'a Pod],
    grace: Option<u32>,
) -> Vec<(&'a Pod, Deletion)> {
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
pub fn first_failure(outcomes: Vec<(&Pod, Deletion)>) -> Result<(), kube::Error> {
    for (_, o) in outcomes {
        if let Deletion::Failed(e) = o {
            return Err(e);
        }
    }
    Ok(())
}
