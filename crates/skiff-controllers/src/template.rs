//! Pod templates compared and hashed the way Kubernetes does it on Go structs, where a
//! non-pointer field holding its zero value is the same as an absent one. The same template
//! reaches us in several spellings — `stdin: false` and `generation: 0` from protobuf bodies
//! or explicit YAML, nothing at all after a client (kubectl) round-trips it through Go types —
//! and `kubectl rollout undo` must still find the old ReplicaSet of its template.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

/// The label that ties a ReplicaSet and its pods to one template.
pub const HASH_LABEL: &str = "pod-template-hash";

/// Non-pointer booleans of the pod template's Go types (`false` means unset).
const BOOLS: &[&str] = &[
    "stdin",
    "stdinOnce",
    "tty",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "readOnly",
];

/// Non-pointer integers of the pod template's Go types (`0` means unset).
const INTS: &[&str] = &[
    "generation",
    "hostPort",
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
];

/// Non-pointer structs that Go always writes, empty when unset.
const STRUCTS: &[&str] = &["resources"];

fn canonical(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, v| {
                let zero = match v {
                    Value::Null => true,
                    Value::String(s) => s.is_empty(),
                    Value::Bool(b) => !*b && BOOLS.contains(&k.as_str()),
                    Value::Number(n) => n.as_i64() == Some(0) && INTS.contains(&k.as_str()),
                    Value::Object(o) => o.is_empty() && STRUCTS.contains(&k.as_str()),
                    Value::Array(a) => a.is_empty(),
                };
                !zero
            });
            m.values_mut().for_each(canonical);
        }
        Value::Array(a) => a.iter_mut().for_each(canonical),
        _ => {}
    }
}

/// The template as Kubernetes' Go types would see it, without the hash label.
pub fn semantic(t: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    if let Some(labels) = v
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    // Twice: removing a zero may leave an empty list or label map behind.
    canonical(&mut v);
    canonical(&mut v);
    if let Some(meta) = v.get("metadata").and_then(Value::as_object) {
        if meta
            .get("labels")
            .is_some_and(|l| l.as_object().is_some_and(|l| l.is_empty()))
        {
            v["metadata"]
                .as_object_mut()
                .expect("object")
                .remove("labels");
        }
    }
    v
}

/// Kubernetes' `EqualIgnoreHash`.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    semantic(a) == semantic(b)
}

/// 32-bit FNV-1a, the hash Kubernetes uses for template hashes.
fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Kubernetes' `rand.SafeEncodeString`: no vowels, no look-alike characters.
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// The `pod-template-hash` of a template: FNV-1a over its semantic form (canonical JSON:
/// Go's object dump cannot be reproduced outside Go) and the collision count, encoded as
/// Kubernetes encodes it. Equal templates in any spelling hash alike.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(&semantic(template)).unwrap_or_default();
    if let Some(c) = collision_count {
        let mut le = (c as u32).to_le_bytes().to_vec();
        le.resize(8, 0);
        bytes.extend(le);
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(v: Value) -> PodTemplateSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn go_zero_values_equal_absent_ones() {
        let protobuf = t(
            json!({"metadata": {"generation": 0, "labels": {"app": "web", "pod-template-hash": "x"}},
            "spec": {"hostIPC": false, "containers": [{"name": "c", "image": "busybox:1", "stdin": false,
                "tty": false, "resources": {}, "ports": [{"containerPort": 80, "hostPort": 0}]}]}}),
        );
        let go = t(json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1", "ports": [{"containerPort": 80}]}]}}));
        assert!(equal_ignore_hash(&protobuf, &go));
        assert_eq!(template_hash(&protobuf, None), template_hash(&go, None));
    }

    #[test]
    fn meaningful_values_still_differ() {
        let base = json!({"spec": {"containers": [{"name": "c", "image": "busybox:1"}]}});
        let mut other = base.clone();
        other["spec"]["automountServiceAccountToken"] = json!(false);
        assert!(
            !equal_ignore_hash(&t(base.clone()), &t(other)),
            "a pointer false is not unset"
        );
        let mut other = base.clone();
        other["spec"]["volumes"] = json!([{"name": "v", "emptyDir": {}}]);
        assert!(
            !equal_ignore_hash(&t(base.clone()), &t(other)),
            "an empty volume source selects it"
        );
        let mut other = base.clone();
        other["spec"]["containers"][0]["stdin"] = json!(true);
        assert!(!equal_ignore_hash(&t(base), &t(other)));
    }

    #[test]
    fn template_hash_is_stable_and_changes_with_template_and_collisions() {
        let t0 = PodTemplateSpec::default();
        let h = template_hash(&t0, None);
        assert_eq!(h, template_hash(&t0, None));
        assert!(
            h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{h}"
        );
        assert_ne!(h, template_hash(&t0, Some(1)));
        let t2 = t(json!({"metadata": {"labels": {"a": "b"}}}));
        assert_ne!(h, template_hash(&t2, None));
    }
}
