//! IPAM and reconcile under `kill -9`: a child process (this test binary re-executed with
//! `SKIFF_NET_CRASH_DIR` set) creates sandboxes and attaches them, printing `ack <sandbox> <ip>`
//! after each completed attach; it is killed with SIGKILL at random moments, again and again.
//! No address may ever be acknowledged twice, and after `reconcile(acknowledged)` exactly the
//! acknowledged addresses stay claimed and every partial attach is gone.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{config_at, TestHost};
use skiff_net::{AttachRequest, Net, NetworkSpec, SandboxOptions};

const CHILD_ENV: &str = "SKIFF_NET_CRASH_DIR";
const TABLE_ENV: &str = "SKIFF_NET_CRASH_TABLE";
const ROUND_ENV: &str = "SKIFF_NET_CRASH_ROUND";
const TEST_NAME: &str = "addresses_survive_sigkill_and_are_never_handed_out_twice";
const ROUNDS: usize = 8;
const ACK_TIMEOUT: Duration = Duration::from_secs(60);

async fn run_child(dir: &Path, table: &str, round: &str) {
    let net = Net::open(config_at(dir, table))
        .await
        .expect("child opens net");
    let mut out = std::io::stdout().lock();
    writeln!(out).unwrap();
    for n in 0.. {
        let id = format!("r{round}-{n}");
        net.create_sandbox(&id, SandboxOptions::default())
            .await
            .unwrap();
        let ep = net
            .attach(AttachRequest {
                sandbox: id.clone(),
                network: "crash".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        writeln!(out, "ack {id} {}", ep.address.addr()).unwrap();
        out.flush().unwrap();
    }
}

/// A pseudo-random number from the clock (enough to spread kill moments).
fn jitter(max: u64) -> u64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    n % max
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_survive_sigkill_and_are_never_handed_out_twice() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let table = std::env::var(TABLE_ENV).unwrap();
        let round = std::env::var(ROUND_ENV).unwrap();
        return run_child(Path::new(&dir), &table, &round).await;
    }
    let t = TestHost::new();
    {
        let net = t.net().await;
        net.create_network(NetworkSpec {
            name: "crash".into(),
            subnet: Some("10.60.0.0/24".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let mut acked: BTreeMap<String, Ipv4Addr> = BTreeMap::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, t.dir.path())
            .env(TABLE_ENV, &t.table)
            .env(ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some((id, ip)) = line.strip_prefix("ack ").and_then(|a| a.split_once(' ')) {
                    if tx
                        .send((id.to_string(), ip.parse::<Ipv4Addr>().unwrap()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        });
        let wanted = 1 + jitter(4) as usize;
        let mut round_acks = Vec::new();
        while round_acks.len() < wanted {
            match rx.recv_timeout(ACK_TIMEOUT) {
                Ok(a) => round_acks.push(a),
                Err(e) => {
                    let _ = child.kill();
                    panic!("round {round}: child stopped acknowledging: {e}");
                }
            }
        }
        // Kill it somewhere inside a later attach.
        std::thread::sleep(Duration::from_micros(jitter(3000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        round_acks.extend(rx.try_iter());
        for (id, ip) in round_acks {
            if let Some((other, _)) = acked.iter().find(|(_, a)| **a == ip) {
                panic!("round {round}: {ip} given to {id} and to {other}");
            }
            acked.insert(id, ip);
        }
    }

    let net = t.net().await;
    let live: Vec<String> = acked.keys().cloned().collect();
    net.reconcile(&live).await.unwrap();
    let claimed: BTreeMap<String, Ipv4Addr> = live
        .iter()
        .flat_map(|id| net.endpoints(id))
        .map(|e| (e.sandbox.clone(), e.address.addr()))
        .collect();
    assert_eq!(
        claimed, acked,
        "every acknowledged attach survives, with its address"
    );
    let stray: Vec<String> = std::fs::read_dir(t.dir.path().join("run/netns"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !acked.contains_key(n))
        .collect();
    assert!(stray.is_empty(), "partial sandboxes left: {stray:?}");
    let claims: Vec<String> = std::fs::read_dir(t.dir.path().join("run/ipam"))
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        claims.len(),
        acked.len(),
        "exactly the acknowledged addresses are claimed: {claims:?}"
    );
    // The next address is a fresh one.
    net.create_sandbox("after", SandboxOptions::default())
        .await
        .unwrap();
    let ep = net
        .attach(AttachRequest {
            sandbox: "after".into(),
            network: "crash".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!acked.values().any(|ip| *ip == ep.address.addr()));
}
