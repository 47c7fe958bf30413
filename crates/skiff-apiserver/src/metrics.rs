//! Resource metrics (`metrics.k8s.io/v1beta1`): the [`MetricsProvider`] seam through which
//! nodes report usage, and the read-only get and list the API answers from it. Until a
//! provider has data, lists are empty and gets are 404, as on a cluster whose
//! metrics-server has not scraped yet (`kubectl top` says "metrics not available yet").
//!
//! [`PerNodeMetrics`] is the provider of a cluster: each node connects a [`NodeMetricsSource`]
//! (the local node in-process, remote nodes through their kubelet API) and the API answers
//! from all of them, as metrics-server answers from its scrapes of every kubelet.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::response::Response;
use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::handlers::{reply, Ctx, Filter};
use crate::http::{self as wire, Want};
use crate::kinds::metrics::{ContainerMetrics, NodeMetrics, PodMetrics};

/// Where resource usage comes from.
pub trait MetricsProvider: Send + Sync {
    /// The latest usage of every node.
    fn node_metrics(&self) -> Vec<NodeMetrics>;
    /// The latest usage of the pods of `namespace` (every namespace when None).
    fn pod_metrics(&self, namespace: Option<&str>) -> Vec<PodMetrics>;
}

/// A provider with no data yet.
#[derive(Debug, Default)]
pub struct NoMetrics;

impl MetricsProvider for NoMetrics {
    fn node_metrics(&self) -> Vec<NodeMetrics> {
        Vec::new()
    }

    fn pod_metrics(&self, _namespace: Option<&str>) -> Vec<PodMetrics> {
        Vec::new()
    }
}

/// One node's latest usage.
pub trait NodeMetricsSource: Send + Sync {
    /// The node's own usage (None until it has a sample).
    fn node(&self) -> Option<NodeMetrics>;
    /// The usage of the pods running on the node.
    fn pods(&self) -> Vec<PodMetrics>;
}

/// The cluster's provider: the union of the connected nodes' sources. A node connected
/// in-process wins over what was scraped from its kubelet API.
#[derive(Default)]
pub struct PerNodeMetrics {
    sources: RwLock<BTreeMap<String, Arc<dyn NodeMetricsSource>>>,
    scraped: RwLock<BTreeMap<String, Arc<dyn NodeMetricsSource>>>,
}

impl PerNodeMetrics {
    /// Node `name` reports through `source` from now on (replacing an earlier source).
    pub fn connect(&self, name: &str, source: Arc<dyn NodeMetricsSource>) {
        self.sources
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), source);
    }

    /// Node `name` reports nothing any more.
    pub fn disconnect(&self, name: &str) {
        self.sources
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// Whether node `name` reports in-process (its kubelet API need not be scraped).
    pub fn is_connected(&self, name: &str) -> bool {
        self.sources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
    }

    /// What was last scraped from each node's kubelet API, replacing the previous scrape
    /// (nodes not in `scraped` report nothing from there any more).
    pub fn set_scraped(&self, scraped: BTreeMap<String, Arc<dyn NodeMetricsSource>>) {
        *self.scraped.write().unwrap_or_else(|e| e.into_inner()) = scraped;
    }

    fn all(&self) -> Vec<Arc<dyn NodeMetricsSource>> {
        let sources = self.sources.read().unwrap_or_else(|e| e.into_inner());
        let scraped = self.scraped.read().unwrap_or_else(|e| e.into_inner());
        sources
            .values()
            .cloned()
            .chain(
                scraped
                    .iter()
                    .filter(|(name, _)| !sources.contains_key(*name))
                    .map(|(_, s)| s.clone()),
            )
            .collect()
    }
}

impl MetricsProvider for PerNodeMetrics {
    fn node_metrics(&self) -> Vec<NodeMetrics> {
        self.all().iter().filter_map(|s| s.node()).collect()
    }

    fn pod_metrics(&self, namespace: Option<&str>) -> Vec<PodMetrics> {
        let mut out: Vec<PodMetrics> = self
            .all()
            .iter()
            .flat_map(|s| s.pods())
            .filter(|p| namespace.is_none() || p.metadata.namespace.as_deref() == namespace)
            .collect();
        out.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        out
    }
}

