//! Strategic merge patch, as `k8s.io/apimachinery/pkg/util/strategicpatch` applies it: maps
//! merge recursively, `null` deletes, lists merge by their `patchMergeKey` (or as sets of
//! primitives) when the field's `patchStrategy` is `merge` and are replaced otherwise, and the
//! directives `$patch` (`replace`, `delete`, `merge`), `$retainKeys`, `$setElementOrder/<f>`
//! and `$deleteFromPrimitiveList/<f>` are honoured.

use serde_json::{Map, Value};

use super::meta::{self, ListMeta};
use crate::error::ApiError;
use crate::validation::schema::{Node, Shape};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

/// Patches `original` with the strategic merge `patch`, typed by `node`.
pub fn merge(original: &Value, patch: &Value, node: Option<Node>) -> Result<Value, ApiError> {
    let orig = original.as_object().cloned().unwrap_or_default();
    let patch = patch
        .as_object()
        .ok_or_else(|| bad("strategic merge patch must be a JSON object"))?;
    Ok(merge_map(orig, patch, node)?
        .map(Value::Object)
        .unwrap_or_else(|| Value::Object(Map::new())))
}

fn bad(message: &str) -> ApiError {
    ApiError::bad_request(message)
}

/// Merges a patch map into `orig`; None when the patch says `$patch: delete`.
fn merge_map(
    mut orig: Map<String, Value>,
    patch: &Map<String, Value>,
    node: Option<Node>,
) -> Result<Option<Map<String, Value>>, ApiError> {
    match patch.get(PATCH).map(|v| v.as_str()) {
        None | Some(Some("merge")) => {}
        Some(Some("replace")) => return Ok(Some(strip_directives(patch))),
        Some(Some("delete")) => return Ok(None),
        Some(other) => {
            return Err(bad(&format!(
                "unknown patch type: {}",
                other.unwrap_or("non-string")
            )))
        }
    }
    if let Some(keep) = patch.get(RETAIN_KEYS) {
        let keep = keep
            .as_array()
            .ok_or_else(|| bad("$retainKeys must be a list of field names"))?;
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        // Fields the patch deletes (`null`) need not be retained: `kubectl apply` switching a
        // strategy to `Recreate` sends `"rollingUpdate": null` next to `$retainKeys: [type]`.
        if let Some(k) = patch
            .iter()
            .find(|(k, v)| !k.starts_with('$') && !v.is_null() && !keep.contains(&k.as_str()))
            .map(|(k, _)| k)
        {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!("the patch has field {k} not present in $retainKeys"),
            ));
        }
        orig.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (key, value) in patch {
        let Some(field) = key.strip_prefix(DELETE_PRIMITIVE) else {
            continue;
        };
        let remove = value
            .as_array()
            .ok_or_else(|| bad("$deleteFromPrimitiveList must be a list"))?;
        if let Some(Value::Array(list)) = orig.get_mut(field) {
            list.retain(|v| !remove.contains(v));
        }
    }
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        let child = node.and_then(|n| match n.shape() {
            Shape::Map => n.values(),
            _ => n.field(key),
        });
        let list_meta = node.and_then(|n| meta::list(n.def(), key));
        let merged = match (orig.remove(key), value) {
            (_, Value::Null) => None,
            (Some(Value::Object(o)), Value::Object(p)) => {
                merge_map(o, p, child)?.map(Value::Object)
            }
            (None, Value::Object(p)) => merge_map(Map::new(), p, child)?.map(Value::Object),
            (Some(Value::Array(o)), Value::Array(p)) => {
                Some(Value::Array(merge_list(o, p, list_meta, child)?))
            }
            (None, Value::Array(p)) => {
                Some(Value::Array(merge_list(Vec::new(), p, list_meta, child)?))
            }
            (_, v) => Some(v.clone()),
        };
        if let Some(v) = merged {
            orig.insert(key.clone(), v);
        }
    }
    for (key, order) in patch {
        let Some(field) = key.strip_prefix(SET_ORDER) else {
            continue;
        };
        let order = order
            .as_array()
            .ok_or_else(|| bad("$setElementOrder must be a list"))?;
        let merge_key = node
            .and_then(|n| meta::list(n.def(), field))
            .and_then(|m| m.merge_key);
        if let Some(Value::Array(list)) = orig.get_mut(field) {
            reorder(list, order, merge_key);
        }
    }
    Ok(Some(orig))
}

