//! The etcd engine against a real etcd (Debian's etcd-server): the conformance suite plus
//! connection handling.
//!
//! All tests of this binary share one etcd on 127.0.0.1 (free ports, a temporary data dir),
//! each under a key prefix of its own. A compaction forgets every key's history, so the
//! properties that compact hold [`HISTORY`] exclusively and all others hold it shared. The
//! etcd runs under a small `sh` keeper whose stdin is a pipe from this process: when this
//! process exits, however it exits, the keeper reads EOF, kills the etcd (by the PID it
//! started) and removes the data dir.
//!
//! Without `/usr/bin/etcd`, or when etcd cannot start, every test here fails with the reason:
//! CI must install etcd-server.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_store::conformance::Property;
use skiff_store::etcd::EtcdStore;
use skiff_store::{Store, StoreError};
use tokio::sync::{OnceCell, RwLock};

const ETCD: &str = "/usr/bin/etcd";
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Starts that die at once (a port picked by `free_port` taken meanwhile) are retried.
const START_ATTEMPTS: usize = 3;

/// The etcd every test of this binary uses; an error when it could not start.
static SHARED: OnceCell<Result<Etcd, String>> = OnceCell::const_new();
/// Held exclusively by properties that compact, shared by every other user of [`SHARED`].
static HISTORY: RwLock<()> = RwLock::const_new(());

/// Keeps etcd running while its stdin stays open; then kills it and removes its directory.
const KEEPER: &str = r#"
dir=$1; shift
"$@" </dev/null >>"$dir/etcd.log" 2>&1 &
etcd=$!
echo "$etcd"
cat >/dev/null
exec 2>/dev/null
kill -9 "$etcd"
wait "$etcd"
rm -rf "$dir"
"#;

/// A running etcd under its keeper. Dropping it (a failed start) closes the keeper's stdin
/// and waits for the keeper to clean up; the shared one is cleaned up at process exit.
struct Etcd {
    keeper: Child,
    pid: i32,
    endpoint: String,
    dir: PathBuf,
}

use skiff_core::testing::free_port;

/// Whether process `pid`, a child of the keeper that has not reaped it yet, has exited.
fn exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_none_or(|(_, rest)| rest.starts_with('Z')),
        Err(_) => true,
    }
}

impl Etcd {
    /// Starts etcd, retrying one that dies at once; the error carries its log.
    async fn start() -> Result<Etcd, String> {
        if !Path::new(ETCD).exists() {
            return Err(format!(
                "{ETCD} is missing: install Debian's etcd-server (apt-get install -y etcd-server)"
            ));
        }
        let mut why = String::new();
        for attempt in 1..=START_ATTEMPTS {
            match Etcd::try_start().await {
                Ok(etcd) => return Ok(etcd),
                Err(e) => why = format!("attempt {attempt} of {START_ATTEMPTS}: {e}"),
            }
        }
        Err(why)
    }

    async fn try_start() -> Result<Etcd, String> {
        let dir = tempfile::Builder::new()
            .prefix("skiff-etcd-")
            .tempdir()
            .map_err(|e| format!("creating etcd's directory: {e}"))?
            .keep();
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut keeper = Command::new("/bin/sh")
            .args(["-c", KEEPER, "skiff-etcd-keeper"])
            .arg(&dir)
            .arg(ETCD)
            .arg("--name=skiff-test")
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=skiff-test={peer_url}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {ETCD} under /bin/sh: {e}"))?;
        let mut pid_line = String::new();
        BufReader::new(keeper.stdout.take().unwrap())
            .read_line(&mut pid_line)
            .map_err(|e| format!("reading etcd's pid from its keeper: {e}"))?;
        let etcd = Etcd {
            pid: pid_line
                .trim()
                .parse()
                .map_err(|_| format!("keeper printed {pid_line:?}, not a pid"))?,
            keeper,
            endpoint,
            dir,
        };
        etcd.wait_healthy().await?;
        Ok(etcd)
    }

    /// Polls until a client connects, etcd exits, or the deadline passes.
    async fn wait_healthy(&self) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let connect =
                EtcdStore::connect(std::slice::from_ref(&self.endpoint), "/health-check/");
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), connect).await {
                return Ok(());
            }
            let problem = if exited(self.pid) {
                "exited"
            } else if Instant::now() > deadline {
                "was not healthy within a minute"
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let log = std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default();
            let tail: Vec<_> = log.lines().rev().take(20).collect();
            return Err(format!(
                "etcd at {} {problem}; its log (newest first):\n{}",
                self.endpoint,
                tail.join("\n")
            ));
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
        drop(self.keeper.stdin.take());
        let _ = self.keeper.wait();
    }
}

/// The binary's etcd, started by the first test that asks; panics with the reason it could
/// not start, in every test that asks.
async fn shared_etcd() -> &'static Etcd {
    match SHARED.get_or_init(Etcd::start).await {
        Ok(etcd) => etcd,
        Err(why) => panic!("no etcd for this test: {why}"),
    }
}

/// A store under a prefix of the property's own, on the shared etcd, and a hold on its history.
async fn fresh_store(property: Property) -> (Arc<dyn Store>, Box<dyn Send>) {
    let etcd = shared_etcd().await;
    let hold: Box<dyn Send> = if property.compacts {
        Box::new(HISTORY.write().await)
    } else {
        Box::new(HISTORY.read().await)
    };
    let store = etcd.store(&format!("/conformance/{}", property.name)).await;
    (Arc::new(store), hold)
}

mod conformance {
    skiff_store::store_conformance_tests!(super::fresh_store);
}

#[tokio::test]
async fn stores_with_different_prefixes_do_not_see_each_other() {
    let etcd = shared_etcd().await;
    let _history = HISTORY.read().await;
    // The prefix is prepended verbatim (like kube-apiserver's --etcd-prefix) to keys that
    // start with '/', so "/tenant-a" and "/tenant-ab" stay apart.
    let a = etcd.store("/tenant-a").await;
    let b = etcd.store("/tenant-ab").await;
    let mut watch_a = a
        .watch("/", a.current_revision().await.unwrap())
        .await
        .unwrap();
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
    let etcd = shared_etcd().await;
    let hostport = etcd.endpoint.trim_start_matches("http://");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("etcd://{hostport}/open-by-url");
    let store = skiff_store::open(&url, dir.path()).await.unwrap();
    store.create("/registry/x", b"1".to_vec()).await.unwrap();
    let raw = etcd.store("").await;
    let kv = raw.get("/open-by-url/registry/x").await.unwrap();
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
