//! What the controllers' caches keep of an object. A typed Pod as the API serves it costs
//! ~18 KB of heap (its `managedFields` ~5 KB, the service-account token volume and its
//! mount ~6 KB); with 10,000 pods the cache held ~180 MB. Pods are cached without the fields
//! no controller reads (upstream's informer transforms, `SetTransform`): `managedFields`,
//! the client-side apply annotation, volumes that name no claim, ephemeral containers, and
//! each container's command, args, environment, mounts, probes, lifecycle hooks and security
//! context. A controller that needs one of them reads the pod from the API.
//!
//! Cached objects are read, never written back whole: an update built from one of them would
//! drop what was stripped.

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The annotation `kubectl apply` keeps the last applied object in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what no controller reads from an object's metadata.
pub fn meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(a) = &mut meta.annotations {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Drops what no controller reads from a pod (see the module doc).
pub fn pod(pod: &mut Pod) {
    meta(&mut pod.metadata);
    let Some(spec) = &mut pod.spec else {
        return;
    };
    if let Some(volumes) = &mut spec.volumes {
        volumes.retain(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some());
        if volumes.is_empty() {
            spec.volumes = None;
        }
    }
    spec.ephemeral_containers = None;
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        container(c);
    }
}

fn container(c: &mut Container) {
    c.command = None;
    c.args = None;
    c.env = None;
    c.env_from = None;
    c.volume_mounts = None;
    c.volume_devices = None;
    c.liveness_probe = None;
    c.readiness_probe = None;
    c.startup_probe = None;
    c.lifecycle = None;
    c.security_context = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cached_pod_keeps_what_controllers_read_and_drops_the_rest() {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "default", "uid": "u1",
                "labels": {"app": "web"},
                "annotations": {LAST_APPLIED: "{}", "controller.kubernetes.io/pod-deletion-cost": "5"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                    "uid": "rs", "controller": true}],
                "managedFields": [{"manager": "kubectl", "operation": "Update",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {
                "nodeName": "n1",
                "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                    "effect": "NoExecute", "tolerationSeconds": 300}],
                "volumes": [
                    {"name": "kube-api-access", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token"}}]}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}},
                ],
                "containers": [{"name": "main", "image": "busybox",
                    "command": ["sleep"], "args": ["3600"], "env": [{"name": "A", "value": "b"}],
                    "ports": [{"name": "http", "containerPort": 80}],
                    "resources": {"requests": {"cpu": "100m"}},
                    "readinessProbe": {"httpGet": {"port": 80}},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "initContainers": [{"name": "init", "image": "busybox", "command": ["true"],
                    "resources": {"requests": {"cpu": "1"}}}],
            },
            "status": {"phase": "Running", "podIP": "10.42.0.5",
                "conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap();
        pod(&mut p);
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
        assert_eq!(volumes.len(), 1, "only the claim's volume is kept");
        assert_eq!(volumes[0].name, "data");
        let c = &spec.containers[0];
        assert_eq!(
            (c.name.as_str(), c.image.as_deref()),
            ("main", Some("busybox"))
        );
        assert_eq!(c.ports.as_ref().unwrap()[0].name.as_deref(), Some("http"));
        assert!(c.resources.as_ref().unwrap().requests.is_some());
        assert!(c.command.is_none() && c.args.is_none() && c.env.is_none());
        assert!(c.readiness_probe.is_none() && c.volume_mounts.is_none());
        let init = &spec.init_containers.as_ref().unwrap()[0];
        assert!(init.resources.as_ref().unwrap().requests.is_some());
        assert!(init.command.is_none());
        let status = p.status.as_ref().unwrap();
        assert_eq!(status.pod_ip.as_deref(), Some("10.42.0.5"));
        assert_eq!(status.conditions.as_ref().unwrap()[0].type_, "Ready");
    }

    #[test]
    fn metadata_without_other_annotations_loses_the_map() {
        let mut m = ObjectMeta {
            annotations: Some([(LAST_APPLIED.to_string(), "{}".to_string())].into()),
            ..Default::default()
        };
        meta(&mut m);
        assert_eq!(m.annotations, None);
    }
}
