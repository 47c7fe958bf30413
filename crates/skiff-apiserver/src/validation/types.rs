//! Type checking and unknown-field detection against the k8s-openapi types and schemas.
//! A wrong JSON type is reported the way Kubernetes' decoder reports it:
//! `Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal
//! string into Go struct field DeploymentSpec.spec.replicas of type int32`.

use base64::Engine;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::schema::{Node, Shape};
use crate::error::ApiError;
use crate::resources::ResourceInfo;

/// Deserializes `obj` into `T`, the k8s-openapi type of `info`'s kind; on failure finds the
/// field whose JSON type is wrong and reports it as a 400.
pub fn decode<T: DeserializeOwned>(info: &ResourceInfo, obj: &Value) -> Result<T, ApiError> {
    let serde_err = match T::deserialize(obj) {
        Ok(t) => return Ok(t),
        Err(e) => e,
    };
    let detail = Node::root(info)
        .and_then(|root| mismatch(root, obj, &mut Vec::new(), info.kind))
        .unwrap_or_else(|| serde_err.to_string());
    Err(ApiError::bad_request(format!(
        "{kind} in version {version:?} cannot be handled as a {kind}: {detail}",
        kind = info.kind,
        version = info.version
    )))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Go's name for the type a schema node decodes into.
fn go_type(n: Node) -> String {
    let short = |d: &str| {
        let mut parts = d.rsplit('.');
        let name = parts.next().unwrap_or(d);
        format!("{}.{name}", parts.next().unwrap_or("v1"))
    };
    match n.shape() {
        Shape::List => format!("[]{}", n.items().map(go_type).unwrap_or_default()),
        Shape::Map => format!("map[string]{}", n.values().map(go_type).unwrap_or_default()),
        Shape::Struct | Shape::Any => n.def().map(short).unwrap_or_else(|| "interface {}".into()),
        Shape::Scalar => match (n.scalar_type(), n.format()) {
            (None, _) => "intstr.IntOrString".into(),
            (Some("integer"), Some(f)) => f.to_string(),
            (Some("integer"), None) => "int".into(),
            (Some("number"), _) => "float64".into(),
            (Some("boolean"), _) => "bool".into(),
            _ => "string".into(),
        },
    }
}

/// The first value in `v` whose JSON type does not fit `n`, as the Go decoder words it.
/// `path` holds the field names from the root (Go leaves list indices out); `owner` is the
/// struct declaring the current field.
fn mismatch(n: Node, v: &Value, path: &mut Vec<String>, owner: &str) -> Option<String> {
    if v.is_null() {
        return None;
    }
    let wrong = || {
        let what = match v {
            Value::Number(num) => format!("number {num}"),
            other => json_type(other).to_string(),
        };
        Some(format!(
            "json: cannot unmarshal {what} into Go struct field {owner}.{} of type {}",
            path.join("."),
            go_type(n)
        ))
    };
    match (n.shape(), v) {
        (Shape::Any, _) => None,
        (Shape::Struct, Value::Object(m)) => {
            let name = n.def().map_or(owner, |d| d.rsplit('.').next().unwrap_or(d));
            m.iter().find_map(|(k, child)| {
                let field = n.field(k)?;
                path.push(k.clone());
                let found = mismatch(field, child, path, name);
                path.pop();
                found
            })
        }
        (Shape::Map, Value::Object(m)) => {
            let values = n.values()?;
            m.values()
                .find_map(|child| mismatch(values, child, path, owner))
        }
        (Shape::List, Value::Array(items)) => {
            let item = n.items()?;
            items
                .iter()
                .find_map(|child| mismatch(item, child, path, owner))
        }
        (Shape::Scalar, _) => match (n.scalar_type(), v) {
            (None, Value::Number(_) | Value::String(_)) => None,
            (Some("string"), Value::String(s)) if n.format() == Some("byte") => {
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .err()
                    .map(|e| format!("illegal base64 data at input byte {}", base64_offset(&e)))
            }
            (Some("string"), Value::String(_))
            | (Some("boolean"), Value::Bool(_))
            | (Some("number"), Value::Number(_)) => None,
            (Some("integer"), Value::Number(num)) if num.is_i64() || num.is_u64() => None,
            _ => wrong(),
        },
        _ => wrong(),
    }
}

fn base64_offset(e: &base64::DecodeError) -> usize {
    match e {
        base64::DecodeError::InvalidByte(i, _) | base64::DecodeError::InvalidLastSymbol(i, _) => *i,
        base64::DecodeError::InvalidLength(i) => *i,
        base64::DecodeError::InvalidPadding => 0,
    }
}

/// Fields of `obj` that its kind's schema does not have, as `unknown field "<path>"` with
/// list indices (the wording of Kubernetes' strict decoding), in document order.
pub fn unknown_fields(info: &ResourceInfo, obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(root) = Node::root(info) {
        walk_unknown(root, obj, "", &mut out);
    }
    out
}

fn walk_unknown(n: Node, v: &Value, path: &str, out: &mut Vec<String>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (n.shape(), v) {
        (Shape::Struct, Value::Object(m)) => {
            for (k, child) in m {
                match n.field(k) {
                    Some(f) => walk_unknown(f, child, &join(k), out),
                    None => out.push(format!("unknown field {:?}", join(k))),
                }
            }
        }
        (Shape::Map, Value::Object(m)) => {
            if let Some(values) = n.values() {
                for (k, child) in m {
                    walk_unknown(values, child, &join(k), out);
                }
            }
        }
        (Shape::List, Value::Array(items)) => {
            if let Some(item) = n.items() {
                for (i, child) in items.iter().enumerate() {
                    walk_unknown(item, child, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find_kind;
    use serde_json::json;

    fn info(av: &str, kind: &str) -> &'static ResourceInfo {
        find_kind(av, kind).unwrap().info()
    }

    /// Type-checks `obj` as the kind of `info`.
    fn check(info: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
        find_kind(&info.api_version(), info.kind)
            .unwrap()
            .validate(obj, None)
            .or_else(|e| if e.code == 422 { Ok(()) } else { Err(e) })
    }

    #[test]
    fn wrong_type_is_a_bad_request_naming_the_field() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}, "spec": {"replicas": "3"}});
        let err = check(info("apps/v1", "Deployment"), &d).unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));
        assert_eq!(
            err.message,
            r#"Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"#
        );
        let p = json!({"metadata": {"name": "a"}, "spec": {"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 1.5}]}]}});
        let err = check(info("v1", "Pod"), &p).unwrap_err();
        assert!(err.message.ends_with("cannot unmarshal number 1.5 into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32"), "{}", err.message);
        let p = json!({"metadata": {"name": "a", "labels": {"x": 5}}});
        let err = check(info("v1", "ConfigMap"), &p).unwrap_err();
        assert!(
            err.message
                .contains("Go struct field ObjectMeta.metadata.labels of type string"),
            "{}",
            err.message
        );
    }

    #[test]
    fn bad_base64_in_secret_data_is_rejected() {
        let s = json!({"metadata": {"name": "a"}, "data": {"k": "not base64!"}});
        let err = check(info("v1", "Secret"), &s).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.contains("illegal base64 data at input byte 3"),
            "{}",
            err.message
        );
        assert!(check(
            info("v1", "Secret"),
            &json!({"metadata": {"name": "a"}, "data": {"k": "aGk="}})
        )
        .is_ok());
    }

    #[test]
    fn well_typed_objects_pass_with_int_or_string_and_quantities() {
        let p = json!({"metadata": {"name": "a"}, "spec": {"containers": [{"name": "a", "image": "x",
            "resources": {"limits": {"cpu": "500m", "memory": 1024}},
            "livenessProbe": {"httpGet": {"port": "http"}}, "readinessProbe": {"tcpSocket": {"port": 80}}}]}});
        assert!(check(info("v1", "Pod"), &p).is_ok());
    }

    #[test]
    fn unknown_fields_come_from_the_schema_with_indices() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "labels": {"any": "key"}},
            "spec": {"foo": 1, "template": {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "imagee": "y"}]}}},
            "status": {}});
        assert_eq!(
            unknown_fields(info("apps/v1", "Deployment"), &d),
            vec![
                r#"unknown field "spec.foo""#.to_string(),
                r#"unknown field "spec.template.spec.containers[1].imagee""#.to_string()
            ]
        );
        let cm = json!({"metadata": {"name": "a", "managedFields": [{"fieldsV1": {"f:data": {}}}]}, "data": {"x": "y"}});
        assert!(unknown_fields(info("v1", "ConfigMap"), &cm).is_empty());
    }
}