/// A Go duration string of `d` (`10.012s`), as metrics-server writes `window`.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    let (s, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    }
}

/// `cpu` in nanocores and `memory` in bytes as metrics-server writes them (`123n`, `456Ki`).
pub fn usage(cpu_nano_cores: u64, memory_bytes: u64) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(format!("{cpu_nano_cores}n"))),
        (
            "memory".to_string(),
            Quantity(format!("{}Ki", memory_bytes / 1024)),
        ),
    ])
}

fn time(t: DateTime<Utc>) -> Time {
    Time(
        k8s_openapi::jiff::Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32)
            .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now()),
    )
}

/// A NodeMetrics object.
pub fn node_metrics(
    name: &str,
    timestamp: DateTime<Utc>,
    window: Duration,
    usage: BTreeMap<String, Quantity>,
) -> NodeMetrics {
    NodeMetrics {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            creation_timestamp: Some(Time(k8s_openapi::jiff::Timestamp::now())),
            ..Default::default()
        },
        timestamp: Some(time(timestamp)),
        window: go_duration(window),
        usage,
    }
}

/// A PodMetrics object of `containers` (name, usage).
pub fn pod_metrics(
    namespace: &str,
    name: &str,
    timestamp: DateTime<Utc>,
    window: Duration,
    containers: Vec<(String, BTreeMap<String, Quantity>)>,
) -> PodMetrics {
    PodMetrics {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            creation_timestamp: Some(Time(k8s_openapi::jiff::Timestamp::now())),
            ..Default::default()
        },
        timestamp: Some(time(timestamp)),
        window: go_duration(window),
        containers: containers
            .into_iter()
            .map(|(name, usage)| ContainerMetrics { name, usage })
            .collect(),
    }
}

