//! Resource metrics of nodes that do not run in this process: every period the server reads
//! `GET /stats/summary?only_cpu_and_memory=true` from the kubelet API of each Ready Node
//! (with its kubelet-client certificate, [`crate::kubelet_client`]) and hands the result to
//! the default metrics provider ([`crate::metrics::PerNodeMetrics`]), as metrics-server
//! scrapes every kubelet. A node connected in-process (the server's local node) is not
//! scraped; a node that stops answering or turns NotReady drops out at the next round.
//!
//! The summary already carries rates (the node samples twice per window), so one scrape is
//! enough; the window reported is the scrape period.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use skiff_core::statsapi::{CpuStats, MemoryStats, Summary};

use crate::kinds::metrics::{NodeMetrics, PodMetrics};
use crate::metrics::{self as m, NodeMetricsSource};
use crate::router::ApiState;

/// A summary larger than this is refused (a node with thousands of pods stays far below).
const MAX_SUMMARY: usize = 16 << 20;
/// How long one node's answer may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// One node's latest scrape.
struct Scraped {
    node: Option<NodeMetrics>,
    pods: Vec<PodMetrics>,
}

impl NodeMetricsSource for Scraped {
    fn node(&self) -> Option<NodeMetrics> {
        self.node.clone()
    }
    fn pods(&self) -> Vec<PodMetrics> {
        self.pods.clone()
    }
}

/// The time and usage of one CPU and memory pair, when both are there.
fn usage(
    cpu: &Option<CpuStats>,
    memory: &Option<MemoryStats>,
) -> Option<(DateTime<Utc>, u64, u64)> {
    let (cpu, memory) = (cpu.as_ref()?, memory.as_ref()?);
    let at = DateTime::parse_from_rfc3339(&cpu.time).ok()?.to_utc();
    Some((at, cpu.usage_nano_cores?, memory.working_set_bytes?))
}

/// The metrics in `summary` of node `name`, with `window`. The summary's own node name must
/// be `name` (a node answers only for itself); pods and containers without figures are left
/// out, as metrics-server leaves them out.
fn from_summary(name: &str, summary: &Summary, window: Duration) -> Option<Scraped> {
    if summary.node.node_name != name {
        return None;
    }
    let node = usage(&summary.node.cpu, &summary.node.memory)
        .map(|(at, cpu, mem)| m::node_metrics(name, at, window, m::usage(cpu, mem)));
    let pods = summary
        .pods
        .iter()
        .filter_map(|p| {
            let mut at = None;
            let containers: Vec<_> = p
                .containers
                .iter()
                .filter_map(|c| {
                    let (t, cpu, mem) = usage(&c.cpu, &c.memory)?;
                    at = Some(at.map_or(t, |a: DateTime<Utc>| a.max(t)));
                    Some((c.name.clone(), m::usage(cpu, mem)))
                })
                .collect();
            let at = at.or_else(|| usage(&p.cpu, &p.memory).map(|u| u.0))?;
            Some(m::pod_metrics(
                &p.pod_ref.namespace,
                &p.pod_ref.name,
                at,
                window,
                containers,
            ))
        })
        .collect();
    Some(Scraped { node, pods })
}

fn ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Reads node `node`'s summary.
async fn scrape(state: &ApiState, node: &Value, window: Duration) -> Result<Scraped, String> {
    use http_body_util::BodyExt;
    let name = crate::object::name(node).to_string();
    let kubelet = state.kubelet().map_err(|e| e.message)?;
    let req = http::Request::builder()
        .uri("/stats/summary?only_cpu_and_memory=true")
        .body(axum::body::Body::empty())
        .map_err(|e| e.to_string())?;
    let response = kubelet.request(node, req).await.map_err(|e| e.message)?;
    if !response.status().is_success() {
        return Err(format!("the kubelet answered {}", response.status()));
    }
    let body = http_body_util::Limited::new(response.into_body(), MAX_SUMMARY)
        .collect()
        .await
        .map_err(|e| format!("reading the summary: {e}"))?
        .to_bytes();
    let summary: Summary =
        serde_json::from_slice(&body).map_err(|e| format!("an invalid summary: {e}"))?;
    from_summary(&name, &summary, window)
        .ok_or_else(|| format!("the summary is of node {:?}", summary.node.node_name))
}

