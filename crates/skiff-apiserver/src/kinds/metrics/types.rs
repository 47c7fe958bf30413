//! The `metrics.k8s.io/v1beta1` types (k8s.io/metrics; k8s-openapi has no them): serde for
//! their JSON, schemars schemas for OpenAPI, and their resource entries.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

const GROUP: &str = "metrics.k8s.io";
const VERSION: &str = "v1beta1";
const API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// The resource usage of one node over `window` ending at `timestamp`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeMetrics {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Time>,
    /// A Go duration, e.g. `10.5s`.
    #[serde(default)]
    pub window: String,
    /// `cpu` and `memory`.
    #[serde(default)]
    pub usage: BTreeMap<String, Quantity>,
}

/// The resource usage of one pod's containers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMetrics {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Time>,
    #[serde(default)]
    pub window: String,
    #[serde(default)]
    pub containers: Vec<ContainerMetrics>,
}

/// One container's usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerMetrics {
    pub name: String,
    #[serde(default)]
    pub usage: BTreeMap<String, Quantity>,
}

impl k8s_openapi::Resource for NodeMetrics {
    const API_VERSION: &'static str = API_VERSION;
    const GROUP: &'static str = GROUP;
    const KIND: &'static str = "NodeMetrics";
    const VERSION: &'static str = VERSION;
    const URL_PATH_SEGMENT: &'static str = "nodes";
    type Scope = k8s_openapi::ClusterResourceScope;
}

impl k8s_openapi::Resource for PodMetrics {
    const API_VERSION: &'static str = API_VERSION;
    const GROUP: &'static str = GROUP;
    const KIND: &'static str = "PodMetrics";
    const VERSION: &'static str = VERSION;
    const URL_PATH_SEGMENT: &'static str = "pods";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

/// The schema of a `usage` map (resource name → quantity).
fn usage(gen: &mut SchemaGenerator) -> Schema {
    let q = gen.subschema_for::<Quantity>();
    json_schema!({"type": "object", "additionalProperties": q, "description": "The memory and CPU usage."})
}

/// The common properties of both metrics objects.
fn common(gen: &mut SchemaGenerator) -> serde_json::Map<String, serde_json::Value> {
    let mut p = serde_json::Map::new();
    p.insert("apiVersion".into(), serde_json::json!({"type": "string"}));
    p.insert("kind".into(), serde_json::json!({"type": "string"}));
    p.insert("metadata".into(), gen.subschema_for::<ObjectMeta>().into());
    p.insert("timestamp".into(), gen.subschema_for::<Time>().into());
    p.insert(
        "window".into(),
        serde_json::json!({"type": "string", "description": "The interval the usage was measured over."}),
    );
    p
}

impl JsonSchema for NodeMetrics {
    fn schema_name() -> Cow<'static, str> {
        "io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics".into()
    }

    fn json_schema(gen: &mut SchemaGenerator) -> Schema {
        let mut p = common(gen);
        p.insert("usage".into(), usage(gen).into());
        json_schema!({"description": "NodeMetrics sets resource usage metrics of a node.", "type": "object",
            "properties": p, "required": ["timestamp", "window", "usage"]})
    }
}

impl JsonSchema for ContainerMetrics {
    fn schema_name() -> Cow<'static, str> {
        "io.k8s.metrics.pkg.apis.metrics.v1beta1.ContainerMetrics".into()
    }

    fn json_schema(gen: &mut SchemaGenerator) -> Schema {
        let u = usage(gen);
        json_schema!({"description": "ContainerMetrics sets resource usage metrics of a container.", "type": "object",
            "properties": {"name": {"type": "string", "description": "Container name corresponding to the one from pod.spec.containers."}, "usage": u},
            "required": ["name", "usage"]})
    }
}

impl JsonSchema for PodMetrics {
    fn schema_name() -> Cow<'static, str> {
        "io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics".into()
    }

    fn json_schema(gen: &mut SchemaGenerator) -> Schema {
        let mut p = common(gen);
        let c = gen.subschema_for::<ContainerMetrics>();
        p.insert(
            "containers".into(),
            serde_json::json!({"type": "array", "items": c, "description": "Metrics for all containers are collected within the same time window."}),
        );
        json_schema!({"description": "PodMetrics sets resource usage metrics of a pod.", "type": "object",
            "properties": p, "required": ["timestamp", "window", "containers"]})
    }
}
