//! `skiff stats`: one table of container resource usage (`--no-stream`), or the same table
//! redrawn as samples arrive until Ctrl-C.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::models::{ContainerCpuStats, ContainerStatsResponse};
use bollard::query_parameters::StatsOptions;
use bollard::Docker;
use futures::StreamExt;

use super::{binary_size, daemon_error, format_table, human_size, Outcome};

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    no_stream: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

const HEADER: [&str; 8] = [
    "CONTAINER ID",
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "NET I/O",
    "BLOCK I/O",
    "PIDS",
];

/// How often the streaming table is redrawn.
const REFRESH: Duration = Duration::from_millis(500);

pub async fn stats(docker: &Docker, args: StatsArgs) -> Outcome {
    // The first sample of each container, so that a bad name fails before any drawing.
    let mut rows = Vec::new();
    for name in &args.containers {
        let opts = StatsOptions {
            stream: false,
            one_shot: false,
        };
        match docker.stats(name, Some(opts)).next().await {
            Some(sample) => rows.push(row(&sample.map_err(daemon_error)?, name)),
            None => anyhow::bail!("no stats from the engine for {name}"),
        }
    }
    if args.no_stream {
        print!("{}", format_table(&HEADER, &rows));
        return Ok(0);
    }
    let rows = Arc::new(Mutex::new(rows));
    let mut feeds = Vec::new();
    for (index, name) in args.containers.iter().enumerate() {
        let (docker, name, rows) = (docker.clone(), name.clone(), rows.clone());
        feeds.push(tokio::spawn(async move {
            let opts = StatsOptions {
                stream: true,
                one_shot: false,
            };
            let mut samples = docker.stats(&name, Some(opts));
            while let Some(Ok(sample)) = samples.next().await {
                let fresh = row(&sample, &name);
                if let Ok(mut rows) = rows.lock() {
                    rows[index] = fresh;
                }
            }
        }));
    }
    let mut tick = tokio::time::interval(REFRESH);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = tick.tick() => {
                let table = match rows.lock() {
                    Ok(rows) => format_table(&HEADER, &rows),
                    Err(_) => break,
                };
                // Clear the screen and home the cursor, as docker does between refreshes.
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                write!(out, "\x1b[2J\x1b[H{table}")?;
                out.flush()?;
            }
        }
    }
    for feed in feeds {
        feed.abort();
    }
    Ok(0)
}

/// One table row from a sample, computed as the docker CLI does.
fn row(s: &ContainerStatsResponse, name: &str) -> Vec<String> {
    let mem = s.memory_stats.clone().unwrap_or_default();
    let usage = mem.usage.unwrap_or(0);
    let limit = mem.limit.unwrap_or(0);
    let mem_pct = if limit > 0 {
        usage as f64 / limit as f64 * 100.0
    } else {
        0.0
    };
    let (rx, tx) = s
        .networks
        .iter()
        .flatten()
        .fold((0u64, 0u64), |(rx, tx), (_, n)| {
            (rx + n.rx_bytes.unwrap_or(0), tx + n.tx_bytes.unwrap_or(0))
        });
    let (read, write) = s
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref())
        .into_iter()
        .flatten()
        .fold((0u64, 0u64), |(r, w), e| {
            let value = e.value.unwrap_or(0);
            match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("read") => (r + value, w),
                Some("write") => (r, w + value),
                _ => (r, w),
            }
        });
    let size = |b: u64| human_size(i64::try_from(b).unwrap_or(i64::MAX));
    let pids = s.pids_stats.as_ref().and_then(|p| p.current).unwrap_or(0);
    vec![
        skiff_core::ids::short_id(s.id.as_deref().unwrap_or(name)).to_owned(),
        s.name
            .as_deref()
            .unwrap_or(name)
            .trim_start_matches('/')
            .to_owned(),
        format!("{:.2}%", cpu_percent(s)),
        format!("{} / {}", binary_size(usage), binary_size(limit)),
        format!("{mem_pct:.2}%"),
        format!("{} / {}", size(rx), size(tx)),
        format!("{} / {}", size(read), size(write)),
        pids.to_string(),
    ]
}

/// CPU use between the sample and the one before it, 100% per CPU.
fn cpu_percent(s: &ContainerStatsResponse) -> f64 {
    let cpu = s.cpu_stats.clone().unwrap_or_default();
    let pre = s.precpu_stats.clone().unwrap_or_default();
    let total = |c: &ContainerCpuStats| {
        c.cpu_usage
            .as_ref()
            .and_then(|u| u.total_usage)
            .unwrap_or(0)
    };
    let cpu_delta = total(&cpu).saturating_sub(total(&pre)) as f64;
    let sys_delta = cpu
        .system_cpu_usage
        .unwrap_or(0)
        .saturating_sub(pre.system_cpu_usage.unwrap_or(0)) as f64;
    let cpus = f64::from(cpu.online_cpus.unwrap_or(1));
    if sys_delta > 0.0 {
        cpu_delta / sys_delta * cpus * 100.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerBlkioStatEntry, ContainerBlkioStats, ContainerNetworkStats};

    #[test]
    fn rows_sum_networks_and_block_io() {
        let sample = ContainerStatsResponse {
            id: Some("0123456789abcdef0123".into()),
            name: Some("/web".into()),
            networks: Some(
                [
                    ("eth0".to_owned(), net(1_000, 2_000)),
                    ("eth1".to_owned(), net(500, 0)),
                ]
                .into(),
            ),
            blkio_stats: Some(ContainerBlkioStats {
                io_service_bytes_recursive: Some(vec![blk("Read", 4_096), blk("write", 1_000_000)]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = row(&sample, "web");
        assert_eq!(r.len(), HEADER.len());
        assert_eq!(r[0], "0123456789ab");
        assert_eq!(r[1], "web");
        assert_eq!(r[5], "1.5kB / 2kB");
        assert_eq!(r[6], "4.1kB / 1MB");
    }

    fn net(rx: u64, tx: u64) -> ContainerNetworkStats {
        ContainerNetworkStats {
            rx_bytes: Some(rx),
            tx_bytes: Some(tx),
            ..Default::default()
        }
    }

    fn blk(op: &str, value: u64) -> ContainerBlkioStatEntry {
        ContainerBlkioStatEntry {
            op: Some(op.into()),
            value: Some(value),
            ..Default::default()
        }
    }
}
