//! `docker stats` (Docker's JSON shape from the container's cgroups, one sample a second
//! with the previous one as `precpu_stats`) and `docker top` (ps-like rows from /proc for
//! the cgroup's processes).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard_stubs::models::{
    ContainerBlkioStats, ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats,
    ContainerNetworkStats, ContainerPidsStats, ContainerStatsResponse, ContainerThrottlingData,
    ContainerTopResponse,
};
use futures::stream::{BoxStream, StreamExt};
use skiff_runtime::cgroups;

use super::Container;
use crate::error::{EngineError, Result};
use crate::Engine;

const INTERVAL: Duration = Duration::from_secs(1);
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Removes the container's cgroups in every hierarchy; logs what cannot be removed.
pub(crate) fn remove_cgroups(cgroups_path: &str) {
    if let Err(e) = cgroups::remove(cgroups_path) {
        tracing::warn!(cgroup = cgroups_path, error = %e, "removing cgroups");
    }
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(str::to_string)
        })
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn cpu_stats(s: &cgroups::CpuStats) -> ContainerCpuStats {
    ContainerCpuStats {
        cpu_usage: Some(ContainerCpuUsage {
            total_usage: Some(s.total_usage),
            percpu_usage: (!s.percpu_usage.is_empty()).then(|| s.percpu_usage.clone()),
            usage_in_kernelmode: Some(s.usage_in_kernelmode),
            usage_in_usermode: Some(s.usage_in_usermode),
        }),
        system_cpu_usage: Some(s.system_cpu_usage),
        online_cpus: Some(s.online_cpus),
        throttling_data: Some(ContainerThrottlingData {
            periods: Some(s.throttling_periods),
            throttled_periods: Some(s.throttled_periods),
            throttled_time: Some(s.throttled_time),
        }),
    }
}

/// Per-interface counters of `/proc/<pid>/net/dev` (the network namespace of `pid`), without
/// loopback: Docker's `networks` member, keyed by interface, counting the container's
/// endpoints (so a container with loopback only has none).
fn parse_net_dev(text: &str) -> HashMap<String, ContainerNetworkStats> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let name = name.trim();
            let n: Vec<u64> = counters
                .split_whitespace()
                .map(|v| v.parse().ok())
                .collect::<Option<_>>()?;
            if name == "lo" || n.len() < 12 {
                return None;
            }
            Some((
                name.to_string(),
                ContainerNetworkStats {
                    rx_bytes: Some(n[0]),
                    rx_packets: Some(n[1]),
                    rx_errors: Some(n[2]),
                    rx_dropped: Some(n[3]),
                    tx_bytes: Some(n[8]),
                    tx_packets: Some(n[9]),
                    tx_errors: Some(n[10]),
                    tx_dropped: Some(n[11]),
                    ..Default::default()
                },
            ))
        })
        .collect()
}

/// The `networks` member: omitted on the host's network (Docker's host sandbox has no
/// endpoint) and when the container has no interface but loopback, as Docker omits it.
fn networks(rec: &crate::store::ContainerRecord) -> Option<HashMap<String, ContainerNetworkStats>> {
    if rec.host_config.network_mode.as_deref() == Some("host") || rec.state.pid <= 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{}/net/dev", rec.state.pid)).ok()?;
    Some(parse_net_dev(&text)).filter(|n| !n.is_empty())
}