/// Merges a patch list into `orig` according to the field's patch strategy.
fn merge_list(
    orig: Vec<Value>,
    patch: &[Value],
    list_meta: Option<ListMeta>,
    node: Option<Node>,
) -> Result<Vec<Value>, ApiError> {
    let items = node.and_then(|n| n.items());
    let Some(m) = list_meta else {
        return Ok(patch.iter().map(strip_value).collect());
    };
    if patch
        .iter()
        .any(|p| p.get(PATCH).and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch
            .iter()
            .filter(|p| p.get(PATCH).is_none())
            .map(strip_value)
            .collect());
    }
    let Some(key) = m.merge_key else {
        let mut out = orig;
        for p in patch {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        return Ok(out);
    };
    let mut out = orig;
    for p in patch {
        let pm = p
            .as_object()
            .ok_or_else(|| bad("list items with a merge key must be objects"))?;
        let k = pm.get(key).ok_or_else(|| {
            bad(&format!(
                "map: {p} does not contain declared merge key: {key}"
            ))
        })?;
        let pos = out.iter().position(|o| o.get(key) == Some(k));
        match (pm.get(PATCH).and_then(Value::as_str), pos) {
            (Some("delete"), Some(i)) => {
                out.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => {
                let existing = out[i].as_object().cloned().unwrap_or_default();
                match merge_map(existing, pm, items)? {
                    Some(v) => out[i] = Value::Object(v),
                    None => {
                        out.remove(i);
                    }
                }
            }
            (_, None) => {
                if let Some(v) = merge_map(Map::new(), pm, items)? {
                    out.push(Value::Object(v));
                }
            }
        }
    }
    Ok(out)
}

/// Orders `list` as `order` lists it (by merge key, or by value for primitives); items the
/// order does not name keep their relative order after the named ones.
fn reorder(list: &mut [Value], order: &[Value], merge_key: Option<&str>) {
    let id = |v: &Value| -> Value {
        match merge_key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let rank = |v: &Value| {
        order
            .iter()
            .position(|o| id(o) == id(v))
            .unwrap_or(order.len())
    };
    list.sort_by_key(rank);
}

/// A patch value with every directive removed (for values that replace whole).
fn strip_value(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip_directives(m)),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|i| i.get(PATCH).is_none())
                .map(strip_value)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn strip_directives(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
        .map(|(k, v)| (k.clone(), strip_value(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy() -> Option<Node> {
        Node::for_kind("apps/v1", "Deployment")
    }

    fn pod() -> Option<Node> {
        Node::for_kind("v1", "Pod")
    }

    fn smp(orig: Value, patch: Value, node: Option<Node>) -> Value {
        merge(&orig, &patch, node).unwrap()
    }

    /// The body `kubectl apply` (client-side) sends when an image changes and a sidecar is
    /// added: containers merged by name, order from `$setElementOrder/containers`.
    #[test]
    fn client_side_apply_body_merges_containers_by_name() {
        let orig = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "app:1", "imagePullPolicy": "IfNotPresent", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
        ]}}}});
        let patch = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
                "containers": [{"image": "app:2", "name": "app"}, {"image": "busybox", "name": "sidecar"}]
            }}}
        });
        let out = smp(orig, patch, deploy());
        let cs = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0], json!({"name": "sidecar", "image": "busybox"}));
        assert_eq!(cs[1]["image"], "app:2");
        assert_eq!(
            cs[1]["imagePullPolicy"], "IfNotPresent",
            "server-set fields survive"
        );
        assert_eq!(cs[1]["ports"][0]["containerPort"], 80);
        assert!(
            out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
                .is_string()
        );
    }

    #[test]
    fn delete_directive_and_null_remove_items_and_fields() {
        let orig = json!({"spec": {"containers": [
            {"name": "a", "image": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
            {"name": "b", "image": "b"}
        ]}});
        let patch = json!({"spec": {"containers": [
            {"name": "b", "$patch": "delete"},
            {"name": "a", "env": [{"name": "X", "$patch": "delete"}, {"name": "Z", "value": "3"}], "image": null}
        ]}});
        let out = smp(orig, patch, pod());
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a", "env": [{"name": "Y", "value": "2"}, {"name": "Z", "value": "3"}]}])
        );
    }

    #[test]
    fn replace_directive_on_lists_and_maps() {
        let orig = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let patch = json!({
            "metadata": {"labels": {"$patch": "replace", "c": "3"}},
            "spec": {"containers": [{"$patch": "replace"}, {"name": "c", "image": "c"}]}
        });
        let out = smp(orig, patch, pod());
        assert_eq!(out["metadata"]["labels"], json!({"c": "3"}));
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "c", "image": "c"}])
        );
    }

    #[test]
    fn unlisted_lists_replace_and_finalizers_merge_as_set() {
        let orig = json!({
            "metadata": {"finalizers": ["a", "b"]},
            "spec": {"tolerations": [{"key": "x", "operator": "Exists"}], "containers": []}
        });
        let patch = json!({
            "metadata": {"finalizers": ["b", "c"], "$deleteFromPrimitiveList/finalizers": ["a"]},
            "spec": {"tolerations": [{"key": "y", "operator": "Exists"}]}
        });
        let out = smp(orig, patch, pod());
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "c"]));
        assert_eq!(
            out["spec"]["tolerations"],
            json!([{"key": "y", "operator": "Exists"}])
        );
    }

    #[test]
    fn ports_merge_by_container_port_and_service_ports_by_port() {
        let orig = json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http"}]}]}});
        let patch = json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 443}]}]}});
        let out = smp(orig, patch, pod());
        assert_eq!(
            out["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "name": "http", "hostPort": 8080}, {"containerPort": 443}])
        );
        let svc = Node::for_kind("v1", "Service");
        let orig =
            json!({"spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}});
        let out = smp(
            orig,
            json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
            svc,
        );
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "targetPort": 9090, "protocol": "TCP"}])
        );
    }

    #[test]
    fn retain_keys_switches_deployment_strategy_and_volume_source() {
        let orig = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        assert_eq!(
            smp(orig, patch, deploy())["spec"]["strategy"],
            json!({"type": "Recreate"})
        );

        let orig = json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}});
        let patch = json!({"spec": {"volumes": [{"$retainKeys": ["hostPath", "name"], "name": "v", "hostPath": {"path": "/tmp"}}]}});
        assert_eq!(
            smp(orig, patch, pod())["spec"]["volumes"],
            json!([{"name": "v", "hostPath": {"path": "/tmp"}}])
        );
    }

    /// What `kubectl apply` sends when a Deployment's strategy changes to `Recreate`.
    #[test]
    fn retain_keys_refused_null_for_a_dropped_field() {
        let orig = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}});
        assert_eq!(
            smp(orig, patch, deploy())["spec"]["strategy"],
            json!({"type": "Recreate"})
        );
        let err = merge(
            &json!({}),
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}}),
            deploy(),
        )
        .unwrap_err();
        assert!(
            err.message.contains("not present in $retainKeys"),
            "{}",
            err.message
        );
    }

    #[test]
    fn owner_references_merge_by_uid_and_conditions_by_type() {
        let orig = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        let patch = json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let out = smp(orig, patch, pod());
        assert_eq!(
            out["metadata"]["ownerReferences"].as_array().unwrap().len(),
            2
        );
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}])
        );
    }

    #[test]
    fn malformed_directives_are_rejected() {
        let err = merge(
            &json!({}),
            &json!({"metadata": {"$patch": "explode"}}),
            pod(),
        )
        .unwrap_err();
        assert_eq!(err.code, 400);
        let err = merge(
            &json!({}),
            &json!({"spec": {"containers": [{"image": "x"}]}}),
            pod(),
        )
        .unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.message.contains("merge key"), "{}", err.message);
    }
}
