//! core/v1 Namespaces: the `kubernetes` finalizer in `spec.finalizers` that the namespace
//! controller (in skiff-controllers) removes through `/finalize` once the namespace is empty, that
//! subresource, the `Terminating` phase, the namespaces every cluster has (and which of them
//! may not be deleted: [`crate::namespaces::may_delete`]) and the `default` ServiceAccount
//! each one gets.

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Namespace;
use k8s_pb::api::core::v1 as pb;
use serde_json::{json, Value};

use crate::defaults::{ensure, set};
use crate::error::ApiError;
use crate::object;
use crate::registry::{keep, Admission, Kind, Strategy};
use crate::resources::{Entry, ResourceInfo, Sub};
use crate::router::ApiState;
use crate::table::{col, str_or_none, Column, AGE, NAME};
use crate::validation::NameRule;

/// The finalizer in `spec.finalizers` the namespace controller removes.
pub const FINALIZER: &str = "kubernetes";

pub struct Namespaces;

/// The namespaces resource (the namespace controller and admission look for it).
pub fn info() -> &'static ResourceInfo {
    Namespaces.info()
}

impl Strategy for Namespaces {
    type Object = Namespace;
    type Protobuf = pb::Namespace;
    const RESOURCE: Entry = Entry {
        short_names: &["ns"],
        subresources: &[Sub::Status, Sub::Finalize],
        ..Entry::DEFAULT
    };
    const FIELD_SELECTORS: &'static [&'static str] = &["status.phase"];
    const NAME: NameRule = NameRule::Label;
    const COLUMNS: &'static [Column] = &[NAME, col("Status"), AGE];

    fn defaults(&self, obj: &mut Value) {
        set(ensure(obj, "spec"), "finalizers", json!([FINALIZER]));
        set(ensure(obj, "status"), "phase", json!("Active"));
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        let name = json!(object::name(obj));
        if let Some(l) = object::meta_mut(obj)
            .entry("labels")
            .or_insert_with(|| json!({}))
            .as_object_mut()
        {
            l.insert("kubernetes.io/metadata.name".into(), name);
        }
        obj["status"] = json!({"phase": "Active"});
        if obj.pointer("/spec/finalizers").is_none() {
            obj["spec"]["finalizers"] = json!([FINALIZER]);
        }
    }

    /// The main resource changes neither status nor `spec.finalizers` (that is `/finalize`'s).
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        keep(new, old, "status");
        match old.pointer("/spec/finalizers") {
            Some(f) => new["spec"]["finalizers"] = f.clone(),
            None => {
                if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.remove("finalizers");
                }
            }
        }
    }

    fn prepare_for_subresource(&self, sub: Sub, new: Value, old: &Value) -> Value {
        let mut out = old.clone();
        match sub {
            Sub::Finalize => {
                out["spec"]["finalizers"] = new
                    .pointer("/spec/finalizers")
                    .cloned()
                    .unwrap_or(json!([]));
            }
            _ => keep(&mut out, &new, "status"),
        }
        out
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        vec![
            crate::table::name(obj),
            str_or_none(obj, "/status/phase"),
            crate::table::age(obj),
        ]
    }

    /// A namespace is only removed once its `spec.finalizers` are gone too.
    fn deletion_pending(&self, obj: &Value) -> bool {
        obj.pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    }

    fn prepare_for_delete(&self, obj: &mut Value) {
        obj["status"]["phase"] = json!("Terminating");
    }

    fn bootstrap(&self) -> Vec<Value> {
        ["default", "kube-system", "kube-public", "kube-node-lease"]
            .into_iter()
            .map(|ns| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .collect()
    }

    fn admit<'a>(
        &'a self,
        state: &'a ApiState,
        op: Admission<'a>,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            match op {
                Admission::Created { obj } => {
                    ensure_default_service_account(state, object::name(obj)).await
                }
                // NamespaceLifecycle: the cluster's own namespaces stay.
                Admission::Delete { obj, .. } => crate::namespaces::may_delete(object::name(obj)),
                _ => Ok(()),
            }
        })
    }
}

/// Every namespace has a `default` ServiceAccount.
async fn ensure_default_service_account(state: &ApiState, ns: &str) -> Result<(), ApiError> {
    let info = super::serviceaccount::ServiceAccounts.info();
    if state
        .storage
        .get(info, Some(ns), "default")
        .await?
        .is_some()
    {
        return Ok(());
    }
    let mut sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}});
    let meta = object::meta_mut(&mut sa);
    meta.insert("uid".into(), json!(object::new_uid()));
    meta.insert("creationTimestamp".into(), json!(object::now()));
    match state.storage.create(info, sa).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "AlreadyExists" => Ok(()),
        Err(e) => Err(e),
    }
}
