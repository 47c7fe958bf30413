//! The scheduler against the real API server on a temporary store: Node objects created as
//! agents create them, pods created as users create them, bindings, events and conditions
//! read back through the API.

mod common;

use common::*;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_bound_within_capacity_and_the_rest_wait_until_a_node_joins() {
    let c = cluster().await;
    for n in ["n1", "n2", "n3"] {
        add_node(&c.client, NodeSpec::new(n).cpu("1")).await;
    }
    let _s = start(&c.client, config("s"));
    let mut nodes = Vec::new();
    for i in 0..3 {
        let name = format!("web-{i}");
        create_pod(&c.client, pod(&name, "600m", json!({}))).await;
        nodes.push(bound_node(&c.client, &name).await);
    }
    nodes.sort();
    assert_eq!(nodes, ["n1", "n2", "n3"], "one 600m pod per 1-cpu node");

    create_pod(&c.client, pod("web-3", "600m", json!({}))).await;
    let msg = failed_scheduling(&c.client, "web-3", "Insufficient cpu").await;
    assert_eq!(
        msg,
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: \
         3 No preemption victims found for incoming pod."
    );
    let cond = eventually(10, "PodScheduled=False", || async {
        scheduled_condition(&c.client, "web-3")
            .await
            .filter(|c| c.0 == "False")
    })
    .await;
    assert_eq!(
        (cond.1.as_str(), cond.2.as_str()),
        ("Unschedulable", msg.as_str())
    );
    let pending = Api::<Pod>::namespaced(c.client.clone(), "default")
        .get("web-3")
        .await
        .unwrap();
    assert_eq!(pending.status.unwrap().phase.as_deref(), Some("Pending"));

    // The cluster changes: the waiting pod is retried and lands on the new node.
    add_node(&c.client, NodeSpec::new("n4").cpu("1")).await;
    assert_eq!(bound_node(&c.client, "web-3").await, "n4");
    let cond = scheduled_condition(&c.client, "web-3").await.unwrap();
    assert_eq!(cond.0, "True");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusing_node_is_counted_under_its_reason_and_uncordon_retries() {
    let c = cluster().await;
    let ssd = json!({"disk": "ssd"});
    add_node(
        &c.client,
        NodeSpec::new("small").cpu("1").labels(ssd.clone()),
    )
    .await;
    add_node(
        &c.client,
        NodeSpec::new("hdd").labels(json!({"disk": "hdd"})),
    )
    .await;
    add_node(
        &c.client,
        NodeSpec::new("tainted")
            .labels(ssd.clone())
            .taints(json!([{"key": "dedicated", "value": "x", "effect": "NoSchedule"}])),
    )
    .await;
    add_node(
        &c.client,
        NodeSpec::new("cordoned").labels(ssd.clone()).cordoned(),
    )
    .await;
    add_node(
        &c.client,
        NodeSpec::new("down").labels(ssd.clone()).not_ready(),
    )
    .await;
    let _s = start(&c.client, config("s"));
    create_pod(
        &c.client,
        pod("big", "2", json!({"nodeSelector": {"disk": "ssd"}})),
    )
    .await;
    let msg = failed_scheduling(&c.client, "big", "0/5").await;
    assert_eq!(
        msg,
        "0/5 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector, \
         1 node(s) had untolerated taint {dedicated: x}, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, \
         1 node(s) were unschedulable. preemption: 0/5 nodes are available: 1 No preemption victims found for incoming pod, \
         4 Preemption is not helpful for scheduling."
    );

    // `kubectl uncordon`: the node changes and the pod is tried again.
    Api::<Node>::all(c.client.clone())
        .patch(
            "cordoned",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": false}})),
        )
        .await
        .unwrap();
    assert_eq!(bound_node(&c.client, "big").await, "cordoned");

    // A toleration opens the tainted node.
    let tolerating = json!({"nodeSelector": {"disk": "ssd"}, "nodeName": null,
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "x", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["tainted", "hdd"]}]}]}}}});
    create_pod(&c.client, pod("tolerant", "2", tolerating)).await;
    assert_eq!(bound_node(&c.client, "tolerant").await, "tainted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_affinity_required_and_preferred() {
    let c = cluster().await;
    add_node(&c.client, NodeSpec::new("z1").labels(json!({"zone": "a"}))).await;
    add_node(&c.client, NodeSpec::new("z2").labels(json!({"zone": "b"}))).await;
    add_node(
        &c.client,
        NodeSpec::new("z3").labels(json!({"zone": "b", "fast": "yes"})),
    )
    .await;
    let _s = start(&c.client, config("s"));
    for i in 0..4 {
        let name = format!("p{i}");
        let affinity = json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference":
                {"matchExpressions": [{"key": "fast", "operator": "Exists"}]}}]}}});
        create_pod(&c.client, pod(&name, "100m", affinity)).await;
        assert_eq!(
            bound_node(&c.client, &name).await,
            "z3",
            "preferred node wins"
        );
    }
    let nowhere = json!({"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a", "b"]}]}]}}}});
    create_pod(&c.client, pod("nowhere", "", nowhere)).await;
    let msg = failed_scheduling(&c.client, "nowhere", "0/3").await;
    assert!(
        msg.starts_with(
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
        ),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taints_effects_and_host_ports() {
    let c = cluster().await;
    add_node(
        &c.client,
        NodeSpec::new("evicting").taints(json!([{"key": "k", "effect": "NoExecute"}])),
    )
    .await;
    add_node(
        &c.client,
        NodeSpec::new("avoided").taints(json!([{"key": "soft", "effect": "PreferNoSchedule"}])),
    )
    .await;
    add_node(&c.client, NodeSpec::new("plain")).await;
    let _s = start(&c.client, config("s"));
    // PreferNoSchedule: the untainted node scores higher.
    create_pod(&c.client, pod("soft", "", json!({}))).await;
    assert_eq!(bound_node(&c.client, "soft").await, "plain");

    let port = json!({"containers": [{"name": "c", "image": "busybox",
        "ports": [{"containerPort": 80, "hostPort": 8080}]}]});
    create_pod(&c.client, pod("port-0", "", port.clone())).await;
    create_pod(&c.client, pod("port-1", "", port.clone())).await;
    let mut nodes = vec![
        bound_node(&c.client, "port-0").await,
        bound_node(&c.client, "port-1").await,
    ];
    nodes.sort();
    assert_eq!(
        nodes,
        ["avoided", "plain"],
        "one pod per host port per node"
    );
    create_pod(&c.client, pod("port-2", "", port)).await;
    let msg = failed_scheduling(&c.client, "port-2", "0/3").await;
    assert!(
        msg.starts_with(
            "0/3 nodes are available: 1 node(s) had untolerated taint {k: }, \
             2 node(s) didn't have free ports for the requested pod ports."
        ),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_affinity_and_anti_affinity() {
    let c = cluster().await;
    add_node(&c.client, NodeSpec::new("a1").labels(json!({"zone": "a"}))).await;
    add_node(&c.client, NodeSpec::new("b1").labels(json!({"zone": "b"}))).await;
    add_node(&c.client, NodeSpec::new("b2").labels(json!({"zone": "b"}))).await;
    let _s = start(&c.client, config("s"));
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    let mut nodes = Vec::new();
    for i in 0..4 {
        let name = format!("web-{i}");
        let mut p = pod(&name, "", anti.clone());
        p.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        create_pod(&c.client, p).await;
        if i < 3 {
            nodes.push(bound_node(&c.client, &name).await);
        }
    }
    nodes.sort();
    assert_eq!(nodes, ["a1", "b1", "b2"]);
    let msg = failed_scheduling(&c.client, "web-3", "0/3").await;
    assert!(
        msg.starts_with("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."),
        "{msg}"
    );

    // A database in zone a; its cache must share the zone.
    let mut db = pod(
        "db",
        "",
        json!({"nodeName": null, "nodeSelector": {"kubernetes.io/hostname": "a1"}}),
    );
    db.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
    create_pod(&c.client, db).await;
    assert_eq!(bound_node(&c.client, "db").await, "a1");
    let near = |app: &str| {
        json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "zone"}]}}})
    };
    create_pod(&c.client, pod("cache", "", near("db"))).await;
    assert_eq!(bound_node(&c.client, "cache").await, "a1");
    create_pod(&c.client, pod("lonely", "", near("missing"))).await;
    let msg = failed_scheduling(&c.client, "lonely", "0/3").await;
    assert!(
        msg.starts_with("0/3 nodes are available: 3 node(s) didn't match pod affinity rules."),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_spread_constraints_filter_by_skew() {
    let c = cluster().await;
    add_node(&c.client, NodeSpec::new("za").labels(json!({"zone": "a"}))).await;
    add_node(
        &c.client,
        NodeSpec::new("zb").labels(json!({"zone": "b"})).pods(2),
    )
    .await;
    add_node(&c.client, NodeSpec::new("nolabel")).await;
    let _s = start(&c.client, config("s"));
    let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "s"}}}]});
    let mut placed = Vec::new();
    for i in 0..6 {
        let name = format!("s-{i}");
        let mut p = pod(&name, "", spread.clone());
        p.metadata.labels = Some([("app".to_string(), "s".to_string())].into());
        create_pod(&c.client, p).await;
        if i < 5 {
            placed.push(bound_node(&c.client, &name).await);
        }
    }
    let za = placed.iter().filter(|n| *n == "za").count();
    let zb = placed.iter().filter(|n| *n == "zb").count();
    assert_eq!((za, zb), (3, 2), "{placed:?}");
    let msg = failed_scheduling(&c.client, "s-5", "0/3").await;
    assert!(
        msg.starts_with(
            "0/3 nodes are available: 1 Too many pods, 1 node(s) didn't match pod topology spread constraints, \
             1 node(s) didn't match pod topology spread constraints (missing required label)."
        ),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_of_one_owner_spread_over_nodes() {
    let c = cluster().await;
    // Nodes of different sizes: resource scores alone would not spread evenly.
    add_node(&c.client, NodeSpec::new("big").cpu("64")).await;
    add_node(&c.client, NodeSpec::new("m1")).await;
    add_node(&c.client, NodeSpec::new("m2")).await;
    let rs: k8s_openapi::api::apps::v1::ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}))
    .unwrap();
    let rs = Api::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), &rs)
        .await
        .unwrap();
    let _s = start(&c.client, config("s"));
    for i in 0..6 {
        let mut p = pod(&format!("web-{i}"), "", json!({}));
        p.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        p.metadata.owner_references = Some(vec![serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
            "uid": rs.metadata.uid, "controller": true}))
        .unwrap()]);
        create_pod(&c.client, p).await;
    }
    for i in 0..6 {
        bound_node(&c.client, &format!("web-{i}")).await;
    }
    let per_node: Vec<usize> = placement(&c.client).await.values().map(|v| v.0).collect();
    assert_eq!(per_node, [2, 2, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_other_schedulers_are_left_alone() {
    let c = cluster().await;
    add_node(&c.client, NodeSpec::new("n1")).await;
    let _s = start(&c.client, config("s"));
    create_pod(
        &c.client,
        pod("theirs", "", json!({"schedulerName": "other"})),
    )
    .await;
    create_pod(&c.client, pod("ours", "", json!({}))).await;
    // Watch events arrive in order: once the later pod is bound the earlier was seen.
    assert_eq!(bound_node(&c.client, "ours").await, "n1");
    let theirs = Api::<Pod>::namespaced(c.client.clone(), "default")
        .get("theirs")
        .await
        .unwrap();
    assert_eq!(theirs.spec.unwrap().node_name, None);
    assert_eq!(scheduled_condition(&c.client, "theirs").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_is_once_only_and_checked() {
    let c = cluster().await;
    add_node(&c.client, NodeSpec::new("n1")).await;
    create_pod(&c.client, pod("p", "", json!({}))).await;
    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let bind = |pod: &str, node: &str| {
        json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
    };
    let post = |body: serde_json::Value, name: &'static str| {
        let api = api.clone();
        async move {
            api.create_subresource::<_, serde_json::Value>(
                "binding",
                name,
                &PostParams::default(),
                &body,
            )
            .await
        }
    };
    post(bind("p", "n1"), "p").await.unwrap();
    let err = |r: Result<serde_json::Value, kube::Error>| match r {
        Err(kube::Error::Api(s)) => (s.code, s.message),
        other => panic!("expected an API error, got {other:?}"),
    };
    assert_eq!(
        err(post(bind("p", "n2"), "p").await),
        (
            409,
            "Operation cannot be fulfilled on pods/binding \"p\": pod p is already assigned to node \"n1\"".into()
        )
    );
    assert_eq!(
        api.get("p")
            .await
            .unwrap()
            .spec
            .unwrap()
            .node_name
            .as_deref(),
        Some("n1")
    );
    assert_eq!(err(post(bind("missing", "n1"), "missing").await).0, 404);
    let (code, msg) = err(post(json!({"target": {"kind": "Pod"}}), "p").await);
    assert_eq!(code, 422, "{msg}");
    let (code, _) = err(post(
        json!({"kind": "Pod", "apiVersion": "v1", "target": {"name": "n1"}}),
        "p",
    )
    .await);
    assert_eq!(code, 400);
    let (code, msg) = err(post(bind("other", "n1"), "p").await);
    assert_eq!(
        (code, msg.as_str()),
        (400, "name in URL does not match name in Binding object")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_over_commits_across_a_restart_mid_way() {
    let c = cluster().await;
    for i in 0..10 {
        add_node(&c.client, NodeSpec::new(&format!("n{i}")).cpu("1")).await;
    }
    // Room for 3 pods of 300m per node: 30 of the 60 fit.
    for i in 0..60 {
        create_pod(&c.client, pod(&format!("p{i:02}"), "300m", json!({}))).await;
    }
    let first = start(&c.client, config("first"));
    eventually(30, "some pods to be bound", || async {
        let bound: usize = placement(&c.client).await.values().map(|v| v.0).sum();
        (bound >= 5).then_some(())
    })
    .await;
    first.stop().await;
    let _second = start(&c.client, config("second"));
    let pods = Api::<Pod>::namespaced(c.client.clone(), "default");
    eventually(30, "30 bound and 30 unschedulable", || async {
        let list = pods.list(&Default::default()).await.ok()?;
        let bound = list
            .items
            .iter()
            .filter(|p| p.spec.as_ref().unwrap().node_name.is_some())
            .count();
        let waiting = list
            .items
            .iter()
            .filter(|p| {
                p.status
                    .iter()
                    .flat_map(|s| s.conditions.iter().flatten())
                    .any(|c| {
                        c.type_ == "PodScheduled"
                            && c.status == "False"
                            && c.reason.as_deref() == Some("Unschedulable")
                    })
            })
            .count();
        (bound == 30 && waiting == 30).then_some(())
    })
    .await;
    for (node, (count, cpu)) in placement(&c.client).await {
        assert!(
            cpu <= 1000 && count == 3,
            "{node} over-committed: {count} pods, {cpu}m"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scheduler_leads_and_another_takes_over_when_it_dies() {
    let c = cluster().await;
    add_node(&c.client, NodeSpec::new("n1")).await;
    let mut a = Some(start(&c.client, config("sched-a")));
    let mut b = Some(start(&c.client, config("sched-b")));
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(c.client.clone(), "kube-system");
    let holder = || async {
        leases
            .get_opt("kube-scheduler")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
    };
    let first = eventually(10, "a leader", &holder).await;
    create_pod(&c.client, pod("one", "", json!({}))).await;
    bound_node(&c.client, "one").await;
    let scheduled_by = |name: &'static str| {
        let events =
            Api::<k8s_openapi::api::core::v1::Event>::namespaced(c.client.clone(), "default");
        async move {
            eventually(10, "the Scheduled event", || {
                let events = events.clone();
                async move {
                    let lp = kube::api::ListParams::default()
                        .fields(&format!("involvedObject.name={name}"));
                    events
                        .list(&lp)
                        .await
                        .ok()?
                        .items
                        .into_iter()
                        .find(|e| e.reason.as_deref() == Some("Scheduled"))
                        .and_then(|e| e.reporting_instance)
                }
            })
            .await
        }
    };
    assert_eq!(scheduled_by("one").await, first);

    // The leader dies without releasing the Lease: the other takes over once it expires.
    let survivor = if first == "sched-a" {
        drop(a.take());
        "sched-b"
    } else {
        drop(b.take());
        "sched-a"
    };
    create_pod(&c.client, pod("two", "", json!({}))).await;
    bound_node(&c.client, "two").await;
    assert_eq!(scheduled_by("two").await, survivor);
    assert_eq!(holder().await.as_deref(), Some(survivor));
}

/// `skiff server --scheduler-kube-api-qps/--scheduler-kube-api-burst`: the scheduler's
/// reports on pods that fit nowhere go out at the configured pace. At 2 writes a second
/// after a burst of 1, the fourth pod's PodScheduled=False condition cannot be there before
/// 1.5 s (conditions go before events). A lower bound only: a loaded machine is slower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_go_out_at_the_configured_pace() {
    let c = cluster().await;
    add_node(&c.client, NodeSpec::new("n1").cpu("1")).await;
    let mut slow = config("s");
    slow.api_qps = 2.0;
    slow.api_burst = 1;
    let _s = start(&c.client, slow);
    let started = std::time::Instant::now();
    for i in 0..4 {
        create_pod(&c.client, pod(&format!("big-{i}"), "2", json!({}))).await;
    }
    for i in 0..4 {
        let name = format!("big-{i}");
        eventually(30, &format!("PodScheduled=False on {name}"), || async {
            scheduled_condition(&c.client, &name)
                .await
                .filter(|c| c.0 == "False")
        })
        .await;
    }
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(1500),
        "4 conditions written in {took:?} at 2 writes/s after a burst of 1"
    );
}
