//! The node lifecycle and taint eviction controllers against the real API server: Nodes
//! and their Leases are written by the test as an agent would, and the test stops renewing
//! a Lease to "kill" a node.

mod common;

use std::time::{Duration, Instant};

use common::{start_with, until, Cluster};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use skiff_apiserver::kinds::core::pod::DefaultTolerations;
use skiff_controllers::nodelifecycle::{UNREACHABLE, UNSCHEDULABLE};
use skiff_controllers::Config;

const GRACE: Duration = Duration::from_secs(2);

async fn cluster(unreachable_seconds: i64) -> Cluster {
    let config = Config {
        node_monitor_grace_period: GRACE,
        ..Default::default()
    };
    let tolerations = DefaultTolerations {
        not_ready_seconds: 300,
        unreachable_seconds,
    };
    start_with(config, tolerations).await
}

/// Registers a Ready node as an agent does.
async fn add_node(c: &Cluster, name: &str) {
    let nodes: Api<Node> = Api::all(c.client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    report_ready(&c.client, name).await;
    renew(&c.client, name).await;
}

async fn report_ready(client: &Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let now = Timestamp::now().to_string();
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
        "reason": "KubeletReady", "message": "kubelet is posting ready status",
        "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// Creates or renews the node's Lease.
async fn renew(client: &Client, name: &str) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let spec = json!({"holderIdentity": name, "leaseDurationSeconds": 40,
        "renewTime": Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()});
    if leases.get_opt(name).await.unwrap().is_some() {
        leases
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await
            .unwrap();
    } else {
        let lease: Lease =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
        leases.create(&PostParams::default(), &lease).await.unwrap();
    }
}

/// Renews the node's Lease every 200 ms until the returned task is aborted.
fn heartbeat(client: &Client, name: &str) -> tokio::task::JoinHandle<()> {
    let client = client.clone();
    let name = name.to_string();
    tokio::spawn(async move {
        loop {
            renew(&client, &name).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

fn ready(n: &Node) -> Option<(String, Option<String>)> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone()))
}

fn taint<'a>(n: &'a Node, key: &str) -> Option<&'a k8s_openapi::api::core::v1::Taint> {
    n.spec
        .as_ref()?
        .taints
        .as_ref()?
        .iter()
        .find(|t| t.key == key)
}

async fn bind(c: &Cluster, pod: &str, node: &str) {
    let pods: Api<Pod> = c.api();
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    pods.create_subresource::<_, serde_json::Value>(
        "binding",
        pod,
        &PostParams::default(),
        &binding,
    )
    .await
    .unwrap();
}

