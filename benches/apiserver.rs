//! API-server benchmark, SQLite and etcd side by side in one run (`cargo bench --bench
//! apiserver`): cold start to `/readyz`, create/get/list latency with 50 concurrent clients,
//! a label-selected list of 500 pods out of all of them (one client, then 50 at once) served
//! from the watch cache and (after a restart with `--watch-cache=false`, same data, one
//! client) from the store, watch fan-out to
//! 100 watchers, and the server's RSS idle and with the objects stored. The server runs
//! the scheduler and the controllers as `skiff server` does (only the local node is left
//! out); the workload starts once both lead on their Leases, so the RSS with pods counts
//! their caches (after a restart the killed server's Leases hold them back up to 15 s).
//! Prints one table with the targets and the etcd/SQLite ratios. It measures; it asserts nothing.
//!
//! RSS is `VmRSS` with its anonymous and file-backed parts. The file part is mostly the skiff
//! binary's own code pages, and how many of them a process counts depends on how the binary
//! entered the page cache (one just built or copied is all there, and each touched page maps
//! its neighbours too): the binary's pages are dropped from the page cache before every server
//! start (`posix_fadvise(DONTNEED)`, as `bench/lib/memory.sh` does for the engine), so each run
//! measures a binary read from disk by the server itself.
//!
//! Knobs: `SKIFF_BENCH_OBJECTS` (pods created, default 10000), `SKIFF_BENCH_STARTS` (server
//! starts per median, default 5), `SKIFF_BENCH_DATASTORE` (`sqlite` or `etcd` to measure only
//! that one while iterating; the other column then reads `skipped`), `SKIFF_BENCH_SERVER_FLAGS`
//! (extra `skiff server` flags for every start, space-separated, e.g. `--watch-cache=false`),
//! `SKIFF_BENCH_BIN` (the `skiff` binary to measure instead of the one cargo built: an older
//! build, to measure before and after back to back), `SKIFF_BENCH_HOLD` (a file path: right
//! after "RSS with pods" is read, the bench writes the server's PID there and waits up to
//! 30 minutes until the file is removed, so the loaded server can be inspected —
//! `/proc/PID/smaps`, a debugger — in the state the figure describes).

#[path = "../tests/e2e/kube_common/mod.rs"]
mod kube_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_common::{free_port, Datastore, Etcd, Guard};
use tokio::sync::mpsc;

const CLIENTS: usize = 50;
const WATCHERS: usize = 100;
const FANOUT_WRITES: usize = 50;
const LISTS_PER_CLIENT: usize = 4;
const LIST_PAGE: u32 = 500;
/// Pods per value of the `shard` label: a label-selected list returns this many.
const SHARD: usize = 500;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One `skiff server` process (killed by PID on drop).
struct Server {
    proc: Guard,
    data_dir: PathBuf,
    port: u16,
    /// When it was started.
    started: k8s_openapi::jiff::Timestamp,
    /// The in-process components it runs that lead on a Lease (their Lease names).
    leaders: Vec<&'static str>,
}

impl Server {
    /// Starts the server and returns it with the time from spawn to `/readyz` answering `ok`.
    async fn start(data_dir: &Path, datastore: &str) -> (Server, Duration) {
        Server::start_with(data_dir, datastore, &[]).await
    }

