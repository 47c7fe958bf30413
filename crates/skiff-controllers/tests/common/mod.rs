//! Harness of the controller tests: the real API server over SQLite in a temporary
//! directory, and the controller set (garbage collector included) running against it through the
//! in-process kube client. Pods never run (there is no node): tests write pod status
//! through the API as a kubelet would.

#![allow(dead_code)] // each test target uses a different part of the harness

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use skiff_apiserver::auth::{TokenAuthenticator, UserInfo};
use skiff_apiserver::kinds::core::pod::DefaultTolerations;
use skiff_apiserver::{in_process_client, ApiState};
use skiff_controllers::{Config, Controllers};

/// How long any one expectation may take to come true.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// An API server, with the controller set running on it once started.
pub struct Cluster {
    _dir: tempfile::TempDir,
    pub client: Client,
    pub state: Arc<ApiState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub fn admin() -> UserInfo {
    UserInfo {
        name: "system:kube-controller-manager".into(),
        uid: "kcm".into(),
        groups: vec!["system:masters".into()],
    }
}

/// An API server on a fresh store, nothing reconciling it.
pub async fn api_only() -> Cluster {
    api_with(Default::default()).await
}

/// The same, giving pods `tolerations` by default.
pub async fn api_with(tolerations: DefaultTolerations) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let store = skiff_store::open("sqlite", dir.path()).await.unwrap();
    let encryptor =
        Arc::new(skiff_apiserver::encryption::Encryptor::load_or_create(dir.path()).unwrap());
    let state = Arc::new(
        ApiState::new(
            store.clone(),
            TokenAuthenticator::default(),
            encryptor.clone(),
        )
        .with_default_tolerations(tolerations),
    );
    state.bootstrap().await.unwrap();
    let tasks = Vec::new();
    Cluster {
        _dir: dir,
        client: in_process_client(state.clone(), admin()),
        state,
        tasks,
    }
}

/// An API server with the controller set running.
pub async fn start() -> Cluster {
    start_with(Config::default(), Default::default()).await
}

/// An API server giving pods `tolerations`, with the controller set running on `config`.
pub async fn start_with(config: Config, tolerations: DefaultTolerations) -> Cluster {
    let mut c = api_with(tolerations).await;
    let controllers = Controllers::with_config(c.client.clone(), "test", config);
    c.tasks.push(tokio::spawn(controllers.run()));
    c
}

impl Cluster {
    /// Keeps `task` running as long as the cluster.
    pub fn push(&mut self, task: tokio::task::JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Runs `task` until the cluster is dropped.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), "default")
    }

    /// The pods whose labels match `selector` (e.g. `app=web`), not being deleted.
    pub async fn pods(&self, selector: &str) -> Vec<Pod> {
        let pods: Api<Pod> = self.api();
        pods.list(&ListParams::default().labels(selector))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect()
    }

    /// Marks a pod Running and Ready as its kubelet would.
    pub async fn mark_ready(&self, name: &str) {
        let pods: Api<Pod> = self.api();
        let now = Timestamp::now().to_string();
        let status = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
        ]}});
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }

    /// Marks every pod matching `selector` that is not ready yet Ready.
    pub async fn mark_all_ready(&self, selector: &str) -> usize {
        let mut n = 0;
        for p in self.pods(selector).await {
            if !skiff_controllers::pods::is_ready(&p.clone().into()) {
                self.mark_ready(&p.name_any()).await;
                n += 1;
            }
        }
        n
    }
}

/// Polls `f` until it returns Some, failing the test with `what` after [`DEADLINE`].
pub async fn until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