/// The objects of the request's kind, as JSON, filtered by namespace. Pod metrics carry their
/// pod's labels (as metrics-server's do, so `kubectl top pods -l` selects) and are dropped
/// once the pod is gone from the API.
async fn objects(ctx: Ctx<'_>) -> Result<Vec<Value>, ApiError> {
    let info = ctx.info();
    let provider = ctx.state.metrics();
    let (api_version, kind) = (info.api_version(), info.kind);
    let items: Vec<Value> = if info.namespaced {
        let pods = crate::resources::find("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("pods are not served"))?
            .info();
        let page = ctx
            .state
            .storage
            .list(pods, ctx.ns(), None, 0, None)
            .await?;
        let labels: std::collections::HashMap<(String, String), Value> = page
            .items
            .iter()
            .map(|p| {
                let key = (
                    p.pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    crate::object::name(p).to_string(),
                );
                (
                    key,
                    p.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                )
            })
            .collect();
        provider
            .pod_metrics(ctx.ns())
            .into_iter()
            .filter_map(|m| serde_json::to_value(m).ok())
            .filter_map(|mut m| {
                let key = (
                    m.pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    crate::object::name(&m).to_string(),
                );
                m["metadata"]["labels"] = labels.get(&key)?.clone();
                Some(m)
            })
            .collect()
    } else {
        provider
            .node_metrics()
            .into_iter()
            .filter_map(|m| serde_json::to_value(m).ok())
            .collect()
    };
    Ok(items
        .into_iter()
        .map(|mut o| {
            o["apiVersion"] = json!(api_version);
            o["kind"] = json!(kind);
            o
        })
        .collect())
}

/// GET of one object or of the list; every other verb is refused.
pub(crate) async fn serve(ctx: Ctx<'_>, verb: &str) -> Result<Response, ApiError> {
    read_only(ctx, verb, objects(ctx)).await
}

/// GET of one of `objects` (all of the request's kind, made only for a get or a list) or of
/// their list; every other verb is refused.
pub(crate) async fn read_only(
    ctx: Ctx<'_>,
    verb: &str,
    objects: impl std::future::Future<Output = Result<Vec<Value>, ApiError>>,
) -> Result<Response, ApiError> {
    let info = ctx.info();
    match verb {
        "get" => {
            let obj = objects
                .await?
                .into_iter()
                .find(|o| crate::object::name(o) == ctx.name())
                .ok_or_else(|| ApiError::not_found(info.group, info.plural, ctx.name()))?;
            reply(ctx, 200, &obj)
        }
        "list" => {
            let filter = Filter::from_ctx(ctx)?;
            let items: Vec<Value> = objects
                .await?
                .into_iter()
                .filter(|o| filter.matches(o))
                .collect();
            Ok(match wire::negotiate(ctx.headers) {
                Want::Table => wire::json(
                    200,
                    &crate::table::table(ctx.kind(), &items, "", ctx.params),
                ),
                _ => wire::json(
                    200,
                    &json!({"kind": format!("{}List", info.kind), "apiVersion": info.api_version(),
                        "metadata": {}, "items": items}),
                ),
            })
        }
        // kube-apiserver's answer to a verb a resource does not serve.
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, &'static [(&'static str, &'static str)]);

    impl NodeMetricsSource for Fixed {
        fn node(&self) -> Option<NodeMetrics> {
            Some(node_metrics(
                self.0,
                Utc::now(),
                Duration::from_secs(10),
                usage(1, 2048),
            ))
        }
        fn pods(&self) -> Vec<PodMetrics> {
            self.1
                .iter()
                .map(|(ns, n)| pod_metrics(ns, n, Utc::now(), Duration::from_secs(10), vec![]))
                .collect()
        }
    }

    #[test]
    fn the_cluster_answers_from_every_connected_node() {
        let p = PerNodeMetrics::default();
        p.connect(
            "a",
            Arc::new(Fixed("a", &[("default", "x"), ("kube-system", "y")])),
        );
        p.connect("b", Arc::new(Fixed("b", &[("default", "w")])));
        let nodes: Vec<_> = p
            .node_metrics()
            .into_iter()
            .map(|n| n.metadata.name.unwrap())
            .collect();
        assert_eq!(nodes, ["a", "b"]);
        let pods: Vec<_> = p
            .pod_metrics(Some("default"))
            .into_iter()
            .map(|n| n.metadata.name.unwrap())
            .collect();
        assert_eq!(pods, ["w", "x"]);
        assert_eq!(p.pod_metrics(None).len(), 3);
        p.disconnect("a");
        assert_eq!(p.node_metrics().len(), 1);
        assert_eq!(p.pod_metrics(None).len(), 1);
    }

    #[test]
    fn scraped_nodes_join_and_an_in_process_node_wins_over_its_scrape() {
        let p = PerNodeMetrics::default();
        p.connect("local", Arc::new(Fixed("local", &[("default", "a")])));
        p.set_scraped(BTreeMap::from([
            (
                "local".to_string(),
                Arc::new(Fixed("local", &[("default", "stale")])) as Arc<dyn NodeMetricsSource>,
            ),
            (
                "remote".to_string(),
                Arc::new(Fixed("remote", &[("default", "b")])) as Arc<dyn NodeMetricsSource>,
            ),
        ]));
        assert!(p.is_connected("local") && !p.is_connected("remote"));
        let pods: Vec<_> = p
            .pod_metrics(None)
            .into_iter()
            .map(|n| n.metadata.name.unwrap())
            .collect();
        assert_eq!(pods, ["a", "b"]);
        assert_eq!(p.node_metrics().len(), 2);
        p.set_scraped(BTreeMap::new());
        assert_eq!(p.node_metrics().len(), 1);
    }

    #[test]
    fn windows_and_quantities_read_as_metrics_server_writes_them() {
        assert_eq!(go_duration(Duration::from_millis(10_500)), "10.5s");
        assert_eq!(go_duration(Duration::from_millis(10_012)), "10.012s");
        assert_eq!(go_duration(Duration::from_secs(15)), "15s");
        let u = usage(1_500_000, 10 * 1024 * 1024 + 100);
        assert_eq!(u["cpu"].0, "1500000n");
        assert_eq!(u["memory"].0, "10240Ki");
    }
}