    /// [`Server::start`] with extra `skiff server` flags.
    async fn start_with(data_dir: &Path, datastore: &str, flags: &[&str]) -> (Server, Duration) {
        let port = free_port();
        let started = Instant::now();
        let started_at = k8s_openapi::jiff::Timestamp::now();
        let extra = std::env::var("SKIFF_BENCH_SERVER_FLAGS").unwrap_or_default();
        let has = |flag: &str| flags.contains(&flag) || extra.split_whitespace().any(|f| f == flag);
        let leaders = [
            ("--disable-scheduler", "kube-scheduler"),
            ("--disable-controllers", "kube-controller-manager"),
        ]
        .into_iter()
        .filter(|(flag, _)| !has(flag))
        .map(|(_, lease)| lease)
        .collect();
        let bin = std::env::var_os("SKIFF_BENCH_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_skiff").into());
        evict(Path::new(&bin));
        let child = Command::new(bin)
            .arg("server")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--datastore")
            .arg(datastore)
            .arg("--disable-agent")
            .args(
                std::env::var("SKIFF_BENCH_SERVER_FLAGS")
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter(|f| !flags.contains(f)),
            )
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start skiff server");
        let mut server = Server {
            proc: Guard(child),
            data_dir: data_dir.to_path_buf(),
            port,
            started: started_at,
            leaders,
        };
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Some(status) = server.proc.0.try_wait().unwrap() {
                panic!("skiff server exited with {status}");
            }
            if let Some(client) = server.try_client().await {
                let req = http::Request::get("/readyz").body(Vec::new()).unwrap();
                if client.request_text(req).await.is_ok_and(|b| b == "ok") {
                    return (server, started.elapsed());
                }
            }
            assert!(
                Instant::now() < deadline,
                "skiff server did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// A client from the kubeconfig the server wrote, or None while it is not written yet.
    async fn try_client(&self) -> Option<kube::Client> {
        let kubeconfig = Kubeconfig::read_from(self.data_dir.join("kubeconfig.yaml")).ok()?;
        let mut config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .ok()?;
        config.cluster_url = format!("https://127.0.0.1:{}", self.port).parse().unwrap();
        kube::Client::try_from(config).ok()
    }

    async fn client(&self) -> kube::Client {
        self.try_client()
            .await
            .expect("kubeconfig of a ready server")
    }

    /// Waits until this server's scheduler and controllers hold their Leases (acquired
    /// after it started); returns how long that took.
    async fn wait_for_leaders(&self) -> Duration {
        let t = Instant::now();
        let leases: Api<Lease> = Api::namespaced(self.client().await, "kube-system");
        for name in &self.leaders {
            loop {
                let lease = leases.get_opt(name).await.expect("read a Lease");
                let spec = lease.and_then(|l| l.spec).unwrap_or_default();
                let mine = spec.holder_identity.is_some()
                    && spec.acquire_time.is_some_and(|a| a.0 >= self.started);
                if mine {
                    break;
                }
                assert!(t.elapsed() < Duration::from_secs(60), "{name} never led");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        t.elapsed()
    }

    fn rss_mib(&self) -> f64 {
        self.status_mib("VmRSS:")
    }

    /// A `/proc/PID/status` field given in kB (`VmRSS:`, `RssAnon:`, `RssFile:`), in MiB.
    fn status_mib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.0.id())).unwrap();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"));
        kib / 1024.0
    }
}

/// With `SKIFF_BENCH_HOLD=PATH`: writes the server's PID to PATH and waits until PATH is
/// removed (at most 30 minutes), for inspecting the loaded server.
async fn hold(server: &Server) {
    let Some(path) = std::env::var_os("SKIFF_BENCH_HOLD") else {
        return;
    };
    std::fs::write(&path, server.proc.0.id().to_string()).expect("write SKIFF_BENCH_HOLD");
    eprintln!(
        "holding the loaded server until {} is removed",
        Path::new(&path).display()
    );
    let deadline = Instant::now() + Duration::from_secs(30 * 60);
    while Path::new(&path).exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Drops `bin`'s pages from the page cache (those a running process maps stay), so that the
/// server started next reads its binary from disk whatever state the last build or copy left.
fn evict(bin: &Path) {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(bin) else {
        return;
    };
    // SAFETY: posix_fadvise only advises the kernel about the open file's cached pages.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

/// Sorted latency samples in milliseconds.
struct Samples(Vec<f64>);

impl Samples {
    fn new(mut v: Vec<Duration>) -> Samples {
        v.sort();
        Samples(v.into_iter().map(|d| d.as_secs_f64() * 1000.0).collect())
    }

    fn quantile(&self, q: f64) -> f64 {
        let i = ((self.0.len() as f64 * q) as usize).min(self.0.len() - 1);
        self.0[i]
    }
}

/// Figures of one datastore.
#[derive(Default)]
struct Figures {
    ready_fresh_ms: f64,
    ready_restart_ms: f64,
    rss_idle_mib: f64,
    create: (f64, f64),
    creates_per_s: f64,
    get: (f64, f64),
    list_page: (f64, f64),
    list_selected: (f64, f64),
    list_selected_any: (f64, f64),
    list_selected_raw: (f64, f64),
    list_selected_busy: (f64, f64),
    list_selected_store: (f64, f64),
    list_all_ms: f64,
    rss_loaded_mib: f64,
    /// Anonymous and file-backed parts of `rss_loaded_mib`.
    rss_loaded_parts: (f64, f64),
    fanout: (f64, f64),
}

impl Figures {
    /// Figures of a datastore not measured in this run (every cell reads `skipped`).
    fn skipped() -> Figures {
        let n = f64::INFINITY;
        Figures {
            ready_fresh_ms: n,
            ready_restart_ms: n,
            rss_idle_mib: n,
            create: (n, n),
            creates_per_s: n,
            get: (n, n),
            list_page: (n, n),
            list_selected: (n, n),
            list_selected_any: (n, n),
            list_selected_raw: (n, n),
            list_selected_busy: (n, n),
            list_selected_store: (n, n),
            list_all_ms: n,
            rss_loaded_mib: n,
            rss_loaded_parts: (n, n),
            fanout: (n, n),
        }
    }
}

/// Pod `bench-i`, labelled with its shard (`SHARD` pods each).
fn pod(i: usize) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("bench-{i}"), "labels": {"app": "bench", "shard": format!("s{}", i / SHARD)}},
        "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]},
    }))
    .unwrap()
}