/// One sample; `prev` provides `precpu_stats` and `preread`.
fn sample(c: &Container, prev: Option<&ContainerStatsResponse>) -> ContainerStatsResponse {
    let rec = c.rec();
    let mut out = ContainerStatsResponse {
        id: Some(c.id.clone()),
        name: Some(rec.name.clone()),
        os_type: Some("linux".into()),
        read: Some(ZERO_TIME.into()),
        preread: Some(
            prev.and_then(|p| p.read.clone())
                .unwrap_or_else(|| ZERO_TIME.into()),
        ),
        cpu_stats: Some(ContainerCpuStats::default()),
        precpu_stats: Some(prev.and_then(|p| p.cpu_stats.clone()).unwrap_or_default()),
        memory_stats: Some(ContainerMemoryStats::default()),
        pids_stats: Some(ContainerPidsStats::default()),
        blkio_stats: Some(ContainerBlkioStats::default()),
        num_procs: Some(0),
        ..Default::default()
    };
    if !rec.state.status.is_alive() {
        return out;
    }
    match cgroups::stats(&c.cgroups_path()) {
        Ok(s) => {
            out.read = Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
            out.cpu_stats = Some(cpu_stats(&s.cpu));
            out.memory_stats = Some(ContainerMemoryStats {
                usage: Some(s.memory.usage),
                max_usage: Some(s.memory.max_usage),
                stats: Some(
                    s.memory
                        .stats
                        .iter()
                        .map(|(k, v)| (k.clone(), *v))
                        .collect::<HashMap<_, _>>(),
                ),
                failcnt: Some(s.memory.failcnt),
                limit: Some(s.memory.limit.unwrap_or_else(host_memory)),
                ..Default::default()
            });
            out.pids_stats = Some(ContainerPidsStats {
                current: Some(s.pids.current),
                limit: s.pids.limit,
            });
            out.networks = networks(&rec);
        }
        Err(e) => tracing::debug!(id = %c.id, error = %e, "reading cgroup stats"),
    }
    out
}

impl Engine {
    pub(crate) async fn do_stats(
        &self,
        key: &str,
        stream: bool,
        one_shot: bool,
    ) -> Result<BoxStream<'static, ContainerStatsResponse>> {
        let c = self.find(key)?;
        if !stream {
            let first = sample(&c, None);
            if one_shot || !c.rec().state.status.is_alive() {
                return Ok(futures::stream::once(async move { first }).boxed());
            }
            let c2 = c.clone();
            return Ok(futures::stream::once(async move {
                tokio::time::sleep(INTERVAL).await;
                sample(&c2, Some(&first))
            })
            .boxed());
        }
        let life = c.life.subscribe();
        let state: (Arc<Container>, Option<ContainerStatsResponse>, bool, _) =
            (c, None, false, life);
        Ok(
            futures::stream::unfold(state, |(c, prev, waited, life)| async move {
                if waited {
                    tokio::time::sleep(INTERVAL).await;
                }
                let (running, removed) = {
                    let l = life.borrow();
                    (l.running, l.removed)
                };
                if removed || (prev.is_some() && !running) {
                    return None;
                }
                let s = sample(&c, prev.as_ref());
                Some((s.clone(), (c, Some(s), true, life)))
            })
            .boxed(),
        )
    }

    pub(crate) async fn do_top(
        &self,
        key: &str,
        ps_args: Option<&str>,
    ) -> Result<ContainerTopResponse> {
        let c = self.find(key)?;
        if !c.rec().state.status.is_alive() {
            return Err(EngineError::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        let pids =
            cgroups::pids(&c.cgroups_path()).map_err(|e| EngineError::Conflict(e.to_string()))?;
        match ps_args.map(str::trim).filter(|a| !a.is_empty()) {
            None => Ok(proc_top(&pids)),
            Some(args) => ps_top(args, &pids).await,
        }
    }
}

/// `ps -ef`-like rows from /proc.
fn proc_top(pids: &[i32]) -> ContainerTopResponse {
    let titles = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        .map(str::to_string)
        .to_vec();
    let users = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let rows = pids
        .iter()
        .filter_map(|pid| proc_row(*pid, &users))
        .collect();
    ContainerTopResponse {
        titles: Some(titles),
        processes: Some(rows),
    }
}

fn proc_row(pid: i32, passwd: &str) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let (comm, rest) = stat
        .split_once(" (")
        .and_then(|(_, r)| r.rsplit_once(") "))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): field n is f[n - 3].
    let num = |n: usize| {
        f.get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no memory-safety preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0);
    let cpu_secs = (num(14) + num(15)) / tick;
    let start_secs = num(22) as f64 / tick as f64;
    let elapsed = (uptime - start_secs).max(1.0);
    let c = ((cpu_secs as f64 / elapsed) * 100.0) as u64;
    let boot = chrono::Utc::now().timestamp() as f64 - uptime;
    let stime = chrono::DateTime::from_timestamp((boot + start_secs) as i64, 0)
        .map(|t| t.with_timezone(&chrono::Local).format("%H:%M").to_string())
        .unwrap_or_default();
    let tty_nr = num(7);
    let (major, minor) = (
        (tty_nr >> 8) & 0xfff,
        (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00),
    );
    let tty = match major {
        0 => "?".to_string(),
        136..=143 => format!("pts/{}", minor + (major - 136) * 256),
        4 => format!("tty{minor}"),
        _ => "?".to_string(),
    };
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())?;
    let user = passwd
        .lines()
        .find_map(|l| {
            let mut p = l.split(':');
            let name = p.next()?;
            (p.nth(1)? == uid).then(|| name.to_string())
        })
        .unwrap_or_else(|| uid.to_string());
    let cmd = if cmdline.is_empty() {
        format!("[{comm}]")
    } else {
        cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let time = format!(
        "{:02}:{:02}:{:02}",
        cpu_secs / 3600,
        cpu_secs / 60 % 60,
        cpu_secs % 60
    );
    Some(vec![
        user,
        pid.to_string(),
        num(4).to_string(),
        c.to_string(),
        stime,
        tty,
        time,
        cmd,
    ])
}

