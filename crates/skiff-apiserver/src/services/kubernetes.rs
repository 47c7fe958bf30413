//! The `default/kubernetes` Service (ClusterIP = the first address of the service CIDR, port
//! 443 → the API server's port) and its Endpoints and EndpointSlice naming the API server, as
//! kube-apiserver creates and keeps them.

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::handlers::{create_object, write_update, UpdateKind};
use crate::kinds::core::{endpoints::EndpointsKind, service::Services};
use crate::kinds::discovery::endpointslice::EndpointSlices;
use crate::object;
use crate::registry::Kind;
use crate::router::ApiState;

const NAME: &str = "kubernetes";
const NAMESPACE: &str = "default";

/// The port the API server listens on (6443 when not known).
fn target_port(state: &ApiState) -> u16 {
    state.services.apiserver.map_or(6443, |a| a.port())
}

fn desired_ports(state: &ApiState) -> Value {
    json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": target_port(state)}])
}

/// Creates the Service, its Endpoints and EndpointSlice when missing, and puts back what a
/// client changed in their addresses and ports; idempotent.
pub async fn ensure(state: &ApiState) -> Result<(), ApiError> {
    let svc = &Services;
    let labels = json!({"component": "apiserver", "provider": "kubernetes"});
    match state.storage.get(svc.info(), Some(NAMESPACE), NAME).await? {
        None => {
            let obj = json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
                "spec": {"type": "ClusterIP", "sessionAffinity": "None",
                    "clusterIP": state.services.kubernetes_ip().to_string(),
                    "ports": desired_ports(state)}});
            match create_object(state, svc, obj, None, false).await {
                Ok(_) => {}
                Err(e) if e.reason == "AlreadyExists" => {}
                Err(e) => return Err(e),
            }
        }
        Some(current) if current["spec"]["ports"] != desired_ports(state) => {
            let mut new = current.clone();
            new["spec"]["ports"] = desired_ports(state);
            write_update(state, svc, &current, new, UpdateKind::Main, false, None).await?;
        }
        Some(_) => {}
    }
    let Some(addr) = state.services.apiserver else {
        return Ok(());
    };
    let ip = addr.ip().to_string();
    let port = addr.port();
    let endpoints = json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": ip}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]});
    reconcile(state, &EndpointsKind, endpoints, &["subsets"]).await?;
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": NAME}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}]});
    reconcile(
        state,
        &EndpointSlices,
        slice,
        &["addressType", "endpoints", "ports"],
    )
    .await
}

/// Creates `want` (named by its metadata) or sets `fields` of the stored object back to
/// `want`'s; idempotent. Also keeps `kube-system/skiff-cluster` ([`crate::clusterconfig`]).
pub(crate) async fn reconcile(
    state: &ApiState,
    kind: &dyn Kind,
    want: Value,
    fields: &[&str],
) -> Result<(), ApiError> {
    let (ns, name) = (object::namespace(&want), object::name(&want));
    match state.storage.get(kind.info(), Some(ns), name).await? {
        None => match create_object(state, kind, want, None, false).await {
            Ok(_) => Ok(()),
            Err(e) if e.reason == "AlreadyExists" => Ok(()),
            Err(e) => Err(e),
        },
        Some(current) if fields.iter().any(|f| current[*f] != want[*f]) => {
            let mut new = current.clone();
            for f in fields {
                new[*f] = want[*f].clone();
            }
            write_update(state, kind, &current, new, UpdateKind::Main, false, None).await?;
            Ok(())
        }
        Some(_) => Ok(()),
    }
}