/// Runs `per_client` on CLIENTS clients (each its own connection) at once; returns all latencies.
async fn concurrently<F, Fut>(clients: &[kube::Client], per_client: F) -> Vec<Duration>
where
    F: Fn(usize, Api<Pod>) -> Fut,
    Fut: std::future::Future<Output = Vec<Duration>> + Send + 'static,
{
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| tokio::spawn(per_client(i, Api::namespaced(c.clone(), "default"))))
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// create, get and list latency over `objects` pods with CLIENTS concurrent clients.
async fn crud(server: &Server, objects: usize, f: &mut Figures) {
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(server.client().await);
    }
    // Each client's connection (TCP, TLS handshake with its client certificate) is opened by
    // one read before the clock starts: the figures are per request on an open connection,
    // as long-lived clients see them, not 50 handshakes at once in the first creates.
    let opened = concurrently(&clients, |_, pods| async move {
        pods.list(&kube::api::ListParams::default().limit(1))
            .await
            .expect("open the connection");
        Vec::new()
    })
    .await;
    debug_assert!(opened.is_empty());
    let started = Instant::now();
    let creates = concurrently(&clients, |c, pods| async move {
        let mut lat = Vec::new();
        for i in (c..objects).step_by(CLIENTS) {
            let t = Instant::now();
            pods.create(&PostParams::default(), &pod(i))
                .await
                .expect("create pod");
            lat.push(t.elapsed());
        }
        lat
    })
    .await;
    f.creates_per_s = objects as f64 / started.elapsed().as_secs_f64();
    let creates = Samples::new(creates);
    f.create = (creates.quantile(0.5), creates.quantile(0.99));

    let gets = Samples::new(
        concurrently(&clients, |c, pods| async move {
            let mut lat = Vec::new();
            for i in (c..objects).step_by(CLIENTS) {
                let t = Instant::now();
                pods.get(&format!("bench-{i}")).await.expect("get pod");
                lat.push(t.elapsed());
            }
            lat
        })
        .await,
    );
    f.get = (gets.quantile(0.5), gets.quantile(0.99));

    let lists = Samples::new(
        concurrently(&clients, |_, pods| async move {
            let mut lat = Vec::new();
            for _ in 0..LISTS_PER_CLIENT {
                let t = Instant::now();
                let page = pods
                    .list(&ListParams::default().limit(LIST_PAGE))
                    .await
                    .expect("list pods");
                assert!(!page.items.is_empty());
                lat.push(t.elapsed());
            }
            lat
        })
        .await,
    );
    f.list_page = (lists.quantile(0.5), lists.quantile(0.99));

    f.list_selected = list_selected(&clients[..1], objects, SELECTED_LISTS, false).await;
    f.list_selected_any = list_selected(&clients[..1], objects, SELECTED_LISTS, true).await;
    f.list_selected_raw = list_selected_raw(&clients[0], objects).await;
    f.list_selected_busy = list_selected(&clients, objects, LISTS_PER_CLIENT, false).await;

    let pods: Api<Pod> = Api::namespaced(clients[0].clone(), "default");
    let mut full = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        match pods.list(&ListParams::default()).await {
            Ok(all) => assert_eq!(all.items.len(), objects, "pods stored"),
            Err(e) => {
                eprintln!("unpaginated list of {objects} pods failed: {e}");
                f.list_all_ms = f64::NAN;
                return;
            }
        }
        full.push(t.elapsed());
    }
    f.list_all_ms = Samples::new(full).quantile(0.5);
}

/// Label-selected lists by one client, one after another (what a controller starting up
/// sees).
const SELECTED_LISTS: usize = 40;