/// `docker top ID <ps args>`: the host's `ps` with those arguments, filtered to the
/// container's processes by the PID column, like dockerd.
async fn ps_top(args: &str, pids: &[i32]) -> Result<ContainerTopResponse> {
    let output = tokio::process::Command::new("ps")
        .args(args.split_whitespace())
        .output()
        .await
        .map_err(|e| EngineError::invalid(format!("ps: {e}")))?;
    if !output.status.success() {
        return Err(EngineError::invalid(format!(
            "ps: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    parse_ps(&String::from_utf8_lossy(&output.stdout), pids)
}

fn parse_ps(text: &str, pids: &[i32]) -> Result<ContainerTopResponse> {
    let mut lines = text.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| EngineError::invalid("Couldn't find PID field in ps output"))?;
    let mut rows = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Ok(pid) = fields[pid_col].parse::<i32>() else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        let mut row: Vec<String> = fields[..titles.len() - 1]
            .iter()
            .map(|s| s.to_string())
            .collect();
        row.push(fields[titles.len() - 1..].join(" "));
        rows.push(row);
    }
    Ok(ContainerTopResponse {
        titles: Some(titles),
        processes: Some(rows),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_counters_per_interface_without_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     420       6    0    0    0     0          0         0      420       6    0    0    0     0       0          0
  eth0: 1296       16    1    2    0     0          0         0      936      12    3    4    0     0       0          0
";
        let got = parse_net_dev(text);
        assert_eq!(got.len(), 1, "{got:?}");
        let eth0 = &got["eth0"];
        assert_eq!(
            (
                eth0.rx_bytes,
                eth0.rx_packets,
                eth0.rx_errors,
                eth0.rx_dropped
            ),
            (Some(1296), Some(16), Some(1), Some(2))
        );
        assert_eq!(
            (
                eth0.tx_bytes,
                eth0.tx_packets,
                eth0.tx_errors,
                eth0.tx_dropped
            ),
            (Some(936), Some(12), Some(3), Some(4))
        );
        assert!(parse_net_dev(&text.lines().take(3).collect::<Vec<_>>().join("\n")).is_empty());
    }

    #[test]
    fn ps_output_is_filtered_by_pid_and_keeps_the_command_whole() {
        let text = "UID PID PPID CMD\nroot 1 0 /sbin/init splash\nroot 42 1 sh -c sleep 10\n";
        let top = parse_ps(text, &[42]).unwrap();
        assert_eq!(top.titles.unwrap(), vec!["UID", "PID", "PPID", "CMD"]);
        assert_eq!(
            top.processes.unwrap(),
            vec![vec!["root", "42", "1", "sh -c sleep 10"]]
        );
        assert!(parse_ps("USER CMD\n", &[]).is_err());
    }

    #[test]
    fn own_process_reads_like_ps() {
        let me = std::process::id() as i32;
        let row = proc_row(me, "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        assert_eq!(row[1], me.to_string());
        assert_eq!(row.len(), 8);
        assert!(row[7].contains("skiff_engine"), "{}", row[7]);
    }
}
