//! The DaemonSet controller against the real API server, on Node objects (no agents).

mod common;

use std::collections::BTreeMap;

use common::{start, until, Cluster};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{json, Value};
use skiff_controllers::daemonset::REVISION_HASH;

async fn node(c: &Cluster, name: &str, labels: Value, taints: Value) {
    let nodes: Api<Node> = Api::all(c.client.clone());
    let n: Node = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints}}))
    .unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
}

fn daemon_set(name: &str, template_spec: Value) -> DaemonSet {
    serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": template_spec}}}))
    .unwrap()
}

/// node → (pod image, revision hash) of the DaemonSet's pods.
async fn placement(c: &Cluster, app: &str) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for p in c.pods(&format!("app={app}")).await {
        let v = serde_json::to_value(&p).unwrap();
        let node = v.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0/values/0")
            .and_then(Value::as_str)
            .unwrap()
            .to_string();
        let image = p.spec.as_ref().unwrap().containers[0]
            .image
            .clone()
            .unwrap();
        let prev = out.insert(node.clone(), (image, p.labels()[REVISION_HASH].clone()));
        assert!(prev.is_none(), "two daemons on {node}");
    }
    out
}

fn images(p: &BTreeMap<String, (String, String)>) -> Vec<(&str, &str)> {
    p.iter()
        .map(|(n, (i, _))| (n.as_str(), i.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_pod_per_eligible_node_and_a_rolling_update() {
    let c = start().await;
    node(&c, "n1", json!({"disk": "ssd"}), json!([])).await;
    node(&c, "n2", json!({"disk": "ssd"}), json!([])).await;
    node(
        &c,
        "n3",
        json!({"disk": "ssd"}),
        json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
    )
    .await;
    node(&c, "hdd", json!({"disk": "hdd"}), json!([])).await;
    let sets: Api<DaemonSet> = c.api();
    let spec =
        json!({"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c", "image": "agent:1"}]});
    sets.create(&PostParams::default(), &daemon_set("agent", spec))
        .await
        .unwrap();
    until("a daemon on each ssd node that it tolerates", || async {
        let p = placement(&c, "agent").await;
        (images(&p) == [("n1", "agent:1"), ("n2", "agent:1")]).then_some(())
    })
    .await;
    let pod = c.pods("app=agent").await.pop().unwrap();
    let tolerations = serde_json::to_value(&pod.spec.as_ref().unwrap().tolerations).unwrap();
    assert!(
        tolerations
            .to_string()
            .contains("node.kubernetes.io/unreachable"),
        "{tolerations}"
    );
    c.mark_all_ready("app=agent").await;
    let s = until("status counts 2 ready daemons", || async {
        let s = sets.get("agent").await.unwrap().status?;
        (s.number_ready == 2 && s.number_available == Some(2)).then_some(s)
    })
    .await;
    assert_eq!(
        (s.desired_number_scheduled, s.current_number_scheduled),
        (2, 2)
    );

    // Tolerating the taint adds n3; a new image rolls node by node.
    let patch = json!({"spec": {"template": {"spec": {
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}],
        "containers": [{"name": "c", "image": "agent:2"}]}}}});
    sets.patch("agent", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    until(
        "every ssd node runs agent:2, one node at a time",
        || async {
            let p = placement(&c, "agent").await;
            let unavailable = 3 - c
                .pods("app=agent")
                .await
                .iter()
                .filter(|p| skiff_controllers::pods::is_ready(&(*p).clone().into()))
                .count();
            // The new node n3 plus at most maxUnavailable (1) node being replaced.
            assert!(unavailable <= 2, "too many daemons down at once: {p:?}");
            c.mark_all_ready("app=agent").await;
            (images(&p) == [("n1", "agent:2"), ("n2", "agent:2"), ("n3", "agent:2")]).then_some(())
        },
    )
    .await;
    let s = until("status counts 3 updated", || async {
        let s = sets.get("agent").await.unwrap().status?;
        (s.updated_number_scheduled == Some(3) && s.number_available == Some(3)).then_some(s)
    })
    .await;
    assert_eq!(
        s.observed_generation,
        sets.get("agent").await.unwrap().metadata.generation
    );
    let revs: Api<ControllerRevision> = c.api();
    let mut history: Vec<i64> = revs
        .list(&ListParams::default().labels("app=agent"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.revision)
        .collect();
    history.sort();
    assert_eq!(history, [1, 2], "one ControllerRevision per template");

    // A node that goes away takes its daemon along.
    let nodes: Api<Node> = Api::all(c.client.clone());
    nodes.delete("n2", &DeleteParams::default()).await.unwrap();
    until("n2's daemon is deleted", || async {
        let p = placement(&c, "agent").await;
        (p.keys().map(String::as_str).collect::<Vec<_>>() == ["n1", "n3"]).then_some(())
    })
    .await;
    let pods: Api<Pod> = c.api();
    assert_eq!(
        pods.list(&ListParams::default().labels("app=agent"))
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}