fn pod_ready(p: &Pod) -> Option<String> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_node_turns_unknown_and_its_pods_are_evicted_after_toleration_seconds() {
    let c = cluster(3).await;
    add_node(&c, "n1").await;
    add_node(&c, "n2").await;
    let beating = heartbeat(&c.client, "n1");
    let _n2 = heartbeat(&c.client, "n2");
    let rs: ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}))
    .unwrap();
    c.api::<ReplicaSet>()
        .create(&PostParams::default(), &rs)
        .await
        .unwrap();
    let first = until("the replica set has its 2 pods", || async {
        let p = c.pods("app=web").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    for p in &first {
        bind(&c, &p.name_any(), "n1").await;
        c.mark_ready(&p.name_any()).await;
    }
    // The admission gave them the configured unreachable toleration.
    let tol = first[0]
        .spec
        .as_ref()
        .unwrap()
        .tolerations
        .iter()
        .flatten()
        .find(|t| t.key.as_deref() == Some(UNREACHABLE))
        .cloned()
        .unwrap();
    assert_eq!(tol.toleration_seconds, Some(3));

    // While the Lease is renewed, the node stays Ready past the grace period.
    let nodes: Api<Node> = Api::all(c.client.clone());
    let watch_until = Instant::now() + GRACE + Duration::from_secs(1);
    while Instant::now() < watch_until {
        let n = nodes.get("n1").await.unwrap();
        assert_eq!(
            ready(&n).unwrap().0,
            "True",
            "a renewing node turned {:?}",
            ready(&n)
        );
        assert!(taint(&n, UNREACHABLE).is_none());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    beating.abort();
    let stopped = Instant::now();
    let n = until(
        "the silent node is Unknown and tainted unreachable",
        || async {
            let n = nodes.get("n1").await.unwrap();
            (ready(&n).is_some_and(|r| r.0 == "Unknown") && taint(&n, UNREACHABLE).is_some())
                .then_some(n)
        },
    )
    .await;
    let took = stopped.elapsed();
    println!("node Unknown and tainted {took:?} after its last renewal (grace {GRACE:?})");
    assert!(
        took >= GRACE - Duration::from_millis(300),
        "marked after only {took:?}"
    );
    assert_eq!(ready(&n).unwrap().1.as_deref(), Some("NodeStatusUnknown"));
    let t = taint(&n, UNREACHABLE).unwrap();
    assert_eq!(t.effect, "NoExecute");
    let added = t.time_added.as_ref().unwrap().0;
    assert_eq!(
        nodes.get("n2").await.unwrap().spec.unwrap().taints,
        None,
        "the healthy node was tainted too"
    );

    // Its pods are marked not ready, and deleted once their 3 s toleration ran out.
    let pods: Api<Pod> = c.api();
    for p in &first {
        let name = p.name_any();
        let gone = until("the pod is marked not ready and then deleted", || async {
            let p = pods.get(&name).await.ok()?;
            p.metadata
                .deletion_timestamp
                .clone()
                .map(|t| (t.0, pod_ready(&p)))
        })
        .await;
        assert_eq!(gone.1.as_deref(), Some("False"), "pod {name} still Ready");
        // Deletion timestamps carry whole seconds.
        let waited = gone.0.duration_since(added).as_secs_f64();
        assert!(
            waited >= 2.0,
            "pod {name} evicted {waited}s after the taint"
        );
    }
    // The replica set replaces them.
    until("the replica set created 2 new pods", || async {
        let now = c.pods("app=web").await;
        let fresh = now
            .iter()
            .filter(|p| !first.iter().any(|f| f.metadata.uid == p.metadata.uid))
            .count();
        (fresh == 2).then_some(())
    })
    .await;

    // The node comes back: Ready, and the taint is removed.
    let _back = heartbeat(&c.client, "n1");
    report_ready(&c.client, "n1").await;
    until("the returning node loses its taint", || async {
        let n = nodes.get("n1").await.unwrap();
        taint(&n, UNREACHABLE).is_none().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_no_execute_taint_evicts_pods_not_tolerating_it_at_once_and_cordon_taints_the_node() {
    let c = cluster(300).await;
    add_node(&c, "n1").await;
    add_node(&c, "n2").await;
    let _beat = heartbeat(&c.client, "n1");
    let _beat2 = heartbeat(&c.client, "n2");
    let pods: Api<Pod> = c.api();
    for (name, tolerations, node) in [
        ("plain", json!([]), "n1"),
        (
            "tolerant",
            json!([{"key": "maintenance", "operator": "Exists", "effect": "NoExecute"}]),
            "n1",
        ),
        // Same namespace, no toleration, another node: the taint is not its business.
        ("elsewhere", json!([]), "n2"),
    ] {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"tolerations": tolerations, "containers": [{"name": "c", "image": "busybox"}]}}))
        .unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
        bind(&c, name, node).await;
    }
    let nodes: Api<Node> = Api::all(c.client.clone());
    let patch = json!({"spec": {"taints": [{"key": "maintenance", "value": "now", "effect": "NoExecute"}]}});
    nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    until("the pod without a toleration is deleted", || async {
        let p = pods.get("plain").await.ok()?;
        p.metadata.deletion_timestamp.is_some().then_some(())
    })
    .await;
    let tolerant = pods.get("tolerant").await.unwrap();
    assert!(
        tolerant.metadata.deletion_timestamp.is_none(),
        "the tolerating pod was evicted"
    );
    let elsewhere = pods.get("elsewhere").await.unwrap();
    assert!(
        elsewhere.metadata.deletion_timestamp.is_none(),
        "a pod on another node was evicted"
    );
    // A pod bound to the tainted node afterwards goes too (its own change wakes it).
    let late: Pod = serde_json::from_value(json!({"metadata": {"name": "late"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &late).await.unwrap();
    bind(&c, "late", "n1").await;
    until("the pod bound after the taint is deleted", || async {
        let p = pods.get("late").await.ok()?;
        p.metadata.deletion_timestamp.is_some().then_some(())
    })
    .await;

    // kubectl cordon / uncordon.
    let cordon = |on: bool| json!({"spec": {"unschedulable": on}});
    nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(&cordon(true)))
        .await
        .unwrap();
    until("the cordoned node has the unschedulable taint", || async {
        let n = nodes.get("n1").await.unwrap();
        taint(&n, UNSCHEDULABLE)
            .is_some_and(|t| t.effect == "NoSchedule")
            .then_some(())
    })
    .await;
    let n = nodes.get("n1").await.unwrap();
    assert!(
        taint(&n, "maintenance").is_some(),
        "someone else's taint was removed"
    );
    nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(&cordon(false)))
        .await
        .unwrap();
    until(
        "the uncordoned node loses the unschedulable taint",
        || async {
            let n = nodes.get("n1").await.unwrap();
            taint(&n, UNSCHEDULABLE).is_none().then_some(())
        },
    )
    .await;
}
