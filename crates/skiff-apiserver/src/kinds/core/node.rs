//! core/v1 Nodes: registered by their agents with their status (kept on create), printed
//! with readiness, roles and system info.

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Node;
use k8s_pb::api::core::v1 as pb;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::nodeipam;
use crate::registry::{Admission, Strategy};
use crate::resources::{Entry, Sub};
use crate::router::ApiState;
use crate::table::{age, arr, col, join_or, name, str_at, str_or_none, wide, Column, AGE, NAME};

pub struct Nodes;

impl Strategy for Nodes {
    type Object = Node;
    type Protobuf = pb::Node;
    const RESOURCE: Entry = Entry {
        short_names: &["no"],
        subresources: &[Sub::Status],
        ..Entry::DEFAULT
    };
    const FIELD_SELECTORS: &'static [&'static str] = &["spec.unschedulable"];
    const COLUMNS: &'static [Column] = &[
        NAME,
        col("Status"),
        col("Roles"),
        AGE,
        col("Version"),
        wide("Internal-IP"),
        wide("External-IP"),
        wide("OS-Image"),
        wide("Kernel-Version"),
        wide("Container-Runtime"),
    ];

    /// A node registers with the status its agent observed.
    fn prepare_for_create(&self, _obj: &mut Value) {}

    fn cells(&self, obj: &Value) -> Vec<Value> {
        node_cells(obj)
    }

    /// Pod CIDRs ([`nodeipam`]): reserved on create, kept and never changed on update, freed
    /// when the create is given up and when the Node is deleted. Each hook frees only a
    /// subnet this Node's uid holds.
    fn admit<'a>(
        &'a self,
        state: &'a ApiState,
        op: Admission<'a>,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            match op {
                Admission::Create { obj, dry_run, .. } => {
                    nodeipam::allocate(state, obj, dry_run).await
                }
                Admission::CreateAborted { obj, dry_run } => {
                    if !dry_run {
                        nodeipam::release(state, obj).await;
                    }
                    Ok(())
                }
                Admission::Update {
                    new,
                    old,
                    sub: None,
                    dry_run,
                    ..
                } => nodeipam::update(state, old, new, dry_run).await,
                Admission::UpdateAborted { new, old, dry_run } => {
                    if !dry_run && new["spec"]["podCIDR"] != old["spec"]["podCIDR"] {
                        nodeipam::release(state, new).await;
                    }
                    Ok(())
                }
                Admission::Deleted { obj } => {
                    nodeipam::release(state, obj).await;
                    Ok(())
                }
                _ => Ok(()),
            }
        })
    }
}

fn node_cells(o: &Value) -> Vec<Value> {
    let ready = arr(o, "/status/conditions")
        .into_iter()
        .find(|c| c.get("type") == Some(&json!("Ready")))
        .map(|c| match c.get("status").and_then(Value::as_str) {
            Some("True") => "Ready",
            Some("False") => "NotReady",
            _ => "Unknown",
        })
        .unwrap_or("Unknown");
    let mut status = ready.to_string();
    if o.pointer("/spec/unschedulable") == Some(&json!(true)) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
                Some(r.to_string())
            } else if k == "kubernetes.io/role" {
                v.as_str().map(String::from)
            } else {
                None
            }
        })
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort();
    let address = |ty: &str| {
        arr(o, "/status/addresses")
            .into_iter()
            .find(|a| a.get("type").and_then(Value::as_str) == Some(ty))
            .and_then(|a| a.get("address").and_then(Value::as_str))
            .unwrap_or("<none>")
            .to_string()
    };
    vec![
        name(o),
        json!(status),
        json!(join_or(&roles, "<none>")),
        age(o),
        json!(str_at(o, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        str_or_none(o, "/status/nodeInfo/osImage"),
        str_or_none(o, "/status/nodeInfo/kernelVersion"),
        str_or_none(o, "/status/nodeInfo/containerRuntimeVersion"),
    ]
}
