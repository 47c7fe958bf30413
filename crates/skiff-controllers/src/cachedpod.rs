//! The pod as the controllers' shared informer keeps it: only the fields some controller
//! reads, decoded straight from the watch's JSON (everything else is skipped, never
//! built). k8s-openapi's `Pod` costs ~18 KB of heap per pod as the API serves it and still
//! ~6 KB with the unread fields dropped, most of it the inline size of its nearly empty
//! structs (a `Container` alone is ~2.4 KB); with 10,000 pods that was ~57 MB of the
//! server's heap. A [`CachedPod`] is ~1 KB.
//!
//! The fields keep k8s-openapi's names and, where the whole value is read, its types, so
//! controller code reads a cached pod as it would a `Pod`. A controller that needs anything
//! else reads the pod from the API; a cached pod is never written back (it could not be:
//! it is not a `Pod`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ContainerPort, PersistentVolumeClaimVolumeSource, PodCondition, PodIP,
    ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The annotation `kubectl apply` keeps the last applied object in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A pod with the fields the controllers read (see the module doc).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct CachedPod {
    /// Without `managedFields` and the client-side apply annotation.
    #[serde(deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<Spec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

/// The read part of a `PodSpec`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Spec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    pub containers: Vec<Container>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_containers: Option<Vec<Container>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Only the volumes that name a claim (directly or as an ephemeral volume).
    #[serde(deserialize_with = "claim_volumes")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Box<Affinity>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overhead: Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
}

/// The read part of a `Container`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<ContainerPort>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
}

/// The read part of a `Volume`: its name and the claim it names.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<PersistentVolumeClaimVolumeSource>,
    /// Whether it is an ephemeral volume (its claim is `<pod>-<volume>`).
    #[serde(deserialize_with = "present")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<Present>,
}

/// A field that is there; what it holds is not kept (written back as `{}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Present;

impl Serialize for Present {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        s.serialize_map(Some(0))?.end()
    }
}

/// The read part of a `PodStatus`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Status {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<PodCondition>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_statuses: Option<Vec<ContainerStatus>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_container_statuses: Option<Vec<ContainerStatus>>,
    #[serde(rename = "podIP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_ips: Option<Vec<PodIP>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
}

/// The read part of a `ContainerStatus`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    pub restart_count: i32,
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<ContainerState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_state: Option<ContainerState>,
}

/// The read part of a `ContainerState`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerState {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminated: Option<Terminated>,
    #[serde(deserialize_with = "present")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<Present>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
}

/// The read part of a `ContainerStateTerminated`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Terminated {
    pub exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
}

/// The read part of a `ContainerStateWaiting`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Waiting {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl kube::Resource for CachedPod {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl From<k8s_openapi::api::core::v1::Pod> for CachedPod {
    /// What the informer would keep of `pod` (through its JSON, as from a watch).
    fn from(pod: k8s_openapi::api::core::v1::Pod) -> Self {
        serde_json::to_value(pod)
            .and_then(serde_json::from_value)
            .unwrap_or_default()
    }
}

/// Drops what no controller reads from an object's metadata: `managedFields` and the
/// client-side apply annotation.
pub fn slim_meta_in_place(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(a) = &mut meta.annotations {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            meta.annotations = None;
        }
    }
}

fn slim_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    /// `ObjectMeta` without `managedFields`, which is skipped while decoding.
    #[derive(Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    #[derive(Default)]
    struct Meta {
        annotations: Option<BTreeMap<String, String>>,
        creation_timestamp: Option<Time>,
        deletion_grace_period_seconds: Option<i64>,
        deletion_timestamp: Option<Time>,
        finalizers: Option<Vec<String>>,
        generate_name: Option<String>,
        generation: Option<i64>,
        labels: Option<BTreeMap<String, String>>,
        name: Option<String>,
        namespace: Option<String>,
        owner_references:
            Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>,
        resource_version: Option<String>,
        uid: Option<String>,
    }
    let m = Meta::deserialize(d)?;
    let mut meta = ObjectMeta {
        annotations: m.annotations,
        creation_timestamp: m.creation_timestamp,
        deletion_grace_period_seconds: m.deletion_grace_period_seconds,
        deletion_timestamp: m.deletion_timestamp,
        finalizers: m.finalizers,
        generate_name: m.generate_name,
        generation: m.generation,
        labels: m.labels,
        name: m.name,
        namespace: m.namespace,
        owner_references: m.owner_references,
        resource_version: m.resource_version,
        uid: m.uid,
        ..Default::default()
    };
    slim_meta_in_place(&mut meta);
    Ok(meta)
}

