//! Every writable kind refuses an object missing what Kubernetes requires, with
//! Kubernetes' field path and message (the create path: initial state and defaults first).

use serde_json::{json, Value};

use super::ALL;
use crate::registry::Backend;
use crate::resources::find_kind;

/// (apiVersion, kind, object, field, message of the first cause).
fn cases() -> Vec<(
    &'static str,
    &'static str,
    Value,
    &'static str,
    &'static str,
)> {
    let tpl = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    vec![
        ("v1", "Namespace", json!({"metadata": {"name": "Team"}}), "metadata.name",
            "Invalid value: \"Team\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"),
        ("v1", "Pod", json!({"metadata": {"name": "p"}, "spec": {}}), "spec.containers", "Required value"),
        ("v1", "Service", json!({"metadata": {"name": "web"}, "spec": {}}), "spec.ports", "Required value"),
        ("v1", "Endpoints", json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "x"}]}]}),
            "subsets[0].addresses[0].ip", "Invalid value: \"x\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"),
        ("v1", "Secret", json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "aGk="}}),
            "data[tls.key]", "Required value"),
        ("v1", "ConfigMap", json!({"metadata": {"name": "c"}, "data": {"a/b": "x"}}), "data[a/b]",
            "Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"),
        ("v1", "Node", json!({"metadata": {}}), "metadata.name", "Required value: name or generateName is required"),
        ("v1", "Event", json!({"metadata": {"name": "e", "namespace": "shop"}}), "involvedObject.namespace",
            "Invalid value: \"\": does not match event.namespace"),
        ("v1", "ServiceAccount", json!({"metadata": {}}), "metadata.name", "Required value: name or generateName is required"),
        ("v1", "ReplicationController", json!({"metadata": {"name": "rc"}, "spec": {}}), "spec.selector", "Required value"),
        ("v1", "PodTemplate", json!({"metadata": {"name": "t"}}), "template.spec.containers", "Required value"),
        ("v1", "PersistentVolume", json!({"metadata": {"name": "pv"}, "spec": {"hostPath": {"path": "/d"}, "capacity": {"storage": "1Gi"}}}),
            "spec.accessModes", "Required value"),
        ("v1", "PersistentVolumeClaim", json!({"metadata": {"name": "c"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}),
            "spec.accessModes", "Required value: at least 1 access mode is required"),
        ("v1", "ResourceQuota", json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "-1"}}}),
            "spec.hard[pods]", "Invalid value: \"-1\": must be greater than or equal to 0"),
        ("v1", "LimitRange", json!({"metadata": {"name": "l"}, "spec": {"limits": [{"max": {"cpu": "1"}}]}}),
            "spec.limits[0].type", "Required value"),
        ("apps/v1", "Deployment", json!({"metadata": {"name": "d"}, "spec": {"template": tpl}}), "spec.selector", "Required value"),
        ("apps/v1", "ReplicaSet", json!({"metadata": {"name": "r"}, "spec": {"template": tpl}}), "spec.selector", "Required value"),
        ("apps/v1", "DaemonSet", json!({"metadata": {"name": "d"}, "spec": {"template": tpl}}), "spec.selector", "Required value"),
        ("apps/v1", "StatefulSet", json!({"metadata": {"name": "s"}, "spec": {"template": tpl}}), "spec.selector", "Required value"),
        ("apps/v1", "ControllerRevision", json!({"metadata": {"name": "r"}, "revision": 1}), "data",
            "Required value: data is mandatory"),
        ("events.k8s.io/v1", "Event", json!({"metadata": {"name": "e", "namespace": "default"}, "type": "Normal"}),
            "eventTime", "Required value"),
        ("autoscaling/v2", "HorizontalPodAutoscaler", json!({"metadata": {"name": "h"}, "spec": {"maxReplicas": 3}}),
            "spec.scaleTargetRef.kind", "Required value"),
        ("autoscaling/v1", "HorizontalPodAutoscaler", json!({"metadata": {"name": "h"}, "spec": {"maxReplicas": 3}}),
            "spec.scaleTargetRef.kind", "Required value"),
        ("batch/v1", "Job", json!({"metadata": {"name": "j", "uid": "u"}, "spec": {"template": tpl}}),
            "spec.template.spec.restartPolicy", "Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""),
        ("batch/v1", "CronJob", json!({"metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": tpl}}}}),
            "spec.schedule", "Required value"),
        ("certificates.k8s.io/v1", "CertificateSigningRequest", json!({"metadata": {"name": "c"}, "spec": {"request": "", "signerName": "example.com/x", "usages": ["client auth"]}}),
            "spec.request", "Invalid value: []byte{}: PEM block type must be CERTIFICATE REQUEST"),
        ("policy/v1", "PodDisruptionBudget", json!({"metadata": {"name": "p"}, "spec": {"minAvailable": "120%"}}),
            "spec.minAvailable", "Invalid value: \"120%\": must not be greater than 100%"),
        ("storage.k8s.io/v1", "StorageClass", json!({"metadata": {"name": "s"}}), "provisioner", "Required value"),
        ("scheduling.k8s.io/v1", "PriorityClass", json!({"metadata": {"name": "huge"}, "value": 2_000_000_000}), "value",
            "Forbidden: maximum allowed value of a user defined priority is 1000000000"),
        ("coordination.k8s.io/v1", "Lease", json!({"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0}}),
            "spec.leaseDurationSeconds", "Invalid value: 0: must be greater than 0"),
        ("rbac.authorization.k8s.io/v1", "Role", json!({"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]}),
            "rules[0].verbs", "Required value: verbs must contain at least one value"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", json!({"metadata": {"name": "r"}, "rules": [{"verbs": ["get"]}]}),
            "rules[0].apiGroups", "Required value: resource rules must supply at least one api group"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding", json!({"metadata": {"name": "b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Pod", "name": "r"}}),
            "roleRef.kind", "Unsupported value: \"Pod\": supported values: \"Role\", \"ClusterRole\""),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", json!({"metadata": {"name": "b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}}),
            "roleRef.kind", "Unsupported value: \"Role\": supported values: \"ClusterRole\""),
        ("discovery.k8s.io/v1", "EndpointSlice", json!({"metadata": {"name": "e"}, "endpoints": []}), "addressType",
            "Unsupported value: \"\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""),
    ]
}

#[test]
fn every_kind_refuses_what_kubernetes_refuses() {
    let cases = cases();
    for kind in ALL.iter().filter(|k| k.backend() == Backend::Store) {
        let info = kind.info();
        assert!(
            cases
                .iter()
                .any(|(av, k, ..)| *av == info.api_version() && *k == info.kind),
            "no case for {kind:?}"
        );
    }
    for (av, k, mut obj, field, message) in cases {
        let kind = find_kind(av, k).unwrap();
        obj["apiVersion"] = json!(av);
        obj["kind"] = json!(k);
        kind.prepare_for_create(&mut obj);
        kind.defaults(&mut obj);
        let err = kind
            .validate(&obj, None)
            .expect_err(&format!("{av} {k} accepted {obj}"));
        assert_eq!(
            (err.code, err.reason.as_str()),
            (422, "Invalid"),
            "{av} {k}"
        );
        let first = &err.causes[0];
        assert_eq!(
            (first.field.as_str(), first.message.as_str()),
            (field, message),
            "{av} {k}: {}",
            err.message
        );
    }
}
