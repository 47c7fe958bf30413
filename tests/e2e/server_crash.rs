//! Crash safety of `skiff server` as a client sees it: writers create ConfigMaps through the
//! Kubernetes API while the server is SIGKILLed at a random moment and restarted on the same
//! data, round after round. Every create that was answered `201 Created` must survive with its
//! data, resourceVersions must keep increasing across restarts, lists must keep working, and
//! the SQLite database must pass `PRAGMA integrity_check`.
//!
//! Each test prints its seed; `SKIFF_TEST_SEED=<seed>` replays its kill moments.

mod kube_common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_common::{poll, Cluster, Datastore};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NAMESPACE: &str = "default";
/// Writers creating ConfigMaps at the same time, so that a kill always finds some in flight.
const WRITERS: usize = 4;

/// Set to a seed printed by a failed run to replay its random choices (the kill
/// moments; process scheduling still varies).
const SEED_ENV: &str = "SKIFF_TEST_SEED";

/// The random source of one test: seeded from `SKIFF_TEST_SEED` when set, else from a fresh
/// random seed; the seed is printed first, so a failure's output tells how to replay it.
fn seeded_rng() -> StdRng {
    let seed = match std::env::var(SEED_ENV) {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_ENV}={s:?} is not an unsigned 64-bit number")),
        Err(_) => rand::random(),
    };
    eprintln!("seed = {seed} (replay with {SEED_ENV}={seed})");
    StdRng::seed_from_u64(seed)
}

/// A create the server acknowledged with `201 Created`.
#[derive(Debug, Clone)]
struct Ack {
    name: String,
    data: BTreeMap<String, String>,
    resource_version: u64,
}

async fn client(c: &Cluster) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(c.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn resource_version(cm: &ConfigMap) -> u64 {
    let rv = cm.metadata.resource_version.as_deref().unwrap_or_default();
    rv.parse()
        .unwrap_or_else(|_| panic!("resourceVersion {rv:?} of {:?}", cm.metadata.name))
}

/// Creates one ConfigMap; returns what the server stored when it answered 201, None on any
/// other outcome (connection reset by the kill, refused while down, error status).
async fn create(client: &kube::Client, name: &str, data: &BTreeMap<String, String>) -> Option<Ack> {
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(data.clone()),
        ..Default::default()
    };
    let request = kube::core::Request::new(format!("/api/v1/namespaces/{NAMESPACE}/configmaps"))
        .create(&PostParams::default(), serde_json::to_vec(&cm).unwrap())
        .unwrap();
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .ok()?;
    if response.status() != http::StatusCode::CREATED {
        return None;
    }
    let body = response.into_body().collect_bytes().await.ok()?;
    let stored: ConfigMap = serde_json::from_slice(&body).ok()?;
    assert_eq!(stored.data.as_ref(), Some(data), "201 reply of {name}");
    Some(Ack {
        name: name.into(),
        data: data.clone(),
        resource_version: resource_version(&stored),
    })
}

/// One writer: creates ConfigMaps one after another until `stop` is set or a request fails.
async fn writer(
    client: kube::Client,
    round: usize,
    id: usize,
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
) {
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let name = format!("crash-r{round}-w{id}-{i}");
        let data = BTreeMap::from([
            ("round".to_string(), round.to_string()),
            (
                "payload".to_string(),
                format!("{name}:{}", "x".repeat(i % 200)),
            ),
        ]);
        match create(&client, &name, &data).await {
            Some(ack) => acks.lock().unwrap().push(ack),
            None => return,
        }
    }
}

/// Every acknowledged ConfigMap is there with its data, and a list shows all of them.
async fn assert_all_acknowledged_present(c: &Cluster, acks: &[Ack]) -> u64 {
    let cms: Api<ConfigMap> = Api::namespaced(client(c).await, NAMESPACE);
    let list = cms.list(&ListParams::default()).await.unwrap();
    let list_rv: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    let listed: BTreeMap<String, ConfigMap> = list
        .items
        .into_iter()
        .map(|cm| (cm.metadata.name.clone().unwrap(), cm))
        .collect();
    for ack in acks {
        let cm = listed.get(&ack.name).unwrap_or_else(|| {
            panic!("acknowledged {} is missing\n{}", ack.name, c.log());
        });
        assert_eq!(cm.data.as_ref(), Some(&ack.data), "data of {}", ack.name);
        assert_eq!(resource_version(cm), ack.resource_version, "{}", ack.name);
        assert!(
            list_rv >= ack.resource_version,
            "list rv {list_rv} < {ack:?}"
        );
    }
    list_rv
}

/// SQLite's own check of the database file the server uses.
fn assert_sqlite_intact(c: &Cluster) {
    let db = rusqlite::Connection::open(c.data_dir().join("state.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let result: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(result, "ok");
}

fn crash_rounds(datastore: Datastore, rounds: usize) {
    let mut rng = seeded_rng();
    let mut c = Cluster::start(datastore);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut acks: Vec<Ack> = Vec::new();
    let mut highest_rv = 0u64;
    for round in 0..rounds {
        let round_acks = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let client = rt.block_on(client(&c));
        let writers: Vec<_> = (0..WRITERS)
            .map(|id| {
                let task = writer(client.clone(), round, id, stop.clone(), round_acks.clone());
                rt.spawn(task)
            })
            .collect();
        // Let writes get going, then kill the server at a random moment among them.
        let started = poll(Duration::from_secs(30), || {
            (!round_acks.lock().unwrap().is_empty()).then_some(())
        });
        assert!(started.is_some(), "no create succeeded: {}", c.log());
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..400)));
        stop.store(true, Ordering::SeqCst);
        c.restart();
        for w in writers {
            rt.block_on(w).unwrap();
        }

        let mut new = round_acks.lock().unwrap().clone();
        new.sort_by_key(|a| a.resource_version);
        if let Some(first) = new.first() {
            assert!(
                first.resource_version > highest_rv,
                "round {round}: resourceVersion went back from {highest_rv} to {}",
                first.resource_version
            );
        }
        acks.extend(new);
        highest_rv = acks.iter().map(|a| a.resource_version).max().unwrap();
        let list_rv = rt.block_on(assert_all_acknowledged_present(&c, &acks));
        assert!(list_rv >= highest_rv);
        if datastore == Datastore::Sqlite {
            assert_sqlite_intact(&c);
        }
    }
    // A write after the last restart still gets a newer resourceVersion than everything before.
    let after = rt
        .block_on(async {
            let client = client(&c).await;
            let data = BTreeMap::from([("after".to_string(), "restart".to_string())]);
            create(&client, "crash-after", &data).await
        })
        .expect("create after the last restart");
    assert!(after.resource_version > highest_rv);
    assert!(
        acks.len() >= rounds,
        "too few acknowledged writes: {}",
        acks.len()
    );
}

#[test]
fn acknowledged_writes_survive_sigkill_sqlite() {
    crash_rounds(Datastore::Sqlite, 20);
}

#[test]
fn acknowledged_writes_survive_sigkill_etcd() {
    crash_rounds(Datastore::Etcd, 6);
}