fn claim_volumes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Volume>>, D::Error> {
    let volumes: Option<Vec<Volume>> = Deserialize::deserialize(d)?;
    Ok(volumes
        .map(|v| {
            v.into_iter()
                .filter(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some())
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty()))
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Present>, D::Error> {
    let v: Option<serde::de::IgnoredAny> = Deserialize::deserialize(d)?;
    Ok(v.map(|_| Present))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn served() -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default", "uid": "u1",
                "labels": {"app": "web"},
                "annotations": {LAST_APPLIED: "{}", "controller.kubernetes.io/pod-deletion-cost": "5"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                    "uid": "rs", "controller": true}],
                "managedFields": [{"manager": "kubectl", "operation": "Update",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {
                "nodeName": "n1",
                "priorityClassName": "high",
                "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                    "effect": "NoExecute", "tolerationSeconds": 300}],
                "volumes": [
                    {"name": "kube-api-access", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token"}}]}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}},
                    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                ],
                "containers": [{"name": "main", "image": "busybox",
                    "command": ["sleep"], "args": ["3600"], "env": [{"name": "A", "value": "b"}],
                    "ports": [{"name": "http", "containerPort": 80}],
                    "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "64Mi"}},
                    "readinessProbe": {"httpGet": {"port": 80}},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "initContainers": [{"name": "init", "image": "busybox", "command": ["true"],
                    "resources": {"requests": {"cpu": "1"}}}],
            },
            "status": {"phase": "Running", "podIP": "10.42.0.5",
                "podIPs": [{"ip": "10.42.0.5"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "",
                    "ready": true, "restartCount": 2, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                    "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]},
        })
    }

    #[test]
    fn a_cached_pod_keeps_what_controllers_read_and_drops_the_rest() {
        let p: CachedPod = serde_json::from_value(served()).unwrap();
        let m = &p.metadata;
        assert_eq!(m.managed_fields, None);
        let annotations = m.annotations.as_ref().unwrap();
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert!(annotations.contains_key("controller.kubernetes.io/pod-deletion-cost"));
        assert_eq!(m.labels.as_ref().unwrap()["app"], "web");
        assert_eq!(m.owner_references.as_ref().unwrap()[0].uid, "rs");
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert_eq!(spec.tolerations.as_ref().unwrap().len(), 1);
        let volumes = spec.volumes.as_ref().unwrap();
        let names: Vec<_> = volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            ["data", "scratch"],
            "only the volumes naming a claim"
        );
        assert!(volumes[1].ephemeral.is_some());
        let c = &spec.containers[0];
        assert_eq!(
            (c.name.as_str(), c.image.as_deref()),
            ("main", Some("busybox"))
        );
        assert_eq!(c.ports.as_ref().unwrap()[0].name.as_deref(), Some("http"));
        assert!(c.resources.as_ref().unwrap().requests.is_some());
        let init = &spec.init_containers.as_ref().unwrap()[0];
        assert!(init.resources.as_ref().unwrap().requests.is_some());
        let status = p.status.as_ref().unwrap();
        assert_eq!(status.pod_ip.as_deref(), Some("10.42.0.5"));
        assert_eq!(status.pod_ips.as_ref().unwrap()[0].ip, "10.42.0.5");
        assert_eq!(status.conditions.as_ref().unwrap()[0].type_, "Ready");
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!((cs.restart_count, cs.ready), (2, true));
        assert!(cs.state.as_ref().unwrap().running.is_some());
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(
            (last.exit_code, last.reason.as_deref()),
            (137, Some("OOMKilled"))
        );
    }

    #[test]
    fn a_cached_pod_counts_the_same_quota_usage_as_the_served_one() {
        let p: CachedPod = serde_json::from_value(served()).unwrap();
        let written = serde_json::to_value(&p).unwrap();
        assert_eq!(
            skiff_quota::usage("", "pods", &written),
            skiff_quota::usage("", "pods", &served())
        );
        assert_eq!(written["spec"]["priorityClassName"], "high");
    }

    #[test]
    fn metadata_without_other_annotations_loses_the_map() {
        let mut m = ObjectMeta {
            annotations: Some([(LAST_APPLIED.to_string(), "{}".to_string())].into()),
            ..Default::default()
        };
        slim_meta_in_place(&mut m);
        assert_eq!(m.annotations, None);
    }

    #[test]
    fn a_typed_pod_converts_as_the_informer_would_cache_it() {
        let typed: k8s_openapi::api::core::v1::Pod = serde_json::from_value(served()).unwrap();
        let cached: CachedPod = serde_json::from_value(served()).unwrap();
        assert_eq!(CachedPod::from(typed), cached);
    }
}
