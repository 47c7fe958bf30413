//! kube-rs (the Rust Kubernetes client) against `skiff server`: create, list and watch pods
//! with the admin kubeconfig the server writes.

mod kube_common;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_common::{Cluster, Datastore};

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "kube-rs"}},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }))
    .unwrap()
}

async fn client(c: &Cluster) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(c.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

async fn create_list_watch(c: &Cluster) {
    let client = client(c).await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let created = pods
        .create(&PostParams::default(), &pod("first"))
        .await
        .unwrap();
    assert_eq!(created.metadata.name.as_deref(), Some("first"));
    assert!(created.metadata.uid.is_some());
    assert_eq!(
        created.status.and_then(|s| s.phase).as_deref(),
        Some("Pending")
    );

    let list = pods
        .list(&ListParams::default().labels("app=kube-rs"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let rv = list.metadata.resource_version.unwrap();

    let mut stream = pods
        .watch(
            &WatchParams::default().labels("app=kube-rs").timeout(30),
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    pods.create(&PostParams::default(), &pod("second"))
        .await
        .unwrap();
    pods.delete("first", &Default::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(20), stream.try_next())
            .await
            .expect("watch event in time");
        match ev.unwrap().expect("stream open") {
            WatchEvent::Added(p) => seen.push(format!("ADDED {}", p.metadata.name.unwrap())),
            WatchEvent::Deleted(p) => seen.push(format!("DELETED {}", p.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            // The scheduler finds no node (the cluster has none) and writes the pods'
            // PodScheduled=False condition, as kube-scheduler does.
            WatchEvent::Modified(p) if unschedulable(&p) => {}
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(seen, ["ADDED second", "DELETED first"]);
}

fn unschedulable(p: &Pod) -> bool {
    p.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == "PodScheduled" && c.status == "False")
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_rs_pods_on_sqlite() {
    let c = Cluster::start(Datastore::Sqlite);
    create_list_watch(&c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_rs_pods_on_etcd() {
    let c = Cluster::start(Datastore::Etcd);
    create_list_watch(&c).await;
}

/// A client of the server whose kubeconfig is `path`.
async fn client_of(path: &std::path::Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Two `skiff server`s on one etcd, each serving reads from its own watch cache: a write
/// through one is in the very next read through the other (consistent reads wait for the
/// cache to reach etcd's current revision), and a watch on one sees the other's writes.
#[tokio::test(flavor = "multi_thread")]
async fn wcache_second_server_on_one_etcd_reads_the_first_ones_writes() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let a = Cluster::start(Datastore::Etcd);
    let b_dir = a.dir.path().join("server-b");
    let b_port = kube_common::free_port();
    let b_log = std::fs::File::create(a.dir.path().join("server-b.log")).unwrap();
    let _b = kube_common::Guard(
        a.server_command_in(&b_dir, b_port)
            .stdout(std::process::Stdio::null())
            .stderr(b_log)
            .spawn()
            .unwrap(),
    );
    let b_kubeconfig = b_dir.join("kubeconfig.yaml");
    let b_ready = kube_common::poll(Duration::from_secs(30), || {
        let out = a
            .kubectl_command(&["get", "--raw", "/readyz"])
            .env("KUBECONFIG", &b_kubeconfig)
            .output()
            .ok()?;
        out.status.success().then_some(())
    });
    assert!(b_ready.is_some(), "server B serves");
    let on_a: Api<ConfigMap> = Api::namespaced(client(&a).await, "default");
    let on_b: Api<ConfigMap> = Api::namespaced(client_of(&b_kubeconfig).await, "default");
    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        l.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect()
    };
    // Both caches exist before the writes.
    let start = on_b.list(&ListParams::default()).await.unwrap();
    on_a.list(&ListParams::default()).await.unwrap();
    let rv = start.metadata.resource_version.unwrap();
    let mut watch = on_b
        .watch(&WatchParams::default().timeout(60), &rv)
        .await
        .unwrap()
        .boxed();

    for i in 0..10 {
        let name = format!("cm-{i}");
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name}, "data": {"round": i.to_string()}}))
        .unwrap();
        on_a.create(&PostParams::default(), &cm).await.unwrap();
        let listed = names(on_b.list(&ListParams::default()).await.unwrap());
        assert!(listed.contains(&name), "B lists A's write {i}: {listed:?}");

        let mut got = on_b.get(&name).await.unwrap();
        got.data = Some([("round".to_string(), "changed".to_string())].into());
        on_b.replace(&name, &PostParams::default(), &got)
            .await
            .unwrap();
        let seen = on_a.get(&name).await.unwrap();
        assert_eq!(
            seen.data.unwrap()["round"],
            "changed",
            "A reads B's update {i}"
        );
        on_a.delete(&name, &Default::default()).await.unwrap();
        let listed = names(on_b.list(&ListParams::default()).await.unwrap());
        assert!(!listed.contains(&name), "B lists A's delete {i}");
    }

    let mut kinds = Vec::new();
    while kinds.len() < 30 {
        let ev = tokio::time::timeout(Duration::from_secs(20), watch.try_next())
            .await
            .expect("watch event in time")
            .unwrap()
            .expect("stream open");
        match ev {
            WatchEvent::Added(_) => kinds.push("ADDED"),
            WatchEvent::Modified(_) => kinds.push("MODIFIED"),
            WatchEvent::Deleted(_) => kinds.push("DELETED"),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(
        kinds,
        ["ADDED", "MODIFIED", "DELETED"].repeat(10),
        "B's watch streams A's and B's writes in order"
    );
}
