//! The node's own objects: its `Node` (registered with the machine's capacity, kept `Ready`
//! with kubelet's conditions and heartbeats) and its `Lease` in `kube-node-lease`, renewed
//! every [`LEASE_RENEW`]. A clean stop marks the node NotReady.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use crate::error::{AgentError, Result};
use crate::machine::{self, Resources};

/// How often the Lease is renewed (kubelet: every 10 s, a quarter of its 40 s duration).
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
/// `leaseDurationSeconds` (kubelet's default).
pub const LEASE_DURATION_SECONDS: i64 = 40;
/// How often the Node's status is written when nothing changed (kubelet's
/// `nodeStatusReportFrequency` is 5 minutes; heartbeats in the conditions are more useful to
/// `kubectl describe node` at 1 minute, and cost one write).
pub const STATUS_REPORT: Duration = Duration::from_secs(60);
/// kubelet's default port.
pub const KUBELET_PORT: u16 = 10250;

/// What the node says about itself.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub name: String,
    pub ip: IpAddr,
    pub hostname: String,
    pub labels: Vec<(String, String)>,
    pub resources: Resources,
    /// The API server's version (kubelet reports its own; here they are one binary).
    pub kubelet_version: String,
    /// The port the kubelet API listens on, reported in `daemonEndpoints` (0: none).
    pub kubelet_port: i32,
    /// skiff's version, as `skiff://<version>`.
    pub runtime_version: String,
}

