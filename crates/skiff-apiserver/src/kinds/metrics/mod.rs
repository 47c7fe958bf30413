//! The `metrics.k8s.io` group: node and pod resource usage, read-only, answered by the
//! server's [`crate::metrics::MetricsProvider`] instead of the store (what metrics-server
//! serves through API aggregation in Kubernetes). `kubectl top` reads it.

mod types;

pub mod nodemetrics;
pub mod podmetrics;

pub use types::{ContainerMetrics, NodeMetrics, PodMetrics};
