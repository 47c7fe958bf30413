//! Resource metrics (`metrics.k8s.io/v1beta1`): the [`MetricsProvider`] seam through which
//! nodes report usage, and the read-only get and list the API answers from it. Until a
//! provider has data, lists are empty and gets are 404, as on a cluster whose
//! metrics-server has not scraped yet (`kubectl top` says "metrics not available yet").

use axum::response::Response;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::handlers::{reply, Ctx, Filter};
use crate::http::{self as wire, Want};
use crate::kinds::metrics::{NodeMetrics, PodMetrics};

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

/// The objects of the request's kind, as JSON, filtered by namespace.
fn objects(ctx: Ctx<'_>) -> Vec<Value> {
    let info = ctx.info();
    let provider = ctx.state.metrics();
    let (api_version, kind) = (info.api_version(), info.kind);
    let items: Vec<Value> = if info.namespaced {
        provider
            .pod_metrics(ctx.ns())
            .into_iter()
            .filter_map(|m| serde_json::to_value(m).ok())
            .collect()
    } else {
        provider
            .node_metrics()
            .into_iter()
            .filter_map(|m| serde_json::to_value(m).ok())
            .collect()
    };
    items
        .into_iter()
        .map(|mut o| {
            o["apiVersion"] = json!(api_version);
            o["kind"] = json!(kind);
            o
        })
        .collect()
}

/// GET of one object or of the list; every other verb is refused.
pub(crate) async fn serve(ctx: Ctx<'_>, verb: &str) -> Result<Response, ApiError> {
    let info = ctx.info();
    match verb {
        "get" => {
            let obj = objects(ctx)
                .into_iter()
                .find(|o| crate::object::name(o) == ctx.name())
                .ok_or_else(|| ApiError::not_found(info.group, info.plural, ctx.name()))?;
            reply(ctx, 200, &obj)
        }
        "list" => {
            let filter = Filter::from_ctx(ctx)?;
            let items: Vec<Value> = objects(ctx)
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
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{verb} is not supported on {}.{}", info.plural, info.group),
        )),
    }
}
