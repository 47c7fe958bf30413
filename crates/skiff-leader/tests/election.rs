//! Two electors on one real API server (SQLite in a temporary directory): exactly one leads
//! at any moment, a clean stop hands the Lease over at once, and a leader that stops
//! renewing (killed) is replaced once its Lease expires.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use skiff_apiserver::auth::{TokenAuthenticator, UserInfo};
use skiff_apiserver::{in_process_client, ApiState};
use skiff_leader::{Elector, LeaseConfig};
use tokio::sync::oneshot;

const DEADLINE: Duration = Duration::from_secs(30);

async fn api() -> (tempfile::TempDir, Client) {
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
    let user = UserInfo {
        name: "system:kube-scheduler".into(),
        uid: "s".into(),
        groups: vec!["system:masters".into()],
    };
    (dir, in_process_client(state, user))
}

fn config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(200),
        ..LeaseConfig::new("test-lease", identity)
    }
}

/// A candidate whose work counts itself in `leading` while it runs.
struct Candidate {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// Decrements the count when the leader's work is dropped.
struct Leading(Arc<AtomicUsize>);

impl Drop for Leading {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn start(client: &Client, identity: &str, leading: &Arc<AtomicUsize>) -> Candidate {
    let (stop, stopped) = oneshot::channel::<()>();
    let elector = Elector::new(client.clone(), config(identity));
    let leading = leading.clone();
    let task = tokio::spawn(elector.run(
        move || {
            let leading = leading.clone();
            async move {
                leading.fetch_add(1, Ordering::SeqCst);
                let _guard = Leading(leading);
                std::future::pending::<()>().await
            }
        },
        async {
            let _ = stopped.await;
        },
    ));
    Candidate {
        stop: Some(stop),
        task,
    }
}

async fn holder(client: &Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    leases
        .get_opt("test-lease")
        .await
        .unwrap()?
        .spec?
        .holder_identity
}

/// Polls until `holder` is `want`, checking on the way that never two lead at once.
async fn until_holder(client: &Client, want: &str, leading: &AtomicUsize) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        assert!(leading.load(Ordering::SeqCst) <= 1, "two leaders at once");
        if holder(client).await.as_deref() == Some(want) && leading.load(Ordering::SeqCst) == 1 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{want} never led");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_electors_one_leader_and_takeover_on_release() {
    let (_dir, client) = api().await;
    let leading = Arc::new(AtomicUsize::new(0));
    let mut a = start(&client, "a", &leading);
    until_holder(&client, "a", &leading).await;
    let b = start(&client, "b", &leading);
    // Over several renewals, b never leads while a does.
    let settle = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < settle {
        assert_eq!(leading.load(Ordering::SeqCst), 1);
        assert_eq!(holder(&client).await.as_deref(), Some("a"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A clean stop releases the Lease: b takes over without waiting for expiry.
    a.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), &mut a.task)
        .await
        .unwrap()
        .unwrap();
    until_holder(&client, "b", &leading).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let spec = leases.get("test-lease").await.unwrap().spec.unwrap();
    assert_eq!(spec.lease_transitions, Some(1), "one change of holder");
    b.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_stops_renewing_is_replaced_after_expiry() {
    let (_dir, client) = api().await;
    let leading = Arc::new(AtomicUsize::new(0));
    let a = start(&client, "a", &leading);
    until_holder(&client, "a", &leading).await;
    let b = start(&client, "b", &leading);
    // Killed: no release, the Lease still names a.
    a.task.abort();
    let _ = a.task.await;
    assert_eq!(holder(&client).await.as_deref(), Some("a"));
    until_holder(&client, "b", &leading).await;
    b.task.abort();
}
