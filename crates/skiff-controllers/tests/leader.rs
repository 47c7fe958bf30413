//! Leader election: several controller sets on one API server run one active set, and
//! another takes over when the leader stops or dies.

mod common;

use std::time::Duration;

use common::{api_only, until, Cluster};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;
use skiff_controllers::{run_elected, LeaseConfig, LEASE_NAME};
use tokio::sync::oneshot;

fn lease(identity: &str) -> LeaseConfig {
    LeaseConfig {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(200),
        ..LeaseConfig::new(LEASE_NAME, identity)
    }
}

/// A candidate running in the background; `stop` shuts it down cleanly, dropping the handle
/// without `stop` kills it (no release, as a crash).
struct Candidate {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Candidate {
    fn start(c: &Cluster, identity: &str) -> Candidate {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run_elected(
            c.client.clone(),
            lease(identity),
            Default::default(),
            async {
                let _ = stopped.await;
            },
        ));
        Candidate {
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the candidate stops")
            .unwrap();
    }
}

impl Drop for Candidate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn holder(c: &Cluster) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), "kube-system");
    leases
        .get_opt(LEASE_NAME)
        .await
        .unwrap()?
        .spec?
        .holder_identity
}

fn replica_set(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap()
}

async fn scale(c: &Cluster, n: i32) {
    let rss: Api<ReplicaSet> = c.api();
    rss.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": n}})),
    )
    .await
    .unwrap();
}

/// Waits until exactly `n` pods exist and stay so while the controllers settle.
async fn until_pods(c: &Cluster, n: usize) {
    until(&format!("{n} pods exist"), || async {
        (c.pods("app=web").await.len() == n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_of_two_candidates_leads_and_the_other_takes_over_on_release() {
    let c = api_only().await;
    let a = Candidate::start(&c, "server-a");
    let first = until("someone leads", || holder(&c)).await;
    let b = Candidate::start(&c, "server-b");
    let rss: Api<ReplicaSet> = c.api();
    rss.create(&PostParams::default(), &replica_set("web", 3))
        .await
        .unwrap();
    until_pods(&c, 3).await;
    assert_eq!(
        holder(&c).await.as_deref(),
        Some(first.as_str()),
        "the leader did not change"
    );
    assert_eq!(first, "server-a", "the first candidate got the free lease");
    // A clean stop releases the lease: the other candidate takes over and reconciles.
    a.stop().await;
    until("server-b leads", || async {
        (holder(&c).await.as_deref() == Some("server-b")).then_some(())
    })
    .await;
    scale(&c, 5).await;
    until_pods(&c, 5).await;
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), "kube-system");
    let spec = leases.get(LEASE_NAME).await.unwrap().spec.unwrap();
    assert_eq!(spec.lease_transitions, Some(1));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_leaders_lease_is_taken_after_it_expires() {
    let c = api_only().await;
    let a = Candidate::start(&c, "server-a");
    until("server-a leads", || async {
        (holder(&c).await.as_deref() == Some("server-a")).then_some(())
    })
    .await;
    let b = Candidate::start(&c, "server-b");
    // Killed: no release, the lease must expire first.
    drop(a);
    let rss: Api<ReplicaSet> = c.api();
    rss.create(&PostParams::default(), &replica_set("web", 2))
        .await
        .unwrap();
    until("server-b leads", || async {
        (holder(&c).await.as_deref() == Some("server-b")).then_some(())
    })
    .await;
    until_pods(&c, 2).await;
    b.stop().await;
    assert_eq!(holder(&c).await, None, "a clean stop gives the lease back");
}