/// p50 and p99 of lists of one shard's `SHARD` pods by label selector (a consistent read:
/// no resourceVersion), `per_client` lists by each client, all clients at once.
async fn list_selected(
    clients: &[kube::Client],
    objects: usize,
    per_client: usize,
    any_version: bool,
) -> (f64, f64) {
    let shards = objects.div_ceil(SHARD);
    let want = SHARD.min(objects);
    let lists = Samples::new(
        concurrently(clients, move |c, pods| async move {
            let mut lat = Vec::new();
            for l in 0..per_client {
                let shard = (c * per_client + l) % shards.max(1);
                let mut params = ListParams::default().labels(&format!("shard=s{shard}"));
                if any_version {
                    params = params.match_any();
                }
                let t = Instant::now();
                let page = pods.list(&params).await.expect("list pods by label");
                lat.push(t.elapsed());
                if shard + 1 < shards {
                    assert_eq!(page.items.len(), want, "pods of shard s{shard}");
                }
            }
            lat
        })
        .await,
    );
    (lists.quantile(0.5), lists.quantile(0.99))
}

/// p50 and p99 of the lists of [`list_selected`] by one client, as raw JSON bodies (not
/// decoded into `Pod`s): the server's part of the time plus TLS and transfer.
async fn list_selected_raw(client: &kube::Client, objects: usize) -> (f64, f64) {
    let shards = objects.div_ceil(SHARD).max(1);
    let mut lat = Vec::new();
    for l in 0..SELECTED_LISTS {
        let uri = format!(
            "/api/v1/namespaces/default/pods?labelSelector=shard%3Ds{}",
            l % shards
        );
        let req = http::Request::get(uri).body(Vec::new()).unwrap();
        let t = Instant::now();
        let body = client.request_text(req).await.expect("list pods by label");
        lat.push(t.elapsed());
        assert!(body.contains("\"items\":["), "a PodList: {:.200}", body);
    }
    let s = Samples::new(lat);
    (s.quantile(0.5), s.quantile(0.99))
}