/// One round: every Ready node not connected in-process, scraped concurrently.
async fn round(state: &ApiState, nodes: &crate::metrics::PerNodeMetrics, window: Duration) {
    let Some(kind) = crate::resources::find("", "v1", "nodes") else {
        return;
    };
    let listed = match state.storage.list(kind.info(), None, None, 0, None).await {
        Ok(page) => page.items,
        Err(e) => {
            tracing::warn!(error = %e.message, "cannot list nodes to scrape");
            return;
        }
    };
    let wanted: Vec<&Value> = listed
        .iter()
        .filter(|n| ready(n) && !nodes.is_connected(crate::object::name(n)))
        .collect();
    let scrapes = wanted.iter().map(|n| async move {
        let name = crate::object::name(n).to_string();
        let got = tokio::time::timeout(SCRAPE_TIMEOUT, scrape(state, n, window))
            .await
            .unwrap_or_else(|_| Err("no answer in time".into()));
        (name, got)
    });
    let mut scraped: BTreeMap<String, Arc<dyn NodeMetricsSource>> = BTreeMap::new();
    for (name, got) in futures::future::join_all(scrapes).await {
        match got {
            Ok(s) => {
                scraped.insert(name, Arc::new(s));
            }
            Err(e) => tracing::debug!(node = %name, error = %e, "cannot scrape node metrics"),
        }
    }
    nodes.set_scraped(scraped);
}

/// Scrapes every `period` until `stop` completes.
pub(crate) async fn run(
    state: Arc<ApiState>,
    nodes: Arc<crate::metrics::PerNodeMetrics>,
    period: Duration,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(period.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        round(&state, &nodes, period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary(node: &str) -> Summary {
        serde_json::from_value(json!({
            "node": {"nodeName": node,
                "cpu": {"time": "2024-01-01T00:01:00Z", "usageNanoCores": 250_000_000u64},
                "memory": {"time": "2024-01-01T00:01:00Z", "workingSetBytes": 2_097_152u64}},
            "pods": [
                {"podRef": {"name": "web", "namespace": "default", "uid": "u"},
                 "containers": [{"name": "main",
                    "cpu": {"time": "2024-01-01T00:01:00Z", "usageNanoCores": 5_000_000u64},
                    "memory": {"time": "2024-01-01T00:01:00Z", "workingSetBytes": 1_048_576u64}}]},
                {"podRef": {"name": "new", "namespace": "default", "uid": "v"},
                 "containers": [{"name": "main"}]}]}))
        .unwrap()
    }

    #[test]
    fn a_summary_becomes_node_and_pod_metrics() {
        let s = from_summary("n1", &summary("n1"), Duration::from_secs(2)).unwrap();
        let node = s.node.unwrap();
        assert_eq!(node.usage["cpu"].0, "250000000n");
        assert_eq!(node.usage["memory"].0, "2048Ki");
        assert_eq!(node.window, "2s");
        // The pod not sampled twice yet reports nothing.
        assert_eq!(s.pods.len(), 1);
        assert_eq!(s.pods[0].metadata.name.as_deref(), Some("web"));
        assert_eq!(s.pods[0].containers[0].usage["cpu"].0, "5000000n");
    }

    #[test]
    fn a_node_answering_for_another_is_ignored() {
        assert!(from_summary("n1", &summary("n2"), Duration::from_secs(2)).is_none());
    }

    #[test]
    fn only_ready_nodes_are_scraped() {
        let node = |status: &str| {
            json!({"metadata": {"name": "n"},
                "status": {"conditions": [{"type": "Ready", "status": status}]}})
        };
        assert!(ready(&node("True")));
        assert!(!ready(&node("Unknown")));
        assert!(!ready(&json!({"metadata": {"name": "n"}})));
    }
}
