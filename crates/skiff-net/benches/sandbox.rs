//! What networking adds to a container's start and removal: sandbox create + attach + detach +
//! delete, per container, in a host namespace of its own. Prints medians and p90 of each mode
//! measured in the same run, and the bridge's cost over `--network none` (target ≤ 5 ms).
//!
//! `cargo bench -p skiff-net --bench sandbox` (as root). `SKIFF_NET_BENCH_N` sets the rounds.

use std::time::{Duration, Instant};

use skiff_net::{
    netns, parse_port_spec, AttachRequest, Net, NetConfig, NetnsRef, NetworkSpec, SandboxOptions,
};

struct Stats(Vec<Duration>);

impl Stats {
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort();
        v[((v.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3
    }
}

async fn run(net: &Net, n: usize, network: Option<&str>, ports: &str, tag: &str) -> (Stats, Stats) {
    let mut up = Vec::new();
    let mut down = Vec::new();
    for i in 0..n {
        let id = format!("{tag}{i}");
        let t0 = Instant::now();
        net.create_sandbox(&id, SandboxOptions::default())
            .await
            .unwrap();
        if let Some(nw) = network {
            net.attach(AttachRequest {
                sandbox: id.clone(),
                network: nw.into(),
                dns_names: vec![id.clone()],
                ports: if ports.is_empty() {
                    Vec::new()
                } else {
                    parse_port_spec(ports).unwrap()
                },
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let t1 = Instant::now();
        net.remove_sandbox(&id).await.unwrap();
        let t2 = Instant::now();
        up.push(t1 - t0);
        down.push(t2 - t1);
    }
    (Stats(up), Stats(down))
}

fn main() {
    let n: usize = std::env::var("SKIFF_NET_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::Builder::new()
        .prefix("skiff-net-bench-")
        .tempdir()
        .unwrap();
    let host = dir.path().join("skiff-bench-host");
    netns::create(&host, || Ok(())).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut cfg = NetConfig::new(dir.path().join("state"), dir.path().join("run"));
        cfg.host = NetnsRef::path(&host);
        cfg.table = "skiff-bench".into();
        cfg.dns_upstreams = Some(Vec::new());
        let net = Net::open(cfg).await.unwrap();
        net.ensure_default_bridge().await.unwrap();
        net.create_network(NetworkSpec { name: "user".into(), dns: true, ..Default::default() })
            .await
            .unwrap();
        // Warm-up: first-use costs (nft binary in the page cache, kernel modules).
        run(&net, 5, Some("bridge"), "9000:80", "w").await;
        let modes: [(&str, Option<&str>, &str); 4] = [
            ("none (lo up only)", None, ""),
            ("default bridge", Some("bridge"), ""),
            ("user network + DNS", Some("user"), ""),
            ("bridge + -p 8080:80", Some("bridge"), "8080:80"),
        ];
        println!("skiff-net per container, {n} rounds (ms)");
        println!("{:<24} {:>10} {:>10} {:>10} {:>10}", "mode", "up p50", "up p90", "down p50", "down p90");
        let mut none_total = 0.0;
        for (i, (name, nw, ports)) in modes.iter().enumerate() {
            let (up, down) = run(&net, n, *nw, ports, &format!("m{i}-")).await;
            let total = up.pct(0.5) + down.pct(0.5);
            if nw.is_none() {
                none_total = total;
            }
            println!(
                "{name:<24} {:>10.3} {:>10.3} {:>10.3} {:>10.3}   total p50 {total:.3}, over none {:+.3}",
                up.pct(0.5),
                up.pct(0.9),
                down.pct(0.5),
                down.pct(0.9),
                total - none_total
            );
        }
    });
    drop(rt);
    for e in std::fs::read_dir(dir.path().join("run/netns"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = netns::remove(&e.path());
    }
    let _ = netns::remove(&host);
}