/// WATCHERS watchers on ConfigMaps; per write, the time from sending the create to the last
/// watcher receiving its ADDED event.
async fn fanout(server: &Server) -> (f64, f64) {
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv = cms
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Instant)>();
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let mut stream = cms
            .watch(&WatchParams::default().timeout(290), &rv)
            .await
            .expect("watch configmaps")
            .boxed();
        let tx = tx.clone();
        watchers.push(tokio::spawn(async move {
            while let Some(Ok(ev)) = stream.next().await {
                if let WatchEvent::Added(cm) = ev {
                    if tx
                        .send((cm.metadata.name.unwrap(), Instant::now()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }));
    }
    let mut lat = Vec::new();
    for i in 0..FANOUT_WRITES {
        let name = format!("fanout-{i}");
        let cm = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        let sent = Instant::now();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        let mut received = 0;
        let mut last = sent;
        while received < WATCHERS {
            let (got, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("watchers to receive the write")
                .unwrap();
            assert_eq!(got, name, "events arrive in write order");
            received += 1;
            last = at;
        }
        lat.push(last - sent);
    }
    for w in watchers {
        w.abort();
    }
    let s = Samples::new(lat);
    (s.quantile(0.5), s.quantile(0.99))
}

async fn measure(datastore: Datastore, objects: usize, starts: usize) -> Figures {
    let etcd = (datastore == Datastore::Etcd).then(Etcd::start);
    let arg = match &etcd {
        Some(e) => format!("etcd://{}", e.endpoint),
        None => "sqlite".into(),
    };
    let tmp = tempfile::Builder::new()
        .prefix("skiff-bench")
        .tempdir()
        .unwrap();
    let mut f = Figures::default();

    // First start on an empty data directory (creates the CA and certificates).
    let mut fresh = Vec::new();
    for i in 0..starts {
        let (_server, ready) = Server::start(&tmp.path().join(format!("fresh-{i}")), &arg).await;
        fresh.push(ready);
    }
    f.ready_fresh_ms = Samples::new(fresh).quantile(0.5);

    // Restart on existing data: kill the previous server, start again on the same directory.
    let dir = tmp.path().join("main");
    let (mut server, _) = Server::start(&dir, &arg).await;
    let mut restarts = Vec::new();
    for _ in 0..starts {
        drop(server);
        let (s, ready) = Server::start(&dir, &arg).await;
        server = s;
        restarts.push(ready);
    }
    f.ready_restart_ms = Samples::new(restarts).quantile(0.5);

    tokio::time::sleep(Duration::from_secs(2)).await; // let start-up work finish before "idle"
    f.rss_idle_mib = server.rss_mib();
    let waited = server.wait_for_leaders().await;
    eprintln!("{arg}: scheduler and controllers lead after {waited:?} more");

    crud(&server, objects, &mut f).await;
    f.rss_loaded_mib = server.rss_mib();
    f.rss_loaded_parts = (server.status_mib("RssAnon:"), server.status_mib("RssFile:"));
    hold(&server).await;
    f.fanout = fanout(&server).await;

    // The same data read from the store: the peer the cache is measured against.
    drop(server);
    let (server, _) = Server::start_with(&dir, &arg, &["--watch-cache=false"]).await;
    let clients = [server.client().await];
    f.list_selected_store = list_selected(&clients, objects, SELECTED_LISTS, false).await;
    f
}

/// A table cell: the figure, `failed` where the measurement could not be taken, or `skipped`
/// for a datastore left out of the run.
fn cell(v: f64, decimals: usize) -> String {
    if v.is_infinite() {
        "skipped".into()
    } else if v.is_nan() {
        "failed".into()
    } else {
        format!("{v:.decimals$}")
    }
}

fn main() {
    let objects = env_count("SKIFF_BENCH_OBJECTS", 10_000);
    let starts = env_count("SKIFF_BENCH_STARTS", 5);
    let only = std::env::var("SKIFF_BENCH_DATASTORE").unwrap_or_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let run = |datastore: Datastore, name: &str| {
        if only.is_empty() || only == name {
            rt.block_on(measure(datastore, objects, starts))
        } else {
            Figures::skipped()
        }
    };
    let sqlite = run(Datastore::Sqlite, "sqlite");
    let etcd = run(Datastore::Etcd, "etcd");

    type Row = (&'static str, fn(&Figures) -> f64, &'static str);
    let rows: [Row; 24] = [
        (
            "ready, new data dir (median ms)",
            |f| f.ready_fresh_ms,
            "<= 300",
        ),
        (
            "ready, restart (median ms)",
            |f| f.ready_restart_ms,
            "<= 300",
        ),
        ("RSS idle (MiB)", |f| f.rss_idle_mib, "<= 40"),
        ("create p50 (ms)", |f| f.create.0, ""),
        ("create p99 (ms)", |f| f.create.1, "<= 20 (SQLite)"),
        ("creates/s", |f| f.creates_per_s, ""),
        ("get p50 (ms)", |f| f.get.0, ""),
        ("get p99 (ms)", |f| f.get.1, ""),
        ("list 500 p50 (ms)", |f| f.list_page.0, ""),
        ("list 500 p99 (ms)", |f| f.list_page.1, ""),
        ("list 500 by label p50 (ms)", |f| f.list_selected.0, "<= 20"),
        ("list 500 by label p99 (ms)", |f| f.list_selected.1, ""),
        (
            "  same, resourceVersion=0 p50",
            |f| f.list_selected_any.0,
            "",
        ),
        (
            "  same, raw body (no decode) p50",
            |f| f.list_selected_raw.0,
            "",
        ),
        (
            "  same, 50 clients at once p50",
            |f| f.list_selected_busy.0,
            "",
        ),
        (
            "  same, 50 clients at once p99",
            |f| f.list_selected_busy.1,
            "",
        ),
        (
            "  same, --watch-cache=false p50",
            |f| f.list_selected_store.0,
            "",
        ),
        (
            "  same, --watch-cache=false p99",
            |f| f.list_selected_store.1,
            "",
        ),
        ("list all (median ms)", |f| f.list_all_ms, ""),
        ("RSS with pods (MiB)", |f| f.rss_loaded_mib, "<= 100"),
        ("  of it anonymous (MiB)", |f| f.rss_loaded_parts.0, ""),
        ("  of it file pages (MiB)", |f| f.rss_loaded_parts.1, ""),
        ("watch fan-out p50 (ms)", |f| f.fanout.0, ""),
        ("watch fan-out p99 (ms)", |f| f.fanout.1, ""),
    ];
    println!(
        "skiff API server: {objects} pods, {CLIENTS} clients, {WATCHERS} watchers, {starts} starts"
    );
    println!(
        "| {:<32} | {:>9} | {:>9} | {:>11} | {:<15} |",
        "metric", "SQLite", "etcd", "etcd/SQLite", "target"
    );
    println!(
        "|{:-<34}|{:->11}|{:->11}|{:->13}|{:-<17}|",
        "", "", "", "", ""
    );
    for (name, get, target) in rows {
        let (s, e) = (get(&sqlite), get(&etcd));
        println!(
            "| {name:<32} | {:>9} | {:>9} | {:>11} | {target:<15} |",
            cell(s, 1),
            cell(e, 1),
            cell(
                if s.is_infinite() || e.is_infinite() {
                    f64::INFINITY
                } else {
                    e / s
                },
                2
            )
        );
    }
}
