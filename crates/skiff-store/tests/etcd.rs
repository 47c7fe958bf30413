//! The etcd engine against a real etcd (Debian's etcd-server): the conformance suite plus
//! connection handling. Each test starts its own etcd on 127.0.0.1 with free ports and a
//! temporary data dir, and kills it by PID when done, even when the test fails.
//! Without `/usr/bin/etcd` these tests fail: CI must install etcd-server.

use std::fs::File;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_store::etcd::EtcdStore;
use skiff_store::{conformance, Store, StoreError};
use tempfile::TempDir;

const ETCD: &str = "/usr/bin/etcd";
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A running etcd; killed (SIGKILL by PID) and its data dir removed on drop.
struct Etcd {
    child: Child,
    endpoint: String,
    dir: TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Etcd {
    async fn start() -> Etcd {
        assert!(
            Path::new(ETCD).exists(),
            "{ETCD} is missing: install Debian's etcd-server (apt-get install -y etcd-server)"
        );
        let dir = tempfile::Builder::new()
            .prefix("skiff-etcd-")
            .tempdir()
            .unwrap();
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = File::create(dir.path().join("etcd.log")).unwrap();
        let child = Command::new(ETCD)
            .arg("--name=skiff-test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=skiff-test={peer_url}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {ETCD}: {e}"));
        let etcd = Etcd {
            child,
            endpoint,
            dir,
        };
        etcd.wait_healthy().await;
        etcd
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Ok(_)) = tokio::time::timeout(
                Duration::from_secs(5),
                EtcdStore::connect(std::slice::from_ref(&self.endpoint), "/health-check/"),
            )
            .await
            {
                return;
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
                let tail: String = log.lines().rev().take(20).collect::<Vec<_>>().join("\n");
                panic!(
                    "etcd at {} not healthy within {START_DEADLINE:?}; log (newest first):\n{tail}",
                    self.endpoint
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn store(&self, prefix: &str) -> EtcdStore {
        EtcdStore::connect(std::slice::from_ref(&self.endpoint), prefix)
            .await
            .unwrap()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_passes_conformance() {
    let etcd = Etcd::start().await;
    let n = AtomicUsize::new(0);
    conformance::run_all(|| {
        let prefix = format!("/conformance-{}", n.fetch_add(1, Ordering::SeqCst));
        let etcd = &etcd;
        async move { Arc::new(etcd.store(&prefix).await) as Arc<dyn Store> }
    })
    .await;
}

#[tokio::test]
async fn stores_with_different_prefixes_do_not_see_each_other() {
    let etcd = Etcd::start().await;
    // The prefix is prepended verbatim (like kube-apiserver's --etcd-prefix) to keys that
    // start with '/', so "/tenant-a" and "/tenant-ab" stay apart.
    let a = etcd.store("/tenant-a").await;
    let b = etcd.store("/tenant-ab").await;
    let mut watch_a = a.watch("/", 0).await.unwrap();
    let ra = a.create("/k", b"a".to_vec()).await.unwrap();
    let rb = b.create("/k", b"b".to_vec()).await.unwrap();
    let ra2 = a.create("/l", b"a".to_vec()).await.unwrap();
    assert!(ra < rb && rb < ra2, "one etcd, one revision counter");
    assert_eq!(a.get("/k").await.unwrap().unwrap().value, b"a");
    assert_eq!(b.get("/l").await.unwrap(), None);
    let listed = a.list("/", None, 0, None).await.unwrap();
    let keys: Vec<_> = listed.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        ["/k", "/l"],
        "the prefix never shows in keys; b's keys never show"
    );
    for expected in [ra, ra2] {
        let event = futures::StreamExt::next(&mut watch_a)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.revision, expected, "a's watch saw b's write");
    }
}

#[tokio::test]
async fn open_by_datastore_url() {
    let etcd = Etcd::start().await;
    let hostport = etcd.endpoint.trim_start_matches("http://");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("etcd://{hostport}/skiff");
    let store = skiff_store::open(&url, dir.path()).await.unwrap();
    store.create("/registry/x", b"1".to_vec()).await.unwrap();
    let raw = etcd.store("").await;
    let kv = raw.get("/skiff/registry/x").await.unwrap();
    assert_eq!(
        kv.map(|kv| kv.value),
        Some(b"1".to_vec()),
        "keys live under the url's prefix"
    );
}

#[tokio::test]
async fn unreachable_etcd_fails_connect_with_a_clear_error() {
    let port = free_port(); // nothing listens here
    let endpoints = [format!("127.0.0.1:{port}")];
    let connect = EtcdStore::connect(&endpoints, "");
    let err = tokio::time::timeout(Duration::from_secs(120), connect)
        .await
        .expect("connect to a dead endpoint hung")
        .err()
        .expect("connected to nothing");
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("unreachable"), "{err}");
}
