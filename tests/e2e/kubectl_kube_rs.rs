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
