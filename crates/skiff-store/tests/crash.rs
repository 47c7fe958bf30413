//! Crash safety of the SQLite engine: a writer process is killed with SIGKILL at random
//! moments, again and again; every write it acknowledged must survive, the file must stay
//! intact and revisions must keep increasing.
//!
//! The writer is this test binary re-executed with `SKIFF_STORE_CRASH_DB` set (so no extra
//! binary target is needed): it then writes sequential keys forever and prints
//! `ack <n> <revision>` to stdout after each acknowledged write.
//!
//! The run prints its seed; `SKIFF_TEST_SEED=<seed>` replays its choices.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use skiff_store::sqlite::SqliteStore;
use skiff_store::Store;

const CHILD_ENV: &str = "SKIFF_STORE_CRASH_DB";
const TEST_NAME: &str = "sqlite_acknowledged_writes_survive_sigkill";
const ROUNDS: usize = 30;
const ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// Set to a seed printed by a failed run to replay its random choices (the writer's kill
/// points; process scheduling still varies).
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

fn key(n: u64) -> String {
    format!("/crash/k{n:010}")
}

fn value(n: u64) -> Vec<u8> {
    format!("value of write {n}").into_bytes()
}

/// The writer's life: continue after the last stored key, acknowledge each write.
async fn run_writer(db: &Path) {
    let store = SqliteStore::open(db).expect("writer opens the store");
    let list = store.list("/crash/", None, 0, None).await.unwrap();
    let mut n = list.items.last().map_or(0, |kv| {
        kv.key
            .trim_start_matches("/crash/k")
            .parse::<u64>()
            .unwrap()
            + 1
    });
    let mut out = std::io::stdout().lock();
    writeln!(out).unwrap();
    loop {
        let revision = store.create(&key(n), value(n)).await.unwrap();
        writeln!(out, "ack {n} {revision}").unwrap();
        out.flush().unwrap();
        n += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_acknowledged_writes_survive_sigkill() {
    if let Some(db) = std::env::var_os(CHILD_ENV) {
        return run_writer(Path::new(&db)).await;
    }
    let dir = tempfile::Builder::new()
        .prefix("skiff-store-crash-")
        .tempdir()
        .unwrap();
    let db = dir.path().join("state.db");
    let mut acked: BTreeMap<u64, i64> = BTreeMap::new();
    let mut rng = seeded_rng();
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(ack) = line.split_once("ack ").map(|(_, a)| a.to_owned()) {
                    let (n, rev) = ack.split_once(' ').unwrap();
                    if tx
                        .send((n.parse::<u64>().unwrap(), rev.parse::<i64>().unwrap()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        });
        // Let it acknowledge a random number of writes, then kill it at a random moment.
        let wanted = rng.gen_range(1..60);
        let mut round_acks = Vec::new();
        while round_acks.len() < wanted {
            match rx.recv_timeout(ACK_TIMEOUT) {
                Ok(ack) => round_acks.push(ack),
                Err(e) => {
                    let _ = child.kill();
                    panic!("round {round}: writer stopped acknowledging: {e}");
                }
            }
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..3000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        round_acks.extend(rx.try_iter());

        let last_before = acked.values().max().copied().unwrap_or(0);
        assert!(
            round_acks[0].1 > last_before,
            "round {round}: revision {} after restart is not past {last_before}",
            round_acks[0].1
        );
        assert!(
            round_acks.windows(2).all(|w| w[0].1 < w[1].1),
            "revisions went back"
        );
        acked.extend(round_acks);
        verify(&db, &acked, round).await;
    }
}

/// Every acknowledged write is there with its value and revision; the file is intact.
async fn verify(db: &Path, acked: &BTreeMap<u64, i64>, round: usize) {
    {
        let conn = rusqlite::Connection::open(db).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "round {round}: integrity_check failed");
    }
    let store = SqliteStore::open(db).expect("reopen after SIGKILL");
    let stored = store.list("/crash/", None, 0, None).await.unwrap();
    let by_key: BTreeMap<&str, _> = stored
        .items
        .iter()
        .map(|kv| (kv.key.as_str(), kv))
        .collect();
    for (n, revision) in acked {
        let kv = by_key
            .get(key(*n).as_str())
            .unwrap_or_else(|| panic!("round {round}: acknowledged write {n} lost"));
        assert_eq!(
            kv.value,
            value(*n),
            "round {round}: write {n} has a wrong value"
        );
        assert_eq!(
            kv.mod_revision, *revision,
            "round {round}: write {n} has a wrong revision"
        );
    }
    let max_acked = acked.values().max().copied().unwrap_or(0);
    assert!(store.current_revision().await.unwrap() >= max_acked);
}