/// RFC 3339 with seconds, as `metav1.Time` serialises.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// RFC 3339 with microseconds (`metav1.MicroTime`).
fn now_micro() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// kubelet's four conditions with `ready` for Ready; heartbeat now, transitions kept from
/// `old` when the status did not change.
fn conditions(ready: bool, old: Option<&Node>) -> Value {
    let now = now();
    let old_conditions: Vec<Value> = old
        .and_then(|n| n.status.as_ref())
        .and_then(|s| s.conditions.clone())
        .map(|c| {
            c.into_iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect()
        })
        .unwrap_or_default();
    let make = |ty: &str, status: &str, reason: &str, message: &str| {
        let transition = old_conditions
            .iter()
            .find(|c| c["type"] == ty && c["status"] == status)
            .and_then(|c| c["lastTransitionTime"].as_str().map(str::to_string))
            .unwrap_or_else(|| now.clone());
        json!({
            "type": ty, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": transition,
        })
    };
    let ready = if ready {
        make(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        )
    } else {
        make("Ready", "False", "KubeletNotReady", "skiff agent stopped")
    };
    json!([
        make(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        make(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        make(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        ready,
    ])
}

impl NodeIdentity {
    fn status(&self, ready: bool, old: Option<&Node>) -> Value {
        json!({
            "capacity": self.resources.capacity(),
            "allocatable": self.resources.allocatable(),
            "conditions": conditions(ready, old),
            "addresses": [
                {"type": "InternalIP", "address": self.ip.to_string()},
                {"type": "Hostname", "address": self.hostname},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": machine::node_info(&self.kubelet_version, &self.runtime_version),
        })
    }

    fn labels(&self) -> Value {
        let mut labels = serde_json::Map::new();
        for (k, v) in [
            ("kubernetes.io/hostname", self.name.as_str()),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", machine::go_arch()),
            ("beta.kubernetes.io/os", "linux"),
            ("beta.kubernetes.io/arch", machine::go_arch()),
        ] {
            labels.insert(k.into(), json!(v));
        }
        for (k, v) in &self.labels {
            labels.insert(k.clone(), json!(v));
        }
        Value::Object(labels)
    }
}

/// The node's registration and heartbeats.
pub struct NodeRegistration {
    nodes: Api<Node>,
    leases: Api<Lease>,
    pub identity: NodeIdentity,
}

impl NodeRegistration {
    pub fn new(client: kube::Client, identity: NodeIdentity) -> Self {
        NodeRegistration {
            nodes: Api::all(client.clone()),
            leases: Api::namespaced(client, "kube-node-lease"),
            identity,
        }
    }

    /// Registers the Node (or takes over the one of the same name, as kubelet does after a
    /// restart), reports it Ready, and returns it as stored: its `spec.podCIDR` is the pod
    /// network's.
    pub async fn register(&self) -> Result<Node> {
        let name = &self.identity.name;
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": self.identity.labels()},
            "spec": {},
            "status": self.identity.status(true, None),
        }))
        .map_err(|e| AgentError::Node {
            node: name.clone(),
            message: format!("cannot build the Node object: {e}"),
        })?;
        // An existing Node is taken over (as kubelet does after a restart) before a create
        // is tried: a create would first ask admission for a new pod CIDR.
        if self.nodes.get_opt(name).await?.is_none() {
            match self.nodes.create(&PostParams::default(), &node).await {
                Ok(n) => {
                    tracing::info!(node = %name, "node registered");
                    return Ok(n);
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        let patch = json!({"metadata": {"labels": self.identity.labels()}});
        self.nodes
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let n = self.report(true).await?;
        tracing::info!(node = %name, "node already registered; took it over");
        Ok(n)
    }

    /// Writes the Node's status: Ready (or not) with fresh heartbeats.
    pub async fn report(&self, ready: bool) -> Result<Node> {
        let old = self.nodes.get_opt(&self.identity.name).await?;
        let patch = json!({"status": self.identity.status(ready, old.as_ref())});
        Ok(self
            .nodes
            .patch_status(
                &self.identity.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?)
    }

    /// Creates or renews the node's Lease.
    pub async fn renew_lease(&self) -> Result<()> {
        let name = &self.identity.name;
        let spec = json!({
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": now_micro(),
        });
        let patch = json!({"spec": spec});
        match self
            .leases
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => {
                let lease: Lease = serde_json::from_value(json!({
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {
                        "name": name, "namespace": "kube-node-lease",
                        "ownerReferences": self.owner().await?,
                    },
                    "spec": spec,
                }))
                .map_err(|e| AgentError::Node {
                    node: name.clone(),
                    message: format!("cannot build the Lease object: {e}"),
                })?;
                self.leases.create(&PostParams::default(), &lease).await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The Lease belongs to the Node (kubelet sets this ownerReference, so deleting a Node
    /// collects its Lease).
    async fn owner(&self) -> Result<Value> {
        let node = self.nodes.get(&self.identity.name).await?;
        Ok(json!([{
            "apiVersion": "v1", "kind": "Node",
            "name": self.identity.name,
            "uid": node.metadata.uid.unwrap_or_default(),
        }]))
    }

    /// Reports status at once if the Node's Ready condition is not True any more (the node
    /// lifecycle controller set it Unknown while this node was unreachable), as kubelet
    /// does when the stored status differs from its own; the node is Ready again within
    /// one Lease period instead of [`STATUS_REPORT`].
    async fn report_if_not_ready(&self) -> Result<()> {
        let node = self.nodes.get_opt(&self.identity.name).await?;
        let ready = node
            .as_ref()
            .and_then(|n| n.status.as_ref()?.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        if !ready {
            tracing::info!(node = %self.identity.name, "node status is not Ready, reporting it again");
            self.report(true).await?;
        }
        Ok(())
    }

    /// Renews the Lease every [`LEASE_RENEW`] (and the status if it says not Ready) and
    /// reports status every [`STATUS_REPORT`] until `stop`; then reports the node NotReady.
    pub async fn heartbeat(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut lease_tick = tokio::time::interval(LEASE_RENEW);
        let mut status_tick = tokio::time::interval(STATUS_REPORT);
        loop {
            tokio::select! {
                _ = lease_tick.tick() => {
                    if let Err(e) = self.renew_lease().await {
                        tracing::warn!(error = %crate::error::chain(&e), "cannot renew the node lease");
                    }
                    if let Err(e) = self.report_if_not_ready().await {
                        tracing::warn!(error = %crate::error::chain(&e), "cannot report node status");
                    }
                }
                _ = status_tick.tick() => {
                    if let Err(e) = self.report(true).await {
                        tracing::warn!(error = %crate::error::chain(&e), "cannot report node status");
                    }
                }
                _ = crate::until_stopped(&mut stop) => break,
            }
        }
        match self.report(false).await {
            Ok(_) => tracing::info!(node = %self.identity.name, "node marked NotReady"),
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "cannot mark the node NotReady")
            }
        }
    }
}
