//! Shared harness of the scheduler tests and benchmark: the real API server (its router over
//! a SQLite store in a temporary directory) reached through an in-process kube client, Node
//! objects created through the API like an agent registers them, and helpers that poll with a
//! deadline.

#![allow(dead_code)] // each target uses a different part of the harness

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};
use skiff_apiserver::auth::{TokenAuthenticator, UserInfo};
use skiff_apiserver::{in_process_client, ApiState};

/// One API server on a temporary store.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub state: Arc<ApiState>,
    pub client: Client,
}

pub async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let store = skiff_store::open("sqlite", dir.path()).await.unwrap();
    let encryptor =
        Arc::new(skiff_apiserver::encryption::Encryptor::load_or_create(dir.path()).unwrap());
    let state = Arc::new(ApiState::new(
        store,
        TokenAuthenticator::default(),
        encryptor,
    ));
    state.bootstrap().await.unwrap();
    let client = in_process_client(
        state.clone(),
        UserInfo {
            name: "system:kube-scheduler".into(),
            uid: "scheduler".into(),
            groups: vec!["system:masters".into()],
        },
    );
    Cluster { dir, state, client }
}

/// A node as an agent registers it: created, then its status (allocatable, Ready) written.
pub struct NodeSpec {
    pub name: String,
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    pub labels: Value,
    pub taints: Value,
    pub ready: bool,
    pub unschedulable: bool,
}

impl NodeSpec {
    pub fn new(name: &str) -> Self {
        NodeSpec {
            name: name.into(),
            cpu: "4".into(),
            memory: "8Gi".into(),
            pods: 110,
            labels: json!({}),
            taints: json!([]),
            ready: true,
            unschedulable: false,
        }
    }
    pub fn cpu(mut self, cpu: &str) -> Self {
        self.cpu = cpu.into();
        self
    }
    pub fn pods(mut self, pods: u32) -> Self {
        self.pods = pods;
        self
    }
    pub fn labels(mut self, labels: Value) -> Self {
        self.labels = labels;
        self
    }
    pub fn taints(mut self, taints: Value) -> Self {
        self.taints = taints;
        self
    }
    pub fn not_ready(mut self) -> Self {
        self.ready = false;
        self
    }
    pub fn cordoned(mut self) -> Self {
        self.unschedulable = true;
        self
    }
}

pub async fn add_node(client: &Client, spec: NodeSpec) {
    let api: Api<Node> = Api::all(client.clone());
    let mut labels = spec.labels.clone();
    labels["kubernetes.io/hostname"] = json!(spec.name);
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": spec.name, "labels": labels},
        "spec": {"taints": spec.taints, "unschedulable": spec.unschedulable},
    }))
    .unwrap();
    api.create(&PostParams::default(), &node).await.unwrap();
    let resources = json!({"cpu": spec.cpu, "memory": spec.memory, "pods": spec.pods.to_string(),
        "ephemeral-storage": "100Gi"});
    let status = json!({"status": {
        "capacity": resources, "allocatable": resources,
        "conditions": [{"type": "Ready", "status": if spec.ready { "True" } else { "False" },
            "reason": "KubeletReady", "message": "skiff test node",
            "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    }});
    api.patch_status(&spec.name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

/// A pod of `cpu` millicores (none when empty) with `extra` merged into its spec.
pub fn pod(name: &str, cpu: &str, extra: Value) -> Pod {
    let mut container = json!({"name": "c", "image": "busybox"});
    if !cpu.is_empty() {
        container["resources"] = json!({"requests": {"cpu": cpu}});
    }
    let mut spec = json!({"containers": [container]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec}))
    .unwrap()
}

pub async fn create_pod(client: &Client, pod: Pod) -> Pod {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &pod).await.unwrap()
}

/// Polls `f` until it returns `Some`, or panics naming `what` after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The node `name` gets bound to.
pub async fn bound_node(client: &Client, name: &str) -> String {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    eventually(20, &format!("pod {name} to be bound"), || {
        let api = api.clone();
        async move {
            api.get(name)
                .await
                .ok()
                .and_then(|p| p.spec.and_then(|s| s.node_name))
        }
    })
    .await
}

/// The message of the `FailedScheduling` event of pod `name`, once one contains `part`.
pub async fn failed_scheduling(client: &Client, name: &str, part: &str) -> String {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    eventually(
        20,
        &format!("FailedScheduling of {name} with {part:?}"),
        || {
            let api = api.clone();
            async move {
                let lp = ListParams::default().fields(&format!("involvedObject.name={name}"));
                let events = api.list(&lp).await.ok()?;
                events
                    .items
                    .into_iter()
                    .filter(|e| e.reason.as_deref() == Some("FailedScheduling"))
                    .filter_map(|e| e.message)
                    .find(|m| m.contains(part))
            }
        },
    )
    .await
}

/// The pod's `PodScheduled` condition as (status, reason, message).
pub async fn scheduled_condition(client: &Client, name: &str) -> Option<(String, String, String)> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = api.get(name).await.ok()?;
    let c = pod
        .status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")?;
    Some((
        c.status,
        c.reason.unwrap_or_default(),
        c.message.unwrap_or_default(),
    ))
}

/// Pods per node, and each node's summed cpu requests in millicores.
pub async fn placement(client: &Client) -> std::collections::BTreeMap<String, (usize, i64)> {
    let api: Api<Pod> = Api::all(client.clone());
    let mut out = std::collections::BTreeMap::new();
    for p in api.list(&ListParams::default()).await.unwrap().items {
        let spec = p.spec.unwrap_or_default();
        let Some(node) = spec.node_name else { continue };
        let cpu: i64 = spec
            .containers
            .iter()
            .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get("cpu"))
            .map(|q| {
                let s = &q.0;
                match s.strip_suffix('m') {
                    Some(m) => m.parse::<i64>().unwrap(),
                    None => s.parse::<i64>().unwrap() * 1000,
                }
            })
            .sum();
        let e: &mut (usize, i64) = out.entry(node).or_default();
        e.0 += 1;
        e.1 += cpu;
    }
    out
}

/// A scheduler running until dropped or stopped.
pub struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// Starts `skiff_scheduler::run` (leader-elected) with `config`.
pub fn start(client: &Client, config: skiff_scheduler::Config) -> Running {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(skiff_scheduler::run(client.clone(), config, async {
        let _ = rx.await;
    }));
    Running {
        stop: Some(tx),
        task: Some(task),
    }
}

/// A scheduler config with a short lease, for tests of failover.
pub fn config(identity: &str) -> skiff_scheduler::Config {
    let mut c = skiff_scheduler::Config {
        identity: identity.into(),
        ..Default::default()
    };
    c.lease = skiff_scheduler::LeaseConfig {
        identity: identity.into(),
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(200),
        ..c.lease
    };
    c
}
