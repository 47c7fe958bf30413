//! What a collector pass decodes of each stored object: only the fields [`super::plan`] reads
//! or changes ([`FIELDS`]), and how a planned change to those fields is carried onto the whole
//! object before it is written back. Decoding whole objects made every pass over 10,000 pods
//! build ~200 MB of `Value` trees, several times a second while clients were writing.
//!
//! Pure functions; no store access.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The fields the collector reads or writes, by top-level section.
const FIELDS: &[(&str, &[&str])] = &[
    (
        "metadata",
        &[
            "name",
            "namespace",
            "uid",
            "finalizers",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "ownerReferences",
        ],
    ),
    ("spec", &["finalizers"]),
    ("status", &["phase"]),
];

/// The stored object `json` reduced to [`FIELDS`]; None when it is not a JSON object. Only
/// the kept fields are decoded; the rest is skipped over as raw JSON.
pub fn trimmed(json: &[u8]) -> Option<Value> {
    let top: BTreeMap<String, &RawValue> = serde_json::from_slice(json).ok()?;
    let mut out = Map::new();
    for (section, fields) in FIELDS {
        let Some(inner) = top
            .get(*section)
            .and_then(|raw| serde_json::from_str::<BTreeMap<String, &RawValue>>(raw.get()).ok())
        else {
            continue;
        };
        let kept: Map<String, Value> = fields
            .iter()
            .filter_map(|f| {
                Some((
                    f.to_string(),
                    serde_json::from_str(inner.get(*f)?.get()).ok()?,
                ))
            })
            .collect();
        out.insert(section.to_string(), Value::Object(kept));
    }
    Some(Value::Object(out))
}

/// Whether the stored object `json` is one the collector may have to act on: it has owners,
/// finalizers or a deletion timestamp (or cannot be read, to be safe). Objects without any
/// of these only matter to a pass when their namespace terminates.
pub fn involved(json: &[u8]) -> bool {
    let Some(t) = trimmed(json) else {
        return true;
    };
    let meta = &t["metadata"];
    let non_empty = |field: &str| {
        meta.get(field)
            .is_some_and(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
    };
    non_empty("ownerReferences") || non_empty("finalizers") || non_empty("deletionTimestamp")
}

/// Carries `planned` (a [`trimmed`] object the plan changed) onto `full`, the whole object it
/// was trimmed from: every field of [`FIELDS`] takes `planned`'s value, or goes if `planned`
/// has none. Nothing else of `full` changes.
pub fn overlay(full: &mut Value, planned: &Value) {
    let Some(full) = full.as_object_mut() else {
        return;
    };
    for (section, fields) in FIELDS {
        let want = planned.get(*section).and_then(Value::as_object);
        for field in *fields {
            match want.and_then(|w| w.get(*field)) {
                Some(v) => {
                    let target = full
                        .entry(section.to_string())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if target.is_null() {
                        *target = Value::Object(Map::new());
                    }
                    if let Some(t) = target.as_object_mut() {
                        t.insert(field.to_string(), v.clone());
                    }
                }
                None => {
                    if let Some(t) = full.get_mut(*section).and_then(Value::as_object_mut) {
                        t.remove(*field);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web", "namespace": "default", "uid": "u1", "labels": {"app": "web"},
                "finalizers": ["a", "b"],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "o1"}],
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1"},
        })
    }

    #[test]
    fn trimmed_keeps_only_what_the_collector_looks_at() {
        let t = trimmed(&serde_json::to_vec(&pod()).unwrap()).unwrap();
        assert_eq!(
            t,
            json!({
                "metadata": {
                    "name": "web", "namespace": "default", "uid": "u1", "finalizers": ["a", "b"],
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "o1"}],
                },
                "spec": {},
                "status": {"phase": "Running"},
            })
        );
        assert_eq!(trimmed(b"[1, 2]"), None);
        assert_eq!(trimmed(b"{not json"), None);
    }

    #[test]
    fn only_owned_finalized_or_deleting_objects_are_involved() {
        let involved = |v: Value| involved(&serde_json::to_vec(&v).unwrap());
        assert!(involved(pod()));
        let plain =
            json!({"metadata": {"name": "p", "finalizers": [], "ownerReferences": []}, "spec": {}});
        assert!(!involved(plain.clone()));
        let mut deleting = plain.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(involved(deleting));
        let mut finalized = plain;
        finalized["metadata"]["finalizers"] = json!(["x"]);
        assert!(involved(finalized));
        assert!(
            super::involved(b"not json"),
            "unreadable values count, to be safe"
        );
    }

    #[test]
    fn overlay_carries_the_planned_change_and_nothing_else() {
        let full = pod();
        let mut planned = trimmed(&serde_json::to_vec(&full).unwrap()).unwrap();
        planned["metadata"]["finalizers"] = json!(["b"]);
        planned["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        planned["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("ownerReferences");
        let mut out = full.clone();
        overlay(&mut out, &planned);
        let mut expected = full;
        expected["metadata"]["finalizers"] = json!(["b"]);
        expected["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        expected["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("ownerReferences");
        assert_eq!(out, expected);

        // A namespace without status gets only the phase the plan set.
        let mut ns = json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["kubernetes"]}});
        let mut planned = trimmed(&serde_json::to_vec(&ns).unwrap()).unwrap();
        planned["status"]["phase"] = json!("Terminating");
        overlay(&mut ns, &planned);
        assert_eq!(ns["status"], json!({"phase": "Terminating"}));
        assert_eq!(ns["spec"], json!({"finalizers": ["kubernetes"]}));
    }
}
